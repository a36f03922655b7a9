// LLaVA-LLaMA-3 prompt encoder; see llava_encoder.hpp. The merge follows transformers
// 4.45 LlavaForConditionalGeneration._merge_input_ids_with_image_features; the crop
// follows hymm_sp's TextEncoder.encode and the pipeline's mask extension.
#include "llava_encoder.hpp"

#include <fstream>

#include <nlohmann/json.hpp>

namespace reel::hyavatar {

namespace F = torch::nn::functional;

namespace {
const std::string kVision = "vision_tower.vision_model.";
const std::string kProjector = "multi_modal_projector.";
const std::string kLanguage = "language_model.model.";
}  // namespace

LlavaConfig LlavaConfig::from_json_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read " + path + " (the LLaVA encoder's config.json)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": invalid JSON (" + std::string(e.what()) + ")");
  }
  // Keys a config leaves out take transformers' LlavaConfig defaults (sub-configs too).
  auto get = [&](const char* key, auto fallback) {
    return j.contains(key) && !j[key].is_null() ? j[key].get<decltype(fallback)>() : fallback;
  };
  if (j.contains("model_type") && j["model_type"] != "llava")
    throw std::runtime_error(path + ": model_type " + j["model_type"].dump() + " is not llava");
  LlavaConfig c;
  // LlavaConfig without a vision_config builds CLIP ViT-L/14-336.
  const nlohmann::json vision = j.contains("vision_config") && !j["vision_config"].is_null()
                                    ? j["vision_config"]
                                    : nlohmann::json{{"intermediate_size", 4096}, {"hidden_size", 1024}, {"patch_size", 14},
                                                     {"image_size", 336},         {"num_hidden_layers", 24},
                                                     {"num_attention_heads", 16}};
  c.vision = ClipVisionConfig::from_json(vision, path + " vision_config");
  c.text = LlamaConfig::from_json(j.contains("text_config") && !j["text_config"].is_null() ? j["text_config"]
                                                                                          : nlohmann::json::object(),
                                  path + " text_config");
  c.image_token_index = get("image_token_index", int64_t{32000});
  // No pad_token_id: transformers compares ids with -1, i.e. nothing is a pad.
  c.pad_token_id = get("pad_token_id", int64_t{-1});
  c.vision_feature_layer = get("vision_feature_layer", int64_t{-2});
  c.vision_feature_select_strategy = get("vision_feature_select_strategy", std::string("default"));
  c.projector_hidden_act = get("projector_hidden_act", std::string("gelu"));
  const int64_t patches = c.vision.num_patches() + (c.vision_feature_select_strategy == "full" ? 1 : 0);
  c.image_seq_length = get("image_seq_length", int64_t{576});
  if (c.vision_feature_select_strategy != "default" && c.vision_feature_select_strategy != "full")
    throw std::runtime_error(path + ": vision_feature_select_strategy \"" + c.vision_feature_select_strategy +
                             "\" is not supported (default or full)");
  if (c.projector_hidden_act != "gelu")
    throw std::runtime_error(path + ": projector_hidden_act \"" + c.projector_hidden_act + "\" is not supported (gelu)");
  if (c.image_seq_length != patches)
    throw std::runtime_error(path + ": image_seq_length " + std::to_string(c.image_seq_length) + " but the vision tower gives " +
                             std::to_string(patches) + " features per image");
  return c;
}

LlavaPromptTemplate LlavaPromptTemplate::avatar_video() {
  LlavaPromptTemplate t;
  t.text =
      "<|start_header_id|>system<|end_header_id|>\n\nDescribe the video by detailing the following aspects: "
      "1. The main content and theme of the video."
      "2. The color, shape, size, texture, quantity, text, and spatial relationships of the objects."
      "3. Actions, events, behaviors temporal relationships, physical movement changes of the objects."
      "4. background environment, light, style and atmosphere."
      "5. camera angles, movements, and transitions used in the video:<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>";
  t.suffix = "\nThe person looks like<image>";
  t.crop_start = 95;  // BOS + the template's tokens before the prompt, with Llama-3's vocabulary
  return t;
}

std::string LlavaPromptTemplate::build(const std::string& prompt) const {
  const auto at = text.find("{}");
  if (at == std::string::npos) throw std::logic_error("LLaVA prompt template without a {} slot");
  return text.substr(0, at) + prompt + text.substr(at + 2) + suffix;
}

LlavaEncoder LlavaEncoder::load(const LlavaConfig& c, const tensorio::Weights& w, torch::Dtype dt) {
  const int64_t Hv = c.vision.hidden_size, H = c.text.hidden_size;
  std::vector<ExpectedTensor> expected = ClipVisionTower::expected_keys(c.vision, kVision);
  const std::vector<ExpectedTensor> projector{{kProjector + "linear_1.weight", {H, Hv}},
                                              {kProjector + "linear_1.bias", {H}},
                                              {kProjector + "linear_2.weight", {H, H}},
                                              {kProjector + "linear_2.bias", {H}}};
  expected.insert(expected.end(), projector.begin(), projector.end());
  for (ExpectedTensor& e : LlamaDecoder::expected_keys(c.text, kLanguage)) expected.push_back(std::move(e));
  check_checkpoint_keys(w, expected, {"language_model.lm_head.weight", kVision + "embeddings.position_ids"},
                        "LLaVA-LLaMA-3 (LlavaForConditionalGeneration)");
  LlavaEncoder e;
  e.cfg_ = c;
  e.vision_ = ClipVisionTower::load(c.vision, w, kVision, c.vision_feature_layer, dt);
  e.proj1_w_ = w.require(projector[0].name, projector[0].shape, dt);
  e.proj1_b_ = w.require(projector[1].name, projector[1].shape, dt);
  e.proj2_w_ = w.require(projector[2].name, projector[2].shape, dt);
  e.proj2_b_ = w.require(projector[3].name, projector[3].shape, dt);
  e.decoder_ = LlamaDecoder::load(c.text, w, kLanguage, dt);
  return e;
}

LlavaEncoder LlavaEncoder::load_dir(const std::string& dir, torch::Dtype dt) {
  const LlavaConfig c = LlavaConfig::from_json_file(dir + "/config.json");
  const std::string index = dir + "/model.safetensors.index.json";
  const bool sharded = static_cast<bool>(std::ifstream(index));
  return load(c, tensorio::load_weights(sharded ? index : dir + "/model.safetensors"), dt);
}

LlavaEncoder LlavaEncoder::to(const torch::Device& device) const {
  LlavaEncoder e = *this;
  e.vision_ = vision_.to(device);
  for (torch::Tensor* t : {&e.proj1_w_, &e.proj1_b_, &e.proj2_w_, &e.proj2_b_}) *t = t->to(device);
  e.decoder_ = decoder_.to(device);
  return e;
}

int64_t LlavaEncoder::bytes() const {
  int64_t n = vision_.bytes() + decoder_.bytes();
  for (const torch::Tensor& t : {proj1_w_, proj1_b_, proj2_w_, proj2_b_}) n += t.numel() * t.element_size();
  return n;
}

torch::Tensor LlavaEncoder::vision_selected_features(const torch::Tensor& pixel_values) const {
  torch::Tensor h = vision_.hidden_state(pixel_values);
  return cfg_.vision_feature_select_strategy == "default" ? h.slice(1, 1) : h;
}

torch::Tensor LlavaEncoder::project(const torch::Tensor& selected) const {
  torch::NoGradGuard no_grad;
  torch::Tensor x = F::linear(selected.to(device(), torch::kFloat32), proj1_w_.to(torch::kFloat32), proj1_b_.to(torch::kFloat32));
  return F::linear(torch::gelu(x), proj2_w_.to(torch::kFloat32), proj2_b_.to(torch::kFloat32));
}

LlavaMerged LlavaEncoder::merge(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                const torch::Tensor& image_features) const {
  if (input_ids.dim() != 2 || attention_mask.sizes() != input_ids.sizes())
    throw std::invalid_argument("LLaVA merge: input_ids and attention_mask must both be [B, L]");
  const int64_t B = input_ids.size(0), L = input_ids.size(1), P = image_features.size(1);
  const int64_t H = cfg_.text.hidden_size;
  if (image_features.dim() != 3 || image_features.size(2) != H)
    throw std::invalid_argument("LLaVA merge: image_features must be [images, patches, " + std::to_string(H) + "]");
  torch::Tensor ids = input_ids.to(torch::kCPU, torch::kLong).contiguous();
  torch::Tensor mask_in = attention_mask.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t* id = ids.data_ptr<int64_t>();
  const int64_t* m = mask_in.data_ptr<int64_t>();

  // new_token_positions = cumsum(is_image * (P - 1) + 1) - 1, per row.
  std::vector<int64_t> new_pos(static_cast<size_t>(B * L));
  int64_t max_images = 0, total_images = 0;
  for (int64_t b = 0; b < B; ++b) {
    int64_t acc = -1, n = 0;
    for (int64_t j = 0; j < L; ++j) {
      const bool image = id[b * L + j] == cfg_.image_token_index;
      n += image;
      acc += image ? P : 1;
      new_pos[b * L + j] = acc;
    }
    max_images = std::max(max_images, n);
    total_images += n;
  }
  if (total_images != image_features.size(0))
    throw std::invalid_argument("LLaVA merge: " + std::to_string(total_images) + " <image> tokens in the text but " +
                                std::to_string(image_features.size(0)) +
                                " images (was the <image> token cut off by truncation? shorten the prompt)");
  const int64_t T = max_images * (P - 1) + L;
  // transformers decides left padding for the whole batch: no row ends with <pad>.
  bool left_padding = true;
  for (int64_t b = 0; b < B; ++b)
    if (id[b * L + L - 1] == cfg_.pad_token_id) left_padding = false;

  torch::Tensor text_emb = decoder_.embed(ids);  // [B, L, H]
  torch::Tensor emb = torch::zeros({B, T, H}, text_emb.options());
  std::vector<int64_t> mask(static_cast<size_t>(B * T), 0);
  std::vector<int64_t> src_b, src_j, dst_b, dst_t, img_b, img_t, pad_b, pad_t;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t nb_image_pad = T - 1 - new_pos[b * L + L - 1];
    const int64_t shift = left_padding ? nb_image_pad : 0;
    std::vector<bool> text_slot(static_cast<size_t>(T), false);
    for (int64_t j = 0; j < L; ++j) {
      const int64_t t = new_pos[b * L + j] + shift;
      if (id[b * L + j] == cfg_.image_token_index) continue;
      src_b.push_back(b), src_j.push_back(j), dst_b.push_back(b), dst_t.push_back(t);
      mask[b * T + t] = m[b * L + j];
      text_slot[t] = true;
      if (id[b * L + j] == cfg_.pad_token_id) pad_b.push_back(b), pad_t.push_back(t);
    }
    // Image slots: the unwritten positions after the first nb_image_pad of them.
    int64_t free_seen = 0;
    for (int64_t t = 0; t < T; ++t) {
      if (text_slot[t]) continue;
      if (free_seen++ >= nb_image_pad) {
        img_b.push_back(b), img_t.push_back(t);
        mask[b * T + t] = 1;
      }
    }
  }
  if (static_cast<int64_t>(img_t.size()) != total_images * P)
    throw std::invalid_argument("LLaVA merge: the image features do not fit the image positions");
  auto idx = [&](const std::vector<int64_t>& v) { return torch::tensor(v, torch::kLong).to(emb.device()); };
  emb.index_put_({idx(dst_b), idx(dst_t)}, text_emb.index({idx(src_b), idx(src_j)}));
  if (!img_t.empty())
    emb.index_put_({idx(img_b), idx(img_t)}, image_features.to(emb.device(), torch::kFloat32).reshape({-1, H}));
  if (!pad_t.empty()) emb.index_put_({idx(pad_b), idx(pad_t)}, torch::zeros({1}, emb.options()));

  torch::Tensor final_mask = torch::tensor(mask, torch::kLong).view({B, T});
  torch::Tensor positions = (final_mask.cumsum(-1) - 1).masked_fill(final_mask == 0, 1);
  return {emb, final_mask.to(emb.device()), positions.to(emb.device())};
}

LlavaOutput LlavaEncoder::encode(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                 const torch::Tensor& pixel_values, const LlavaEncodeOptions& o, LlavaTrace* trace) const {
  torch::NoGradGuard no_grad;
  const int64_t n_states = cfg_.text.num_layers + 1;
  const int64_t used = n_states - (o.hidden_state_skip_layer + 1);
  if (o.hidden_state_skip_layer < 0 || used < 0)
    throw std::invalid_argument("LLaVA encode: hidden_state_skip_layer " + std::to_string(o.hidden_state_skip_layer) +
                                " but the LLaMA has " + std::to_string(n_states) + " hidden states");
  torch::Tensor selected = vision_selected_features(pixel_values);
  torch::Tensor features = project(selected);
  LlavaMerged merged = merge(input_ids, attention_mask, features);
  // A trace keeps every state up to the one used; otherwise only that one is kept.
  std::vector<torch::Tensor> states = decoder_.hidden_states(merged.inputs_embeds, merged.attention_mask,
                                                             merged.position_ids, used, trace != nullptr);
  torch::Tensor hidden = states.back();
  if (o.apply_final_norm && used != cfg_.text.num_layers) hidden = decoder_.final_norm(hidden);

  const int64_t B = input_ids.size(0), T = hidden.size(1);
  if (o.crop_start < 0 || o.crop_start >= T)
    throw std::invalid_argument("LLaVA encode: crop_start " + std::to_string(o.crop_start) + " outside the " +
                                std::to_string(T) + " merged positions");
  // The pipeline's mask: the tokenizer mask, then image_seq_length - 1 ones (one image).
  torch::Tensor appended = torch::ones({B, cfg_.image_seq_length - 1}, torch::kLong);
  torch::Tensor mask = torch::cat({attention_mask.to(torch::kCPU, torch::kLong), appended}, 1);
  if (mask.size(1) != T)
    throw std::invalid_argument("LLaVA encode: the reference's text_mask assumes one <image> token per prompt (" +
                                std::to_string(mask.size(1)) + " mask entries for " + std::to_string(T) + " positions)");
  LlavaOutput out{hidden.slice(1, o.crop_start), mask.slice(1, o.crop_start).to(hidden.device())};
  if (trace) {
    trace->vision_selected_features = selected;
    trace->image_features = features;
    trace->merged = merged;
    trace->hidden_states = std::move(states);
  }
  return out;
}

}  // namespace reel::hyavatar
