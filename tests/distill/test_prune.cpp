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
