// Attention sparsity of a model's attention layers on a calibration set (docs/method.md 6.10).
#pragma once
#include <algorithm>
#include <optional>
#include <vector>

#include "../models/vit.hpp"
#include "../data/idx.hpp"
#include "sparsity.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// One layer's attention sparsity: over all heads, for the CLS row, and per head.
struct layer_sparsity {
  index_t layer = 0;                  // block index
  bool attention = false;             // false: the layer has no attention maps (stats unset)
  sparsity_stats all;                 // averaged over heads, every alive query row
  sparsity_stats cls;                 // CLS-row variant
  std::vector<sparsity_stats> heads;  // per head, every query row
};

// The tokens block `layer` processed in the controller's last forward.
template <class T>
TokenMask layer_mask(const HaltingController<T>& h, index_t layer) {
  const Tensor<std::uint8_t>& all = h.layer_masks();  // [L, B, N]
  if (all.rank() != 3 || layer < 0 || layer >= all.size(0))
    throw config_error(detail::concat("layer_mask: layer ", layer, " of a halting pass over ", h.layers(), " blocks"));
  const index_t B = all.size(1), N = all.size(2);
  Tensor<std::uint8_t> m(Shape{B, N});
  std::copy(all.data() + layer * B * N, all.data() + (layer + 1) * B * N, m.data());
  return TokenMask(std::move(m));
}

// Runs the model on the first `count` images of `ds` in batches and accumulates every
// attention layer's maps.
template <class T>
std::vector<layer_sparsity> measure_sparsity(const HybridViT<T>& model, const data::image_dataset& ds, index_t count,
                                             index_t batch = 100) {
  const index_t n = std::min(count, ds.size()), L = model.depth();
  std::vector<sparsity_accumulator> all(static_cast<std::size_t>(L)), cls;
  for (index_t l = 0; l < L; ++l) cls.emplace_back(0, true);
  const Shape is = ds.image_shape();
  Tensor<T> images, logits;
  vit_capture<T> cap;
  cap.maps = true;
  for (index_t start = 0; start < n; start += batch) {
    const index_t b = std::min(batch, n - start);
    images.resize(Shape{b, is[0], is[1], is[2]});
    ds.copy_images(start, b, images.data());
    logits.resize(Shape{b, model.config().num_classes});
    model.forward(images.view(), logits.view(), &cap);
    for (index_t l = 0; l < L; ++l) {
      const auto& m = cap.attn_map[static_cast<std::size_t>(l)];
      if (!m.numel()) continue;
      // Under halting, block l saw only its alive tokens: halted queries and keys are not part
      // of its attention (docs/sparsity.md).
      std::optional<TokenMask> mask;
      if (model.config().halting) mask = layer_mask(model.halting(), l);
      all[static_cast<std::size_t>(l)].add<T>(m.view(), mask ? &*mask : nullptr);
      cls[static_cast<std::size_t>(l)].add<T>(m.view(), mask ? &*mask : nullptr);
    }
  }
  std::vector<layer_sparsity> out(static_cast<std::size_t>(L));
  for (index_t l = 0; l < L; ++l) {
    auto& o = out[static_cast<std::size_t>(l)];
    o.layer = l;
    const auto& a = all[static_cast<std::size_t>(l)];
    o.attention = a.heads() > 0;
    if (!o.attention) continue;
    o.all = a.layer();
    o.cls = cls[static_cast<std::size_t>(l)].layer();
    for (index_t h = 0; h < a.heads(); ++h) o.heads.push_back(a.head(h));
  }
  return out;
}

// Compiled in sparsimix::compiled (docs/build-time.md).
SPARSIMIX_EXTERN_TEMPLATE(std::vector<layer_sparsity> measure_sparsity<float>(const HybridViT<float>&, const data::image_dataset&, index_t, index_t))
SPARSIMIX_EXTERN_TEMPLATE(std::vector<layer_sparsity> measure_sparsity<double>(const HybridViT<double>&, const data::image_dataset&, index_t, index_t))

SPARSIMIX_ABI_END
}  // namespace sparsimix
