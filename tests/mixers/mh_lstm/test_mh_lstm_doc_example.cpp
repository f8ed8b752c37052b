// The example of docs/mixers/mh_lstm.md, compiled and run (the page quotes the part between
// the two "[example]" markers).
#include <catch2/catch.hpp>

#include <sparsimix/io/safetensors.hpp>
#include <sparsimix/mixers/mh_lstm.hpp>

using namespace sparsimix;

TEST_CASE("docs/mixers/mh_lstm.md example", "[mixer][lstm][docs]") {
  // [example]
  MultiHeadLSTM<float> lstm({/*dim=*/192, /*num_heads=*/3});  // d = 64 per head
  Rng rng(0);
  lstm.init(rng);  // PyTorch defaults; post_proj usually gets the teacher's attn.proj next

  Tensor<float> x(Shape{8, 197, 192}), y(x.shape()), s(x.shape());
  fill_normal(rng, x.data(), x.numel(), 0.0, 1.0);
  lstm.forward(x.view(), y.view(), nullptr);            // inference
  lstm.forward(x.view(), y.view(), s.view(), nullptr);  // also s = head_proj output (pre post_proj)

  // Training: the cache keeps gates and cells; backward accumulates the block gradients.
  // The extra gradient on s is the distillation loss against attention's pre-proj output.
  MultiHeadLSTM<float>::cache_type cache;
  Tensor<float> dy(x.shape(), 0.01f), ds(x.shape(), 0.02f), dx(x.shape());
  lstm.forward(x.view(), y.view(), cache, nullptr);   // cache.head_out == s
  lstm.zero_grad();
  lstm.backward(cache, dy.view(), dx.view(), ds.view());

  // PyTorch layout out and in: dense masked tensors, zeros outside the per-head blocks.
  io::safetensors_writer w;
  for (const auto& [name, t] : lstm.export_dense()) w.add("blocks.3.attn." + name, t);
  const auto file = io::safetensors_file::parse(
      [&] { const auto b = w.serialize(); return std::vector<char>(b.begin(), b.end()); }(), "in-memory");
  MultiHeadLSTM<float> copy({192, 3});
  copy.import_dense([&](const std::string& name) { return file.get<float>("blocks.3.attn." + name); });
  // [example]

  Tensor<float> y2(x.shape());
  copy.forward(x.view(), y2.view(), nullptr);
  for (index_t i = 0; i < y.numel(); ++i) REQUIRE(y2.data()[i] == y.data()[i]);
  REQUIRE(file.record("blocks.3.attn.lstm.weight_ih_l0").shape == Shape({4 * 192, 192}));
  for (index_t i = 0; i < s.numel(); ++i) REQUIRE(cache.head_out.data()[i] == s.data()[i]);
  double g = 0;
  for (const auto& p : lstm.parameters())
    for (float v : p.grad) g += std::abs(v);
  REQUIRE(g > 0);
}
