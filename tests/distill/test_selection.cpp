#include <catch2/catch.hpp>

#include <sparsimix/distill/selection.hpp>
#include <sparsimix/experiment/budget.hpp>
#include <sparsimix/models.hpp>

#include "support/tiny_vit.hpp"

using namespace sparsimix;

TEST_CASE("every pipeline enum's names parse back", "[distill][names]") {
  for (auto t : {distill_target::pre_proj, distill_target::mixer_out, distill_target::block_out, distill_target::cosine})
    CHECK(parse_distill_target(to_string(t)) == t);
  for (auto m : {sparsity_metric::k90, sparsity_metric::entropy, sparsity_metric::top_k_mass, sparsity_metric::threshold})
    CHECK(parse_sparsity_metric(to_string(m)) == m);
  for (auto s : {layer_selection::sparsest, layer_selection::densest, layer_selection::group, layer_selection::all})
    CHECK(parse_layer_selection(to_string(s)) == s);
  for (auto b : {budget_size::tiny, budget_size::small, budget_size::full}) CHECK(parse_budget_size(to_string(b)) == b);
  CHECK_THROWS_WITH(parse_distill_target("pre-proj"),
                    Catch::Contains("distillation target must be pre_proj, mixer_out, block_out or cosine, got 'pre-proj'"));
  CHECK_THROWS_AS(parse_budget_size("huge"), config_error);
}

TEST_CASE("layer selection picks by rank and groups contiguously", "[distill][selection]") {
  const std::vector<index_t> order{4, 1, 5, 0, 3, 2};  // sparsest first
  CHECK(select_layers(order, layer_selection::sparsest, 2) == std::vector<index_t>{1, 4});
  CHECK(select_layers(order, layer_selection::densest, 2) == std::vector<index_t>{2, 3});
  CHECK_THROWS_AS(select_layers(order, layer_selection::group, 2), config_error);
  CHECK_THROWS_AS(select_layers(order, layer_selection::sparsest, 7), config_error);
  CHECK(default_group_size(6) == 2);
  CHECK(default_group_size(2) == 1);
  const auto g = replacement_groups(order, 6, 2);
  REQUIRE(g.size() == 5);
  CHECK(g[0].selection == layer_selection::sparsest);
  CHECK(g[0].layers == std::vector<index_t>{1, 4});
  CHECK(g[1].selection == layer_selection::densest);
  CHECK(g[1].layers == std::vector<index_t>{2, 3});
  CHECK(g[2].layers == std::vector<index_t>{0, 1});
  CHECK(g[3].layers == std::vector<index_t>{2, 3});
  CHECK(g[4].layers == std::vector<index_t>{4, 5});
  CHECK_THROWS_AS(replacement_groups(order, 6, 0), config_error);
  // `all` takes every ranked layer, whatever k is.
  CHECK(select_layers(order, layer_selection::all, 2) == std::vector<index_t>{0, 1, 2, 3, 4, 5});
  CHECK(select_layers(std::vector<index_t>{3, 1}, layer_selection::all, 1) == std::vector<index_t>{1, 3});
  const auto with_all = replacement_groups(order, 6, 2, true);
  REQUIRE(with_all.size() == 6);
  CHECK(with_all[5].selection == layer_selection::all);
  CHECK(with_all[5].layers == std::vector<index_t>{0, 1, 2, 3, 4, 5});
}

TEST_CASE("budgets: the tiny and full presets", "[experiment][budget]") {
  const auto tiny = make_budget("tiny");
  CHECK(tiny.teacher.depth == 3);
  CHECK(static_cast<index_t>(tiny.teacher.mixers.size()) == 3);
  CHECK(tiny.train_limit > 0);
  const auto full = make_budget(budget_size::full);
  CHECK(full.distill.stage2.steps == 900);
  CHECK(full.teacher_fit.augment);
  CHECK_THROWS_WITH(make_budget("medium"), Catch::Contains("budget must be tiny, small or full, got 'medium'"));
}

TEST_CASE("rank_by_sparsity ranks attention layers only and refuses a model without any", "[distill][selection]") {
  data::image_dataset ds;
  ds.images = Tensor<float>(Shape{4, 1, 28, 28});
  ds.labels = Tensor<std::int64_t>(Shape{4});
  Rng rng(5);
  for (index_t i = 0; i < ds.images.numel(); ++i) ds.images.data()[i] = static_cast<float>(rng.uniform());
  HybridViT<float> hybrid(test::tiny_vit_config({mixer_spec{}, spec_for<MultiHeadLSTM>({}), mixer_spec{}}));
  hybrid.init(rng);
  const auto r = rank_by_sparsity(hybrid, ds, 4);
  REQUIRE(r.order.size() == 2);  // layer 1 is not a candidate
  CHECK(std::find(r.order.begin(), r.order.end(), index_t{1}) == r.order.end());
  CHECK_THROWS_WITH(select_layers(r.order, layer_selection::sparsest, 3),
                    "config_error: select_layers: k is 3, expected 1..2 (the ranked attention layers)");
  CHECK_THROWS_WITH(rank_by_sparsity(hybrid, ds, 0), "config_error: rank_by_sparsity: count is 0, expected >= 1 images");
  HybridViT<float> lstm_only(test::tiny_vit_config({spec_for<MultiHeadLSTM>({}), spec_for<MultiHeadLSTM>({})}));
  lstm_only.init(rng);
  CHECK_THROWS_WITH(rank_by_sparsity(lstm_only, ds, 4),
                    "config_error: rank_by_sparsity: the model has no attention layer (nothing to measure or replace)");
}
