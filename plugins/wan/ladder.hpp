// The Wan plugin's quality ladder and its memory estimates.
//
// A rung says where each component lives and what quality it keeps; the scheduler picks
// the best rung that fits (docs/SCHEDULER.md), the plugin loads and runs the model as the
// rung says. Placement rungs keep quality: `resident` (everything on the GPU), `t5-cpu`,
// `vae-cpu`, `vae-tiled`, `block-swap` (half the DiT blocks streamed from pinned host
// memory, the next one prefetched while one computes), `sequential` (every DiT block
// streamed), `cpu`. Quality rungs lower it: `fp8` (DiT blocks stored as e4m3 with a
// per-tensor scale, upcast one block at a time), `steps-75`, `frames-half`, `res-75`.
//
// estimate() is a function of the model's sizes and the job's shape only (formulas in
// docs/WAN.md), so the planner answers without loading anything.
// Pure: no I/O, no torch. Thread-safety: ladder() is built once, immutable afterwards.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "model_specs.hpp"

namespace reel::wan {

enum class DitPlacement { resident, swap, sequential };

struct Rung {
  std::string name;
  bool t5_cpu = false, vae_cpu = false, vae_tiled = false, cpu_only = false;
  DitPlacement dit = DitPlacement::resident;
  bool fp8 = false;  // DiT blocks stored as float8 e4m3
  double steps_factor = 1, frames_factor = 1, res_factor = 1, relative_time = 1;

  // Blocks kept on the device for a model with `num_layers` blocks (the rest stream).
  int64_t resident_blocks(int64_t num_layers) const;
  // "fp32" on the CPU, "fp8" for fp8 storage, else "bf16" (the CUDA compute dtype).
  std::string precision() const;
};

// The ladder as the plugin describes it: [{"name", "kind", "help", "settings"}], best first.
const nlohmann::json& ladder();
// A rung by its ladder entry ({"name": ...}); throws std::invalid_argument for an unknown one.
Rung parse_rung(const nlohmann::json& rung);

// What the job asks for, and what the rung makes of it.
struct JobShape {
  int64_t steps = 0, frames = 0, width = 0, height = 0;
};
// steps x steps_factor (>= 1); latent frames x frames_factor rounded up (frames stay 4n+1);
// width and height x res_factor rounded to multiples of 16 (>= 16).
JobShape effective_shape(const JobShape& requested, const Rung& rung);

// Bytes a run needs (docs/WAN.md): `device` and `host` are peaks over the run;
// `resident_*` what stays allocated between jobs while the model is loaded.
struct MemoryEstimate {
  int64_t device = 0, host = 0, resident_device = 0, resident_host = 0;
};
MemoryEstimate estimate(const ModelSpec& model, const JobShape& shape, const Rung& rung);

// Spatial tile and overlap (latent pixels) of the tiled VAE decode rungs.
constexpr int64_t kVaeTile = 32, kVaeTileOverlap = 8;

// The host memory a worker process uses before loading anything (LibTorch, FFmpeg,
// allocator arenas): part of every host estimate.
constexpr int64_t kWorkerOverheadBytes = int64_t{768} << 20;

}  // namespace reel::wan
