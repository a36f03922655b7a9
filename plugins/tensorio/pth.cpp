// torch.save (zip) archives: <prefix>/data.pkl is a pickle whose persistent ids name
// storages stored as <prefix>/data/<key>. LibTorch 1.13's pickle_load rejects Python
// state_dicts (OrderedDict with a _metadata attribute), so this file runs its own
// minimal pickle machine over exactly the opcodes torch.save emits, with an allowlist
// of globals (OrderedDict, the tensor/parameter rebuild functions, the typed storage
// classes, and LibTorch's restore_type_tag so files from torch::pickle_save read too). Anything else is refused by name - a pickle can name any Python callable,
// and we never want to "call" one we do not understand.
// Storages are not copied: torch.save stores them uncompressed, so the file is mapped
// (copy-on-write) and each storage aliases its bytes, found through the zip central
// directory (zip64 included). A storage that is compressed, misaligned or otherwise
// not directly addressable is read out of the archive instead (one copy per storage,
// shared by the tensors that view it). Thread-safety: no shared state.
#include "tensorio/weights.hpp"

#include "tensorio/file_mapping.hpp"

#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <memory>
#include <sstream>
#include <unordered_map>

namespace reel::tensorio {
namespace {

struct Obj;
using Value = std::shared_ptr<Obj>;

enum class Kind { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Tensor };

// The allowlisted globals.
enum class Fn { OrderedDict, RebuildTensorV2, RebuildParameter, RebuildParameterWithState, StorageType, RestoreTypeTag };

struct Obj {
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                                // Str; Global: "module.name"
  std::vector<Value> items;                     // Tuple, List
  std::vector<std::pair<Value, Value>> dict;    // Dict, in insertion order
  Fn fn = Fn::OrderedDict;                      // Global
  torch::Dtype dtype = torch::kFloat32;         // Global StorageType
  std::string fp8;                              // StorageType, Tensor: "F8_E4M3"/"F8_E5M2" for float8 bytes
  torch::Tensor tensor;                         // Tensor (a storage is a 1-d tensor of its dtype)
};

Value make(Kind k) {
  auto v = std::make_shared<Obj>();
  v->kind = k;
  return v;
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

// LibTorch 1.13 has no float8 dtypes: float8 storages (torch >= 2.1) come back as their
// raw bytes, uint8, marked with their format.
bool storage_dtype(const std::string& name, torch::Dtype& out, std::string& fp8) {
  static const std::map<std::string, torch::Dtype> table = {
      {"FloatStorage", torch::kFloat32}, {"DoubleStorage", torch::kFloat64}, {"HalfStorage", torch::kFloat16},
      {"BFloat16Storage", torch::kBFloat16}, {"LongStorage", torch::kInt64},  {"IntStorage", torch::kInt32},
      {"ShortStorage", torch::kInt16},   {"CharStorage", torch::kInt8},      {"ByteStorage", torch::kUInt8},
      {"BoolStorage", torch::kBool},     {"Float8_e4m3fnStorage", torch::kUInt8},
      {"Float8_e5m2Storage", torch::kUInt8},
  };
  auto it = table.find(name);
  if (it == table.end()) return false;
  out = it->second;
  fp8 = name == "Float8_e4m3fnStorage" ? "F8_E4M3" : name == "Float8_e5m2Storage" ? "F8_E5M2" : "";
  return true;
}

// Where each stored (uncompressed) zip entry's bytes lie in the mapped file. Anything
// it cannot make sense of is left out, and those records are read through
// PyTorchStreamReader instead - this is only the fast path.
class ZipIndex {
 public:
  struct Rec {
    uint64_t offset, size;
  };
  explicit ZipIndex(const detail::FileMapping& m) : d_(m.data), n_(m.size) {
    try {
      parse();
    } catch (const std::out_of_range&) {
      recs_.clear();
    }
  }
  const Rec* find(const std::string& name) const {
    auto it = recs_.find(name);
    return it == recs_.end() ? nullptr : &it->second;
  }
  const std::map<std::string, Rec>& all() const { return recs_; }

 private:
  uint64_t rd(uint64_t at, int bytes) const {
    if (at > n_ || static_cast<uint64_t>(bytes) > n_ - at) throw std::out_of_range("zip");
    uint64_t v = 0;
    for (int k = bytes - 1; k >= 0; --k) v = (v << 8) | static_cast<uint8_t>(d_[at + k]);
    return v;
  }
  void parse() {
    if (n_ < 22) return;
    // End of central directory: scan back over at most a 64 KiB comment.
    uint64_t eocd = n_ - 22;
    const uint64_t stop = n_ > 22 + 65535 ? n_ - 22 - 65535 : 0;
    while (rd(eocd, 4) != 0x06054b50) {
      if (eocd == stop) return;
      --eocd;
    }
    uint64_t entries = rd(eocd + 10, 2), cd_off = rd(eocd + 16, 4);
    if (entries == 0xFFFF || cd_off == 0xFFFFFFFF) {
      if (eocd < 20 || rd(eocd - 20, 4) != 0x07064b50) return;  // zip64 locator
      const uint64_t z = rd(eocd - 20 + 8, 8);
      if (rd(z, 4) != 0x06064b50) return;
      entries = rd(z + 32, 8);
      cd_off = rd(z + 48, 8);
    }
    uint64_t at = cd_off;
    for (uint64_t e = 0; e < entries; ++e) {
      if (rd(at, 4) != 0x02014b50) return;
      const uint64_t method = rd(at + 10, 2), name_len = rd(at + 28, 2), extra_len = rd(at + 30, 2),
                     comment_len = rd(at + 32, 2);
      uint64_t csize = rd(at + 20, 4), usize = rd(at + 24, 4), local = rd(at + 42, 4);
      rd(at + 46, static_cast<int>(std::min<uint64_t>(name_len, 1)));  // bounds check of the name start
      if (at + 46 + name_len > n_) return;
      std::string name(d_ + at + 46, name_len);
      // zip64 extra field: the 64-bit values of whichever fields read 0xFFFFFFFF.
      for (uint64_t x = at + 46 + name_len, end = x + extra_len; x + 4 <= end;) {
        const uint64_t id = rd(x, 2), len = rd(x + 2, 2);
        if (id == 0x0001) {
          uint64_t y = x + 4;
          if (usize == 0xFFFFFFFF) usize = rd(y, 8), y += 8;
          if (csize == 0xFFFFFFFF) csize = rd(y, 8), y += 8;
          if (local == 0xFFFFFFFF) local = rd(y, 8), y += 8;
        }
        x += 4 + len;
      }
      at += 46 + name_len + extra_len + comment_len;
      if (method != 0 || csize != usize || rd(local, 4) != 0x04034b50) continue;
      const uint64_t data = local + 30 + rd(local + 26, 2) + rd(local + 28, 2);
      if (data > n_ || usize > n_ - data) continue;
      recs_[name] = Rec{data, usize};
    }
  }
  const char* d_;
  uint64_t n_;
  std::map<std::string, Rec> recs_;
};

class Unpickler {
 public:
  // `prefix` is the archive's folder ("<name>/"), under which the zip names records.
  Unpickler(std::string path, const std::string& pkl, caffe2::serialize::PyTorchStreamReader& reader,
            std::shared_ptr<detail::FileMapping> map, const ZipIndex& zip, std::string prefix)
      : path_(std::move(path)), p_(pkl), reader_(reader), map_(std::move(map)), zip_(zip), prefix_(std::move(prefix)) {}

  Value run() {
    for (;;) {
      const size_t at = pos_;
      const uint8_t op = u8();
      switch (op) {
        case 0x80: u8(); break;                   // PROTO
        case 0x95: bytes(8); break;               // FRAME: framing is irrelevant in memory
        case '}': push(make(Kind::Dict)); break;  // EMPTY_DICT
        case ']': push(make(Kind::List)); break;  // EMPTY_LIST
        case ')': push(make(Kind::Tuple)); break; // EMPTY_TUPLE
        case '(': marks_.push_back(stack_.size()); break;  // MARK
        case 'X': push_str(bytes(le(4))); break;           // BINUNICODE
        case 0x8c: push_str(bytes(u8())); break;           // SHORT_BINUNICODE
        case 0x8d: push_str(bytes(le(8))); break;          // BINUNICODE8
        case 'C': push_str(bytes(u8())); break;            // SHORT_BINBYTES
        case 'B': push_str(bytes(le(4))); break;           // BINBYTES
        case 'J': push_int(static_cast<int32_t>(le(4))); break;  // BININT
        case 'K': push_int(u8()); break;                         // BININT1
        case 'M': push_int(static_cast<int64_t>(le(2))); break;  // BININT2
        case 0x8a: {                                             // LONG1
          const size_t n = u8();
          if (n > 8) fail(at, "LONG1 wider than 64 bits");
          const std::string b = bytes(n);
          uint64_t v = 0;
          for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(static_cast<uint8_t>(b[k])) << (8 * k);
          if (n > 0 && n < 8 && (static_cast<uint8_t>(b[n - 1]) & 0x80)) v |= ~0ull << (8 * n);  // sign-extend
          push_int(static_cast<int64_t>(v));
          break;
        }
        case 0x88: case 0x89: {  // NEWTRUE, NEWFALSE
          auto v = make(Kind::Bool);
          v->b = op == 0x88;
          push(v);
          break;
        }
        case 'N': push(make(Kind::None)); break;
        case 'G': {  // BINFLOAT: big-endian double
          const std::string b = bytes(8);
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | static_cast<uint8_t>(b[k]);
          auto v = make(Kind::Float);
          std::memcpy(&v->f, &bits, 8);
          push(v);
          break;
        }
        case 't': {  // TUPLE
          auto v = make(Kind::Tuple);
          v->items = pop_mark(at);
          push(v);
          break;
        }
        case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
          const size_t n = op - 0x84;
          need(at, n);
          auto v = make(Kind::Tuple);
          v->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push(v);
          break;
        }
        case 'c': {  // GLOBAL "module\nname\n"
          std::string module = line(), name = line();
          push(global(at, module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          Value name = pop(at), module = pop(at);
          if (module->kind != Kind::Str || name->kind != Kind::Str) fail(at, "STACK_GLOBAL needs two strings");
          push(global(at, module->s, name->s));
          break;
        }
        case 'R': {  // REDUCE
          Value args = pop(at), fn = pop(at);
          push(reduce(at, fn, args));
          break;
        }
        case 'b': {  // BUILD: object state; only OrderedDict's _metadata and tensor state occur
          Value state = pop(at);
          need(at, 1);
          const Kind k = stack_.back()->kind;
          if (k != Kind::Dict && k != Kind::Tensor)
            fail(at, std::string("BUILD on a ") + kind_name(k) + " is not supported");
          break;
        }
        case 's': {  // SETITEM
          Value v = pop(at), k = pop(at);
          need(at, 1);
          if (stack_.back()->kind != Kind::Dict) fail(at, "SETITEM on a non-dict");
          stack_.back()->dict.emplace_back(k, v);
          break;
        }
        case 'u': {  // SETITEMS
          auto kv = pop_mark(at);
          if (kv.size() % 2) fail(at, "SETITEMS with an odd number of items");
          need(at, 1);
          if (stack_.back()->kind != Kind::Dict) fail(at, "SETITEMS on a non-dict");
          for (size_t k = 0; k < kv.size(); k += 2) stack_.back()->dict.emplace_back(kv[k], kv[k + 1]);
          break;
        }
        case 'a': {  // APPEND
          Value v = pop(at);
          need(at, 1);
          if (stack_.back()->kind != Kind::List) fail(at, "APPEND on a non-list");
          stack_.back()->items.push_back(v);
          break;
        }
        case 'e': {  // APPENDS
          auto vs = pop_mark(at);
          need(at, 1);
          if (stack_.back()->kind != Kind::List) fail(at, "APPENDS on a non-list");
          for (auto& v : vs) stack_.back()->items.push_back(v);
          break;
        }
        case 'q': memo_put(at, u8()); break;         // BINPUT
        case 'r': memo_put(at, le(4)); break;        // LONG_BINPUT
        case 0x94: memo_put(at, memo_.size()); break;  // MEMOIZE
        case 'h': memo_get(at, u8()); break;         // BINGET
        case 'j': memo_get(at, le(4)); break;        // LONG_BINGET
        case '0': pop(at); break;                    // POP
        case '1': pop_mark(at); break;               // POP_MARK
        case 'Q': push(persistent_load(at, pop(at))); break;  // BINPERSID
        case '.': {                                  // STOP
          if (stack_.size() != 1) fail(at, "STOP with " + std::to_string(stack_.size()) + " values on the stack");
          return stack_.back();
        }
        default: {
          std::ostringstream s;
          s << "unsupported pickle opcode 0x" << std::hex << static_cast<int>(op);
          if (op >= 0x20 && op < 0x7f) s << " ('" << static_cast<char>(op) << "')";
          fail(at, s.str());
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(size_t at, const std::string& what) const {
    throw WeightError(path_ + ": data.pkl offset " + std::to_string(at) + ": " + what);
  }

  uint8_t u8() {
    if (pos_ >= p_.size()) fail(pos_, "pickle ends without STOP");
    return static_cast<uint8_t>(p_[pos_++]);
  }
  std::string bytes(uint64_t n) {
    if (n > p_.size() - pos_) fail(pos_, "pickle ends inside a " + std::to_string(n) + "-byte argument");
    std::string s = p_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  uint64_t le(int n) {
    const std::string b = bytes(n);
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; --k) v = (v << 8) | static_cast<uint8_t>(b[k]);
    return v;
  }
  std::string line() {
    const size_t e = p_.find('\n', pos_);
    if (e == std::string::npos) fail(pos_, "GLOBAL without a newline");
    std::string s = p_.substr(pos_, e - pos_);
    pos_ = e + 1;
    return s;
  }

  void push(Value v) { stack_.push_back(std::move(v)); }
  void push_str(std::string s) {
    auto v = make(Kind::Str);
    v->s = std::move(s);
    push(v);
  }
  void push_int(int64_t i) {
    auto v = make(Kind::Int);
    v->i = i;
    push(v);
  }
  void need(size_t at, size_t n) const {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() < floor + n) fail(at, "stack underflow");
  }
  Value pop(size_t at) {
    need(at, 1);
    Value v = stack_.back();
    stack_.pop_back();
    return v;
  }
  std::vector<Value> pop_mark(size_t at) {
    if (marks_.empty()) fail(at, "no MARK on the stack");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value> out(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return out;
  }
  void memo_put(size_t at, uint64_t idx) {
    if (stack_.empty()) fail(at, "memo put on an empty stack");
    memo_[idx] = stack_.back();
  }
  void memo_get(size_t at, uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail(at, "memo entry " + std::to_string(idx) + " is not set");
    push(it->second);
  }

  Value global(size_t at, const std::string& module, const std::string& name) {
    auto v = make(Kind::Global);
    v->s = module + "." + name;
    if (module == "collections" && name == "OrderedDict") {
      v->fn = Fn::OrderedDict;
    } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
      v->fn = Fn::RebuildTensorV2;
    } else if (module == "torch._utils" && name == "_rebuild_parameter") {
      v->fn = Fn::RebuildParameter;
    } else if (module == "torch._utils" && name == "_rebuild_parameter_with_state") {
      v->fn = Fn::RebuildParameterWithState;
    } else if (module == "torch.jit._pickle" && name == "restore_type_tag") {
      v->fn = Fn::RestoreTypeTag;  // LibTorch's pickle_save tags typed dicts: (obj, "Dict[str, Tensor]")
    } else if (module == "torch" && storage_dtype(name, v->dtype, v->fp8)) {
      v->fn = Fn::StorageType;
    } else {
      fail(at, "refusing pickle global '" + module + "." + name + "' (only state_dicts of tensors are read)");
    }
    return v;
  }

  static int64_t as_int(const Value& v, bool& ok) {
    if (v->kind == Kind::Int) return v->i;
    if (v->kind == Kind::Bool) return v->b;
    ok = false;
    return 0;
  }
  std::vector<int64_t> int_tuple(size_t at, const Value& v, const char* what) {
    if (v->kind != Kind::Tuple && v->kind != Kind::List) fail(at, std::string(what) + " is not a tuple");
    std::vector<int64_t> out;
    bool ok = true;
    for (auto& x : v->items) out.push_back(as_int(x, ok));
    if (!ok) fail(at, std::string(what) + " holds a non-integer");
    return out;
  }

  Value reduce(size_t at, const Value& fn, const Value& args) {
    if (fn->kind != Kind::Global) fail(at, std::string("REDUCE on a ") + kind_name(fn->kind));
    if (args->kind != Kind::Tuple) fail(at, "REDUCE arguments are not a tuple");
    const auto& a = args->items;
    switch (fn->fn) {
      case Fn::OrderedDict:
        if (!a.empty()) fail(at, "OrderedDict with arguments is not supported");
        return make(Kind::Dict);
      case Fn::RebuildTensorV2: {
        // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        if (a.size() < 4 || a[0]->kind != Kind::Tensor) fail(at, "_rebuild_tensor_v2: unexpected arguments");
        bool ok = true;
        const int64_t offset = as_int(a[1], ok);
        if (!ok) fail(at, "_rebuild_tensor_v2: storage offset is not an integer");
        const auto size = int_tuple(at, a[2], "_rebuild_tensor_v2 size");
        const auto stride = int_tuple(at, a[3], "_rebuild_tensor_v2 stride");
        if (size.size() != stride.size()) fail(at, "_rebuild_tensor_v2: size and stride differ in length");
        const auto& storage = a[0]->tensor;
        // The furthest element must lie inside the storage, else as_strided would read
        // out of bounds.
        int64_t last = offset, numel = 1;
        for (size_t d = 0; d < size.size(); ++d) {
          if (size[d] < 0 || stride[d] < 0) fail(at, "_rebuild_tensor_v2: negative size or stride");
          numel *= size[d];
          last += (size[d] - 1) * stride[d];
        }
        if (offset < 0 || (numel > 0 && last >= storage.numel()))
          fail(at, "_rebuild_tensor_v2: view past the end of its storage (" + std::to_string(storage.numel()) +
                       " elements)");
        auto v = make(Kind::Tensor);
        v->tensor = numel > 0 ? storage.as_strided(size, stride, offset)
                              : torch::empty(size, torch::TensorOptions().dtype(storage.scalar_type()));
        v->fp8 = a[0]->fp8;
        return v;
      }
      case Fn::RebuildParameter:
      case Fn::RebuildParameterWithState:
        // (data, requires_grad, backward_hooks[, state]): the parameter is its data.
        if (a.empty() || a[0]->kind != Kind::Tensor) fail(at, "_rebuild_parameter: unexpected arguments");
        return a[0];
      case Fn::RestoreTypeTag:
        if (a.empty()) fail(at, "restore_type_tag: no object");
        return a[0];
      case Fn::StorageType:
        fail(at, "calling storage type '" + fn->s + "' is not supported");
    }
    fail(at, "unreachable");
  }

  // ('storage', storage_type, key, location, numel) -> the storage as a 1-d tensor.
  Value persistent_load(size_t at, const Value& pid) {
    if (pid->kind != Kind::Tuple || pid->items.size() < 5 || pid->items[0]->kind != Kind::Str ||
        pid->items[0]->s != "storage")
      fail(at, "unsupported persistent id (expected ('storage', type, key, location, numel))");
    const auto& type = pid->items[1];
    const auto& key = pid->items[2];
    if (type->kind != Kind::Global || type->fn != Fn::StorageType) fail(at, "persistent id without a storage type");
    if (key->kind != Kind::Str) fail(at, "persistent id key is not a string");
    auto cached = storages_.find(key->s);
    if (cached != storages_.end()) return cached->second;

    const std::string record = "data/" + key->s;
    const int64_t elem = static_cast<int64_t>(c10::elementSize(type->dtype));
    bool ok = true;
    const int64_t numel = as_int(pid->items[4], ok);
    const auto opts = torch::TensorOptions().dtype(type->dtype);
    auto v = make(Kind::Tensor);
    v->fp8 = type->fp8;
    // Fast path: alias the stored bytes in the mapping.
    if (const ZipIndex::Rec* r = zip_.find(prefix_ + record)) {
      char* p = map_->data + r->offset;
      if (r->size % elem == 0 && reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(elem) == 0) {
        const int64_t n = static_cast<int64_t>(r->size) / elem;
        if (ok && numel > n)
          fail(at, "storage record '" + record + "' holds " + std::to_string(r->size) + " bytes but " +
                       std::to_string(numel) + " elements were declared (file truncated?)");
        auto keep = map_;
        v->tensor = n == 0 ? torch::empty({0}, opts)
                           : torch::from_blob(p, {n}, [keep](void*) mutable { keep.reset(); }, opts);
        storages_[key->s] = v;
        return v;
      }
    }
    at::DataPtr data;
    size_t size = 0;
    try {
      std::tie(data, size) = reader_.getRecord(record);
    } catch (const c10::Error& e) {
      fail(at, "cannot read storage record '" + record + "': " + e.what_without_backtrace());
    }
    if (static_cast<int64_t>(size) % elem != 0)
      fail(at, "storage record '" + record + "' holds " + std::to_string(size) + " bytes, not a whole number of " +
                   std::string(c10::toString(type->dtype)));
    if (ok && numel * elem > static_cast<int64_t>(size))
      fail(at, "storage record '" + record + "' holds " + std::to_string(size) + " bytes but " + std::to_string(numel) +
                   " elements were declared (file truncated?)");
    auto holder = std::make_shared<at::DataPtr>(std::move(data));
    void* raw = holder->get();
    const int64_t n = static_cast<int64_t>(size) / elem;
    if (n == 0 || raw == nullptr)
      v->tensor = torch::empty({0}, torch::TensorOptions().dtype(type->dtype));
    else
      v->tensor = torch::from_blob(raw, {n}, [holder](void*) mutable { holder.reset(); },
                                   torch::TensorOptions().dtype(type->dtype));
    storages_[key->s] = v;
    return v;
  }

  std::string path_;
  const std::string& p_;
  caffe2::serialize::PyTorchStreamReader& reader_;
  std::shared_ptr<detail::FileMapping> map_;
  const ZipIndex& zip_;
  std::string prefix_;
  size_t pos_ = 0;
  std::vector<Value> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value> memo_;
  std::unordered_map<std::string, Value> storages_;
};

std::string key_str(const std::string& path, const Value& k) {
  if (k->kind == Kind::Str) return k->s;
  if (k->kind == Kind::Int) return std::to_string(k->i);
  throw WeightError(path + ": a dict key is a " + kind_name(k->kind) + ", not a string");
}

void flatten(const std::string& path, const Value& v, const std::string& prefix, TensorMap& out,
             std::map<std::string, std::string>& fp8, int depth) {
  if (depth > 64) throw WeightError(path + ": dicts nested too deeply");
  for (auto& [k, val] : v->dict) {
    const std::string name = prefix + key_str(path, k);
    if (val->kind == Kind::Tensor) {
      if (!out.emplace(name, val->tensor).second) throw WeightError(path + ": tensor '" + name + "' appears twice");
      if (!val->fp8.empty()) fp8[name] = val->fp8;
    } else if (val->kind == Kind::Dict) {
      flatten(path, val, name + ".", out, fp8, depth + 1);
    }
    // Other leaves (epoch counters, config strings, None) are not weights.
  }
}

}  // namespace

TensorMap load_pth(const std::string& path, std::map<std::string, std::string>* raw_fp8) {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  std::string pkl;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
    if (!reader->hasRecord("data.pkl"))
      throw WeightError(path + ": no data.pkl in the archive (not a torch.save file?)");
    auto [data, size] = reader->getRecord("data.pkl");
    pkl.assign(static_cast<const char*>(data.get()), size);
  } catch (const c10::Error& e) {
    // Legacy (pre-1.6, non-zip) torch.save files land here too.
    throw WeightError(path + ": not a readable torch.save zip archive: " + e.what_without_backtrace());
  }
  auto map = detail::FileMapping::open(path);
  ZipIndex zip(*map);
  // The archive folder is whatever precedes "data.pkl" in the one top-level data.pkl.
  std::string prefix;
  for (auto& [name, rec] : zip.all()) {
    const auto slash = name.find('/');
    if (slash != std::string::npos && name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      prefix = name.substr(0, slash + 1);
      break;
    }
  }
  Value root = Unpickler(path, pkl, *reader, map, zip, prefix).run();
  if (root->kind != Kind::Dict)
    throw WeightError(path + ": holds a " + std::string(kind_name(root->kind)) + ", not a dict of tensors");
  TensorMap out;
  std::map<std::string, std::string> fp8;
  flatten(path, root, "", out, fp8, 0);
  if (raw_fp8) *raw_fp8 = std::move(fp8);
  return out;
}

}  // namespace reel::tensorio
