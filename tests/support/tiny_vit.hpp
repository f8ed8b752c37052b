// Test helper: the small Fashion-MNIST ViT the pipeline tests train in seconds (28x28 grey
// images in 7x7 patches: 16 tokens + CLS; C 24, 2 heads, MLP ratio 2).
#pragma once
#include <utility>
#include <vector>

#include <sparsimix/models/vit_config.hpp>

namespace sparsimix::test {

// One block per entry of `mixers` (default: three attention blocks).
inline vit_config tiny_vit_config(std::vector<mixer_spec> mixers = std::vector<mixer_spec>(3)) {
  vit_config c;
  c.img_size = 28;
  c.patch_size = 7;
  c.in_chans = 1;
  c.num_classes = 10;
  c.embed_dim = 24;
  c.depth = static_cast<index_t>(mixers.size());
  c.num_heads = 2;
  c.mlp_ratio = 2.0;
  c.mixers = std::move(mixers);
  return c;
}

}  // namespace sparsimix::test
