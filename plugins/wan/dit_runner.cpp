// DiTRunner; see dit_runner.hpp.
#include "dit_runner.hpp"

#include <algorithm>
#include <future>

namespace reel::wan {

DiTRunner::DiTRunner(WanDiT dit, const torch::Device& device, int64_t resident_blocks, bool fp8_blocks)
    : device_(device) {
  std::vector<DiTBlock> blocks = dit.release_blocks();
  dit_ = dit.to(device, /*keep_blocks=*/false);
  const int64_t r = std::clamp<int64_t>(resident_blocks, 0, static_cast<int64_t>(blocks.size()));
  for (int64_t i = 0; i < static_cast<int64_t>(blocks.size()); ++i) {
    if (fp8_blocks) blocks[i] = blocks[i].quantized_fp8();
    if (i < r) resident_.push_back(blocks[i].to(device));
    else streamed_.push_back(device.is_cuda() ? blocks[i].pinned() : blocks[i]);
    blocks[i] = DiTBlock();  // drop the loaded copy as soon as it is placed
  }
}

torch::Tensor DiTRunner::on_device(const torch::Tensor& t) const {
  return t.defined() ? t.to(device_) : t;
}

int64_t DiTRunner::device_block_bytes() const {
  int64_t n = 0;
  for (const auto& b : resident_) n += b.bytes();
  return n;
}

int64_t DiTRunner::host_block_bytes() const {
  int64_t n = 0;
  for (const auto& b : streamed_) n += b.bytes();
  return n;
}

void DiTRunner::run_blocks(std::vector<DiTState*> states) {
  torch::NoGradGuard no_grad;
  for (const DiTBlock& b : resident_)
    for (DiTState* s : states) dit_.run_block(b, *s);
  if (streamed_.empty()) return;

  const torch::Dtype dtype = dit_.compute_dtype();
  auto fetch = [this, dtype](size_t i) {
    torch::NoGradGuard guard;  // grad mode is thread-local
    // CUDA: a non-blocking copy out of pinned memory, decoded/upcast on the device.
    return streamed_[i].to(device_, /*non_blocking=*/true).materialized(device_, dtype);
  };
  std::future<DiTBlock> next = std::async(std::launch::async, fetch, size_t{0});
  for (size_t i = 0; i < streamed_.size(); ++i) {
    DiTBlock current = next.get();
    if (i + 1 < streamed_.size()) next = std::async(std::launch::async, fetch, i + 1);
    for (DiTState* s : states) dit_.run_block(current, *s);
  }
}

std::pair<torch::Tensor, torch::Tensor> DiTRunner::forward_pair(const torch::Tensor& x, const torch::Tensor& t,
                                                                const torch::Tensor& context,
                                                                const torch::Tensor& negative, int64_t seq_len,
                                                                const torch::Tensor& clip_fea, const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  const torch::Tensor clip = on_device(clip_fea), cond_y = on_device(y);
  DiTState cond = dit_.embed(x.to(device_), t.to(device_), context.to(device_), seq_len, clip, cond_y);
  DiTState uncond = dit_.embed(x.to(device_), t.to(device_), negative.to(device_), seq_len, clip, cond_y);
  run_blocks({&cond, &uncond});
  return {dit_.head(cond).to(torch::kFloat32), dit_.head(uncond).to(torch::kFloat32)};
}

torch::Tensor DiTRunner::forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& context,
                                 int64_t seq_len, const torch::Tensor& clip_fea, const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  DiTState s = dit_.embed(x.to(device_), t.to(device_), context.to(device_), seq_len, on_device(clip_fea), on_device(y));
  run_blocks({&s});
  return dit_.head(s).to(torch::kFloat32);
}

}  // namespace reel::wan
