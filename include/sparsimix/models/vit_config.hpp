// The model description stored as "sparsimix.config" in checkpoints (docs/formats.md section 1).
// Plain structs: parsing and printing JSON lives in io/model_config.hpp.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../mixers/traits.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// A-ViT's halting gate of a model (HaltingController::config; docs/formats.md section 1).
struct halting_spec {
  double gamma = 10, beta = 30, eps = 0.01;  // gate scale and centre; tokens halt at cumulative 1 - eps
  // Same gate values.
  friend bool operator==(const halting_spec&, const halting_spec&) = default;
};

// The architecture of a HybridViT: sizes, each block's mixer and the optional halting.
struct vit_config {
  // Bounds of validate(): far above any ViT in use (ViT-g: 1408 x 40 blocks, about 1e9
  // parameters), low enough that no product of sizes overflows.
  static constexpr index_t max_img_size = 16384, max_in_chans = 1024, max_num_classes = 1'000'000,
                           max_embed_dim = 16384, max_depth = 1024, max_patches = 1 << 20;
  // Bounds of validate() on mlp_ratio and on the attention-equivalent parameter count.
  static constexpr double max_mlp_ratio = 64, max_params = 4e9;
  // Input image side (square, pixels), patch side, image channels, and classes.
  index_t img_size = 28, patch_size = 4, in_chans = 1, num_classes = 10;
  index_t embed_dim = 96, depth = 6, num_heads = 3;  // token width C, blocks, and attention heads
  double mlp_ratio = 4.0;                // MLP hidden width = mlp_ratio * C
  double ln_eps = 1e-6;                  // LayerNorm epsilon (timm's ViT value)
  std::vector<mixer_spec> mixers;        // exactly `depth` entries (kinds and options: models/registry.hpp)
  std::optional<halting_spec> halting;   // A-ViT token halting, off by default

  // Patches per side: img_size / patch_size.
  index_t grid() const noexcept { return img_size / patch_size; }
  // Patch tokens per image, grid()^2.
  index_t num_patches() const noexcept { return grid() * grid(); }
  // Tokens per image: the patches plus CLS.
  index_t num_tokens() const noexcept { return num_patches() + 1; }  // CLS first
  // The MLP's hidden width, mlp_ratio * C rounded down.
  index_t mlp_hidden() const noexcept { return static_cast<index_t>(static_cast<double>(embed_dim) * mlp_ratio); }
  // The width of one attention head, C / num_heads.
  index_t head_dim() const noexcept { return embed_dim / num_heads; }

  // Throws config_error naming the field and the offending value. The mixers' kinds and
  // options are checked by the registry (HybridViT's constructor, the config JSON reader).
  void validate() const {
    using detail::concat;
    // Each size is bounded before anything multiplies them: 2^40 pixels must not wrap into a
    // tiny model, and a depth of 100000 must not end in std::bad_alloc.
    auto in_range = [](const char* name, index_t v, index_t hi) {
      if (v <= 0) throw config_error(concat("vit config: ", name, " must be positive, got ", v));
      if (v > hi) throw config_error(concat("vit config: ", name, " is ", v, ", expected at most ", hi));
    };
    in_range("img_size", img_size, max_img_size);
    in_range("patch_size", patch_size, img_size);
    in_range("in_chans", in_chans, max_in_chans);
    in_range("num_classes", num_classes, max_num_classes);
    in_range("embed_dim", embed_dim, max_embed_dim);
    in_range("depth", depth, max_depth);
    in_range("num_heads", num_heads, embed_dim);
    if (img_size % patch_size != 0)
      throw config_error(concat("vit config: img_size ", img_size, " is not a multiple of patch_size ", patch_size));
    if (embed_dim % num_heads != 0)
      throw config_error(concat("vit config: embed_dim ", embed_dim, " is not a multiple of num_heads ", num_heads));
    if (!(mlp_ratio > 0)) throw config_error(concat("vit config: mlp_ratio must be positive, got ", mlp_ratio));
    if (!(mlp_ratio <= max_mlp_ratio))
      throw config_error(concat("vit config: mlp_ratio is ", mlp_ratio, ", expected at most ", max_mlp_ratio));
    if (!(ln_eps > 0 && ln_eps < 1)) throw config_error(concat("vit config: ln_eps must be in (0, 1), got ", ln_eps));
    if (num_patches() > max_patches)
      throw config_error(concat("vit config: img_size ", img_size, " / patch_size ", patch_size, " gives ", num_patches(),
                                " patches, expected at most ", max_patches));
    // The attention-block equivalent (4 C^2 + 2 mlp_ratio C^2 per block) bounds the size.
    const double params = static_cast<double>(depth) * static_cast<double>(embed_dim) *
                          static_cast<double>(embed_dim) * (4.0 + 2.0 * mlp_ratio);
    if (params > max_params)
      throw config_error(concat("vit config: depth ", depth, " x embed_dim ", embed_dim, " x mlp_ratio ", mlp_ratio,
                                " gives about ", params, " parameters, expected at most ", max_params));
    if (static_cast<index_t>(mixers.size()) != depth)
      throw config_error(concat("vit config: mixers has ", mixers.size(), " entries, expected depth = ", depth));
    if (halting && (!(halting->eps > 0) || !(halting->eps < 1)))
      throw config_error(concat("vit config: halting.eps must be in (0, 1), got ", halting->eps));
  }
};

SPARSIMIX_ABI_END
}  // namespace sparsimix
