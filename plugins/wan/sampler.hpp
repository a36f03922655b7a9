// Flow-matching samplers for Wan 2.1: the reference's FlowUniPCMultistepScheduler
// (wan/utils/fm_solvers_unipc.py: UniPC with solver_order 2, bh2, predict_x0,
// lower_order_final, final sigma 0, static shift applied in set_timesteps) and a plain
// flow-matching Euler sampler with the same shift, plus classifier-free guidance and a
// seedable noise source.
//
// Conventions (as in the reference): the model predicts the flow velocity v, the
// noisy sample is x_sigma = (1 - sigma) * x0 + sigma * noise, so x0 = x - sigma * v.
// timesteps() are int64 (sigma * num_train_timesteps truncated, as the reference's
// `.to(torch.int64)`), sigmas() are float32 with one extra trailing 0.
//
// Invariants: set_timesteps() must run before step(); step() must be called with
// consecutive indices (0, 1, ..., steps-1) on one schedule; calling set_timesteps()
// again resets the multistep history. All scalar coefficients are evaluated in
// float32 with the same operations as the reference (bitwise-faithful where LibTorch
// uses the same kernels), tensors must be float32.
// Thread-safety: a sampler instance holds per-run state; use one per generation.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <torch/torch.h>

namespace reel::wan {

// The interface the pipeline drives: one step per denoising iteration.
class FlowSampler {
 public:
  virtual ~FlowSampler() = default;
  // Builds the schedule for `steps` iterations with the given shift (>0) and resets state.
  virtual void set_timesteps(int64_t steps, double shift) = 0;
  // int64 [steps]: what the DiT receives as t.
  virtual const torch::Tensor& timesteps() const = 0;
  // float32 [steps + 1]: the noise levels, ending in 0.
  virtual const torch::Tensor& sigmas() const = 0;
  // Given the model's velocity at sigmas()[timestep_index] for `sample`, returns the
  // sample at sigmas()[timestep_index + 1].
  virtual torch::Tensor step(const torch::Tensor& model_output, int64_t timestep_index,
                             const torch::Tensor& sample) = 0;
};

struct UniPCOptions {
  int64_t num_train_timesteps = 1000;
  int solver_order = 2;          // 1 or 2 (2 is what Wan uses)
  bool lower_order_final = true;
  bool bh2 = true;               // false: bh1
  std::vector<int64_t> disable_corrector;  // step indices whose following corrector is skipped
};

class FlowUniPCSampler : public FlowSampler {
 public:
  explicit FlowUniPCSampler(UniPCOptions opt = {});
  void set_timesteps(int64_t steps, double shift) override;
  const torch::Tensor& timesteps() const override { return timesteps_; }
  const torch::Tensor& sigmas() const override { return sigmas_; }
  torch::Tensor step(const torch::Tensor& model_output, int64_t timestep_index,
                     const torch::Tensor& sample) override;

 private:
  torch::Tensor sigma(int64_t i) const { return sigmas_[i]; }  // 0-dim float32
  torch::Tensor predictor(const torch::Tensor& sample, int order) const;
  torch::Tensor corrector(const torch::Tensor& this_model_output, const torch::Tensor& last_sample,
                          int order) const;

  UniPCOptions opt_;
  double sigma_max_ = 0, sigma_min_ = 0;  // of the training schedule, as Python floats
  torch::Tensor timesteps_, sigmas_;
  int64_t num_steps_ = 0;
  // Multistep history: converted (x0) outputs, newest last; undefined = none yet.
  std::vector<torch::Tensor> model_outputs_;
  torch::Tensor last_sample_;
  int lower_order_nums_ = 0;
  int this_order_ = 0;
  int64_t step_index_ = -1;  // -1: no step taken since set_timesteps
};

// x_{i+1} = x_i + (sigma_{i+1} - sigma_i) * v, sigmas = shift(linspace(1, 0, steps+1)) as in
// the reference's get_sampling_sigmas, with the final sigma 0.
class FlowEulerSampler : public FlowSampler {
 public:
  explicit FlowEulerSampler(int64_t num_train_timesteps = 1000) : num_train_timesteps_(num_train_timesteps) {}
  void set_timesteps(int64_t steps, double shift) override;
  const torch::Tensor& timesteps() const override { return timesteps_; }
  const torch::Tensor& sigmas() const override { return sigmas_; }
  torch::Tensor step(const torch::Tensor& model_output, int64_t timestep_index,
                     const torch::Tensor& sample) override;

 private:
  int64_t num_train_timesteps_;
  torch::Tensor timesteps_, sigmas_;
};

// Classifier-free guidance as the reference writes it: uncond + g * (cond - uncond).
torch::Tensor cfg_combine(const torch::Tensor& cond, const torch::Tensor& uncond, double guide_scale);

// Standard normal noise from a seeded CPU generator (the reference's
// torch.Generator().manual_seed(seed) + torch.randn([C,F,H,W]) on CPU).
class NoiseSource {
 public:
  // seed < 0 picks a random one (recorded, see seed()).
  explicit NoiseSource(int64_t seed);
  int64_t seed() const { return seed_; }
  // float32 [c, f, h, w]; successive calls continue the same stream.
  torch::Tensor normal(int64_t c, int64_t f, int64_t h, int64_t w);

 private:
  int64_t seed_;
  at::Generator gen_;
};

}  // namespace reel::wan
