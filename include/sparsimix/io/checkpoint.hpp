// HybridViT checkpoints as safetensors (docs/formats.md sections 1-2): the PyTorch/timm
// state_dict plus __metadata__ {"format": "pt", "sparsimix.config": the config as JSON text}.
#pragma once
#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "../models/vit.hpp"
#include "model_config.hpp"
#include "safetensors.hpp"

namespace sparsimix::io {
SPARSIMIX_ABI_BEGIN

// How load_checkpoint reads a file: timm defaults and the finite-weights check.
struct load_options {
  // Heads of a timm checkpoint without "sparsimix.config" (0 = embed_dim / 64, at least 1).
  index_t num_heads = 0;
  // Refuse NaN/Inf weights.
  bool check_finite = true;
};

namespace detail {

// Reads what a timm ViT/DeiT state_dict's shapes tell; the rest comes from options.
inline vit_config infer_timm_config(const safetensors_file& f, const load_options& opt) {
  using sparsimix::detail::concat;
  if (f.contains("dist_token") || f.contains("head_dist.weight"))
    throw format_error(f.source() + ": distilled DeiT checkpoints (dist_token, head_dist) are not supported yet");
  for (const char* n : {"patch_embed.proj.weight", "pos_embed", "cls_token", "head.weight"})
    if (!f.contains(n))
      throw format_error(concat(f.source(), ": no \"sparsimix.config\" metadata and no timm tensor '", n,
                                "': not a sparsimix or timm ViT checkpoint"));
  const Shape pw = f.record("patch_embed.proj.weight").shape, pos = f.record("pos_embed").shape,
              hw = f.record("head.weight").shape;
  check_shape(f.source().c_str(), "patch_embed.proj.weight", pw, {-1, -1, -1, -1});
  check_shape(f.source().c_str(), "pos_embed", pos, {1, -1, pw[0]});
  check_shape(f.source().c_str(), "head.weight", hw, {-1, pw[0]});
  vit_config c;
  c.embed_dim = pw[0];
  c.in_chans = pw[1];
  c.patch_size = pw[2];
  const auto grid = static_cast<index_t>(std::llround(std::sqrt(double(pos[1] - 1))));
  if (grid * grid + 1 != pos[1])
    throw format_error(concat(f.source(), ": pos_embed has ", pos[1], " tokens, expected a square grid + 1 CLS token"));
  c.img_size = grid * c.patch_size;
  c.num_classes = hw[0];
  index_t depth = 0;
  while (f.contains("blocks." + std::to_string(depth) + ".norm1.weight")) ++depth;
  c.depth = depth;
  if (depth > 0) {
    const Shape fc1 = f.record("blocks.0.mlp.fc1.weight").shape;
    c.mlp_ratio = double(fc1[0]) / double(c.embed_dim);
  }
  c.num_heads = opt.num_heads > 0 ? opt.num_heads : std::max<index_t>(1, c.embed_dim / 64);
  c.ln_eps = 1e-6;
  c.mixers.assign(static_cast<std::size_t>(depth), mixer_spec{});
  return c;
}

}  // namespace detail

// The model config of a checkpoint: from "sparsimix.config", else inferred as a timm ViT.
inline vit_config checkpoint_config(const safetensors_file& f, const load_options& opt = {}) {
  const auto it = f.metadata().find("sparsimix.config");
  if (it != f.metadata().end()) {
    try {
      return vit_config_from_string(it->second);
    } catch (const config_error& e) {
      throw config_error(f.source() + ": " + e.what());
    }
  }
  return detail::infer_timm_config(f, opt);
}

// Loads a checkpoint strictly: every expected tensor present with its shape, nothing extra;
// otherwise one format_error listing missing, unexpected and mis-shaped tensors.
// A file already read: `f.source()` names it in messages.
template <class T = float>
HybridViT<T> load_checkpoint(const safetensors_file& f, const load_options& opt = {}) {
  using sparsimix::detail::concat;
  const std::string& path = f.source();
  const vit_config cfg = checkpoint_config(f, opt);
  // Before allocating the model: its MLPs alone need 2 * hidden * C weights of at least 2
  // bytes each, so a small file with a huge config is refused instead of exhausting memory.
  const double min_bytes = 2.0 * 2.0 * static_cast<double>(cfg.depth) * static_cast<double>(cfg.mlp_hidden()) *
                           static_cast<double>(cfg.embed_dim);
  if (min_bytes > static_cast<double>(f.data_size()))
    throw format_error(concat(path, ": the config describes a model of at least ", min_bytes,
                              " bytes of weights, the file holds ", f.data_size(),
                              " (truncated, or a config that does not belong to these tensors)"));
  HybridViT<T> model(cfg);
  const auto expected = model.state_dict();
  std::vector<std::string> missing, misshaped;
  std::set<std::string> known;
  for (const auto& [name, t] : expected) {
    known.insert(name);
    if (!f.contains(name))
      missing.push_back(name);
    else if (!(f.record(name).shape == t.shape()))
      misshaped.push_back(concat(name, " is ", f.record(name).shape.str(), ", expected ", t.shape().str()));
  }
  std::vector<std::string> unexpected;
  for (const auto& r : f.records())
    if (!known.count(r.name)) unexpected.push_back(r.name);
  if (!missing.empty() || !unexpected.empty() || !misshaped.empty()) {
    auto list = [](const std::vector<std::string>& v) {
      std::string s;
      const std::size_t shown = std::min<std::size_t>(v.size(), 8);
      for (std::size_t i = 0; i < shown; ++i) s += (i ? ", " : "") + v[i];
      if (v.size() > shown) s += concat(", ... (", v.size() - shown, " more)");
      return s;
    };
    std::string msg = path + ": checkpoint does not match the model:";
    if (!missing.empty()) msg += concat(" missing [", list(missing), "];");
    if (!unexpected.empty()) msg += concat(" unexpected [", list(unexpected), "];");
    if (!misshaped.empty()) msg += concat(" mis-shaped [", list(misshaped), "];");
    msg.pop_back();
    throw format_error(msg);
  }
  model.load_state_dict([&](const std::string& name) {
    Tensor<T> t = f.get<T>(name);
    if (opt.check_finite) check_finite<T>(path.c_str(), name.c_str(), t.view());
    return t;
  });
  return model;
}

// Reads the checkpoint file at `path` and loads it as above.
template <class T = float>
HybridViT<T> load_checkpoint(const std::string& path, const load_options& opt = {}) {
  return load_checkpoint<T>(safetensors_file::load(path), opt);
}

// Writes model as a checkpoint, atomically.
template <class T>
void save_checkpoint(HybridViT<T>& model, const std::string& path) {
  if (!model.serializable())
    throw config_error(path + ": the model holds a mixer of an unregistered type (AnyMixer) that a config cannot "
                       "describe; give it a mixer_traits block and SPARSIMIX_REGISTER_MIXER it (docs/architecture.md)");
  safetensors_writer w;
  w.set_metadata("format", "pt");
  w.set_metadata("sparsimix.config", to_string(model.config()));
  for (const auto& [name, t] : model.state_dict()) w.add(name, t);
  w.write(path);
}

// Compiled in sparsimix::compiled (docs/build-time.md).
SPARSIMIX_EXTERN_TEMPLATE(HybridViT<float> load_checkpoint<float>(const std::string&, const load_options&))
SPARSIMIX_EXTERN_TEMPLATE(HybridViT<double> load_checkpoint<double>(const std::string&, const load_options&))
SPARSIMIX_EXTERN_TEMPLATE(void save_checkpoint<float>(HybridViT<float>&, const std::string&))
SPARSIMIX_EXTERN_TEMPLATE(void save_checkpoint<double>(HybridViT<double>&, const std::string&))

SPARSIMIX_ABI_END
}  // namespace sparsimix::io
