#include "checkpoint_keys.hpp"

#include <algorithm>
#include <set>
#include <sstream>

namespace reel::hyavatar {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

void check_checkpoint_keys(const tensorio::Weights& w, const std::vector<ExpectedTensor>& expected,
                           const std::vector<std::string>& other_parts, const std::string& what) {
  std::vector<std::string> missing, wrong_shape, unexpected;
  std::set<std::string> expected_names;
  for (const ExpectedTensor& e : expected) {
    expected_names.insert(e.name);
    if (!w.has(e.name)) {
      missing.push_back(e.name);
    } else if (!e.shape.empty() && w.shape_of(e.name) != e.shape) {
      wrong_shape.push_back(e.name + " is " + shape_string(w.shape_of(e.name)) + ", expected " + shape_string(e.shape));
    }
  }
  for (const auto& kv : w.all()) {
    if (expected_names.count(kv.first)) continue;
    bool other = false;
    for (const std::string& p : other_parts)
      if (kv.first.compare(0, p.size(), p) == 0) other = true;
    if (!other) unexpected.push_back(kv.first);
  }
  if (missing.empty() && wrong_shape.empty() && unexpected.empty()) return;

  std::ostringstream msg;
  msg << w.source() << ": not a " << what << " checkpoint (or its config.json does not match it).";
  auto list = [&](const char* title, const std::vector<std::string>& v) {
    if (v.empty()) return;
    msg << " " << v.size() << " " << title << ":";
    const size_t shown = std::min<size_t>(v.size(), 20);
    for (size_t i = 0; i < shown; ++i) msg << (i ? ", " : " ") << v[i];
    if (shown < v.size()) msg << ", ... (" << v.size() - shown << " more)";
    msg << ".";
  };
  list("missing keys", missing);
  list("keys with another shape", wrong_shape);
  list("unexpected keys", unexpected);
  msg << " Use the checkpoint folder the config.json came with.";
  throw tensorio::WeightError(msg.str());
}

}  // namespace reel::hyavatar
