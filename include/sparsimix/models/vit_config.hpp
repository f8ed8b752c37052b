// The model description stored as "sparsimix.config" in checkpoints (FORMATS.md section 1).
// Plain structs: parsing and printing JSON lives in io/model_config.hpp.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../mixers/traits.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

struct halting_spec {
  double gamma = 10, beta = 30, eps = 0.01;
  friend bool operator==(const halting_spec&, const halting_spec&) = default;
};

struct vit_config {
  index_t img_size = 28, patch_size = 4, in_chans = 1, num_classes = 10;
  index_t embed_dim = 96, depth = 6, num_heads = 3;
  double mlp_ratio = 4.0;
  double ln_eps = 1e-6;
  std::vector<mixer_spec> mixers;        // exactly `depth` entries (kinds and options: models/registry.hpp)
  std::optional<halting_spec> halting;   // A-ViT token halting, off by default

  index_t grid() const noexcept { return img_size / patch_size; }
  index_t num_patches() const noexcept { return grid() * grid(); }
  index_t num_tokens() const noexcept { return num_patches() + 1; }  // CLS first
  index_t mlp_hidden() const noexcept { return static_cast<index_t>(static_cast<double>(embed_dim) * mlp_ratio); }
  index_t head_dim() const noexcept { return embed_dim / num_heads; }

  // Throws config_error naming the field and the offending value. The mixers' kinds and
  // options are checked by the registry (HybridViT's constructor, the config JSON reader).
  void validate() const {
    using detail::concat;
    auto positive = [](const char* name, index_t v) {
      if (v <= 0) throw config_error(concat("vit config: ", name, " must be positive, got ", v));
    };
    positive("img_size", img_size);
    positive("patch_size", patch_size);
    positive("in_chans", in_chans);
    positive("num_classes", num_classes);
    positive("embed_dim", embed_dim);
    positive("depth", depth);
    positive("num_heads", num_heads);
    if (img_size % patch_size != 0)
      throw config_error(concat("vit config: img_size ", img_size, " is not a multiple of patch_size ", patch_size));
    if (embed_dim % num_heads != 0)
      throw config_error(concat("vit config: embed_dim ", embed_dim, " is not a multiple of num_heads ", num_heads));
    if (!(mlp_ratio > 0)) throw config_error(concat("vit config: mlp_ratio must be positive, got ", mlp_ratio));
    if (!(ln_eps > 0)) throw config_error(concat("vit config: ln_eps must be positive, got ", ln_eps));
    if (static_cast<index_t>(mixers.size()) != depth)
      throw config_error(concat("vit config: mixers has ", mixers.size(), " entries, expected depth = ", depth));
    if (halting && (!(halting->eps > 0) || !(halting->eps < 1)))
      throw config_error(concat("vit config: halting.eps must be in (0, 1), got ", halting->eps));
  }
};

SPARSIMIX_ABI_END
}  // namespace sparsimix
