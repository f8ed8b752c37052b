// A-ViT in the pipeline: sparsity and retention of a halting model are measured on the tokens
// each block really processed, and training with the halting losses moves the halting.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>

#include <sparsimix/autograd/gradcheck.hpp>
#include <sparsimix/distill/analysis.hpp>
#include <sparsimix/distill/distill.hpp>
#include <sparsimix/distill/train.hpp>

using namespace sparsimix;

namespace {

vit_config halting_test_config(index_t depth, halting_spec h) {
  vit_config c;
  c.img_size = 8;
  c.patch_size = 2;  // 16 patches
  c.in_chans = 1;
  c.num_classes = 4;
  c.embed_dim = 12;
  c.depth = depth;
  c.num_heads = 2;
  c.mlp_ratio = 2.0;
  c.mixers.assign(static_cast<std::size_t>(depth), mixer_spec("attention"));
  c.halting = h;
  return c;
}

// A model whose halting is known from the image alone: every block adds nothing to the
// residual stream (proj and fc2 are zero), and channel 0 of a patch token is the sum of its
// pixels (patch conv channel 0 = 1 everywhere, no bias, no position term). With gamma 10 and
// beta 5, a patch of four pixels at 0.25 (sum 1) scores sigmoid(5) = 0.9933 >= 1 - eps at block
// 0 and halts there; a dark patch scores sigmoid(-5) each block and runs to the end. The
// attention maps are still those of random q/k weights.
HybridViT<double> known_halting_model(index_t depth) {
  HybridViT<double> m(halting_test_config(depth, halting_spec{10, 5, 0.01}));
  Rng rng(17);
  m.init(rng);
  std::map<std::string, Tensor<double>> w;
  for (auto& [name, t] : m.state_dict()) w[name] = std::move(t);
  auto zero = [&](const std::string& name) { w.at(name).zero(); };
  for (index_t i = 0; i < depth; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    for (const char* n : {"attn.proj.weight", "attn.proj.bias", "mlp.fc2.weight", "mlp.fc2.bias"}) zero(p + n);
  }
  auto& pw = w.at("patch_embed.proj.weight");  // [C, 1, 2, 2]
  for (index_t k = 0; k < 4; ++k) pw.data()[k] = 1.0;
  w.at("patch_embed.proj.bias").data()[0] = 0.0;
  auto& pos = w.at("pos_embed");  // [1, N, C]
  for (index_t n = 0; n < pos.size(1); ++n) pos(0, n, 0) = 0.0;
  m.load_state_dict([&](const std::string& name) { return w.at(name); });
  return m;
}

// Images whose patch p (row-major over the 4x4 grid) is bright when bright(image, p).
data::image_dataset patch_images(index_t count) {
  data::image_dataset ds{Tensor<float>(Shape{count, 1, 8, 8}), Tensor<std::int64_t>(Shape{count})};
  ds.images.zero();
  for (index_t i = 0; i < count; ++i) {
    ds.labels.data()[i] = i % 4;
    for (index_t p = 0; p < 16; ++p) {
      if ((p * 7 + i * 3) % 5 >= 2) continue;  // about 40% bright, different per image
      for (index_t dy = 0; dy < 2; ++dy)
        for (index_t dx = 0; dx < 2; ++dx) ds.images(i, 0, (p / 4) * 2 + dy, (p % 4) * 2 + dx) = 0.25f;
    }
  }
  return ds;
}

bool bright(const data::image_dataset& ds, index_t i, index_t p) { return ds.images(i, 0, (p / 4) * 2, (p % 4) * 2) > 0; }

}  // namespace

TEST_CASE("a halting model's sparsity is measured on its alive tokens only", "[distill][halting][sparsity]") {
  const index_t L = 3, count = 6, N = 17;
  const auto model = known_halting_model(L);
  const auto ds = patch_images(count);

  // The halting is the one the images dictate.
  Tensor<double> images(Shape{count, 1, 8, 8}), logits(Shape{count, 4});
  std::copy(ds.images.begin(), ds.images.end(), images.data());
  vit_capture<double> cap;
  cap.maps = true;
  model.forward(images.view(), logits.view(), &cap);
  const auto depth = model.halting().depth();
  index_t bright_patches = 0;
  TokenMask after_block0(count, N);  // alive at blocks 1..L-1: CLS and the dark patches
  for (index_t i = 0; i < count; ++i)
    for (index_t p = 0; p < 16; ++p) {
      const bool b = bright(ds, i, p);
      bright_patches += b;
      REQUIRE(depth(i, p + 1) == (b ? 1 : L));
      after_block0.set(i, p + 1, !b);
    }
  REQUIRE(bright_patches > 0);
  REQUIRE(bright_patches < count * 16);

  // Independent reference: the same maps accumulated under the mask derived from the images.
  const auto measured = measure_sparsity(model, ds, count, /*batch=*/4);
  for (index_t l = 0; l < L; ++l) {
    INFO("layer " << l);
    sparsity_accumulator masked, unmasked;
    const auto& maps = cap.attn_map[static_cast<std::size_t>(l)];
    const TokenMask all_alive(count, N);
    masked.add<double>(maps.view(), l == 0 ? &all_alive : &after_block0);
    unmasked.add<double>(maps.view());
    const auto got = measured[static_cast<std::size_t>(l)].all, want = masked.layer(), naive = unmasked.layer();
    REQUIRE(got.k90 == Approx(want.k90).epsilon(1e-9));
    REQUIRE(got.entropy == Approx(want.entropy).epsilon(1e-9));
    REQUIRE(got.top_k_mass == Approx(want.top_k_mass).epsilon(1e-9));
    REQUIRE(got.threshold == Approx(want.threshold).epsilon(1e-9));
    if (l > 0) REQUIRE(std::abs(naive.k90 - want.k90) > 1e-3);  // counting halted tokens changes the answer
  }

  // Retention: block 0 sees every patch, later blocks only the dark ones.
  const auto e = evaluate(model, ds, /*batch=*/4);
  REQUIRE(e.retention.size() == static_cast<std::size_t>(L));
  const double dark = 1.0 - static_cast<double>(bright_patches) / static_cast<double>(count * 16);
  REQUIRE(e.retention[0] == Approx(1.0));
  for (index_t l = 1; l < L; ++l) REQUIRE(e.retention[static_cast<std::size_t>(l)] == Approx(dark));
  REQUIRE(e.mean_retention() == Approx((1.0 + (L - 1) * dark) / L));
}

TEST_CASE("a model without halting reports no retention", "[distill][halting]") {
  vit_config c = halting_test_config(2, halting_spec{});
  c.halting.reset();
  HybridViT<float> m(c);
  Rng rng(1);
  m.init(rng);
  const auto e = evaluate(m, patch_images(3));
  REQUIRE(e.retention.empty());
  REQUIRE(e.mean_retention() == 1.0);
}

TEST_CASE("training with the ponder loss halts tokens earlier than without it", "[distill][halting][train]") {
  // The gate starts where its gradient is alive (gamma 5, beta 3: scores near sigmoid(-3)), so
  // the ponder term can move channel 0; the same start, data and steps with and without it.
  const auto ds = patch_images(64);
  auto run = [&](double ponder_weight) {
    HybridViT<float> m(halting_test_config(4, halting_spec{5, 3, 0.01}));
    Rng rng(5);
    m.init(rng);
    fit_options f;
    f.steps = 40;
    f.batch = 16;
    f.lr = 3e-3;
    f.halting.ponder_weight = ponder_weight;
    f.halting.prior_weight = 0;
    train_classifier(m, ds, nullptr, f);
    return evaluate(m, ds).mean_retention();
  };
  const double without = run(0.0), with = run(0.5);
  INFO("mean retention without the ponder loss " << without << ", with it " << with);
  REQUIRE(with < without - 0.05);
}

TEST_CASE("mask-guided: the student runs under the teacher's masks and the A-ViT term's gradients match finite differences",
          "[distill][halting][gradcheck]") {
  // Scores near 0.3-0.6 (gamma 2, beta 0.5): patch tokens of the teacher halt at different blocks.
  vit_config c = halting_test_config(3, halting_spec{2.0, 0.5, 0.01});
  c.img_size = 6;  // 9 patches
  HybridViT<double> teacher(c);
  Rng rng(21);
  teacher.init(rng);
  Tensor<double> img(Shape{3, 1, 6, 6}), logits(Shape{3, 4});
  fill_normal(rng, img.data(), img.numel(), 0, 1);
  teacher.forward(img.view(), logits.view());
  const Tensor<double> scores = teacher.halting().scores();
  const Tensor<std::uint8_t> masks = teacher.halting().layer_masks();
  index_t dead = 0;
  for (auto v : masks) dead += v == 0;
  REQUIRE(dead > 0);  // the teacher really halts tokens

  HybridViT<double> student = make_student(teacher, {1}, mixer_spec("mh_lstm"), rng);
  const std::vector<index_t> labels{0, 1, 2};
  const double keep_weight = 5;
  auto run = [&](Tape<double>& t, vit_trace& tr) {
    tr.forced_masks = &masks;
    const Var l = student.forward(t, img.view(), &tr);
    return t.add(t.cross_entropy(l, labels), halting_distill_term(t, student, tr, scores, masks, keep_weight));
  };
  Tape<double> tape;
  vit_trace trace;
  student.zero_grad();
  const Var loss = run(tape, trace);
  // The forced masks gate every block: a block's output is zero exactly where the teacher's
  // block did not process the token.
  const index_t N = c.num_tokens();
  for (index_t l = 0; l < 3; ++l) {
    const auto out = tape.value(trace.block_out[static_cast<std::size_t>(l)]);
    for (index_t b = 0; b < 3; ++b)
      for (index_t n = 0; n < N; ++n) {
        double norm = 0;
        for (index_t k = 0; k < c.embed_dim; ++k) norm += std::abs(out.data()[(b * N + n) * c.embed_dim + k]);
        INFO("block " << l << " image " << b << " token " << n);
        REQUIRE((norm > 0) == (masks(l, b, n) != 0));
      }
  }
  const double term = halting_distill_loss(scores, masks, student.halting().scores(), 2.0, keep_weight);
  REQUIRE(term > 0);
  tape.backward(loss);
  std::vector<Tensor<double>> grads;
  std::vector<gradcheck_target> targets;
  auto params = student.parameters();
  grads.reserve(params.size());
  for (auto& p : params) {
    grads.emplace_back(p.grad.shape());
    grads.back().copy_from(TensorView<const double>(p.grad));
    targets.push_back({p.name, p.value.data(), grads.back().data(), p.value.numel()});
  }
  auto loss_fn = [&] {
    Tape<double> t;
    vit_trace tr;
    return t.item(run(t, tr));
  };
  gradcheck_options opt;
  opt.eps = 1e-7;
  opt.max_per_tensor = 4;
  const auto r = gradcheck(loss_fn, targets, opt);
  INFO(r.worst);
  REQUIRE(r.ok);
}

TEST_CASE("distill: mask-guided needs a halting teacher", "[distill][halting]") {
  vit_config c = halting_test_config(2, halting_spec{});
  c.halting.reset();
  HybridViT<float> teacher(c);
  Rng rng(2);
  teacher.init(rng);
  HybridViT<float> student = make_student(teacher, {0}, mixer_spec("mh_lstm"), rng);
  distill_options o;
  o.mask_guided = true;
  o.stage1.steps = 1;
  REQUIRE_THROWS_WITH(distill(teacher, student, {0}, patch_images(8), nullptr, o),
                      Catch::Contains("needs a teacher with halting"));
}
