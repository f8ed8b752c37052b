// The example of docs/mixers/attention.md, compiled and run (STYLE.md section 10). Keep the
// two in sync: the page quotes the block between the two [example] markers.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <sparsimix/io/safetensors.hpp>
#include <sparsimix/mixers/attention.hpp>

using namespace sparsimix;

TEST_CASE("docs/mixers/attention.md example runs", "[mixer][attention][docs]") {
  // [example]
  Attention<float> attn({/*dim=*/192, /*num_heads=*/3});  // DeiT-Tiny: head_dim 64, scale 1/8
  Rng rng(0);
  attn.init(rng);  // timm ViT init: weights N(0, 0.02), biases 0

  Tensor<float> x(Shape{8, 197, 192}), y(x.shape());
  fill_normal(rng, x.data(), x.numel(), 0.0, 1.0);
  attn.forward(x.view(), y.view(), nullptr);  // online softmax, no N x N buffer

  // Attention maps for sparsity analysis, and the pre-proj output (distillation target).
  Tensor<float> maps(Shape{8, 3, 197, 197}), attn_out(x.shape());
  attn.forward_capture(x.view(), y.view(), maps.view(), nullptr);
  attn.forward_pre_proj(x.view(), attn_out.view(), nullptr);

  // A-ViT token mask: dead keys are excluded from the softmax, dead rows output 0.
  TokenMask mask(8, 197);
  mask.set(0, 5, false);
  attn.forward(x.view(), y.view(), &mask);

  // Training: the cache keeps the probabilities; backward accumulates parameter gradients.
  Attention<float>::cache_type cache;
  Tensor<float> dy(x.shape(), 0.01f), dx(x.shape());
  attn.forward(x.view(), y.view(), cache, &mask);
  attn.backward(cache, dy.view(), dx.view());
  ConstSeq<float> target = cache.attn_out();  // [8, 197, 192], 0 at dead rows

  // timm names: save under a block prefix, and load a teacher's block in place.
  io::safetensors_writer w;
  for (auto& p : attn.parameters()) w.add<float>("blocks.0.attn." + p.name, p.value);
  const std::string bytes = w.serialize();
  const auto file = io::safetensors_file::parse(std::vector<char>(bytes.begin(), bytes.end()), "teacher");
  Attention<float> teacher({192, 3});
  for (auto& p : teacher.parameters()) file.read_into<float>("blocks.0.attn." + p.name, p.value);
  // [example]

  REQUIRE(target.shape() == x.shape());

  for (index_t c = 0; c < 192; ++c) REQUIRE(target(0, 5, c) == 0.0f);
  for (index_t c = 0; c < 192; ++c) REQUIRE(y(0, 5, c) == 0.0f);
  for (index_t c = 0; c < 192; ++c) REQUIRE(dx(0, 5, c) == 0.0f);
  double row = 0;
  for (index_t j = 0; j < 197; ++j) row += static_cast<double>(maps(3, 2, 10, j));
  REQUIRE(row == Approx(1.0).margin(1e-5));
  Tensor<float> y2(x.shape());
  attn.forward(x.view(), y.view(), nullptr);
  teacher.forward(x.view(), y2.view(), nullptr);
  for (index_t i = 0; i < y.numel(); ++i) REQUIRE(y2.data()[i] == y.data()[i]);
}
