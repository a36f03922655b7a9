// safetensors reading: the file is mapped once (private, copy-on-write) and every
// tensor aliases the mapping through torch::from_blob, its deleter holding a
// shared_ptr to the mapping so the file stays mapped while any tensor lives.
// The header is validated before any tensor is made: a bad length, non-JSON header,
// unknown dtype or data range outside the file is a WeightError naming the file (and
// the tensor). Thread-safety: no shared state; each call maps its own file.
#include "tensorio/weights.hpp"

#include "tensorio/file_mapping.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

namespace reel::tensorio {
namespace {

// Headers of real checkpoints are a few MB at most; refusing more keeps a corrupt
// length from making us parse garbage (the safetensors crate uses 100 MB too).
constexpr uint64_t kMaxHeader = 100ull << 20;

struct DtypeInfo {
  torch::Dtype dtype;
  int64_t size;
};

bool dtype_info(const std::string& s, DtypeInfo& out) {
  static const std::map<std::string, DtypeInfo> table = {
      {"F64", {torch::kFloat64, 8}},  {"F32", {torch::kFloat32, 4}}, {"F16", {torch::kFloat16, 2}},
      {"BF16", {torch::kBFloat16, 2}}, {"I64", {torch::kInt64, 8}},   {"I32", {torch::kInt32, 4}},
      {"I16", {torch::kInt16, 2}},    {"I8", {torch::kInt8, 1}},     {"U8", {torch::kUInt8, 1}},
      {"BOOL", {torch::kBool, 1}},
      // No float8 in LibTorch 1.13: raw bytes, decoded by dequantize_fp8_*.
      {"F8_E4M3", {torch::kUInt8, 1}}, {"F8_E5M2", {torch::kUInt8, 1}},
  };
  auto it = table.find(s);
  if (it == table.end()) return false;
  out = it->second;
  return true;
}

std::string shape_str(const std::vector<int64_t>& v) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
  s << "]";
  return s.str();
}

struct Entry {
  std::string name;
  std::string dtype_str;
  DtypeInfo dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

struct Parsed {
  uint64_t header_len;
  std::vector<Entry> entries;
};

// Reads and validates the header given the first bytes of the file (`head` must
// hold at least 8 + header length bytes, or be the whole file if shorter).
Parsed parse_header(const std::string& path, const char* data, uint64_t file_size) {
  if (file_size < 8) throw WeightError(path + ": not a safetensors file (" + std::to_string(file_size) + " bytes)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(data[i]);
  if (n < 2 || n > kMaxHeader)
    throw WeightError(path + ": safetensors header length " + std::to_string(n) + " is not plausible");
  if (n > file_size - 8)
    throw WeightError(path + ": safetensors header length " + std::to_string(n) + " runs past the end of the file (" +
                      std::to_string(file_size) + " bytes; truncated?)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(data + 8, data + 8 + n);
  } catch (const std::exception& e) {
    throw WeightError(path + ": safetensors header is not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw WeightError(path + ": safetensors header is not a JSON object");

  Parsed p;
  p.header_len = n;
  const uint64_t data_size = file_size - 8 - n;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string where = path + ": tensor '" + it.key() + "'";
    const auto& v = it.value();
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets") ||
        !v["dtype"].is_string() || !v["shape"].is_array() || !v["data_offsets"].is_array() ||
        v["data_offsets"].size() != 2)
      throw WeightError(where + ": header entry needs dtype, shape and data_offsets [begin, end]");
    Entry e;
    e.name = it.key();
    e.dtype_str = v["dtype"].get<std::string>();
    if (!dtype_info(e.dtype_str, e.dtype)) throw WeightError(where + ": unsupported dtype " + e.dtype_str);
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        throw WeightError(where + ": shape must hold non-negative integers");
      uint64_t x = d.get<uint64_t>();
      if (x != 0 && numel > (std::numeric_limits<uint64_t>::max() >> 4) / x) overflow = true;
      numel *= x;
      e.shape.push_back(static_cast<int64_t>(x));
    }
    if (overflow) throw WeightError(where + ": shape " + shape_str(e.shape) + " is too large");
    for (const auto& o : v["data_offsets"])
      if (!o.is_number_unsigned() && !(o.is_number_integer() && o.get<int64_t>() >= 0))
        throw WeightError(where + ": data_offsets must be non-negative integers");
    e.begin = v["data_offsets"][0].get<uint64_t>();
    e.end = v["data_offsets"][1].get<uint64_t>();
    if (e.end < e.begin)
      throw WeightError(where + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                        "] end before they begin");
    const uint64_t want = numel * static_cast<uint64_t>(e.dtype.size);
    if (e.end - e.begin != want)
      throw WeightError(where + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                        "] hold " + std::to_string(e.end - e.begin) + " bytes but " + e.dtype_str + " " +
                        shape_str(e.shape) + " needs " + std::to_string(want));
    p.entries.push_back(std::move(e));
  }
  // In file order, so a truncated file names the first tensor it cut.
  std::vector<const Entry*> order;
  for (const auto& e : p.entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
  for (const Entry* e : order)
    if (e->end > data_size || e->begin > data_size)
      throw WeightError(path + ": tensor '" + e->name + "': data [" + std::to_string(e->begin) + ", " +
                        std::to_string(e->end) + ") lies past the end of the data area (" +
                        std::to_string(data_size) + " bytes; file truncated?)");
  // Overlapping ranges mean a corrupt (or malicious) header: refuse rather than alias.
  order.erase(std::remove_if(order.begin(), order.end(), [](const Entry* e) { return e->end == e->begin; }),
              order.end());
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->begin < order[i - 1]->end)
      throw WeightError(path + ": tensors '" + order[i - 1]->name + "' and '" + order[i]->name +
                        "' have overlapping data ranges");
  return p;
}

std::string errno_str() { return std::strerror(errno); }

}  // namespace

std::map<std::string, TensorInfo> read_safetensors_header(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw WeightError(path + ": cannot open: " + errno_str());
  f.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(f.tellg());
  f.seekg(0);
  std::string head(static_cast<size_t>(std::min<uint64_t>(file_size, 8)), '\0');
  f.read(head.data(), static_cast<std::streamsize>(head.size()));
  if (file_size >= 8) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(head[i]);
    if (n <= kMaxHeader && n <= file_size - 8) {
      head.resize(8 + n);
      f.read(head.data() + 8, static_cast<std::streamsize>(n));
      if (!f) throw WeightError(path + ": read error");
    }
  }
  Parsed p = parse_header(path, head.data(), file_size);
  std::map<std::string, TensorInfo> out;
  for (auto& e : p.entries) out[e.name] = TensorInfo{e.dtype_str, e.shape};
  return out;
}

TensorMap load_safetensors(const std::string& path) {
  auto map = detail::FileMapping::open(path);
  if (map->size < 8) throw WeightError(path + ": not a safetensors file (" + std::to_string(map->size) + " bytes)");
  Parsed p = parse_header(path, map->data, map->size);
  char* data = map->data + 8 + p.header_len;

  TensorMap out;
  for (auto& e : p.entries) {
    auto opts = torch::TensorOptions().dtype(e.dtype.dtype);
    char* ptr = data + e.begin;
    torch::Tensor t;
    if (e.end == e.begin) {
      t = torch::empty(e.shape, opts);
    } else if (reinterpret_cast<uintptr_t>(ptr) % static_cast<uintptr_t>(e.dtype.size) != 0) {
      // Misaligned for its element type (header length not a multiple of 8):
      // copy this one rather than hand out an unaligned tensor.
      t = torch::empty(e.shape, opts);
      std::memcpy(t.data_ptr(), ptr, e.end - e.begin);
    } else {
      auto keep = map;
      t = torch::from_blob(ptr, e.shape, [keep](void*) mutable { keep.reset(); }, opts);
    }
    out.emplace(e.name, std::move(t));
  }
  return out;
}

TensorMap load_safetensors_index(const std::string& index_json_path) {
  nlohmann::json j;
  {
    std::ifstream f(index_json_path);
    if (!f) throw WeightError(index_json_path + ": cannot open: " + errno_str());
    try {
      j = nlohmann::json::parse(f);
    } catch (const std::exception& e) {
      throw WeightError(index_json_path + ": not valid JSON: " + e.what());
    }
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw WeightError(index_json_path + ": no \"weight_map\" object");
  const auto dir = std::filesystem::path(index_json_path).parent_path();
  // shard file -> tensor names it should hold
  std::map<std::string, std::vector<std::string>> shards;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      throw WeightError(index_json_path + ": weight_map entry for '" + it.key() + "' is not a file name");
    shards[it.value().get<std::string>()].push_back(it.key());
  }
  TensorMap out;
  for (auto& [shard, names] : shards) {
    const std::string shard_path = (dir / shard).string();
    std::error_code ec;
    if (!std::filesystem::exists(shard_path, ec))
      throw WeightError(index_json_path + ": shard " + shard_path + " (holding tensor '" + names.front() +
                        "') is missing");
    TensorMap part = load_safetensors(shard_path);
    for (auto& name : names) {
      auto it = part.find(name);
      if (it == part.end())
        throw WeightError(index_json_path + ": tensor '" + name + "' is listed in shard " + shard_path +
                          " but not found there");
      out[name] = it->second;
    }
  }
  return out;
}

}  // namespace reel::tensorio
