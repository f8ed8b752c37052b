#include <catch2/catch.hpp>

#include <sparsimix/autograd/gradcheck.hpp>
#include <sparsimix/io/checkpoint.hpp>
#include <sparsimix/models.hpp>

#include <set>

using namespace sparsimix;

namespace {

vit_config small_config(std::vector<mixer_spec> mixers) {
  vit_config c;
  c.img_size = 8;
  c.patch_size = 4;
  c.in_chans = 2;
  c.num_classes = 3;
  c.embed_dim = 12;
  c.num_heads = 3;
  c.mlp_ratio = 2.0;
  c.depth = static_cast<index_t>(mixers.size());
  c.mixers = std::move(mixers);
  return c;
}

mixer_spec scan_spec(bool bi) {
  selective_scan_options o;
  o.d_state = 3;
  o.expand = 1.5;
  o.bidirectional = bi;
  return spec_for<SelectiveScan>(o);
}

// A user mixer: y = x * w (per channel). Models SeqMixer; lives in an AnyMixer.
template <class T>
struct channel_scale {
  using scalar_type = T;
  struct cache_type {
    Tensor<T> x;
  };
  Tensor<T> w, gw;
  explicit channel_scale(index_t c) : w(Shape{c}, T(0.5)), gw(Shape{c}) {}
  index_t dim() const { return w.numel(); }
  void forward(ConstSeq<T> x, Seq<T> y, const TokenMask*) const {
    for (index_t i = 0; i < x.numel(); ++i) y.data()[i] = x.data()[i] * w.data()[i % dim()];
  }
  void forward(ConstSeq<T> x, Seq<T> y, cache_type& c, const TokenMask* m) {
    c.x.resize(x.shape());
    c.x.copy_from(x);
    forward(x, y, m);
  }
  void backward(const cache_type& c, ConstSeq<T> dy, Seq<T> dx) {
    for (index_t i = 0; i < dy.numel(); ++i) {
      dx.data()[i] = dy.data()[i] * w.data()[i % dim()];
      gw.data()[i % dim()] += dy.data()[i] * c.x.data()[i];
    }
  }
  ParamList<T> parameters() { return {{"scale", w.view(), gw.view(), false}}; }
};

// Every parameter as a gradcheck target, its analytic gradient snapshotted into `grads`
// (the model's own gradients change while the loss closure runs).
std::vector<gradcheck_target> gradcheck_targets(HybridViT<double>& m, std::vector<Tensor<double>>& grads) {
  auto params = m.parameters();
  std::vector<gradcheck_target> targets;
  grads.clear();
  grads.reserve(params.size());
  for (auto& p : params) {
    grads.emplace_back(p.grad.shape());
    grads.back().copy_from(TensorView<const double>(p.grad));
    targets.push_back({p.name, p.value.data(), grads.back().data(), p.value.numel()});
  }
  return targets;
}

}  // namespace

static_assert(SeqMixer<AnyMixer<float>> && SeqMixer<AnyMixer<double>>);
static_assert(SeqMixer<channel_scale<double>>);

TEST_CASE("HybridViT inference equals its tape forward, for every mixer kind", "[models][vit]") {
  mixer_spec attn, lstm;
  lstm = mixer_spec("mh_lstm");
  HybridViT<double> m(small_config({attn, lstm, scan_spec(false), scan_spec(true)}));
  Rng rng(3);
  m.init(rng);
  Tensor<double> img(Shape{2, 2, 8, 8}), logits(Shape{2, 3});
  fill_normal(rng, img.data(), img.numel(), 0, 1);
  m.forward(img.view(), logits.view());
  Tape<double> tape;
  const Var lv = m.forward(tape, img.view());
  REQUIRE(tape.shape(lv) == Shape{2, 3});
  for (index_t i = 0; i < logits.numel(); ++i) REQUIRE(tape.value(lv).data()[i] == Approx(logits.data()[i]).margin(1e-12));
  // A second inference call reuses its buffers and gives the same answer.
  Tensor<double> again(Shape{2, 3});
  m.forward(img.view(), again.view());
  for (index_t i = 0; i < logits.numel(); ++i) REQUIRE(again.data()[i] == logits.data()[i]);
}

TEST_CASE("HybridViT gradients match finite differences through every block kind", "[models][vit][gradcheck]") {
  mixer_spec attn, lstm;
  lstm = mixer_spec("mh_lstm");
  HybridViT<double> m(small_config({attn, lstm, scan_spec(true)}));
  Rng rng(5);
  m.init(rng);
  Tensor<double> img(Shape{2, 2, 8, 8});
  fill_normal(rng, img.data(), img.numel(), 0, 1);
  const std::vector<index_t> labels{1, 2};
  Tape<double> tape;
  m.zero_grad();
  tape.backward(tape.cross_entropy(m.forward(tape, img.view()), labels));
  std::vector<Tensor<double>> grads;
  const auto targets = gradcheck_targets(m, grads);
  auto loss = [&] {
    Tape<double> t;
    return t.item(t.cross_entropy(m.forward(t, img.view()), labels));
  };
  gradcheck_options opt;
  opt.max_per_tensor = 6;
  const auto r = gradcheck(loss, targets, opt);
  INFO(r.worst);
  REQUIRE(r.checked > 100);
  REQUIRE(r.ok);
}

TEST_CASE("replace_mixer keeps every other weight and checks the width", "[models][vit]") {
  mixer_spec attn;
  HybridViT<double> m(small_config({attn, attn}));
  Rng rng(9);
  m.init(rng);
  Tensor<double> img(Shape{1, 2, 8, 8}), before(Shape{1, 3}), after(Shape{1, 3});
  fill_normal(rng, img.data(), img.numel(), 0, 1);
  m.forward(img.view(), before.view());
  MultiHeadLSTM<double> lstm({12, 3});
  lstm.init(rng);
  m.replace_mixer(1, lstm);
  REQUIRE(m.config().mixers[1].kind() == "mh_lstm");
  m.forward(img.view(), after.view());
  REQUIRE(after(0, 0) != before(0, 0));
  for (const auto& [name, t] : m.state_dict())
    if (name == "blocks.1.mlp.fc1.weight") REQUIRE(t.numel() == 24 * 12);
  REQUIRE_THROWS_AS(m.replace_mixer(0, Attention<double>({8, 2})), shape_error);
  REQUIRE_THROWS_AS(m.replace_mixer(5, lstm), config_error);
  // A user mixer through AnyMixer: runs, trains, but cannot be saved.
  m.replace_mixer(0, AnyMixer<double>(channel_scale<double>(12)));
  REQUIRE_FALSE(m.serializable());
  Tape<double> tape;
  m.zero_grad();
  tape.backward(tape.cross_entropy(m.forward(tape, img.view()), std::vector<index_t>{2}));
  auto* user = std::get<AnyMixer<double>>(m.mixer(0)).get<channel_scale<double>>();
  REQUIRE(user != nullptr);
  double g = 0;
  for (double v : user->gw) g += std::abs(v);
  REQUIRE(g > 0);
}

TEST_CASE("checkpoints round-trip and a failed load changes nothing", "[models][vit][io]") {
  mixer_spec lstm;
  lstm = mixer_spec("mh_lstm");
  HybridViT<float> m(small_config({lstm, scan_spec(true)}));
  Rng rng(11);
  m.init(rng);
  const std::string path = "test_vit_roundtrip.safetensors";
  io::save_checkpoint(m, path);
  auto back = io::load_checkpoint<float>(path);
  Tensor<float> img(Shape{1, 2, 8, 8}), a(Shape{1, 3}), b(Shape{1, 3});
  fill_normal(rng, img.data(), img.numel(), 0, 1);
  m.forward(img.view(), a.view());
  back.forward(img.view(), b.view());
  for (index_t i = 0; i < 3; ++i) REQUIRE(a.data()[i] == b.data()[i]);
  // load_state_dict with one bad tensor (last block's mixer) leaves every weight as it was.
  auto sd = back.state_dict();
  std::map<std::string, Tensor<float>> lookup(sd.begin(), sd.end());
  lookup["blocks.1.attn.out_proj.weight"] = Tensor<float>(Shape{3, 3});
  lookup["head.bias"].fill(42.0f);
  REQUIRE_THROWS_AS(back.load_state_dict([&](const std::string& n) { return lookup.at(n); }), shape_error);
  back.forward(img.view(), b.view());
  for (index_t i = 0; i < 3; ++i) REQUIRE(a.data()[i] == b.data()[i]);
  std::remove(path.c_str());
}

TEST_CASE("HybridViT with A-ViT halting: masks, inference == tape, halting loss gradients", "[models][vit][halting]") {
  mixer_spec attn, lstm;
  lstm = mixer_spec("mh_lstm");
  auto cfg = small_config({attn, lstm, scan_spec(false), attn});
  // Scores sigmoid(gamma * y0 - beta) near 0.3-0.6 so patch tokens halt at different blocks.
  cfg.halting = halting_spec{2.0, 0.5, 0.01};
  HybridViT<double> m(cfg);
  Rng rng(21);
  m.init(rng);
  Tensor<double> img(Shape{3, 2, 8, 8}), logits(Shape{3, 3});
  fill_normal(rng, img.data(), img.numel(), 0, 1);
  vit_capture<double> cap;
  cap.blocks = cap.maps = true;
  m.forward(img.view(), logits.view(), &cap);
  const auto depth = m.halting().depth();
  std::set<std::int64_t> depths;
  for (index_t b = 0; b < 3; ++b) {
    REQUIRE(depth(b, 0) == 4);  // CLS never halts
    for (index_t n = 1; n < 5; ++n) depths.insert(depth(b, n));
  }
  INFO("distinct patch depths: " << depths.size());
  REQUIRE(depths.size() >= 2);  // halting really happens mid-stack
  // Dead tokens are zero in the block outputs and in the attention maps' rows and columns.
  const auto& masks = m.halting().layer_masks();  // [L, B, N]
  for (index_t l = 0; l < 4; ++l)
    for (index_t b = 0; b < 3; ++b)
      for (index_t n = 0; n < 5; ++n) {
        if (masks(l, b, n)) continue;
        for (index_t c = 0; c < 12; ++c) REQUIRE(cap.block_out[static_cast<std::size_t>(l)](b, n, c) == 0.0);
        if (l == 3)
          for (index_t h = 0; h < 3; ++h)
            for (index_t k = 0; k < 5; ++k) {
              REQUIRE(cap.attn_map[3](b, h, n, k) == 0.0);
              REQUIRE(cap.attn_map[3](b, h, k, n) == 0.0);
            }
      }
  // The tape forward makes the same masks and logits.
  Tape<double> tape;
  vit_trace trace;
  const Var lv = m.forward(tape, img.view(), &trace);
  for (index_t i = 0; i < logits.numel(); ++i) REQUIRE(tape.value(lv).data()[i] == Approx(logits.data()[i]).margin(1e-12));
  const auto depth2 = m.halting().depth();
  for (index_t i = 0; i < depth.numel(); ++i) REQUIRE(depth2.data()[i] == depth.data()[i]);
  // CE + halting losses: analytic gradients against finite differences (the masks stay put
  // for small steps: no cumulative score sits within the step of the threshold).
  const std::vector<index_t> labels{0, 1, 2};
  const double ap = 0.05, ad = 0.1;  // large weights so the halting terms dominate some gradients
  m.zero_grad();
  const Var loss = tape.add(tape.cross_entropy(lv, labels), m.halting_loss(tape, trace, ap, ad));
  const double expected_value = tape.item(tape.cross_entropy(lv, labels)) + ap * m.halting().ponder_loss() +
                                ad * m.halting().prior_kl();
  REQUIRE(tape.item(loss) == Approx(expected_value).epsilon(1e-12));
  tape.backward(loss);
  std::vector<Tensor<double>> grads;
  const auto targets = gradcheck_targets(m, grads);
  auto loss_fn = [&] {
    Tape<double> t;
    vit_trace tr;
    const Var l = m.forward(t, img.view(), &tr);
    return t.item(t.add(t.cross_entropy(l, labels), m.halting_loss(t, tr, ap, ad)));
  };
  gradcheck_options opt;
  opt.eps = 1e-7;
  opt.max_per_tensor = 5;
  const auto r = gradcheck(loss_fn, targets, opt);
  INFO(r.worst);
  REQUIRE(r.ok);
}

TEST_CASE("HybridViT refuses a batch of 0 images in both passes, with or without halting", "[models][vit]") {
  for (const bool halting : {false, true}) {
    vit_config c = small_config({mixer_spec{}, spec_for<MultiHeadLSTM>({})});
    if (halting) c.halting = halting_spec{};
    HybridViT<float> m(c);
    Rng rng(3);
    m.init(rng);
    Tensor<float> images(Shape{0, 2, 8, 8}), logits(Shape{0, 3});
    INFO("halting " << halting);
    CHECK_THROWS_WITH(m.forward(images.view(), logits.view()),
                      "shape_error: HybridViT::forward: images is [0, 2, 8, 8], expected at least one image");
    Tape<float> tape;
    CHECK_THROWS_WITH(m.forward(tape, images.view()),
                      "shape_error: HybridViT::forward(tape): images is [0, 2, 8, 8], expected at least one image");
  }
}
