// Strict checkpoint loading for every HunyuanVideo-Avatar component. The reference loads
// with strict=False and silently keeps random weights for keys it does not find; reel
// refuses such a checkpoint, naming in ONE error every key the model expects and the
// file lacks, every key with another shape, and every key nobody reads.
//
// CheckpointReader is the one mechanism: a loader take()s each tensor by its published
// name while it builds the model (so the list of expected keys is the loading code
// itself), declares the parts of the file it deliberately leaves alone
// (accept_prefix), and calls finish(). check_checkpoint_keys() is the same check for a
// loader that lists its tensors up front.
// Thread-safety: a CheckpointReader belongs to one loading thread; the functions are reentrant.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tensorio/weights.hpp"

namespace reel::hyavatar {

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;   // empty: any shape
};

// While one is alive, every CheckpointReader on this thread records each key and shape it
// take()s, and hands out a storage-free zero view for a key the checkpoint lacks. Running a
// loader once against an empty checkpoint then lists exactly what it reads (the loading code
// is the list): the tiny model's seeded weights and the ladder's parameter counts come from
// it (random_weights.hpp). Not nestable; belongs to one thread.
class KeyRecorder {
 public:
  KeyRecorder();
  ~KeyRecorder();
  KeyRecorder(const KeyRecorder&) = delete;
  KeyRecorder& operator=(const KeyRecorder&) = delete;
  // Every key taken, first take first, each once.
  const std::vector<ExpectedTensor>& keys() const { return keys_; }
  void record(const std::string& name, const std::vector<int64_t>& shape);
  static KeyRecorder* active();

 private:
  std::vector<ExpectedTensor> keys_;
  std::set<std::string> seen_;
};

class CheckpointReader {
 public:
  // `what` names the model in errors ("HunyuanVideo-Avatar DiT"). `fp8_scales`: tensors
  // stored as raw float8 e4m3 bytes (uint8), by key, with the per-tensor scale they are
  // multiplied by (the reference's fp8 checkpoints).
  CheckpointReader(const tensorio::Weights& w, std::string what, std::map<std::string, double> fp8_scales = {});

  // The tensor as float32 (decoded from float8 when listed). A missing key or a shape
  // mismatch is recorded for finish() and zeros of `shape` are returned, so the
  // loader can go on and every problem is reported at once. materialize=false only checks
  // presence and shape and returns an undefined tensor (for blocks streamed later).
  torch::Tensor take(const std::string& name, const std::vector<int64_t>& shape, bool materialize = true);
  // Marks every key starting with `prefix` (or equal to it) as deliberately not read.
  void accept_prefix(const std::string& prefix);
  // Throws tensorio::WeightError naming the file, `what` and every missing, misshapen and
  // unexpected key; does nothing when the checkpoint matched exactly.
  void finish() const;

 private:
  const tensorio::Weights& w_;
  std::string what_;
  std::map<std::string, double> fp8_scales_;
  std::set<std::string> used_;
  std::vector<std::string> accepted_prefixes_;
  std::vector<std::string> missing_, misshapen_;
};


// CheckpointReader's check for a list of expected tensors, without reading them: keys
// under `other_parts` (e.g. the vision tower of a full CLIPModel when only its text tower
// runs) are accepted. Throws tensorio::WeightError as finish() does.
void check_checkpoint_keys(const tensorio::Weights& w, const std::vector<ExpectedTensor>& expected,
                           const std::vector<std::string>& other_parts, const std::string& what);

// "[a, b, c]" for messages.
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace reel::hyavatar
