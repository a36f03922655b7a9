// Job ids and run leases.
//
// A job id is 6 characters from an alphabet without look-alikes (no 0/1/i/l/o), so
// people can read one off a screen and type it: 31^6 ≈ 8.9e8 ids. Ids are random,
// not sequential; the store retries on the (rare) primary-key collision.
// A lease is 128 random bits in hex: the token that proves an executor update comes
// from the job's current run.
// Thread-safety: both functions are safe to call from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace reel {

inline constexpr std::string_view kJobIdAlphabet = "23456789abcdefghjkmnpqrstuvwxyz";
inline constexpr std::size_t kJobIdLength = 6;

std::string new_job_id();
// True when `s` has the shape of a job id (length and alphabet); says nothing about existence.
bool looks_like_job_id(std::string_view s);

// 32 lowercase hex characters.
std::string new_lease_token();

}  // namespace reel
