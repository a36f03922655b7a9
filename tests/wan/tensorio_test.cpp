// Checkpoint reading (plugins/tensorio): safetensors files built byte by byte here and
// the published fixtures, the .pth reader on torch.save archives, and the errors a
// corrupt or incomplete checkpoint must give (a WeightError naming the file).
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <torch/serialize.h>
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
  auto halved = dequantize_fp8_e4m3(m.at("f8"), 0.5);
  EXPECT_EQ(halved[1].item<float>(), 1.0f);

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

TEST(Fp8, QuantizeE4M3RoundTripsAndRoundsToNearestEven) {
  // Every finite e4m3 value times a scale comes back exactly.
  torch::Tensor codes = torch::arange(0, 256, torch::kLong).to(torch::kUInt8);
  torch::Tensor values = dequantize_fp8_e4m3(codes);
  torch::Tensor finite = values.index({torch::isfinite(values)});
  auto q = quantize_fp8_e4m3(finite * 3.0);
  EXPECT_DOUBLE_EQ(q.scale, 3.0) << "amax 448*3 maps to 448";
  EXPECT_TRUE(torch::equal(dequantize_fp8_e4m3(q.bytes, q.scale), finite * 3.0));

  // Halfway between 1.0 (code 0x38, even) and 1.125 (0x39): the even code wins; a bit
  // above halfway goes up. 448 pins the scale to 1.
  auto t = quantize_fp8_e4m3(torch::tensor({1.0625f, 1.07f, 1.1875f, -1.0625f, 448.0f}));
  EXPECT_EQ(t.scale, 1.0);
  auto b = t.bytes.to(torch::kInt64);
  EXPECT_EQ(b[0].item<int64_t>(), 0x38);
  EXPECT_EQ(b[1].item<int64_t>(), 0x39);
  EXPECT_EQ(b[2].item<int64_t>(), 0x3A) << "1.1875 is halfway 1.125 (odd) / 1.25 (even)";
  EXPECT_EQ(b[3].item<int64_t>(), 0xB8);

  // Random data: the error is within half a step of 3 mantissa bits (relative 2^-4).
  torch::manual_seed(7);
  torch::Tensor x = torch::randn({4096});
  auto r = quantize_fp8_e4m3(x);
  torch::Tensor back = dequantize_fp8_e4m3(r.bytes, r.scale);
  torch::Tensor normal = x.abs() > r.scale * std::ldexp(1.0, -6);
  EXPECT_LE(((back - x).abs() / x.abs()).index({normal}).max().item<double>(), 1.0 / 16 + 1e-6);
  EXPECT_EQ(quantize_fp8_e4m3(torch::zeros({3})).scale, 1.0);
  EXPECT_THROW(quantize_fp8_e4m3(torch::tensor({1.0f, NAN})), WeightError);
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

// ---- .pth (torch.save zip archives) ----

namespace {

// Pickle bytes built opcode by opcode (protocol 2, as torch.save writes them).
struct Pickle {
  std::string b = "\x80\x02";
  Pickle& op(char c) { b += c; return *this; }
  Pickle& str(const std::string& s) {
    b += 'X';
    uint32_t n = static_cast<uint32_t>(s.size());
    for (int i = 0; i < 4; ++i) b += static_cast<char>((n >> (8 * i)) & 0xFF);
    b += s;
    return *this;
  }
  Pickle& i1(uint8_t v) { b += 'K'; b += static_cast<char>(v); return *this; }
  Pickle& global(const std::string& module, const std::string& name) {
    b += 'c' + module + "\n" + name + "\n";
    return *this;
  }
  Pickle& ints(const std::vector<uint8_t>& v) {  // a tuple of small ints
    op('(');
    for (auto x : v) i1(x);
    return op('t');
  }
  // _rebuild_tensor_v2(storage(key), offset, size, stride, False, OrderedDict())
  Pickle& tensor(const std::string& key, const std::string& storage_type, uint8_t numel, uint8_t offset,
                 const std::vector<uint8_t>& size, const std::vector<uint8_t>& stride) {
    global("torch._utils", "_rebuild_tensor_v2");
    op('(');
    op('(').str("storage").global("torch", storage_type).str(key).str("cpu").i1(numel).op('t').op('Q');
    i1(offset).ints(size).ints(stride).op('\x89');
    global("collections", "OrderedDict").op(')').op('R');
    return op('t').op('R');
  }
};

// A torch.save-style archive: <name>/data.pkl, <name>/data/<key>, <name>/version.
void write_pth(const std::string& path, const std::string& pkl, const std::map<std::string, std::string>& storages) {
  caffe2::serialize::PyTorchStreamWriter w(path);
  w.writeRecord("data.pkl", pkl.data(), pkl.size());
  for (auto& [k, v] : storages) w.writeRecord("data/" + k, v.data(), v.size());
  w.writeEndOfFile();
}

}  // namespace

TEST(Pth, Float8StoragesComeBackAsMarkedBytes) {
  // torch >= 2.1 saves float8 tensors (the HunyuanVideo-Avatar fp8 checkpoint) as
  // Float8_e4m3fnStorage / Float8_e5m2Storage.
  TmpDir d;
  const auto p = d.file("fp8.pt");
  const std::string e4m3 = {'\x38', '\x40', '\xB0', '\x7E'};   // 1, 2, -0.5, 448
  const std::string e5m2 = {'\x3C', '\xC0'};                    // 1, -2
  Pickle k;
  k.op('}').op('(');
  k.str("w8").tensor("0", "Float8_e4m3fnStorage", 4, 0, {2, 2}, {2, 1});
  k.str("w5").tensor("1", "Float8_e5m2Storage", 2, 0, {2}, {1});
  k.str("f").tensor("2", "FloatStorage", 1, 0, {1}, {1});
  k.op('u').op('.');
  const std::string one = {'\x00', '\x00', '\x80', '\x3F'};
  write_pth(p, k.b, {{"0", e4m3}, {"1", e5m2}, {"2", one}});
  std::map<std::string, std::string> fp8;
  TensorMap m = load_pth(p, &fp8);
  EXPECT_EQ(m.at("w8").scalar_type(), torch::kUInt8);
  EXPECT_EQ(m.at("w8").sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(fp8, (std::map<std::string, std::string>{{"w8", "F8_E4M3"}, {"w5", "F8_E5M2"}}));
  Weights w = load_weights(p);
  EXPECT_TRUE(torch::equal(w.require("w8", {2, 2}), torch::tensor({1.0f, 2.0f, -0.5f, 448.0f}).reshape({2, 2})));
  EXPECT_TRUE(torch::equal(w.require("w5"), torch::tensor({1.0f, -2.0f})));
  EXPECT_TRUE(torch::equal(w.require("f"), torch::tensor({1.0f})));
}

TEST(Pth, NestedDictSharedStorageAndSkippedLeaves) {
  TmpDir d;
  const auto p = d.file("nested.pth");
  std::vector<float> s0 = {0, 1, 2, 3, 4, 5};
  std::vector<uint16_t> s1 = {0x3F80, 0x4000};  // bf16 1, 2
  Pickle k;
  k.op('}').op('(');                            // {
  k.str("module").op('}').op('q').b += '\x01';  //   "module": {   (memoised as 1)
  k.op('(');
  k.str("a.weight").tensor("0", "FloatStorage", 6, 0, {2, 3}, {3, 1});  // rows of storage 0
  k.str("a.col").tensor("0", "FloatStorage", 6, 1, {2}, {3});           // a strided view of it
  k.str("b").tensor("1", "BFloat16Storage", 2, 0, {2}, {1});
  k.op('u');                                    //   }
  k.str("epoch").i1(3);                         //   "epoch": 3 (not a weight)
  k.op('u').op('.');
  write_pth(p, k.b, {{"0", raw(s0)}, {"1", raw(s1)}});

  auto m = load_pth(p);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_TRUE(m.at("module.a.weight").equal(torch::arange(6, torch::kFloat32).view({2, 3})));
  EXPECT_TRUE(m.at("module.a.col").equal(torch::tensor({1.0f, 4.0f})));
  EXPECT_EQ(m.at("module.b").scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(m.at("module.b").to(torch::kFloat32).equal(torch::tensor({1.0f, 2.0f})));
  // Two tensors over one storage share its bytes, as in Python.
  EXPECT_EQ(m.at("module.a.weight").storage().data(), m.at("module.a.col").storage().data());

  Weights w(m, p);
  w.strip_prefix("module.");
  EXPECT_EQ(w.require("a.weight", {2, 3}).sum().item<float>(), 15.0f);
}

TEST(Pth, RefusesWhatItDoesNotUnderstand) {
  TmpDir d;
  {
    const auto p = d.file("evil.pth");
    Pickle k;
    k.global("os", "system").op('(').str("touch /tmp/pwned").op('t').op('R').op('.');
    write_pth(p, k.b, {});
    expect_weight_error([&] { load_pth(p); }, {p, "os.system"});
  }
  {
    const auto p = d.file("opcode.pth");
    Pickle k;
    k.b += "i__builtin__\neval\n";  // INST: never emitted by torch.save
    write_pth(p, k.b, {});
    expect_weight_error([&] { load_pth(p); }, {p, "opcode 0x69"});
  }
  {
    const auto p = d.file("past_storage.pth");
    Pickle k;
    k.op('}').str("w").tensor("0", "FloatStorage", 4, 2, {2, 2}, {2, 1}).op('s').op('.');
    write_pth(p, k.b, {{"0", std::string(16, '\0')}});
    expect_weight_error([&] { load_pth(p); }, {p, "past the end of its storage"});
  }
  {
    const auto p = d.file("no_storage.pth");
    Pickle k;
    k.op('}').str("w").tensor("7", "FloatStorage", 4, 0, {4}, {1}).op('s').op('.');
    write_pth(p, k.b, {});
    expect_weight_error([&] { load_pth(p); }, {p, "data/7"});
  }
  {
    const auto p = d.file("short_storage.pth");
    Pickle k;
    k.op('}').str("w").tensor("0", "FloatStorage", 8, 0, {8}, {1}).op('s').op('.');
    write_pth(p, k.b, {{"0", std::string(16, '\0')}});
    expect_weight_error([&] { load_pth(p); }, {p, "data/0", "truncated"});
  }
  {
    const auto p = d.file("not_a_zip.pth");
    write_file(p, "this is not a zip archive at all");
    expect_weight_error([&] { load_pth(p); }, {p});
  }
  expect_weight_error([&] { load_pth(d.file("absent.pth")); }, {d.file("absent.pth")});
}

TEST(Pth, ReadsWhatLibTorchWrites) {
  // torch::pickle_save writes the same zip layout torch.save does (archive "archive").
  c10::Dict<std::string, at::Tensor> dict;
  dict.insert("x", torch::arange(12, torch::kFloat32).view({3, 4}));
  dict.insert("y", torch::tensor({7, 8}, torch::kInt64));
  const std::vector<char> bytes = torch::pickle_save(dict);
  TmpDir d;
  const auto p = d.file("libtorch.pth");
  write_file(p, std::string(bytes.begin(), bytes.end()));
  auto m = load_pth(p);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_TRUE(m.at("x").equal(torch::arange(12, torch::kFloat32).view({3, 4})));
  EXPECT_TRUE(m.at("y").equal(torch::tensor({7, 8}, torch::kInt64)));
}

TEST(Pth, WanT5Checkpoint) {
  const auto dir = wan_dir();
  const auto g = reel::golden::read_json(dir + "/golden.json")["t5"];
  const auto path = dir + "/checkpoint/models_t5_umt5-xxl-enc-bf16.pth";
  Weights w(load_pth(path), path);
  const int64_t vocab = g["vocab"], dim = g["dim"], dim_attn = g["dim_attn"], dim_ffn = g["dim_ffn"],
                heads = g["num_heads"], layers = g["num_layers"], buckets = g["num_buckets"];
  // Key names as in Wan2.1 wan/modules/t5.py (T5Encoder).
  auto emb = w.require("token_embedding.weight", {vocab, dim});
  EXPECT_EQ(emb.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::isfinite(emb).all().item<bool>());
  for (int64_t l = 0; l < layers; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    w.require(b + "attn.q.weight", {dim_attn, dim});
    w.require(b + "attn.o.weight", {dim, dim_attn});
    w.require(b + "ffn.fc2.weight", {dim, dim_ffn});
    if (!g["shared_pos"].get<bool>()) w.require(b + "pos_embedding.embedding.weight", {buckets, heads});
  }
  w.require("norm.weight", {dim});
  EXPECT_FALSE(w.has("blocks." + std::to_string(layers) + ".attn.q.weight"));
}

TEST(Pth, WanVaeCheckpoint) {
  const auto dir = wan_dir();
  const auto g = reel::golden::read_json(dir + "/golden.json")["vae"];
  const auto path = dir + "/checkpoint/Wan2.1_VAE.pth";
  Weights w(load_pth(path), path);
  const int64_t dim = g["dim"], z_dim = g["z_dim"];
  // Key names as in Wan2.1 wan/modules/vae.py (WanVAE_: encoder, conv1, conv2, decoder).
  auto c = w.require("encoder.conv1.weight", {dim, 3, 3, 3, 3});
  EXPECT_EQ(c.scalar_type(), torch::kFloat32);
  w.require("encoder.conv1.bias", {dim});
  // The encoder emits mean and log-variance: 2 * z_dim channels.
  w.require("conv1.weight", {2 * z_dim, 2 * z_dim, 1, 1, 1});
  w.require("conv2.weight", {z_dim, z_dim, 1, 1, 1});
  w.require("decoder.head.2.weight", {3, dim, 3, 3, 3});
  for (auto& [k, t] : w.all()) EXPECT_EQ(t.scalar_type(), torch::kFloat32) << k;
}

TEST(Pth, HunyuanAvatarModuleWrapper) {
  const auto dir = hya_dir();
  const auto cfg = reel::golden::read_json(dir + "/checkpoint/config.json");
  const auto path = dir + "/checkpoint/transformers/mp_rank_00_model_states.pt";
  auto m = load_pth(path);
  ASSERT_FALSE(m.empty());
  for (auto& [k, t] : m) EXPECT_EQ(k.rfind("module.", 0), 0u) << k;
  Weights w(std::move(m), path);
  w.strip_prefix("module.");
  const int64_t hidden = cfg["hidden_size"], in_ch = cfg["in_channels"];
  const auto ps = cfg["patch_size"].get<std::vector<int64_t>>();
  w.require("img_in.proj.weight", {hidden, in_ch, ps[0], ps[1], ps[2]});
  w.require("img_in.proj.bias", {hidden});
}

TEST(Pth, LoadingDoesNotCopy) {
  // Storages alias the file's mapping: every storage's address, relative to the
  // lowest one, is the distance between their records in the file.
  const auto path = wan_dir() + "/checkpoint/Wan2.1_VAE.pth";
  auto m = load_pth(path);
  caffe2::serialize::PyTorchStreamReader reader(path);
  std::set<int64_t> offsets;
  for (auto& r : reader.getAllRecords())
    if (r.rfind("data/", 0) == 0) offsets.insert(static_cast<int64_t>(reader.getRecordOffset(r)));
  ASSERT_FALSE(offsets.empty());
  const char* lowest = nullptr;
  for (auto& [k, t] : m) {
    auto p = static_cast<const char*>(t.storage().data());
    if (!lowest || p < lowest) lowest = p;
  }
  for (auto& [k, t] : m) {
    const int64_t rel = static_cast<const char*>(t.storage().data()) - lowest + *offsets.begin();
    EXPECT_TRUE(offsets.count(rel)) << k << " is not at a record offset: it was copied";
  }
  // Writing to a loaded tensor does not reach the file.
  const std::string k = m.begin()->first;
  const float before = m.begin()->second.flatten()[0].item<float>();
  m.begin()->second.add_(1);
  EXPECT_EQ(load_pth(path).at(k).flatten()[0].item<float>(), before);
}

TEST(Pth, CompressedRecordsAreRead) {
  // torch.save never compresses, but a re-zipped archive may: such storages are read
  // (and inflated) through the archive reader instead of aliased.
  TmpDir d;
  const auto p = d.file("deflated.pth");
  std::vector<float> s0(64, 0.5f);
  Pickle k;
  k.op('}').str("w").tensor("0", "FloatStorage", 64, 0, {8, 8}, {8, 1}).op('s').op('.');
  {
    caffe2::serialize::PyTorchStreamWriter w(p);
    w.writeRecord("data.pkl", k.b.data(), k.b.size());
    const std::string bytes = raw(s0);
    w.writeRecord("data/0", bytes.data(), bytes.size(), /*compress=*/true);
    w.writeEndOfFile();
  }
  auto m = load_pth(p);
  EXPECT_TRUE(m.at("w").equal(torch::full({8, 8}, 0.5f)));
}

TEST(Weights, LoadWeightsByExtensionDecodesFp8) {
  TmpDir d;
  const auto p = d.file("mixed.safetensors");
  write_file(p, mixed_file());
  Weights w = load_weights(p);
  EXPECT_EQ(w.source(), p);
  auto f8 = w.require("f8", {8});
  EXPECT_EQ(f8.scalar_type(), torch::kFloat32);
  EXPECT_EQ(f8[1].item<float>(), 2.0f);
  EXPECT_EQ(f8[2].item<float>(), -1.0f);
  EXPECT_EQ(w.require("bf16").scalar_type(), torch::kFloat32);

  const auto vae = wan_dir() + "/checkpoint/Wan2.1_VAE.pth";
  EXPECT_TRUE(load_weights(vae).has("encoder.conv1.weight"));
  expect_weight_error([&] { load_weights(vae).require("encoder.conv1.weight", {1}); },
                      {vae, "'encoder.conv1.weight'", "expected shape [1]"});
}
