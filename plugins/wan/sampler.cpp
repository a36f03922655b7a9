// Flow-matching UniPC / Euler samplers; see sampler.hpp for the conventions.
//
// Why the odd arithmetic: the schedule is computed in float64 exactly as numpy does it
// (np.linspace = i * step + start, then the shift, then truncation to int64) so the
// int64 timesteps match the reference bit for bit; the UniPC coefficients are computed
// with 0-dim float32 tensors in the reference's operation order, because that is what
// the reference does (its sigmas are a float32 tensor) and float64 coefficients would
// drift by ~1e-7 per step, which guidance scale 5 amplifies over a run.
#include "sampler.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <random>
#include <stdexcept>
#include <string>

namespace reel::wan {
namespace {

// numpy.linspace(start, stop, num) (endpoint=True) in float64, element by element.
std::vector<double> np_linspace(double start, double stop, int64_t num) {
  std::vector<double> y(static_cast<size_t>(num));
  if (num == 1) {
    y[0] = start;
    return y;
  }
  const double div = static_cast<double>(num - 1);
  const double delta = stop - start;
  const double step = delta / div;
  for (int64_t i = 0; i < num; ++i) {
    double v = (step == 0) ? (static_cast<double>(i) / div) * delta : static_cast<double>(i) * step;
    y[static_cast<size_t>(i)] = v + start;
  }
  y.back() = stop;  // numpy sets the endpoint exactly
  return y;
}

// The static time shift sigma' = shift*s / (1 + (shift-1)*s), numpy float64 order.
double shifted(double s, double shift) { return shift * s / (1.0 + (shift - 1.0) * s); }

void check_steps(int64_t steps, double shift) {
  if (steps < 1) throw std::invalid_argument("sampler: steps must be >= 1, got " + std::to_string(steps));
  if (!(shift > 0)) throw std::invalid_argument("sampler: shift must be > 0, got " + std::to_string(shift));
}

// Builds int64 timesteps and float32 sigmas (+ trailing 0) from float64 shifted sigmas.
void make_schedule(const std::vector<double>& sig, int64_t num_train, torch::Tensor& timesteps,
                   torch::Tensor& sigmas) {
  const int64_t n = static_cast<int64_t>(sig.size());
  timesteps = torch::empty({n}, torch::kInt64);
  sigmas = torch::empty({n + 1}, torch::kFloat32);
  auto t = timesteps.accessor<int64_t, 1>();
  auto s = sigmas.accessor<float, 1>();
  for (int64_t i = 0; i < n; ++i) {
    // float64 -> int64 truncates toward zero, as torch's .to(torch.int64) does.
    t[i] = static_cast<int64_t>(sig[static_cast<size_t>(i)] * static_cast<double>(num_train));
    s[i] = static_cast<float>(sig[static_cast<size_t>(i)]);
  }
  s[n] = 0.0f;  // final_sigmas_type "zero"
}

// lambda = log(alpha) - log(sigma) with alpha = 1 - sigma; 0-dim float32 in and out.
torch::Tensor lambda_of(const torch::Tensor& sigma) { return torch::log(1 - sigma) - torch::log(sigma); }

// The B(h) coefficients shared by UniP and UniC (predict_x0: hh = -h).
struct BhCoeffs {
  torch::Tensor hh, h_phi_1, B_h;
  torch::Tensor R, b;  // R [order, order], b [order]
};

BhCoeffs bh_coeffs(const torch::Tensor& h, const std::vector<torch::Tensor>& rks_in, int order, bool bh2) {
  BhCoeffs c;
  c.hh = -h;
  c.h_phi_1 = torch::expm1(c.hh);
  torch::Tensor h_phi_k = c.h_phi_1 / c.hh - 1;
  c.B_h = bh2 ? torch::expm1(c.hh) : c.hh;
  std::vector<torch::Tensor> rks = rks_in;
  rks.push_back(torch::ones({}, torch::kFloat32));
  auto rks_t = torch::stack(rks);
  std::vector<torch::Tensor> R, b;
  int64_t factorial_i = 1;
  for (int i = 1; i <= order; ++i) {
    R.push_back(torch::pow(rks_t, i - 1));
    b.push_back(h_phi_k * static_cast<double>(factorial_i) / c.B_h);
    factorial_i *= i + 1;
    h_phi_k = h_phi_k / c.hh - 1.0 / static_cast<double>(factorial_i);
  }
  c.R = torch::stack(R);
  c.b = torch::stack(b);
  return c;
}

}  // namespace

// ---------------------------------------------------------------------------- UniPC

FlowUniPCSampler::FlowUniPCSampler(UniPCOptions opt) : opt_(std::move(opt)) {
  if (opt_.solver_order < 1) throw std::invalid_argument("FlowUniPCSampler: solver_order must be >= 1");
  if (opt_.num_train_timesteps < 2) throw std::invalid_argument("FlowUniPCSampler: num_train_timesteps must be >= 2");
  // Training schedule: sigmas = 1 - linspace(1, 1/N, N)[::-1] stored as float32 (the
  // reference builds it with shift 1, i.e. unshifted); only its ends are used.
  const int64_t n = opt_.num_train_timesteps;
  auto alphas = np_linspace(1.0, 1.0 / static_cast<double>(n), n);
  sigma_max_ = static_cast<double>(static_cast<float>(1.0 - alphas.back()));
  sigma_min_ = static_cast<double>(static_cast<float>(1.0 - alphas.front()));
}

void FlowUniPCSampler::set_timesteps(int64_t steps, double shift) {
  check_steps(steps, shift);
  auto lin = np_linspace(sigma_max_, sigma_min_, steps + 1);
  lin.pop_back();
  for (auto& s : lin) s = shifted(s, shift);
  make_schedule(lin, opt_.num_train_timesteps, timesteps_, sigmas_);
  num_steps_ = steps;
  model_outputs_.assign(static_cast<size_t>(opt_.solver_order), torch::Tensor());
  last_sample_ = torch::Tensor();
  lower_order_nums_ = 0;
  this_order_ = 0;
  step_index_ = -1;
}

torch::Tensor FlowUniPCSampler::step(const torch::Tensor& model_output_in, int64_t timestep_index,
                                     const torch::Tensor& sample_in) {
  torch::NoGradGuard no_grad;
  if (num_steps_ == 0) throw std::logic_error("FlowUniPCSampler::step: call set_timesteps first");
  if (step_index_ < 0) {
    if (timestep_index < 0 || timestep_index >= num_steps_)
      throw std::out_of_range("FlowUniPCSampler::step: index " + std::to_string(timestep_index) + " outside 0.." +
                              std::to_string(num_steps_ - 1));
    step_index_ = timestep_index;
  } else if (timestep_index != step_index_) {
    // The multistep history only makes sense for consecutive steps.
    throw std::logic_error("FlowUniPCSampler::step: expected index " + std::to_string(step_index_) + ", got " +
                           std::to_string(timestep_index));
  }
  if (step_index_ >= num_steps_) throw std::logic_error("FlowUniPCSampler::step: schedule exhausted");
  if (model_output_in.sizes() != sample_in.sizes())
    throw std::invalid_argument("FlowUniPCSampler::step: model_output and sample shapes differ");
  const auto model_output = model_output_in.to(torch::kFloat32);
  auto sample = sample_in.to(torch::kFloat32);

  bool disabled = false;
  for (auto d : opt_.disable_corrector) disabled |= (d == step_index_ - 1);
  const bool use_corrector = step_index_ > 0 && !disabled && last_sample_.defined();

  // predict_x0 with flow prediction: x0 = x - sigma * v, from the uncorrected sample.
  torch::Tensor converted = sample - sigma(step_index_) * model_output;
  if (use_corrector) sample = corrector(converted, last_sample_, this_order_);

  for (size_t i = 0; i + 1 < model_outputs_.size(); ++i) model_outputs_[i] = model_outputs_[i + 1];
  model_outputs_.back() = converted;

  int order = opt_.solver_order;
  if (opt_.lower_order_final) order = static_cast<int>(std::min<int64_t>(order, num_steps_ - step_index_));
  this_order_ = std::min(order, lower_order_nums_ + 1);  // warm-up of the multistep history

  last_sample_ = sample;
  torch::Tensor prev = predictor(sample, this_order_);
  if (lower_order_nums_ < opt_.solver_order) ++lower_order_nums_;
  ++step_index_;
  return prev;
}

// UniP, B(h) variant, predict_x0: from sigma[k] to sigma[k+1].
torch::Tensor FlowUniPCSampler::predictor(const torch::Tensor& x, int order) const {
  const auto& m0 = model_outputs_.back();
  const torch::Tensor sigma_t = sigma(step_index_ + 1), sigma_s0 = sigma(step_index_);
  const torch::Tensor alpha_t = 1 - sigma_t;
  const torch::Tensor lambda_s0 = lambda_of(sigma_s0);
  const torch::Tensor h = lambda_of(sigma_t) - lambda_s0;  // +inf on the last step (sigma 0)

  std::vector<torch::Tensor> rks, D1s;
  for (int i = 1; i < order; ++i) {
    const auto& mi = model_outputs_[model_outputs_.size() - 1 - static_cast<size_t>(i)];
    torch::Tensor rk = (lambda_of(sigma(step_index_ - i)) - lambda_s0) / h;
    rks.push_back(rk);
    D1s.push_back((mi - m0) / rk);
  }
  BhCoeffs c = bh_coeffs(h, rks, order, opt_.bh2);

  torch::Tensor x_t_ = sigma_t / sigma_s0 * x - alpha_t * c.h_phi_1 * m0;
  if (D1s.empty()) return x_t_;  // pred_res = 0 (x_t_ - alpha_t*B_h*0 == x_t_)
  torch::Tensor rhos_p;
  if (order == 2)
    rhos_p = torch::full({1}, 0.5, torch::kFloat32);
  else
    rhos_p = torch::linalg::solve(c.R.slice(0, 0, -1).slice(1, 0, -1), c.b.slice(0, 0, -1), true);
  torch::Tensor pred_res = rhos_p[0] * D1s[0];
  for (size_t k = 1; k < D1s.size(); ++k) pred_res = pred_res + rhos_p[static_cast<int64_t>(k)] * D1s[k];
  return x_t_ - alpha_t * c.B_h * pred_res;
}

// UniC, B(h) variant: corrects the sample at sigma[k] (reached from last_sample at
// sigma[k-1]) with the model output just evaluated there.
torch::Tensor FlowUniPCSampler::corrector(const torch::Tensor& model_t, const torch::Tensor& x, int order) const {
  const auto& m0 = model_outputs_.back();
  const torch::Tensor sigma_t = sigma(step_index_), sigma_s0 = sigma(step_index_ - 1);
  const torch::Tensor alpha_t = 1 - sigma_t;
  const torch::Tensor lambda_s0 = lambda_of(sigma_s0);
  const torch::Tensor h = lambda_of(sigma_t) - lambda_s0;

  std::vector<torch::Tensor> rks, D1s;
  for (int i = 1; i < order; ++i) {
    const auto& mi = model_outputs_[model_outputs_.size() - 1 - static_cast<size_t>(i)];
    torch::Tensor rk = (lambda_of(sigma(step_index_ - (i + 1))) - lambda_s0) / h;
    rks.push_back(rk);
    D1s.push_back((mi - m0) / rk);
  }
  BhCoeffs c = bh_coeffs(h, rks, order, opt_.bh2);
  torch::Tensor rhos_c = order == 1 ? torch::full({1}, 0.5, torch::kFloat32) : torch::linalg::solve(c.R, c.b, true);

  torch::Tensor x_t_ = sigma_t / sigma_s0 * x - alpha_t * c.h_phi_1 * m0;
  torch::Tensor D1_t = model_t - m0;
  torch::Tensor last = rhos_c[rhos_c.size(0) - 1] * D1_t;
  torch::Tensor res;
  if (D1s.empty()) {
    res = last;
  } else {
    torch::Tensor corr_res = rhos_c[0] * D1s[0];
    for (size_t k = 1; k < D1s.size(); ++k) corr_res = corr_res + rhos_c[static_cast<int64_t>(k)] * D1s[k];
    res = corr_res + last;
  }
  return x_t_ - alpha_t * c.B_h * res;
}

// ---------------------------------------------------------------------------- Euler

void FlowEulerSampler::set_timesteps(int64_t steps, double shift) {
  check_steps(steps, shift);
  auto lin = np_linspace(1.0, 0.0, steps + 1);  // get_sampling_sigmas
  lin.pop_back();
  for (auto& s : lin) s = shifted(s, shift);
  make_schedule(lin, num_train_timesteps_, timesteps_, sigmas_);
}

torch::Tensor FlowEulerSampler::step(const torch::Tensor& model_output, int64_t i, const torch::Tensor& sample) {
  torch::NoGradGuard no_grad;
  if (!sigmas_.defined()) throw std::logic_error("FlowEulerSampler::step: call set_timesteps first");
  if (i < 0 || i + 1 >= sigmas_.size(0))
    throw std::out_of_range("FlowEulerSampler::step: index " + std::to_string(i) + " outside the schedule");
  const auto v = model_output.to(torch::kFloat32);
  return sample.to(torch::kFloat32) + (sigmas_[i + 1] - sigmas_[i]) * v;
}

// ---------------------------------------------------------------------------- helpers

torch::Tensor cfg_combine(const torch::Tensor& cond, const torch::Tensor& uncond, double guide_scale) {
  return uncond + guide_scale * (cond - uncond);
}

NoiseSource::NoiseSource(int64_t seed) {
  if (seed < 0) {
    std::random_device rd;
    // The reference draws from [0, sys.maxsize]; keep it non-negative so it can be replayed.
    seed = static_cast<int64_t>(((static_cast<uint64_t>(rd()) << 32) | rd()) >> 1);
  }
  seed_ = seed;
  gen_ = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed_));
}

torch::Tensor NoiseSource::normal(int64_t c, int64_t f, int64_t h, int64_t w) {
  torch::NoGradGuard no_grad;
  return at::randn({c, f, h, w}, gen_, torch::TensorOptions().dtype(torch::kFloat32));
}

}  // namespace reel::wan
