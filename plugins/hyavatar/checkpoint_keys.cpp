#include "checkpoint_keys.hpp"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace reel::hyavatar {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

namespace {
thread_local KeyRecorder* active_recorder = nullptr;
}

KeyRecorder::KeyRecorder() {
  if (active_recorder) throw std::logic_error("KeyRecorder: one is already recording on this thread");
  active_recorder = this;
}
KeyRecorder::~KeyRecorder() { active_recorder = nullptr; }
KeyRecorder* KeyRecorder::active() { return active_recorder; }

void KeyRecorder::record(const std::string& name, const std::vector<int64_t>& shape) {
  if (seen_.insert(name).second) keys_.push_back({name, shape});
}

CheckpointReader::CheckpointReader(const tensorio::Weights& w, std::string what, std::map<std::string, double> fp8_scales)
    : w_(w), what_(std::move(what)), fp8_scales_(std::move(fp8_scales)) {}

torch::Tensor CheckpointReader::take(const std::string& name, const std::vector<int64_t>& shape, bool materialize) {
  used_.insert(name);
  KeyRecorder* recorder = KeyRecorder::active();
  if (recorder) recorder->record(name, shape);
  auto zeros_to_go_on = [&]() -> torch::Tensor {
    if (!materialize || shape.empty()) return {};
    // While recording, a view without storage: listing a 13B-parameter model costs nothing.
    return recorder ? torch::zeros({1}).expand(shape) : torch::zeros(shape);
  };
  if (!w_.has(name)) {
    missing_.push_back(shape.empty() ? name : name + " " + shape_string(shape));
    return zeros_to_go_on();
  }
  const auto stored = w_.shape_of(name);
  if (!shape.empty() && stored != shape) {
    misshapen_.push_back(name + " is " + shape_string(stored) + ", expected " + shape_string(shape));
    return zeros_to_go_on();
  }
  if (!materialize) return {};
  auto it = fp8_scales_.find(name);
  if (it != fp8_scales_.end()) {
    const auto& raw = w_.all().at(name);
    if (raw.scalar_type() != torch::kUInt8)
      throw tensorio::WeightError(w_.source() + ": " + name + " has an fp8 scale but is not stored as float8 e4m3 bytes");
    return tensorio::dequantize_fp8_e4m3(raw, it->second).contiguous();
  }
  return w_.require(name, shape, torch::kFloat32).contiguous();
}

void CheckpointReader::accept_prefix(const std::string& prefix) { accepted_prefixes_.push_back(prefix); }

void CheckpointReader::finish() const {
  std::vector<std::string> unexpected;
  for (const auto& [name, t] : w_.all()) {
    if (used_.count(name)) continue;
    bool accepted = false;
    for (const auto& p : accepted_prefixes_) accepted = accepted || name.rfind(p, 0) == 0;
    if (!accepted) unexpected.push_back(name);
  }
  if (missing_.empty() && misshapen_.empty() && unexpected.empty()) return;
  std::ostringstream msg;
  msg << w_.source() << ": not a " << what_ << " checkpoint (or its config.json does not match it).";
  auto list = [&](const char* title, const std::vector<std::string>& v) {
    if (v.empty()) return;
    msg << " " << v.size() << " " << title << ":";
    const size_t shown = std::min<size_t>(v.size(), 20);
    for (size_t i = 0; i < shown; ++i) msg << (i ? ", " : " ") << v[i];
    if (shown < v.size()) msg << ", ... (" << v.size() - shown << " more)";
    msg << ".";
  };
  list("missing keys", missing_);
  list("keys with another shape", misshapen_);
  list("unexpected keys", unexpected);
  msg << " Use the checkpoint folder the config.json came with.";
  throw tensorio::WeightError(msg.str());
}

void check_checkpoint_keys(const tensorio::Weights& w, const std::vector<ExpectedTensor>& expected,
                           const std::vector<std::string>& other_parts, const std::string& what) {
  CheckpointReader r(w, what);
  for (const ExpectedTensor& e : expected) r.take(e.name, e.shape, /*materialize=*/false);
  for (const std::string& p : other_parts) r.accept_prefix(p);
  r.finish();
}

}  // namespace reel::hyavatar
