#include "store/job_id.hpp"

#include <cstdint>
#include <random>

namespace reel {

namespace {

std::mt19937_64& engine() {
  // One engine per thread: no locking, and each is seeded from the OS entropy source
  // so two daemons (or two threads) do not walk the same sequence.
  thread_local std::mt19937_64 eng = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }();
  return eng;
}

}  // namespace

std::string new_job_id() {
  std::uniform_int_distribution<std::size_t> pick(0, kJobIdAlphabet.size() - 1);
  std::string id(kJobIdLength, ' ');
  for (char& c : id) c = kJobIdAlphabet[pick(engine())];
  return id;
}

bool looks_like_job_id(std::string_view s) {
  if (s.size() != kJobIdLength) return false;
  for (char c : s)
    if (kJobIdAlphabet.find(c) == std::string_view::npos) return false;
  return true;
}

std::string new_lease_token() {
  // Straight from the OS source rather than the id engine: a lease guards against a
  // stale run overwriting a newer one, so it must not be guessable from earlier ids.
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device rd;
  std::string out;
  out.reserve(32);
  for (int i = 0; i < 4; ++i) {
    uint32_t w = rd();
    for (int nib = 0; nib < 8; ++nib) out.push_back(kHex[(w >> (nib * 4)) & 0xF]);
  }
  return out;
}

}  // namespace reel
