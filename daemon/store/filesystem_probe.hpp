// Network-filesystem detection for the database directory.
//
// SQLite's WAL mode needs shared memory (the -shm file mapped by every connection),
// which network filesystems do not provide coherently across hosts; WAL there can
// corrupt the database. The store asks this probe and falls back to the DELETE
// journal on a network filesystem. The classification is a pure function of statfs's
// f_type so it can be tested without such a mount.
// Thread-safety: all functions are pure or only call statfs(2); safe from any thread.
#pragma once

#include <optional>
#include <string>

namespace reel {

// True for NFS, SMB/CIFS, FUSE (sshfs, rclone, ...), Ceph, 9P, AFS and cluster
// filesystems. FUSE counts as network: most FUSE mounts under a state dir are remote,
// and the cost of guessing wrong is only the slower DELETE journal.
bool is_network_filesystem(unsigned long f_type);

// A short name for logs ("nfs", "cifs", "fuse", ...); "0x..." for types it does not know.
std::string filesystem_type_name(unsigned long f_type);

// statfs(2) of `path`; nullopt when it fails (e.g. the path does not exist).
std::optional<unsigned long> filesystem_type(const std::string& path);

}  // namespace reel
