// Parsing memory sizes ("24GiB", "0.4 GB") and their exact round-trip form.
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/memory_size.hpp"

using namespace reel;

namespace {

constexpr int64_t KiB = 1024, MiB = KiB << 10, GiB = MiB << 10, TiB = GiB << 10;

struct Valid {
  std::string text;
  int64_t bytes;
};

struct Invalid {
  std::string text, why;  // `why` is a part of the reason
};

}  // namespace

TEST(MemorySize, ValidSizes) {
  const std::vector<Valid> cases = {
      {"0", 0},
      {"1048576", 1048576},
      {"512B", 512},
      {"512 b", 512},
      {"24GiB", 24 * GiB},
      {"24gib", 24 * GiB},
      {"24 GIB", 24 * GiB},
      {"24Gi", 24 * GiB},
      {"24G", 24 * GiB},       // bare letters are binary, as in systemd
      {"24g", 24 * GiB},
      {"1.5G", GiB + GiB / 2},
      {"512MiB", 512 * MiB},
      {"400M", 400 * MiB},
      {"8KiB", 8 * KiB},
      {"8k", 8 * KiB},
      {"2TiB", 2 * TiB},
      {"2T", 2 * TiB},
      {"0.4 GB", 400000000},   // decimal units are powers of 1000
      {"0.4gb", 400000000},
      {"1GB", 1000000000},
      {"1MB", 1000000},
      {"1kb", 1000},
      {"3TB", 3000000000000},
      {"0.4GiB", 429496729},   // rounded down to whole bytes
      {"0.1KiB", 102},
      {"1.5KiB", 1536},
      {".5GiB", GiB / 2},
      {"1.000000000000000000001GiB", GiB},  // digits past the 18th are below a byte
      {"  24GiB  ", 24 * GiB},
      {"\t8G", 8 * GiB},
      {"+1MiB", MiB},
      {"1.0MiB", MiB},
      {"9223372036854775807", INT64_MAX},
      {"8388607TiB", 8388607 * TiB},
  };
  for (const auto& c : cases) {
    std::string why;
    auto v = parse_memory_size(c.text, why);
    ASSERT_TRUE(v.has_value()) << "'" << c.text << "': " << why;
    EXPECT_EQ(*v, c.bytes) << "'" << c.text << "'";
    EXPECT_EQ(parse_memory_size(std::string_view(c.text)), c.bytes);
  }
}

TEST(MemorySize, InvalidSizes) {
  const std::vector<Invalid> cases = {
      {"", "empty"},
      {"   ", "empty"},
      {"GiB", "expected a number"},
      {".GiB", "expected a number"},
      {"lots", "expected a number"},
      {"-1GiB", "must not be negative"},
      {"-0", "must not be negative"},
      {"1.", "digits after the decimal point"},
      {"1.GiB", "digits after the decimal point"},
      {"24 GiBs", "unknown unit 'GiBs'"},
      {"24Gbit", "unknown unit 'Gbit'"},
      {"24 PiB", "unknown unit 'PiB'"},
      {"1e9", "unknown unit 'e9'"},
      {"1,5G", "unknown unit ',5G'"},
      {"1 2G", "unknown unit '2G'"},
      {"0x10", "unknown unit 'x10'"},
      {"1.5", "whole"},
      {"1.5B", "whole"},
      {"9223372036854775808", "too large"},
      {"99999999999999999999999", "too large"},
      {"8388608TiB", "too large"},
      {"9300000TB", "too large"},
  };
  for (const auto& c : cases) {
    std::string why;
    auto v = parse_memory_size(c.text, why);
    EXPECT_FALSE(v.has_value()) << "'" << c.text << "' parsed as " << v.value_or(-1);
    EXPECT_NE(why.find(c.why), std::string::npos) << "'" << c.text << "': " << why;
  }
}

TEST(MemorySize, UnknownUnitListsTheUnits) {
  std::string why;
  parse_memory_size("4 gigs", why);
  EXPECT_EQ(why, "unknown unit 'gigs'; use B, KiB, MiB, GiB, TiB (or K, M, G, T), KB, MB, GB, TB");
}

TEST(MemorySize, ThrowingFormNamesTheText) {
  try {
    parse_memory_size(std::string_view("12 parsecs"));
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()),
              "not a size: '12 parsecs' (unknown unit 'parsecs'; use B, KiB, MiB, GiB, TiB (or K, M, G, T), KB, "
              "MB, GB, TB)");
  }
}

TEST(MemorySize, StringIsExactAndShortest) {
  EXPECT_EQ(memory_size_string(0), "0");
  EXPECT_EQ(memory_size_string(1), "1");
  EXPECT_EQ(memory_size_string(1536), "1536");
  EXPECT_EQ(memory_size_string(1024), "1KiB");
  EXPECT_EQ(memory_size_string(1000), "1KB");
  EXPECT_EQ(memory_size_string(400 * MiB), "400MiB");
  EXPECT_EQ(memory_size_string(2 * GiB), "2GiB");
  EXPECT_EQ(memory_size_string(24 * GiB), "24GiB");
  EXPECT_EQ(memory_size_string(1536 * MiB), "1536MiB");
  EXPECT_EQ(memory_size_string(TiB), "1TiB");
  EXPECT_EQ(memory_size_string(400000000), "400MB");   // not "390625KiB"
  EXPECT_EQ(memory_size_string(4096000), "4000KiB");   // = "4096KB": binary wins the tie
  EXPECT_EQ(memory_size_string(-5), "-5");
}

TEST(MemorySize, StringRoundTrips) {
  for (int64_t v : {int64_t{0}, int64_t{1}, int64_t{999}, int64_t{1000}, int64_t{1024}, 400 * MiB, 800 * MiB,
                    500 * MiB, 2 * GiB, 24 * GiB + 1, int64_t{400000000}, int64_t{123456789012}, 3 * TiB,
                    INT64_MAX}) {
    std::string s = memory_size_string(v);
    EXPECT_EQ(parse_memory_size(std::string_view(s)), v) << s;
  }
}
