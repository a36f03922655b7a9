#include "store/filesystem_probe.hpp"

#include <sys/vfs.h>

#include <cstdio>

namespace reel {

namespace {

struct FsMagic {
  unsigned long magic;
  const char* name;
  bool network;
};

// Values from linux/magic.h and the filesystems' own sources (some are not in magic.h).
constexpr FsMagic kMagics[] = {
    {0x6969UL, "nfs", true},
    {0x517BUL, "smb", true},
    {0xFF534D42UL, "cifs", true},
    {0xFE534D42UL, "smb2", true},
    {0x65735546UL, "fuse", true},
    {0x00C36400UL, "ceph", true},
    {0x01021997UL, "9p", true},
    {0x5346414FUL, "afs", true},
    {0x6B414653UL, "kafs", true},
    {0x73757245UL, "coda", true},
    {0x564CUL, "ncp", true},
    {0x0BD00BD0UL, "lustre", true},
    {0x47504653UL, "gpfs", true},
    {0x01161970UL, "gfs2", true},
    {0x7461636FUL, "ocfs2", true},
    {0x20030528UL, "orangefs", true},
    {0xEF53UL, "ext4", false},
    {0x58465342UL, "xfs", false},
    {0x9123683EUL, "btrfs", false},
    {0x01021994UL, "tmpfs", false},
    {0x2FC12FC1UL, "zfs", false},
    {0xF2F52010UL, "f2fs", false},
    {0x794C7630UL, "overlayfs", false},
};

const FsMagic* lookup(unsigned long f_type) {
  // f_type is a signed word on some ABIs; only the low 32 bits carry the magic.
  unsigned long t = f_type & 0xFFFFFFFFUL;
  for (const auto& m : kMagics)
    if (m.magic == t) return &m;
  return nullptr;
}

}  // namespace

bool is_network_filesystem(unsigned long f_type) {
  const FsMagic* m = lookup(f_type);
  return m && m->network;
}

std::string filesystem_type_name(unsigned long f_type) {
  if (const FsMagic* m = lookup(f_type)) return m->name;
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%lx", f_type & 0xFFFFFFFFUL);
  return buf;
}

std::optional<unsigned long> filesystem_type(const std::string& path) {
  struct statfs st {};
  if (statfs(path.c_str(), &st) != 0) return std::nullopt;
  return static_cast<unsigned long>(st.f_type);
}

}  // namespace reel
