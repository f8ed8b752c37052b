// The model description stored as "sparsimix.config" in checkpoints (FORMATS.md section 1).
// Plain structs: parsing and printing JSON lives in io/model_config.hpp.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "../core/error.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

enum class mixer_kind { attention, mh_lstm, selective_scan };

inline const char* mixer_kind_name(mixer_kind k) noexcept {
  switch (k) {
    case mixer_kind::attention: return "attention";
    case mixer_kind::mh_lstm: return "mh_lstm";
    case mixer_kind::selective_scan: return "selective_scan";
  }
  return "?";
}

// One block's token mixer. The selective_scan fields are ignored by the other kinds.
struct mixer_spec {
  mixer_kind kind = mixer_kind::attention;
  index_t d_state = 16;
  index_t d_conv = 4;
  double expand = 2.0;
  index_t dt_rank = 0;  // 0 = "auto" = ceil(embed_dim / 16)
  bool bidirectional = false;

  friend bool operator==(const mixer_spec&, const mixer_spec&) = default;
};

struct halting_spec {
  double gamma = 10, beta = 30, eps = 0.01;
  friend bool operator==(const halting_spec&, const halting_spec&) = default;
};

struct vit_config {
  index_t img_size = 28, patch_size = 4, in_chans = 1, num_classes = 10;
  index_t embed_dim = 96, depth = 6, num_heads = 3;
  double mlp_ratio = 4.0;
  double ln_eps = 1e-6;
  std::vector<mixer_spec> mixers;        // exactly `depth` entries
  std::optional<halting_spec> halting;   // A-ViT token halting, off by default

  index_t grid() const noexcept { return img_size / patch_size; }
  index_t num_patches() const noexcept { return grid() * grid(); }
  index_t num_tokens() const noexcept { return num_patches() + 1; }  // CLS first
  index_t mlp_hidden() const noexcept { return static_cast<index_t>(static_cast<double>(embed_dim) * mlp_ratio); }
  index_t head_dim() const noexcept { return embed_dim / num_heads; }

  // Throws config_error naming the field and the offending value.
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
    for (std::size_t i = 0; i < mixers.size(); ++i) {
      const auto& m = mixers[i];
      if (m.kind != mixer_kind::selective_scan) continue;
      if (m.d_state <= 0 || m.d_conv <= 0 || !(m.expand > 0) || m.dt_rank < 0)
        throw config_error(concat("vit config: mixers[", i, "] (selective_scan) has a non-positive option"));
    }
    if (halting && (!(halting->eps > 0) || !(halting->eps < 1)))
      throw config_error(concat("vit config: halting.eps must be in (0, 1), got ", halting->eps));
  }
};

SPARSIMIX_ABI_END
}  // namespace sparsimix
