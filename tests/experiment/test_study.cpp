#include <catch2/catch.hpp>

#include <sparsimix/experiment/study_report.hpp>

using namespace sparsimix;

namespace {

// Layers whose sparsity falls with depth... reversed: layer i has k90 0.9 - 0.1 i, so the last
// layer is the sparsest under every metric.
std::vector<layer_sparsity> graded_layers(index_t depth) {
  std::vector<layer_sparsity> out;
  for (index_t l = 0; l < depth; ++l) {
    layer_sparsity s;
    s.layer = l;
    s.attention = true;
    const double k = 0.9 - 0.1 * static_cast<double>(l);
    s.all = {1 - k, 1.2 - k, k, 0.1};
    s.cls = s.all;
    out.push_back(s);
  }
  return out;
}

// A study of single-layer mh_lstm students whose layer l drops `drop[l]` of the teacher's
// accuracy on n test images (the same images for every seed, plus one image per seed).
study_report synthetic_study(const std::vector<double>& drop, int seeds, index_t n = 4000) {
  study_report r;
  const auto depth = static_cast<index_t>(drop.size());
  r.sparsity = graded_layers(depth);
  for (const auto& m : study_metrics()) r.order[m] = study_order(r.sparsity, m);
  r.group_size = 1;
  r.seeds = seeds;
  r.teacher_correct.assign(static_cast<std::size_t>(n), 0);
  for (index_t i = 0; i < n * 9 / 10; ++i) r.teacher_correct[static_cast<std::size_t>(i)] = 1;
  r.teacher_test_accuracy = detail::flag_mean(r.teacher_correct);
  for (const auto& p : plan_study(r.sparsity, 1, {spec_for<MultiHeadLSTM>()})) {
    study_variant_result v;
    static_cast<study_variant&>(v) = p;
    for (const auto& m : study_metrics()) v.sparsity[m] = study_sparsity_score(r.sparsity[static_cast<std::size_t>(p.replaced[0])], m);
    for (int s = 0; s < seeds; ++s) {
      study_seed_result sr;
      sr.seed = s;
      sr.correct = r.teacher_correct;
      // Lose drop * n of the teacher's right answers, spread over the images.
      const auto lose = static_cast<index_t>(drop[static_cast<std::size_t>(p.replaced[0])] * static_cast<double>(n)) + s;
      for (index_t i = 0; i < lose; ++i) sr.correct[static_cast<std::size_t>((i * 7 + s) % (n * 9 / 10))] = 0;
      sr.stage1_correct = sr.correct;
      sr.test_accuracy = sr.stage1_test_accuracy = detail::flag_mean(sr.correct);
      v.seeds.push_back(sr);
    }
    r.variants.push_back(v);
  }
  return r;
}

}  // namespace

TEST_CASE("plan_study covers every layer, every group and each metric's extremes once", "[experiment][study]") {
  const auto plan = plan_study(graded_layers(6), 2, {spec_for<MultiHeadLSTM>(), spec_for<SelectiveScan>()});
  // Per mixer: 6 single layers, 3 contiguous groups; the sparsest pair [4, 5] is also a contiguous
  // group, the densest [0, 1] too, so no extra variant.
  REQUIRE(plan.size() == 18);
  CHECK(plan[0].name == "mh_lstm/0");
  CHECK(plan[9].name == "selective_scan/0");
  const auto it = std::find_if(plan.begin(), plan.end(), [](const study_variant& v) { return v.name == "mh_lstm/4-5"; });
  REQUIRE(it != plan.end());
  for (const auto& m : study_metrics()) CHECK(it->has_role("sparsest:" + m));
  CHECK(it->has_role("group"));
  CHECK_FALSE(it->has_role("single"));
  CHECK_THROWS_AS(plan_study(graded_layers(3), 4, {spec_for<MultiHeadLSTM>()}), config_error);
}

TEST_CASE("analyse_study: a clear difference holds, a reversed one fails, none cannot tell", "[experiment][study]") {
  SECTION("sparser layers cost less") {
    auto r = synthetic_study({0.10, 0.05, 0.005}, 2);
    analyse_study(r, 500, 1);
    const auto& c = r.claims.at("mh_lstm").at("stage2").at("k90");
    CHECK(c.sparsest == std::vector<index_t>{2});
    CHECK(c.densest == std::vector<index_t>{0});
    CHECK(c.difference == Approx(-0.095).margin(1e-3));
    CHECK(c.difference_ci95.hi < 0);
    CHECK(c.verdict == "holds");
    CHECK(c.spearman == Approx(-1.0));
    // 3 layers: 6 orderings, 1 as extreme in each direction.
    CHECK(c.permutations == 6);
    CHECK(c.spearman_p == Approx(2.0 / 6));
    CHECK(c.depth_pairs == 2);
    CHECK(c.depth_pairs_agree == 2);
    // Every variant's interval holds its mean drop, and the drop is what the seeds lost.
    for (const auto& v : r.variants) {
      CHECK(v.stage2.drop_ci95.lo <= v.stage2.drop_mean);
      CHECK(v.stage2.drop_mean <= v.stage2.drop_ci95.hi);
    }
    CHECK(r.variants[0].stage2.drop_mean == Approx(0.10 + 0.5 / 4000).margin(1e-9));
    CHECK(r.variants[0].stage2.drop_sd == Approx(std::sqrt(0.5) / 4000).margin(1e-9));
    // 3 variants: 3 pairs per stage.
    CHECK(r.differences.size() == 6);
  }
  SECTION("sparser layers cost more") {
    auto r = synthetic_study({0.005, 0.05, 0.10}, 2);
    analyse_study(r, 500, 1);
    CHECK(r.claims.at("mh_lstm").at("stage1").at("entropy").verdict == "fails");
    CHECK(r.claims.at("mh_lstm").at("stage2").at("k90").spearman == Approx(1.0));
  }
  SECTION("equal costs") {
    auto r = synthetic_study({0.02, 0.02, 0.02}, 2);
    analyse_study(r, 500, 1);
    const auto& c = r.claims.at("mh_lstm").at("stage2").at("k90");
    CHECK(c.verdict == "cannot_tell");
    CHECK(c.difference_ci95.lo <= 0);
    CHECK(c.difference_ci95.hi >= 0);
  }
}

TEST_CASE("the paired bootstrap interval of a drop has the binomial width", "[experiment][study]") {
  // The student loses 200 of the teacher's 3600 right answers out of 4000: the paired
  // difference has sd sqrt(p (1 - p) / n) with p = 0.05, so the 95% interval spans about
  // 2 * 1.96 * 0.00345 = 0.0135.
  auto r = synthetic_study({0.05, 0.05, 0.05}, 1);
  analyse_study(r, 2000, 5);
  const auto& ci = r.variants[0].stage2.drop_ci95;
  CHECK(ci.hi - ci.lo == Approx(2 * 1.96 * std::sqrt(0.05 * 0.95 / 4000)).epsilon(0.15));
}

TEST_CASE("study results survive their JSON line", "[experiment][study]") {
  study_seed_result s;
  s.seed = 2;
  s.test_accuracy = 0.875;
  s.stage1_test_accuracy = 0.75;
  s.distill_mse = {0.5, 0.25};
  s.correct = {1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1};
  s.stage1_correct = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  const auto back = study_seed_from_json(nlohmann::json::parse(to_json(s).dump()), 11);
  CHECK(back.seed == 2);
  CHECK(back.correct == s.correct);
  CHECK(back.stage1_correct == s.stage1_correct);
  CHECK(back.distill_mse == s.distill_mse);
  CHECK(back.stage1_test_accuracy == 0.75);
  // A record written for another test set is refused, not misread.
  CHECK_THROWS_AS(study_seed_from_json(nlohmann::json::parse(to_json(s).dump()), 20), config_error);
}

TEST_CASE("the study report has the documented keys", "[experiment][study]") {
  auto r = synthetic_study({0.10, 0.05, 0.005}, 2);
  analyse_study(r, 200, 1);
  const auto j = to_json(r);
  const auto& v = j.at("variants").at(0);
  for (const char* k : {"seeds", "accuracy_drop_mean", "accuracy_drop_sd", "accuracy_drop_ci95", "stage1", "roles"})
    CHECK(v.contains(k));
  CHECK(v.at("seeds").at(0).contains("stage1_test_accuracy"));
  const auto& c = j.at("claims").at("sparse_vs_dense").at("mh_lstm");
  for (const char* k : {"difference_ci95", "verdict", "spearman_p", "partial_spearman_depth", "stages"}) CHECK(c.contains(k));
  CHECK(c.at("stages").at("stage1").contains("cls_k90"));
  CHECK(study_drop_svg(r).find("<svg") == 0);
  CHECK(study_accuracy_svg(r).find("<svg") == 0);
}
