// FAR's pruning pipeline on a small hybrid (distill/prune.hpp): one global rule over all
// blocks, pruned weights stay 0 through training, honest parameter counts, checkpoints keep
// the pruning, and bad requests are refused.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <tuple>
#include <variant>

#include <sparsimix/distill/prune.hpp>
#include <sparsimix/io/checkpoint.hpp>

#include "support/tiny_vit.hpp"

using namespace sparsimix;

namespace {
vit_config prune_test_config() {
  return test::tiny_vit_config({mixer_spec{}, mixer_spec("mh_lstm"), mixer_spec("mh_lstm")});
}

std::vector<double> all_unit_norms(const HybridViT<float>& m) {
  std::vector<double> out;
  for (const index_t l : prunable_blocks(m)) {
    const auto n = std::get<MultiHeadLSTM<float>>(m.mixer(l)).unit_group_norms();
    out.insert(out.end(), n.begin(), n.end());
  }
  return out;
}
}  // namespace

TEST_CASE("prune: a global fraction, zeros kept through fine-tuning, honest counts", "[distill][prune]") {
  const auto all = data::load_fashion_mnist(data::fashion_mnist_default_dir, "train", 600);
  auto [train, val] = data::split_tail(all, 200);
  HybridViT<float> model(prune_test_config());
  Rng rng(4);
  model.init(rng);
  REQUIRE(prunable_blocks(model) == std::vector<index_t>{1, 2});

  const auto before = count_parameters(model);
  // Honest sizes: the LSTM's compact storage has no structural zeros; the checkpoint's dense
  // masked layout does (per LSTM block, 2 directions x 2 weights x 4C x C - 4C x d, and the
  // head_proj's C x 2C - C x 2d).
  const index_t C = 24, d = 12;
  const index_t structural = 2 * (2 * 2 * (4 * C * C - 4 * C * d) + (C * 2 * C - C * 2 * d));
  REQUIRE(before.stored_params - before.params == structural);
  REQUIRE(before.nonzero_params <= before.params);

  prune_options o;
  o.regularise.steps = 4;
  o.regularise.batch = 50;
  o.regularise.lr = 1e-3;
  o.finetune = o.regularise;
  o.finetune.steps = 3;
  o.select = {0.25, 0};
  // What the rule will see: the norms after the regularised phase. Run that phase alone first
  // on a copy, with the same options, to know them.
  HybridViT<float> probe = model;
  {
    fit_options f = o.regularise;
    f.hoyer_square = o.weight;
    train_classifier(probe, train, &val, f);
  }
  const auto norms = all_unit_norms(probe);

  const auto r = prune(model, train, &val, o);
  REQUIRE(r.pruning.units == 2 * 2 * C);
  REQUIRE(r.pruning.pruned_units == 24);  // 0.25 of 96
  REQUIRE(r.pruning.pruned_fraction() == Approx(0.25));
  REQUIRE(r.regulariser_before > 0);
  // Global: the 24 smallest norms over both blocks went, wherever they were; each (block,
  // dir, head) keeps the units above that cut (same training, same seed, so the same norms;
  // pruning reorders the units inside a (dir, head), so compare counts per slot).
  std::vector<double> sorted = norms;
  std::sort(sorted.begin(), sorted.end());
  const double cut = sorted[23];
  REQUIRE(sorted[24] > cut);  // no tie at the cut
  std::vector<index_t> expected_widths;
  for (std::size_t slot = 0; slot < norms.size() / 12; ++slot)
    expected_widths.push_back(static_cast<index_t>(
        std::count_if(norms.begin() + static_cast<std::ptrdiff_t>(slot * 12),
                      norms.begin() + static_cast<std::ptrdiff_t>(slot * 12 + 12), [&](double n) { return n > cut; })));
  std::vector<index_t> widths;
  for (const auto& [block, w] : r.pruning.widths) widths.insert(widths.end(), w.begin(), w.end());
  REQUIRE(widths == expected_widths);
  std::vector<std::uint8_t> keep;
  for (const index_t l : prunable_blocks(model)) {
    const auto& k = std::get<MultiHeadLSTM<float>>(model.mixer(l)).unit_keep();
    keep.insert(keep.end(), k.begin(), k.end());
  }
  // The fine-tune moved the kept weights but not the pruned ones.
  const auto after_norms = all_unit_norms(model);
  for (std::size_t u = 0; u < keep.size(); ++u)
    if (!keep[u]) REQUIRE(after_norms[u] == 0.0);
  REQUIRE(r.finetune.steps == 3);
  // Widths per block and (dir, head) add up to the kept units.
  index_t kept = 0;
  for (const auto& [block, w] : r.pruning.widths) {
    REQUIRE(w.size() == 4u);
    for (const index_t x : w) kept += x;
  }
  REQUIRE(kept == 96 - 24);
  // Each pruned unit frees its 12 d group entries (less the overlaps of pruned units within a
  // head), 8 biases and d head_proj entries: at least 4 d + 8 + d each.
  REQUIRE(r.after.params == r.before.params);
  REQUIRE(r.after.nonzero_params <= r.before.nonzero_params - 24 * (4 * d + 8 + d));

  // A checkpoint keeps the pruning (the zeros of the dense layout say which units).
  const auto path = (std::filesystem::temp_directory_path() / "sparsimix_test_prune.safetensors").string();
  io::save_checkpoint(model, path);
  auto loaded = io::load_checkpoint<float>(path);
  std::remove(path.c_str());
  for (const index_t l : prunable_blocks(model))
    REQUIRE(std::get<MultiHeadLSTM<float>>(loaded.mixer(l)).unit_keep() ==
            std::get<MultiHeadLSTM<float>>(model.mixer(l)).unit_keep());
}

TEST_CASE("prune refuses models without mh_lstm and fractions outside (0, 1)", "[distill][prune]") {
  const auto all = data::load_fashion_mnist(data::fashion_mnist_default_dir, "train", 100);
  vit_config c = prune_test_config();
  c.mixers.assign(3, mixer_spec{});
  HybridViT<float> dense(c);
  Rng rng(1);
  dense.init(rng);
  prune_options o;
  REQUIRE_THROWS_WITH(prune(dense, all, nullptr, o), Catch::Contains("no mh_lstm block"));
  HybridViT<float> hybrid(prune_test_config());
  hybrid.init(rng);
  for (const double f : {0.0, 1.0, 1.5}) {
    o.select = {f, 0};
    REQUIRE_THROWS_WITH(prune(hybrid, all, nullptr, o), Catch::Contains("expected a value in (0, 1)"));
  }
}

TEST_CASE("mixer parameter counts are those of docs/pruning.md", "[distill][prune][docs]") {
  auto count = [](auto&& m) {
    index_t n = 0;
    for (const auto& p : m.parameters()) n += p.value.numel();
    return n;
  };
  Rng rng(2);
  REQUIRE(count(Attention<float>({96, 3})) == 37248);
  REQUIRE(count(Attention<float>({192, 3})) == 148224);
  REQUIRE(count(SelectiveScan<float>({.dim = 96, .d_state = 8, .expand = 1.0, .bidirectional = true})) == 35904);
  REQUIRE(count(SelectiveScan<float>({.dim = 96, .bidirectional = true})) == 81024);
  REQUIRE(count(SelectiveScan<float>({.dim = 192, .d_state = 8, .expand = 1.0, .bidirectional = true})) == 131712);
  REQUIRE(count(SelectiveScan<float>({.dim = 192, .bidirectional = true})) == 281856);
  for (const auto& [C, params, pruned] : {std::tuple<index_t, index_t, index_t>{96, 75552, 40992}, {192, 298560, 161856}}) {
    MultiHeadLSTM<float> m({C, 3});
    m.init(rng);
    REQUIRE(count(m) == params);
    std::vector<std::uint8_t> keep(static_cast<std::size_t>(2 * C), 1);
    const index_t d = C / 3;
    for (std::size_t u = 0; u < keep.size(); ++u) keep[u] = static_cast<index_t>(u) % d < d / 2;
    m.prune_units(keep);
    index_t nonzero = 0;
    for (const auto& p : m.parameters())
      nonzero += static_cast<index_t>(std::count_if(p.value.begin(), p.value.end(), [](float v) { return v != 0.0f; }));
    REQUIRE(nonzero == pruned);
    index_t stored = 0;
    for (const auto& [name, t] : m.export_dense()) stored += t.numel();
    REQUIRE(stored == (C == 96 ? 186144 : 740928));
  }
}

// The MACs/token column of docs/pruning.md's table, worked out by hand from the formulas
// there (e.g. attention at C = 96, N = 50: 4 * 96^2 + 2 * 50 * 96 = 46,464).
TEST_CASE("mixer multiply-add counts are those of docs/pruning.md", "[distill][prune][docs]") {
  REQUIRE(Attention<float>({96, 3}).multiply_adds(50) == 50 * 46464);
  REQUIRE(Attention<float>({192, 3}).multiply_adds(197) == 197 * 223104);
  REQUIRE(SelectiveScan<float>({.dim = 96, .d_state = 8, .expand = 1.0, .bidirectional = true}).multiply_adds(1) == 38400);
  REQUIRE(SelectiveScan<float>({.dim = 96, .bidirectional = true}).multiply_adds(1) == 92160);
  REQUIRE(SelectiveScan<float>({.dim = 192, .d_state = 8, .expand = 1.0, .bidirectional = true}).multiply_adds(1) == 136704);
  REQUIRE(SelectiveScan<float>({.dim = 192, .bidirectional = true}).multiply_adds(7) == 7 * 304128);
  Rng rng(3);
  for (const auto& [C, full, half] : {std::tuple<index_t, index_t, index_t>{96, 73728, 39936}, {192, 294912, 159744}}) {
    MultiHeadLSTM<float> m({C, 3});
    m.init(rng);
    REQUIRE(m.multiply_adds(1) == full);
    REQUIRE(m.multiply_adds(50) == 50 * full);  // no term grows faster than the tokens
    std::vector<std::uint8_t> keep(static_cast<std::size_t>(2 * C), 1);
    const index_t d = C / 3;
    for (std::size_t u = 0; u < keep.size(); ++u) keep[u] = static_cast<index_t>(u) % d < d / 2;
    m.prune_units(keep);
    REQUIRE(m.multiply_adds(1) == half);
  }
}

namespace {
// A custom mixer that does not count its multiply-adds (no CountsMultiplyAdds).
struct tiny_uncounted_mixer {
  using scalar_type = float;
  struct cache_type {};
  index_t c = 0;
  Tensor<float> w{Shape{1}, 1.0f}, gw{Shape{1}};
  index_t dim() const { return c; }
  void forward(ConstSeq<float> x, Seq<float> y, const TokenMask*) const { std::copy(x.begin(), x.end(), y.begin()); }
  void forward(ConstSeq<float> x, Seq<float> y, cache_type&, const TokenMask* m) { forward(x, y, m); }
  void backward(const cache_type&, ConstSeq<float> dy, Seq<float> dx) { std::copy(dy.begin(), dy.end(), dx.begin()); }
  ParamList<float> parameters() { return {{"w", w.view(), gw.view(), true}}; }
};
static_assert(SeqMixer<tiny_uncounted_mixer> && !CountsMultiplyAdds<tiny_uncounted_mixer>);
static_assert(CountsMultiplyAdds<Attention<float>> && CountsMultiplyAdds<MultiHeadLSTM<float>> &&
              CountsMultiplyAdds<SelectiveScan<float>>);
}  // namespace

TEST_CASE("a model's multiply-adds add up its parts, and a custom mixer without a count gives none",
          "[distill][prune]") {
  // The demo's shape: 28 x 28 images, patches of 4, C = 96, 6 blocks, MLP ratio 4, 10 classes.
  vit_config cfg;
  cfg.mixers.assign(6, spec_for<Attention>());
  HybridViT<float> m(cfg);
  const index_t N = 50, C = 96;
  const index_t block = 46464 * N + 2 * N * C * 384;
  const index_t dense = 49 * 16 * C + 6 * block + C * 10;
  REQUIRE(count_multiply_adds(m) == dense);
  m.replace_mixer(2, MultiHeadLSTM<float>({C, 3}));
  REQUIRE(count_multiply_adds(m) == dense - 46464 * N + 73728 * N);
  m.replace_mixer(2, AnyMixer<float>(MultiHeadLSTM<float>({C, 3})));
  REQUIRE(count_multiply_adds(m) == dense - 46464 * N + 73728 * N);  // AnyMixer answers for what it holds
  m.replace_mixer(4, AnyMixer<float>(tiny_uncounted_mixer{C}));
  REQUIRE_FALSE(count_multiply_adds(m).has_value());
}
