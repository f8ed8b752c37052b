// What a model's inference costs in multiply-adds, counted from its shapes: the number that
// says how much faster a hybrid can at best be than its teacher, beside the measured speed.
// Layer norms, GELU, softmax and the mixers' nonlinearities are not counted (docs/pruning.md
// "What a mixer costs" has the per-mixer formulas).
#pragma once
#include <optional>
#include <variant>

#include "../concepts.hpp"
#include "vit.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Multiply-adds of one image's dense inference forward (every token through every block, as
// without A-ViT halting): patch embedding, each block's mixer over N tokens and its MLP
// (2 N C r C), and the classifier head. Nothing when a block's mixer does not count its own
// (a custom mixer without CountsMultiplyAdds).
template <class T>
std::optional<index_t> count_multiply_adds(const HybridViT<T>& model) {
  const vit_config& c = model.config();
  const index_t C = c.embed_dim, N = c.num_tokens();
  const index_t patch = c.patch_size * c.patch_size * c.in_chans;
  index_t total = c.num_patches() * patch * C + C * c.num_classes;
  for (index_t l = 0; l < model.depth(); ++l) {
    const auto m = std::visit([N](const auto& mixer) { return mixer_multiply_adds(mixer, N); }, model.mixer(l));
    if (!m) return std::nullopt;
    total += *m + 2 * N * C * c.mlp_hidden();
  }
  return total;
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
