// The reference's tiled encode/decode (autoencoder_kl_causal_3d.py: spatial_tiled_*,
// temporal_tiled_*), reproduced number for number: the same tile starts (range(0, n,
// stride)), the same in-place blends in the same order (a tile is blended with the tile
// above after that one was itself blended, then with its already blended left
// neighbour), and the same crops. Unlike the reference, which decodes every tile before
// blending, tiles are blended as they are produced and only what a later blend reads is
// kept: the previous row's bottom edge (spatial) or the previous tile (temporal).
#include "vae_blocks.hpp"

namespace reel::hyavatar {

namespace {

constexpr int64_t kT = 2, kH = 3, kW = 4;  // dims of [B, C, T, H, W]

// Python's int(x) on a non-negative float.
int64_t trunc(double x) { return static_cast<int64_t>(x); }

struct SpatialPlan {
  int64_t in_tile, stride, blend, limit;
};

// Tiles the last two dims of `x` in `in_tile` squares starting every `stride`, runs
// `fn` on each and blends/crops its output as spatial_tiled_encode/decode do.
template <typename Fn>
torch::Tensor spatial_tiles(const torch::Tensor& x, const SpatialPlan& p, Fn fn) {
  std::vector<torch::Tensor> above;  // previous row: the bottom `blend` rows of each tile
  std::vector<torch::Tensor> result_rows;
  for (int64_t i = 0; i < x.size(kH); i += p.stride) {
    std::vector<torch::Tensor> row, cropped;
    for (int64_t j = 0, col = 0; j < x.size(kW); j += p.stride, ++col) {
      auto tile = fn(x.slice(kH, i, i + p.in_tile).slice(kW, j, j + p.in_tile));
      if (i > 0) vae::blend_into(above[static_cast<size_t>(col)], tile, kH, p.blend);
      if (j > 0) vae::blend_into(row.back(), tile, kW, p.blend);
      cropped.push_back(tile.slice(kH, 0, p.limit).slice(kW, 0, p.limit));
      row.push_back(std::move(tile));
    }
    result_rows.push_back(torch::cat(cropped, kW));
    cropped.clear();
    above.clear();
    for (auto& t : row) {
      // blend_v reads only the last min(blend, height) rows of the tile above.
      const int64_t keep = std::min(p.blend, t.size(kH));
      above.push_back(t.slice(kH, t.size(kH) - keep).clone());
    }
  }
  return torch::cat(result_rows, kH);
}

struct TemporalPlan {
  int64_t in_tile, stride, blend, limit;  // in_tile frames are taken plus one
};

// temporal_tiled_encode/decode: tiles of in_tile + 1 frames every `stride`; every tile
// but the first drops its first output frame, is blended with the previous (already
// blended) tile and keeps `limit` frames; the first keeps limit + 1.
template <typename Fn>
torch::Tensor temporal_tiles(const torch::Tensor& x, const TemporalPlan& p, Fn fn) {
  torch::Tensor previous;
  std::vector<torch::Tensor> cropped;
  for (int64_t i = 0; i < x.size(kT); i += p.stride) {
    auto tile = fn(x.slice(kT, i, i + p.in_tile + 1));
    if (i > 0) {
      tile = tile.slice(kT, 1);
      vae::blend_into(previous, tile, kT, p.blend);
      cropped.push_back(tile.slice(kT, 0, p.limit));
    } else {
      cropped.push_back(tile.slice(kT, 0, p.limit + 1));
    }
    previous = std::move(tile);
  }
  previous.reset();
  return torch::cat(cropped, kT);
}

}  // namespace

torch::Tensor HyVae::Impl::encode_untiled(const torch::Tensor& x) const {
  return vae::conv_forward(quant_conv, vae::encoder_forward(encoder, x));
}

torch::Tensor HyVae::Impl::decode_untiled(const torch::Tensor& z) const {
  return vae::decoder_forward(decoder, vae::conv_forward(post_quant_conv, z));
}

torch::Tensor HyVae::Impl::spatial_tiled_encode(const torch::Tensor& x, const VaeTiling& t) const {
  const int64_t blend = trunc(t.tile_latent_min_size * t.tile_overlap_factor);
  SpatialPlan p{t.tile_sample_min_size, trunc(t.tile_sample_min_size * (1 - t.tile_overlap_factor)), blend,
                t.tile_latent_min_size - blend};
  return spatial_tiles(x, p, [&](const torch::Tensor& tile) { return encode_untiled(tile); });
}

torch::Tensor HyVae::Impl::spatial_tiled_decode(const torch::Tensor& z, const VaeTiling& t) const {
  const int64_t blend = trunc(t.tile_sample_min_size * t.tile_overlap_factor);
  SpatialPlan p{t.tile_latent_min_size, trunc(t.tile_latent_min_size * (1 - t.tile_overlap_factor)), blend,
                t.tile_sample_min_size - blend};
  return spatial_tiles(z, p, [&](const torch::Tensor& tile) { return decode_untiled(tile); });
}

torch::Tensor HyVae::Impl::temporal_tiled_encode(const torch::Tensor& x, const VaeTiling& t) const {
  const int64_t blend = trunc(t.tile_latent_min_tsize * t.tile_overlap_factor);
  TemporalPlan p{t.tile_sample_min_tsize, trunc(t.tile_sample_min_tsize * (1 - t.tile_overlap_factor)), blend,
                 t.tile_latent_min_tsize - blend};
  return temporal_tiles(x, p, [&](const torch::Tensor& tile) {
    if (t.spatial && (tile.size(kW) > t.tile_sample_min_size || tile.size(kH) > t.tile_sample_min_size))
      return spatial_tiled_encode(tile, t);
    return encode_untiled(tile);
  });
}

torch::Tensor HyVae::Impl::temporal_tiled_decode(const torch::Tensor& z, const VaeTiling& t) const {
  const int64_t blend = trunc(t.tile_sample_min_tsize * t.tile_overlap_factor);
  TemporalPlan p{t.tile_latent_min_tsize, trunc(t.tile_latent_min_tsize * (1 - t.tile_overlap_factor)), blend,
                 t.tile_sample_min_tsize - blend};
  return temporal_tiles(z, p, [&](const torch::Tensor& tile) {
    if (t.spatial && (tile.size(kW) > t.tile_latent_min_size || tile.size(kH) > t.tile_latent_min_size))
      return spatial_tiled_decode(tile, t);
    return decode_untiled(tile);
  });
}

}  // namespace reel::hyavatar
