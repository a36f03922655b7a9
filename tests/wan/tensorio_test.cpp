// Checkpoint reading (plugins/tensorio): safetensors files built byte by byte here and
// the published fixtures, the .pth reader on torch.save archives, and the errors a
// corrupt or incomplete checkpoint must give (a WeightError naming the file).
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tensorio/weights.hpp"
#include "wan/golden.hpp"

namespace fs = std::filesystem;
using namespace reel::tensorio;

namespace {

std::string wan_dir() { return reel::golden::fixture_dir("REEL_WAN21_TINY_A", "wan21-tiny-a"); }
std::string hya_dir() { return reel::golden::fixture_dir("REEL_HYAVATAR_DIT_TINY_A", "hyavatar-dit-tiny-a"); }

struct TmpDir {
  fs::path path;
  TmpDir() {
    path = fs::temp_directory_path() / ("tensorio_test_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::create_directories(path);
  }
  ~TmpDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return s;
}

// A safetensors file from a header JSON and a data blob; the header is padded with
// spaces to a multiple of 8 (as the reference writer does) unless `pad` is false.
std::string safetensors_bytes(const nlohmann::json& header, const std::string& data, bool pad = true) {
  std::string h = header.dump();
  if (pad)
    while (h.size() % 8) h += ' ';
  return le64(h.size()) + h + data;
}

template <typename T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// Expects `fn` to throw a WeightError whose message contains every one of `parts`.
template <typename Fn>
void expect_weight_error(Fn fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no WeightError thrown";
  } catch (const WeightError& e) {
    std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

// A small file with several dtypes; returns its bytes.
std::string mixed_file() {
  std::vector<float> f32 = {1.5f, -2.25f, 3.0f, 0.0f, 1e-3f, -7.0f};
  std::vector<uint16_t> bf16 = {0x3F80, 0xC000, 0x4049};    // 1.0, -2.0, 3.140625
  std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x3555};     // 1.0, -2.0, 0.333251953125
  std::vector<int64_t> i64 = {1, -2, 1LL << 40};
  std::vector<uint8_t> f8 = {0x38, 0x40, 0xB8, 0x01, 0x7F, 0xFF, 0x00, 0x7E};
  std::string data;
  nlohmann::json h;
  auto add = [&](const std::string& name, const std::string& dtype, std::vector<int64_t> shape, const std::string& bytes) {
    h[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data += bytes;
  };
  add("f32", "F32", {2, 3}, raw(f32));
  add("i64", "I64", {3}, raw(i64));
  add("bf16", "BF16", {3}, raw(bf16));
  add("f16", "F16", {3, 1}, raw(f16));
  add("f8", "F8_E4M3", {8}, raw(f8));
  add("empty", "F32", {0, 4}, "");
  h["__metadata__"] = {{"format", "pt"}};
  return safetensors_bytes(h, data);
}

}  // namespace

TEST(Safetensors, RoundTripsDtypes) {
  TmpDir d;
  const auto p = d.file("mixed.safetensors");
  write_file(p, mixed_file());
  auto m = load_safetensors(p);
  ASSERT_EQ(m.size(), 6u);
  EXPECT_TRUE(m.at("f32").equal(torch::tensor({1.5f, -2.25f, 3.0f, 0.0f, 1e-3f, -7.0f}).view({2, 3})));
  EXPECT_EQ(m.at("i64").scalar_type(), torch::kInt64);
  EXPECT_TRUE(m.at("i64").equal(torch::tensor({int64_t(1), int64_t(-2), int64_t(1) << 40})));
  EXPECT_EQ(m.at("bf16").scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(m.at("bf16").to(torch::kFloat32).equal(torch::tensor({1.0f, -2.0f, 3.140625f})));
  EXPECT_EQ(m.at("f16").scalar_type(), torch::kFloat16);
  EXPECT_TRUE(m.at("f16").to(torch::kFloat32).equal(torch::tensor({1.0f, -2.0f, 0.333251953125f}).view({3, 1})));
  EXPECT_EQ(m.at("empty").sizes(), (std::vector<int64_t>{0, 4}));

  // float8 e4m3fn comes back as raw bytes and decodes exactly.
  ASSERT_EQ(m.at("f8").scalar_type(), torch::kUInt8);
  auto f8 = dequantize_fp8_e4m3(m.at("f8"));
  auto a = f8.accessor<float, 1>();
  EXPECT_EQ(a[0], 1.0f);
  EXPECT_EQ(a[1], 2.0f);
  EXPECT_EQ(a[2], -1.0f);
  EXPECT_EQ(a[3], std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_TRUE(std::isnan(a[4]));
  EXPECT_TRUE(std::isnan(a[5]));
  EXPECT_EQ(a[6], 0.0f);
  EXPECT_EQ(a[7], 448.0f);  // largest finite e4m3fn
  EXPECT_EQ(dequantize_fp8_e4m3(m.at("f8"), 0.5).accessor<float, 1>()[1], 1.0f);

  auto info = read_safetensors_header(p);
  EXPECT_EQ(info.at("f8").dtype, "F8_E4M3");
  EXPECT_EQ(info.at("f32").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(info.count("__metadata__"), 0u);
}

TEST(Safetensors, Fp8E5M2Decodes) {
  auto raw_bytes = torch::tensor({0x3C, 0x40, 0xBC, 0x01, 0x7C, 0x7F, 0x7B}, torch::kUInt8);
  auto v = dequantize_fp8_e5m2(raw_bytes);
  auto a = v.accessor<float, 1>();
  EXPECT_EQ(a[0], 1.0f);
  EXPECT_EQ(a[1], 2.0f);
  EXPECT_EQ(a[2], -1.0f);
  EXPECT_EQ(a[3], std::ldexp(1.0f, -16));
  EXPECT_TRUE(std::isinf(a[4]));
  EXPECT_TRUE(std::isnan(a[5]));
  EXPECT_EQ(a[6], 57344.0f);
}

TEST(Safetensors, TensorsOutliveTheirMapAndAreWritable) {
  TmpDir d;
  const auto p = d.file("mixed.safetensors");
  write_file(p, mixed_file());
  torch::Tensor t;
  {
    auto m = load_safetensors(p);
    t = m.at("f32");
  }
  // The map is gone; the tensor still reads, and writing to it (copy-on-write)
  // neither crashes nor changes the file.
  EXPECT_EQ(t[0][0].item<float>(), 1.5f);
  t.mul_(2);
  EXPECT_EQ(t[0][0].item<float>(), 3.0f);
  EXPECT_EQ(load_safetensors(p).at("f32")[0][0].item<float>(), 1.5f);
}

TEST(Safetensors, MisalignedDataIsCopied) {
  TmpDir d;
  const auto p = d.file("odd.safetensors");
  std::vector<float> f32 = {1.0f, 2.0f};
  nlohmann::json h;
  h["a"] = {{"dtype", "U8"}, {"shape", {1}}, {"data_offsets", {0, 1}}};
  h["b"] = {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {1, 9}}};
  write_file(p, safetensors_bytes(h, std::string("\x07", 1) + raw(f32)));
  auto m = load_safetensors(p);
  EXPECT_EQ(m.at("a").item<uint8_t>(), 7);
  EXPECT_TRUE(m.at("b").equal(torch::tensor({1.0f, 2.0f})));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(m.at("b").data_ptr()) % alignof(float), 0u);
}

TEST(Safetensors, LoadingDoesNotCopy) {
  // Every tensor's data lies inside the file's mapping, at its offset in the file:
  // the distance between two tensors' data equals the distance in the file.
  const auto p = wan_dir() + "/checkpoint/diffusion_pytorch_model.safetensors";
  auto info = read_safetensors_header(p);
  auto m = load_safetensors(p);
  ASSERT_GT(m.size(), 2u);
  const auto size = fs::file_size(p);
  std::ifstream f(p, std::ios::binary);
  std::string head(8, '\0');
  f.read(head.data(), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(head[i]);
  std::string hjson(n, '\0');
  f.read(hjson.data(), static_cast<std::streamsize>(n));
  auto h = nlohmann::json::parse(hjson);
  // The tensor at data offset 0 marks the start of the data area.
  const char* data0 = nullptr;
  for (auto& [name, t] : m)
    if (h[name]["data_offsets"][0].get<uint64_t>() == 0) data0 = static_cast<const char*>(t.data_ptr()) ;
  ASSERT_NE(data0, nullptr);
  for (auto& [name, t] : m) {
    const uint64_t off = h[name]["data_offsets"][0].get<uint64_t>();
    if (off % t.element_size() != 0 || t.numel() == 0) continue;
    EXPECT_EQ(static_cast<const char*>(t.data_ptr()), data0 + off) << name;
    EXPECT_LT(off, size);
  }
}

TEST(Safetensors, ReadsGoldenFixture) {
  const auto dir = wan_dir();
  auto g = reel::golden::read_json(dir + "/golden.json");
  auto m = load_safetensors(dir + "/golden/dit_io.safetensors");
  ASSERT_TRUE(m.count("x"));
  ASSERT_TRUE(m.count("context"));
  ASSERT_TRUE(m.count("t"));
  EXPECT_EQ(m.at("x").sizes().vec(), g["dit_io"]["latent_shape"].get<std::vector<int64_t>>());
  EXPECT_EQ(m.at("context").size(0), g["dit_io"]["context_tokens"].get<int64_t>());
  EXPECT_EQ(m.at("context").size(1), g["dit"]["text_dim"].get<int64_t>());
  EXPECT_EQ(m.at("t").item<float>(), g["dit_io"]["t"].get<float>());
  EXPECT_EQ(m.at("x").scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::isfinite(m.at("out")).all().item<bool>());

  Weights w(load_safetensors(dir + "/checkpoint/diffusion_pytorch_model.safetensors"),
            dir + "/checkpoint/diffusion_pytorch_model.safetensors");
  const int64_t dim = g["dit"]["dim"].get<int64_t>();
  EXPECT_EQ(w.require("blocks.0.self_attn.q.weight", {dim, dim}).sizes(), (std::vector<int64_t>{dim, dim}));
}

TEST(Safetensors, CorruptFilesAreRefusedNamingTheFile) {
  TmpDir d;
  const std::string good = mixed_file();

  const auto trunc = d.file("truncated.safetensors");
  write_file(trunc, good.substr(0, good.size() - 3));
  // The last tensor in the data area is "f8" (data is laid out in insertion order).
  expect_weight_error([&] { load_safetensors(trunc); }, {trunc, "'f8'", "truncated"});

  const auto short_file = d.file("short.safetensors");
  write_file(short_file, good.substr(0, 5));
  expect_weight_error([&] { load_safetensors(short_file); }, {short_file});

  const auto cut_header = d.file("cut_header.safetensors");
  write_file(cut_header, good.substr(0, 40));
  expect_weight_error([&] { load_safetensors(cut_header); }, {cut_header, "header length"});

  const auto bad_len = d.file("bad_len.safetensors");
  write_file(bad_len, le64(1ull << 60) + good.substr(8));
  expect_weight_error([&] { load_safetensors(bad_len); }, {bad_len, "header length"});

  const auto not_json = d.file("not_json.safetensors");
  write_file(not_json, le64(8) + "{nope!!}" + std::string(16, '\0'));
  expect_weight_error([&] { load_safetensors(not_json); }, {not_json, "JSON"});
  expect_weight_error([&] { read_safetensors_header(not_json); }, {not_json, "JSON"});

  const auto oob = d.file("oob.safetensors");
  nlohmann::json h;
  h["w"] = {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {8, 24}}};
  write_file(oob, safetensors_bytes(h, std::string(16, '\0')));
  expect_weight_error([&] { load_safetensors(oob); }, {oob, "'w'"});

  const auto mismatch = d.file("mismatch.safetensors");
  h["w"] = {{"dtype", "F32"}, {"shape", {3}}, {"data_offsets", {0, 16}}};
  write_file(mismatch, safetensors_bytes(h, std::string(16, '\0')));
  expect_weight_error([&] { load_safetensors(mismatch); }, {mismatch, "'w'", "needs 12"});

  const auto overlap = d.file("overlap.safetensors");
  h["w"] = {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 8}}};
  h["v"] = {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {4, 12}}};
  write_file(overlap, safetensors_bytes(h, std::string(16, '\0')));
  expect_weight_error([&] { load_safetensors(overlap); }, {overlap, "overlapping"});

  const auto bad_dtype = d.file("bad_dtype.safetensors");
  nlohmann::json h2;
  h2["w"] = {{"dtype", "C64"}, {"shape", {1}}, {"data_offsets", {0, 8}}};
  write_file(bad_dtype, safetensors_bytes(h2, std::string(8, '\0')));
  expect_weight_error([&] { load_safetensors(bad_dtype); }, {bad_dtype, "'w'", "C64"});

  expect_weight_error([&] { load_safetensors(d.file("absent.safetensors")); }, {d.file("absent.safetensors")});
}

TEST(Safetensors, ShardedIndex) {
  TmpDir d;
  std::vector<float> a = {1, 2}, b = {3, 4, 5};
  nlohmann::json h1, h2;
  h1["a"] = {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 8}}};
  h2["b"] = {{"dtype", "F32"}, {"shape", {3}}, {"data_offsets", {0, 12}}};
  write_file(d.file("m-00001-of-00002.safetensors"), safetensors_bytes(h1, raw(a)));
  write_file(d.file("m-00002-of-00002.safetensors"), safetensors_bytes(h2, raw(b)));
  nlohmann::json idx = {{"metadata", {{"total_size", 20}}},
                        {"weight_map", {{"a", "m-00001-of-00002.safetensors"}, {"b", "m-00002-of-00002.safetensors"}}}};
  write_file(d.file("m.safetensors.index.json"), idx.dump());
  auto m = load_safetensors_index(d.file("m.safetensors.index.json"));
  ASSERT_EQ(m.size(), 2u);
  EXPECT_TRUE(m.at("b").equal(torch::tensor({3.0f, 4.0f, 5.0f})));

  idx["weight_map"]["c"] = "m-00003-of-00002.safetensors";
  write_file(d.file("missing.index.json"), idx.dump());
  expect_weight_error([&] { load_safetensors_index(d.file("missing.index.json")); },
                      {"m-00003-of-00002.safetensors", "'c'", "missing"});

  idx["weight_map"].erase("c");
  idx["weight_map"]["z"] = "m-00001-of-00002.safetensors";
  write_file(d.file("absent_tensor.index.json"), idx.dump());
  expect_weight_error([&] { load_safetensors_index(d.file("absent_tensor.index.json")); },
                      {"m-00001-of-00002.safetensors", "'z'"});
}

TEST(Weights, RequireChecksNameShapeAndConverts) {
  TensorMap m;
  m["a.weight"] = torch::ones({2, 3}, torch::kBFloat16);
  m["model.b"] = torch::zeros({4});
  Weights w(m, "/x/ckpt.safetensors");
  auto a = w.require("a.weight", {2, 3});
  EXPECT_EQ(a.scalar_type(), torch::kFloat32);
  EXPECT_EQ(w.shape_of("a.weight"), (std::vector<int64_t>{2, 3}));
  expect_weight_error([&] { w.require("a.weight", {3, 2}); },
                      {"/x/ckpt.safetensors: tensor 'a.weight': expected shape [3, 2], found [2, 3]"});
  expect_weight_error([&] { w.require("nope"); }, {"/x/ckpt.safetensors: missing tensor 'nope'"});
  w.strip_prefix("model.");
  EXPECT_TRUE(w.has("b"));
  EXPECT_FALSE(w.has("model.b"));
}
