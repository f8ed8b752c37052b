// The run folder writers (report.json, CSV, SVG) on a hand-made report.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <sparsimix/experiment/report.hpp>

using namespace sparsimix;

namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

index_t count(const std::string& s, const std::string& what) {
  index_t n = 0;
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

experiment_report sample_report() {
  experiment_report r;
  r.teacher_test_accuracy = 0.9;
  r.teacher_params = 1000;
  r.teacher_latency_ms = 0.5;
  r.sparsity.metric = sparsity_metric::k90;
  for (index_t l = 0; l < 3; ++l) {
    layer_sparsity s;
    s.layer = l;
    s.attention = l != 1;  // layer 1 holds no attention: no row, no heatmap cells
    s.all.k90 = 0.1 * static_cast<double>(l + 1);
    s.heads = {s.all, s.all};
    r.sparsity.layers.push_back(s);
  }
  r.sparsity.order = {0, 2, 1};
  for (const char* m : {"mh_lstm", "selective_scan"})
    for (const char* sel : {"sparsest", "densest"}) {
      variant_result v;
      v.name = std::string(m) + "/" + sel;
      v.mixer = m;
      v.selection = sel;
      v.replaced = {0, 2};
      v.test_accuracy = 0.85;
      v.accuracy_drop = 0.05;
      v.params = 1200;
      r.variants.push_back(v);
    }
  r.claims["mh_lstm"] = {0.01, 0.02, -0.5, true};
  return r;
}

}  // namespace

TEST_CASE("write_report writes every file with the documented keys", "[experiment][report]") {
  const auto dir = std::filesystem::temp_directory_path() / "sparsimix_test_report";
  std::filesystem::remove_all(dir);
  const auto r = sample_report();
  write_report(r, dir.string());
  for (const char* f : {"report.json", "sparsity.csv", "variants.csv", "sparsity_heatmap.svg", "drop_vs_sparsity.svg",
                        "accuracy.svg", "params.svg", "latency.svg", "pareto.svg"})
    REQUIRE(std::filesystem::is_regular_file(dir / f));

  const auto j = nlohmann::json::parse(slurp(dir / "report.json"));
  CHECK(j["teacher"]["test_accuracy"] == 0.9);
  CHECK(j["sparsity"]["metric"] == "k90");
  CHECK(j["sparsity"]["ranking"] == nlohmann::json({0, 2, 1}));
  CHECK(j["sparsity"]["layers"].size() == 2);  // attention layers only
  CHECK(j["variants"].size() == 4);
  CHECK(j["variants"][0]["replaced"] == nlohmann::json({0, 2}));
  CHECK(j["claims"]["sparse_vs_dense"]["mh_lstm"]["holds"] == true);
  CHECK(j["claims"]["sparse_vs_dense"]["mh_lstm"]["spearman"] == -0.5);

  const auto variants = slurp(dir / "variants.csv");
  CHECK(count(variants, "\n") == 1 + 1 + 4);  // header, teacher, variants
  CHECK(variants.find("mh_lstm/sparsest,mh_lstm,sparsest,0 2,false,") != std::string::npos);
  CHECK(variants.rfind("name,mixer,selection,replaced,pruned,", 0) == 0);
  const auto sparsity = slurp(dir / "sparsity.csv");
  CHECK(count(sparsity, "\n") == 1 + 2 * (2 + 2));  // header; per attention layer: mean, cls, 2 heads

  const auto heat = slurp(dir / "sparsity_heatmap.svg");
  CHECK(heat.rfind("<svg", 0) == 0);
  CHECK(count(heat, "<rect") == 2 * 3);  // 2 attention layers x (2 heads + mean)
  const auto scatter = slurp(dir / "drop_vs_sparsity.svg");
  CHECK(count(scatter, "<circle") == 2);  // the one claimed mixer's variants
  const auto pareto = slurp(dir / "pareto.svg");
  CHECK(count(pareto, "<circle") == 1 + 4);  // the teacher and every variant
  for (const char* k : {"images_per_s", "pruned", "pruned_fraction", "nonzero_params", "stored_params"})
    CHECK(j["variants"][0].contains(k));
  CHECK(j["teacher"].contains("images_per_s"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("svg text is escaped", "[experiment][report]") {
  auto r = sample_report();
  r.variants[0].name = "a<b&c";
  const auto svg = bars_svg(r, "t", "", 1.0, [](const variant_result& v) { return v.test_accuracy; });
  CHECK(svg.find("a&lt;b&amp;c") != std::string::npos);
  CHECK(svg.find("a<b") == std::string::npos);
}

TEST_CASE("a variant's speed-ups: teacher over variant multiply-adds, variant over teacher images/s",
          "[experiment][report]") {
  experiment_report r;
  r.teacher_multiply_adds = 1000;
  r.teacher_images_per_s = 50;
  variant_result v;
  v.multiply_adds = 800;
  v.images_per_s = 60;
  const auto up = speedup_of(r, v);
  CHECK(up.allowed == Approx(1.25));
  CHECK(up.measured == Approx(1.2));
  v.multiply_adds = 0;  // a custom mixer that does not count
  CHECK(speedup_of(r, v).allowed == 0);
  CHECK(speedup_of(r, v).measured == Approx(1.2));
  const auto j = to_json(r);
  CHECK(j.at("teacher").at("multiply_adds") == 1000);
}
