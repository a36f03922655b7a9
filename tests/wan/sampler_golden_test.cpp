// Samplers: the UniPC schedule against the reference's golden timesteps/sigmas, and
// properties of the step math that hold without the DiT (the full UniPC step sequence
// is checked by the pipeline golden test, which needs the model outputs).
#include <cmath>
#include <cstdio>

#include <ATen/CPUGeneratorImpl.h>

#include "golden.hpp"
#include "sampler.hpp"
#include "tensorio/weights.hpp"

namespace {

using reel::wan::FlowEulerSampler;
using reel::wan::FlowSampler;
using reel::wan::FlowUniPCSampler;
using reel::wan::UniPCOptions;

std::string fixture() { return reel::golden::fixture_dir("REEL_WAN21_GOLDEN", "wan21-tiny-a"); }

struct Cfg {
  int64_t steps, train;
  double shift;
};
Cfg pipeline_cfg() {
  auto j = reel::golden::read_json(fixture() + "/golden.json");
  const auto& p = j.at("pipeline");
  return {p.at("steps").get<int64_t>(), p.at("num_train_timesteps").get<int64_t>(), p.at("shift").get<double>()};
}

TEST(SamplerGolden, UniPCTimestepsAndSigmas) {
  const Cfg cfg = pipeline_cfg();
  auto g = reel::tensorio::load_safetensors(fixture() + "/golden/sampler.safetensors");
  UniPCOptions opt;
  opt.num_train_timesteps = cfg.train;
  FlowUniPCSampler s(opt);
  s.set_timesteps(cfg.steps, cfg.shift);
  const auto& want_t = g.at("timesteps");
  ASSERT_EQ(s.timesteps().scalar_type(), torch::kInt64);
  ASSERT_EQ(s.timesteps().sizes(), want_t.sizes());
  EXPECT_TRUE(torch::equal(s.timesteps(), want_t.to(torch::kInt64)))
      << "got " << s.timesteps() << "\nwant " << want_t;
  EXPECT_TRUE(reel::golden::close(s.sigmas(), g.at("sigmas").to(torch::kFloat32), 0, 1e-6));
}

// Gaussian data x0 ~ N(0, sd^2) per element, noise N(0,1), x = (1-s) x0 + s n: the exact
// denoiser is E[x0|x] = k(s) x with k = (1-s) sd^2 / var(s), var = (1-s)^2 sd^2 + s^2,
// and the probability-flow ODE carries x_T to x_T * sqrt(var(0)/var(s_T)) = x_T * sd / std(s_T).
struct GaussianFlow {
  double sd = 0.5;
  double var(double s) const { return (1 - s) * (1 - s) * sd * sd + s * s; }
  torch::Tensor velocity(const torch::Tensor& x, double s) const {
    const double k = (1 - s) * sd * sd / var(s);
    return (x - k * x) / s;  // v = (x - x0_hat) / sigma
  }
};

// Runs a sampler to sigma 0 with the exact Gaussian velocity; returns max abs error
// against the exact ODE solution.
double gaussian_error(FlowSampler& s, int64_t steps, double shift) {
  s.set_timesteps(steps, shift);
  GaussianFlow f;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  auto xT = at::randn({2, 3, 4, 4}, gen, torch::kFloat32).to(torch::kFloat64).to(torch::kFloat32);
  const double sT = s.sigmas()[0].item<double>();
  auto x = xT * std::sqrt(f.var(sT));  // a sample of the marginal at sigma_T
  auto x_start = x.clone();
  for (int64_t i = 0; i < steps; ++i) {
    const double si = s.sigmas()[i].item<double>();
    x = s.step(f.velocity(x, si), i, x);
  }
  auto exact = x_start * (f.sd / std::sqrt(f.var(sT)));
  return (x - exact).abs().max().item<double>();
}

TEST(Sampler, UniPCIsHigherOrderThanEuler) {
  const Cfg cfg = pipeline_cfg();
  FlowUniPCSampler u;
  FlowEulerSampler e;
  const double u10 = gaussian_error(u, 10, cfg.shift), u20 = gaussian_error(u, 20, cfg.shift);
  const double e10 = gaussian_error(e, 10, cfg.shift), e20 = gaussian_error(e, 20, cfg.shift);
  std::printf("gaussian ODE max error: unipc 10 %.3g, 20 %.3g; euler 10 %.3g, 20 %.3g\n", u10, u20, e10, e20);
  EXPECT_LT(u20, u10);
  EXPECT_LT(e20, e10);
  // Euler is first order (halving h about halves the error); UniPC-2 with UniC converges faster.
  EXPECT_LT(u10, e10);
  EXPECT_GT(u10 / u20, 3.0);
  EXPECT_LT(u20, 1e-2);
}

// A straight flow x(s) = (1-s) x0 + s n with the exact constant velocity v = n - x0: every
// x0 prediction is exact, so both samplers stay on the line after every step and end at
// x0 = x_T - sigma_0 * v (up to float32 rounding).
TEST(Sampler, StraightFlowIsExact) {
  const Cfg cfg = pipeline_cfg();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  auto x0 = at::randn({16, 3, 8, 8}, gen, torch::kFloat32);
  auto n = at::randn({16, 3, 8, 8}, gen, torch::kFloat32);
  auto v = n - x0;
  FlowUniPCSampler u;
  FlowEulerSampler e;
  for (FlowSampler* s : {static_cast<FlowSampler*>(&u), static_cast<FlowSampler*>(&e)}) {
    s->set_timesteps(cfg.steps, cfg.shift);
    const float s0 = s->sigmas()[0].item<float>();
    auto x = (1 - s0) * x0 + s0 * n;
    for (int64_t i = 0; i < cfg.steps; ++i) {
      x = s->step(v, i, x);
      const float si = s->sigmas()[i + 1].item<float>();
      EXPECT_TRUE(reel::golden::close(x, (1 - si) * x0 + si * n, 0, 2e-6)) << "after step " << i;
    }
    auto xT = (1 - s0) * x0 + s0 * n;
    EXPECT_TRUE(reel::golden::close(x, xT - s0 * v, 0, 2e-6));
  }
}

TEST(Sampler, EulerSchedule) {
  const Cfg cfg = pipeline_cfg();
  FlowEulerSampler e(cfg.train);
  e.set_timesteps(cfg.steps, cfg.shift);
  ASSERT_EQ(e.sigmas().size(0), cfg.steps + 1);
  EXPECT_FLOAT_EQ(e.sigmas()[0].item<float>(), 1.0f);
  EXPECT_EQ(e.sigmas()[cfg.steps].item<float>(), 0.0f);
  EXPECT_EQ(e.timesteps()[0].item<int64_t>(), cfg.train);
  for (int64_t i = 0; i < cfg.steps; ++i) {
    const double s = 1.0 - double(i) / double(cfg.steps);
    EXPECT_NEAR(e.sigmas()[i].item<float>(), cfg.shift * s / (1 + (cfg.shift - 1) * s), 1e-6);
  }
}

TEST(Sampler, StepOrderIsEnforced) {
  FlowUniPCSampler u;
  auto x = torch::zeros({1, 2, 2, 2});
  EXPECT_THROW(u.step(x, 0, x), std::logic_error);  // no schedule yet
  u.set_timesteps(4, 3.0);
  u.step(x, 0, x);
  EXPECT_THROW(u.step(x, 2, x), std::logic_error);  // skipped index 1
  u.set_timesteps(4, 3.0);                         // resets the history
  EXPECT_NO_THROW(u.step(x, 0, x));
  EXPECT_THROW(u.set_timesteps(0, 3.0), std::invalid_argument);
}

TEST(Sampler, CfgCombine) {
  auto c = torch::full({3}, 2.0f), un = torch::full({3}, 1.0f);
  EXPECT_TRUE(torch::allclose(reel::wan::cfg_combine(c, un, 5.0), torch::full({3}, 6.0f)));
}

TEST(Sampler, NoiseIsSeededLikePyTorch) {
  reel::wan::NoiseSource a(0), b(0), c(1);
  EXPECT_EQ(a.seed(), 0);
  auto na = a.normal(16, 3, 8, 8);
  EXPECT_EQ(na.sizes(), (std::vector<int64_t>{16, 3, 8, 8}));
  EXPECT_TRUE(torch::equal(na, b.normal(16, 3, 8, 8)));
  EXPECT_FALSE(torch::equal(na, c.normal(16, 3, 8, 8)));
  EXPECT_NEAR(na.mean().item<double>(), 0.0, 0.1);
  EXPECT_NEAR(na.std().item<double>(), 1.0, 0.1);
  // torch.Generator().manual_seed(0); torch.randn(1, 1, 2, 2, generator=g) in Python.
  reel::wan::NoiseSource p(0);
  auto small = p.normal(1, 1, 2, 2).flatten();
  auto want = torch::tensor({1.5410f, -0.2934f, -2.1788f, 0.5684f});
  EXPECT_TRUE(reel::golden::close(small, want, 0, 1e-4));
  reel::wan::NoiseSource r(-1);
  EXPECT_GE(r.seed(), 0);
}

}  // namespace
