// The mixer registry and the capability concepts: built-ins and a user mixer (the example's
// TokenMean, registered outside the library) go through the same paths.
#include <catch2/catch.hpp>

#include <filesystem>

#include <sparsimix/distill/distill.hpp>
#include <sparsimix/io/checkpoint.hpp>
#include <sparsimix/models.hpp>

#include "../../examples/token_mean_mixer.hpp"

using namespace sparsimix;

namespace {

// Registered nowhere: a SeqMixer without a traits block.
template <class T>
struct scale_mixer {
  using scalar_type = T;
  struct cache_type {};
  Tensor<T> w{Shape{1}, T(2)}, gw{Shape{1}};
  index_t c = 12;
  index_t dim() const { return c; }
  void forward(ConstSeq<T> x, Seq<T> y, const TokenMask*) const {
    for (index_t i = 0; i < x.numel(); ++i) y.data()[i] = w(0) * x.data()[i];
  }
  void forward(ConstSeq<T> x, Seq<T> y, cache_type&, const TokenMask* m) { forward(x, y, m); }
  void backward(const cache_type&, ConstSeq<T> dy, Seq<T> dx) {
    for (index_t i = 0; i < dy.numel(); ++i) dx.data()[i] = w(0) * dy.data()[i];
  }
  ParamList<T> parameters() { return {{"w", w.view(), gw.view(), true}}; }
};

vit_config tiny_config(std::vector<mixer_spec> mixers) {
  vit_config c;
  c.img_size = 8;
  c.patch_size = 4;
  c.in_chans = 2;
  c.num_classes = 3;
  c.embed_dim = 12;
  c.depth = static_cast<index_t>(mixers.size());
  c.num_heads = 3;
  c.mlp_ratio = 2.0;
  c.mixers = std::move(mixers);
  return c;
}

Tensor<double> logits_of(const HybridViT<double>& m, const Tensor<double>& img) {
  Tensor<double> out(Shape{img.size(0), m.config().num_classes});
  m.forward(img.view(), out.view());
  return out;
}

std::string temp_path(const char* name) { return (std::filesystem::temp_directory_path() / name).string(); }

}  // namespace

// Each built-in's traits and capabilities, detected by the concepts alone.
static_assert(RegisteredMixer<Attention<float>> && RegisteredMixer<Attention<double>>);
static_assert(RegisteredMixer<MultiHeadLSTM<float>> && RegisteredMixer<MultiHeadLSTM<double>>);
static_assert(RegisteredMixer<SelectiveScan<float>> && RegisteredMixer<SelectiveScan<double>>);
static_assert(RegisteredMixer<example::TokenMean<double>>);
static_assert(HasPreProjOutput<MultiHeadLSTM<double>> && !HasPreProjOutput<SelectiveScan<double>> &&
              !HasPreProjOutput<Attention<double>>);
static_assert(HasDenseLayout<MultiHeadLSTM<float>> && !HasDenseLayout<Attention<float>>);
static_assert(InitsFromTeacher<MultiHeadLSTM<double>> && !InitsFromTeacher<SelectiveScan<double>>);
// AnyMixer forwards every capability (answering at run time for the type it holds).
static_assert(SeqMixer<AnyMixer<double>> && HasPreProjOutput<AnyMixer<double>> && HasDenseLayout<AnyMixer<double>> &&
              InitsFromTeacher<AnyMixer<double>> && Initializable<AnyMixer<double>>);
static_assert(SeqMixer<scale_mixer<double>> && !RegisteredMixer<scale_mixer<double>>);

TEST_CASE("the registry lists the built-ins first, then registered user kinds", "[models][registry]") {
  const auto kinds = mixer_registry::instance().kinds();
  REQUIRE(kinds.size() >= 4);
  CHECK(kinds[0] == "attention");
  CHECK(kinds[1] == "mh_lstm");
  CHECK(kinds[2] == "selective_scan");
  CHECK(std::find(kinds.begin(), kinds.end(), "token_mean") != kinds.end());
  CHECK(mixer_registry::instance().at("token_mean", "test").builtin == false);
  // The same type again is a no-op; another type under a taken kind is refused.
  CHECK(register_mixer<example::TokenMean>());
  CHECK_THROWS_WITH(mixer_registry::instance().at("transformer", "where"),
                    Catch::Contains("where: unknown kind 'transformer' (expected attention, mh_lstm, selective_scan"));
}

TEST_CASE("mixer_spec options: defaults, conversions and errors name the field", "[models][registry]") {
  const auto s = normalize_spec(mixer_spec("selective_scan", {{"d_state", index_t{8}}, {"expand", index_t{3}}}), "w");
  const auto o = s.get<selective_scan_options>("w");
  CHECK(o.d_state == 8);
  CHECK(o.expand == 3.0);  // an integer is a valid double
  CHECK(o.dt_rank.is_auto());
  CHECK(s.options().size() == 5);  // every field, defaults filled in
  CHECK_THROWS_WITH(normalize_spec(mixer_spec("selective_scan", {{"d_stat", index_t{8}}}), "w"),
                    Catch::Contains("w: unknown field 'd_stat' for kind 'selective_scan'"));
  CHECK_THROWS_WITH(normalize_spec(mixer_spec("selective_scan", {{"bidirectional", index_t{1}}}), "w"),
                    Catch::Contains("'bidirectional' must be true or false, got 1"));
  CHECK_THROWS_WITH(normalize_spec(mixer_spec("selective_scan", {{"d_state", index_t{0}}}), "w"),
                    Catch::Contains("d_state is 0, expected 1..4096"));
  CHECK_THROWS_WITH(normalize_spec(mixer_spec("mh_lstm", {{"heads", index_t{2}}}), "w"),
                    Catch::Contains("unknown field 'heads'"));
  const auto parsed = parse_mixer_options("d_state=8,bidirectional=true,dt_rank=auto,expand=1.5", "--mixer");
  REQUIRE(parsed.size() == 4);
  CHECK(parsed[0].value == option_value(index_t{8}));
  CHECK(parsed[1].value == option_value(true));
  CHECK(parsed[2].value == option_value(auto_index{}));
  CHECK(parsed[3].value == option_value(1.5));
  CHECK_THROWS_WITH(parse_mixer_options("d_state", "--mixer"), Catch::Contains("'d_state' is not option=value"));
  CHECK_THROWS_WITH(parse_mixer_options("d_state=eight", "--mixer"), Catch::Contains("is not true, false, auto or a number"));
}

// The bug the registry makes impossible: a replaced mixer's config used to record only its
// kind (bidirectional false, d_state 16), so the checkpoint it saved did not load.
TEST_CASE("replace_mixer records the held mixer's own options; its checkpoint loads", "[models][registry][io]") {
  HybridViT<double> m(tiny_config({mixer_spec{}, mixer_spec{}}));
  Rng rng(3);
  m.init(rng);
  typename SelectiveScan<double>::config sc;
  sc.dim = 12;
  sc.d_state = 8;
  sc.bidirectional = true;
  SelectiveScan<double> scan(sc);
  scan.init(rng);
  m.replace_mixer(1, scan);
  const auto o = m.config().mixers[1].get<selective_scan_options>("test");
  CHECK(m.config().mixers[1].kind() == "selective_scan");
  CHECK(o.bidirectional);
  CHECK(o.d_state == 8);
  CHECK(o.dt_rank.is_auto());
  const std::string path = temp_path("sparsimix_test_replaced_scan.safetensors");
  io::save_checkpoint(m, path);
  const auto back = io::load_checkpoint<double>(path);
  std::filesystem::remove(path);
  Tensor<double> img(Shape{2, 2, 8, 8});
  fill_normal(rng, img.data(), img.numel(), 0, 1);
  const auto a = logits_of(m, img), b = logits_of(back, img);
  for (index_t i = 0; i < a.numel(); ++i) CHECK(a.data()[i] == Approx(b.data()[i]).epsilon(1e-6));
}

TEST_CASE("a user mixer registered outside the library works like a built-in", "[models][registry][io]") {
  // Config by kind name, options included; init reaches it through AnyMixer.
  HybridViT<double> m(tiny_config({mixer_spec{}, mixer_spec("token_mean", {{"self_weight", 0.25}})}));
  REQUIRE(std::holds_alternative<AnyMixer<double>>(m.mixer(1)));
  auto* tm = std::get<AnyMixer<double>>(m.mixer(1)).get<example::TokenMean<double>>();
  REQUIRE(tm != nullptr);
  CHECK(tm->options().self_weight == 0.25);
  Rng rng(5);
  m.init(rng);
  double wsum = 0;
  for (const auto& p : tm->parameters()) wsum += std::abs(static_cast<double>(p.value.data()[0]));
  CHECK(wsum > 0);  // HybridViT::init initialised the user mixer
  CHECK(m.serializable());

  // Checkpoints: saved with its kind and options, loaded back to the same function.
  const std::string path = temp_path("sparsimix_test_token_mean.safetensors");
  io::save_checkpoint(m, path);
  const auto back = io::load_checkpoint<double>(path);
  std::filesystem::remove(path);
  CHECK(back.config().mixers == m.config().mixers);
  Tensor<double> img(Shape{2, 2, 8, 8});
  fill_normal(rng, img.data(), img.numel(), 0, 1);
  const auto a = logits_of(m, img), b = logits_of(back, img);  // checkpoints hold F32
  for (index_t i = 0; i < a.numel(); ++i) CHECK(a.data()[i] == Approx(b.data()[i]).epsilon(1e-6));

  // The pre-projection target reaches it through the tape, and make_student copies the
  // teacher's proj into it (InitsFromTeacher), naming what stage 1 keeps frozen.
  HybridViT<double> teacher(tiny_config({mixer_spec{}, mixer_spec{}}));
  teacher.init(rng);
  auto student = make_student(teacher, {1}, mixer_spec("token_mean"), rng);
  const auto st = student.mixer_tensors(1), tt = teacher.mixer_tensors(1);
  for (const auto& [n, t] : st)
    if (n == "proj.weight")
      for (const auto& [tn, tv] : tt)
        if (tn == "proj.weight") CHECK(t.data()[5] == tv.data()[5]);
  CHECK(teacher_initialised_params(student, {1}) == std::set<std::string>{"blocks.1.attn.proj.weight", "blocks.1.attn.proj.bias"});
  Tape<double> tape;
  vit_trace trace;
  trace.want_pre_proj = true;
  student.forward(tape, img.view(), &trace);
  CHECK(trace.pre_proj[1].valid());
  CHECK_FALSE(trace.pre_proj[0].valid());  // attention has no pre-projection output
}

TEST_CASE("an unregistered mixer trains but cannot be saved, and says how to fix it", "[models][registry][io]") {
  HybridViT<double> m(tiny_config({mixer_spec{}, mixer_spec{}}));
  m.replace_mixer(0, AnyMixer<double>(scale_mixer<double>{}));
  CHECK_FALSE(m.serializable());
  CHECK_THROWS_WITH(io::save_checkpoint(m, temp_path("sparsimix_test_unsaveable.safetensors")),
                    Catch::Contains("SPARSIMIX_REGISTER_MIXER"));
  CHECK_FALSE(std::filesystem::exists(temp_path("sparsimix_test_unsaveable.safetensors")));
  // Registered mixers put back make it saveable again.
  Rng rng(1);
  m.replace_mixer(0, make_mixer<double>(mixer_spec("mh_lstm"), mixer_dims{12, 3}, rng));
  CHECK(m.serializable());
  CHECK(m.config().mixers[0].kind() == "mh_lstm");
}
