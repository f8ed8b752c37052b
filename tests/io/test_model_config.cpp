#include <catch2/catch.hpp>

#include <algorithm>

#include <sparsimix/io/model_config.hpp>

using namespace sparsimix;

namespace {
const char* example = R"({"img_size": 28, "patch_size": 4, "in_chans": 1, "num_classes": 10,
 "embed_dim": 96, "depth": 3, "num_heads": 3, "mlp_ratio": 4.0, "ln_eps": 1e-6,
 "mixers": [{"kind": "attention"}, {"kind": "mh_lstm"},
            {"kind": "selective_scan", "d_state": 16, "d_conv": 4, "expand": 2,
             "dt_rank": 6, "bidirectional": true}],
 "halting": null})";
}

TEST_CASE("sparsimix.config parses the FORMATS example and round-trips", "[io][config]") {
  const auto c = io::vit_config_from_string(example);
  REQUIRE(c.depth == 3);
  REQUIRE(c.num_tokens() == 50);
  REQUIRE(c.mlp_hidden() == 384);
  REQUIRE(c.mixers[1].kind() == "mh_lstm");
  const auto scan = c.mixers[2].get<selective_scan_options>("test");
  REQUIRE(scan.bidirectional);
  REQUIRE(scan.dt_rank.value == 6);
  REQUIRE_FALSE(c.halting.has_value());
  const auto back = io::vit_config_from_string(io::to_string(c));
  REQUIRE(back.mixers == c.mixers);
  REQUIRE(back.embed_dim == c.embed_dim);
}

TEST_CASE("sparsimix.config applies defaults and reads halting", "[io][config]") {
  const auto c = io::vit_config_from_string(R"({"img_size": 8, "patch_size": 4, "in_chans": 3, "num_classes": 2,
    "embed_dim": 40, "depth": 1, "num_heads": 5, "mlp_ratio": 2.5,
    "mixers": [{"kind": "selective_scan", "dt_rank": "auto"}], "halting": {"gamma": 10, "beta": 30, "eps": 0.01}})");
  REQUIRE(c.ln_eps == 1e-6);
  const auto scan = c.mixers[0].get<selective_scan_options>("test");
  REQUIRE(scan.d_state == 16);
  REQUIRE(scan.dt_rank.is_auto());
  REQUIRE(c.mlp_hidden() == 100);
  REQUIRE(c.halting.has_value());
  REQUIRE(c.halting->beta == 30);
}

TEST_CASE("sparsimix.config refuses unknown kinds, unknown fields and inconsistencies", "[io][config]") {
  auto err = [](const std::string& s) {
    try {
      io::vit_config_from_string(s);
    } catch (const config_error& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  const std::string base = R"("img_size": 28, "patch_size": 4, "in_chans": 1, "num_classes": 10, "embed_dim": 96, "num_heads": 3, "mlp_ratio": 4.0)";
  CHECK_THAT(err("{" + base + R"(, "depth": 1, "mixers": [{"kind": "transformer"}]})"), Catch::Contains("unknown kind 'transformer'"));
  CHECK_THAT(err("{" + base + R"(, "depth": 1, "mixers": [{"kind": "attention", "heads": 2}]})"), Catch::Contains("unknown field 'heads'"));
  CHECK_THAT(err("{" + base + R"(, "depth": 2, "mixers": [{"kind": "attention"}]})"), Catch::Contains("expected depth = 2"));
  CHECK_THAT(err("{" + base + R"(, "depth": 1, "mixers": [{"kind": "attention"}], "dropout": 0.1})"), Catch::Contains("unknown field 'dropout'"));
  CHECK_THAT(err(R"({"img_size": 28, "depth": 1, "mixers": []})"), Catch::Contains("missing field 'patch_size'"));
  CHECK_THAT(err("{" + base + R"(, "depth": "6", "mixers": []})"), Catch::Contains("'depth' must be an integer"));
  CHECK_THAT(err(R"({"img_size": 30, "patch_size": 4, "in_chans": 1, "num_classes": 10, "embed_dim": 96, "num_heads": 3, "mlp_ratio": 4.0, "depth": 1, "mixers": [{"kind": "attention"}]})"),
             Catch::Contains("not a multiple of patch_size"));
  CHECK_THAT(err("{not json"), Catch::Contains("not valid JSON"));
}

TEST_CASE("sparsimix.config bounds every size before multiplying them", "[io][config]") {
  auto err = [](vit_config c) {
    try {
      c.validate();
    } catch (const config_error& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  vit_config ok;
  ok.mixers.assign(static_cast<std::size_t>(ok.depth), mixer_spec{});
  REQUIRE(err(ok) == "<no error>");
  vit_config c = ok;
  c.img_size = index_t(1) << 40;  // 2^40 / 4 patches per side once wrapped into a tiny model
  CHECK(err(c) == "config_error: vit config: img_size is 1099511627776, expected at most 16384");
  c = ok;
  c.embed_dim = 60000;
  c.num_heads = 1;
  CHECK(err(c) == "config_error: vit config: embed_dim is 60000, expected at most 16384");
  c = ok;
  c.depth = 100000;
  c.mixers.assign(100000, mixer_spec{});
  CHECK(err(c) == "config_error: vit config: depth is 100000, expected at most 1024");
  c = ok;
  c.img_size = 16384;
  c.patch_size = 8;  // 2048^2 patches
  CHECK_THAT(err(c), Catch::Contains("gives 4194304 patches, expected at most 1048576"));
  c = ok;
  c.embed_dim = 16384;
  c.num_heads = 1;
  c.depth = 1024;
  c.mixers.assign(1024, mixer_spec{});
  CHECK_THAT(err(c), Catch::Contains("parameters, expected at most 4e+09"));
  c = ok;
  c.mlp_ratio = 1e9;
  CHECK_THAT(err(c), Catch::Contains("mlp_ratio is 1e+09, expected at most 64"));
}

TEST_CASE("sparsimix.config quotes binary bytes of a broken file as escapes", "[io][config]") {
  try {
    io::vit_config_from_string(std::string("\x8f\x01{\xff", 4));
    FAIL("no error");
  } catch (const config_error& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains("last read: '\\x8f'"));
    CHECK(std::none_of(what.begin(), what.end(), [](char ch) { return static_cast<unsigned char>(ch) >= 0x7f; }));
  }
}
