// The pipeline's pieces on a small slice of the real Fashion-MNIST: a tiny teacher trains
// well above chance, sparsity is measured, and both distillation stages improve a student.
#include <catch2/catch.hpp>

#include <sparsimix/distill/analysis.hpp>
#include <sparsimix/distill/distill.hpp>

#include "support/tiny_vit.hpp"

using namespace sparsimix;

TEST_CASE("data loader shuffles deterministically and covers the epoch", "[distill][data]") {
  const auto ds = data::load_fashion_mnist(data::fashion_mnist_default_dir, "test", 300);
  data::loader_options o;
  o.batch = 64;
  o.seed = 5;
  data::batch_loader a(ds, o), b(ds, o);
  REQUIRE(a.batches_per_epoch() == 4);
  Tensor<float> xa, xb;
  std::vector<index_t> ya, yb;
  std::vector<int> seen(10, 0);
  index_t batches = 0;
  while (a.next(xa, ya)) {
    REQUIRE(b.next(xb, yb));
    REQUIRE(ya == yb);
    for (index_t i = 0; i < xa.numel(); ++i) REQUIRE(xa.data()[i] == xb.data()[i]);
    for (auto y : ya) ++seen[static_cast<std::size_t>(y)];
    ++batches;
  }
  REQUIRE(batches == 4);
  for (int s : seen) REQUIRE(s > 0);
  a.start_epoch(1);
  REQUIRE(a.next(xa, ya));
  REQUIRE(ya != yb);  // another epoch, another order
  auto [train, val] = data::split_tail(ds, 100);
  REQUIRE(train.size() == 200);
  REQUIRE(val.size() == 100);
  REQUIRE(val.labels(0) == ds.labels(200));
}

TEST_CASE("a tiny teacher trains far above chance; distillation keeps most of it", "[distill][pipeline]") {
  const auto all = data::load_fashion_mnist(data::fashion_mnist_default_dir, "train", 4000);
  auto [train, val] = data::split_tail(all, 1000);
  HybridViT<float> teacher(test::tiny_vit_config());
  Rng rng(1);
  teacher.init(rng);
  fit_options fo;
  fo.steps = 400;
  fo.batch = 64;
  fo.lr = 2e-3;
  const auto fr = train_classifier(teacher, train, &val, fo);
  const auto acc = evaluate(teacher, val).accuracy;
  INFO("teacher val accuracy " << acc << " after " << fr.steps << " steps");
  REQUIRE(acc > 0.55);  // chance is 0.10
  REQUIRE(fr.best_val_accuracy == Approx(acc));

  const auto sp = measure_sparsity(teacher, val, 200);
  REQUIRE(sp.size() == 3);
  for (const auto& l : sp) {
    REQUIRE(l.attention);
    REQUIRE(l.heads.size() == 2);
    REQUIRE(l.all.k90 > 0.0);
    REQUIRE(l.all.k90 <= 1.0);
  }

  // The teacher's pre-projection output, through its own proj, is its mixer output.
  {
    vit_capture<float> cap;
    cap.pre_proj = cap.mixers = true;
    Tensor<float> img(Shape{2, 1, 28, 28}), logits(Shape{2, 10});
    std::copy_n(val.images.data(), img.numel(), img.data());
    teacher.forward(img.view(), logits.view(), &cap);
    auto& a = std::get<Attention<float>>(teacher.mixer(1));
    TensorView<float> pw, pb;
    for (auto& p : a.parameters()) {
      if (p.name == "proj.weight") pw = p.value;
      if (p.name == "proj.bias") pb = p.value;
    }
    Tensor<float> y(cap.mixer_out[1].shape());
    linear_forward(cap.pre_proj_out[1].data(), pw.data(), pb.data(), y.data(), 2 * 17, 24, 24);
    for (index_t i = 0; i < y.numel(); ++i) REQUIRE(y.data()[i] == Approx(cap.mixer_out[1].data()[i]).margin(1e-5));
  }

  mixer_spec lstm;
  lstm = mixer_spec("mh_lstm");
  const distill_target targets[] = {distill_target::pre_proj, distill_target::pre_proj, distill_target::mixer_out,
                                    distill_target::block_out, distill_target::cosine};
  for (int run = 0; run < 5; ++run) {
    const bool forced = run == 1;
    HybridViT<float> student = make_student(teacher, {1}, lstm, rng);
    REQUIRE(student.config().mixers[1].kind() == "mh_lstm");
    const double before = evaluate(student, val).accuracy;
    distill_options d;
    d.teacher_forced = forced;
    d.target = targets[run];
    d.stage1 = fo;
    d.stage1.steps = 60;
    d.stage2 = fo;
    d.stage2.steps = 30;
    d.stage2.lr = 2e-4;
    distill(teacher, student, {1}, train, nullptr, d);
    const double after = evaluate(student, val).accuracy;
    INFO(to_string(d.target) << ", teacher-forced " << forced << ": student " << before << " -> " << after << ", teacher " << acc);
    REQUIRE(after > before);
    REQUIRE(after > acc - 0.15);
  }
}

TEST_CASE("the teacher's outputs from a cache train the same students bit for bit", "[distill][pipeline]") {
  const auto train = data::load_fashion_mnist(data::fashion_mnist_default_dir, "train", 600);
  HybridViT<float> teacher(test::tiny_vit_config());
  Rng init(5);
  teacher.init(init);
  distill_options d;
  d.stage1.steps = 4;
  d.stage1.batch = 32;
  d.stage2.steps = 6;
  d.stage2.batch = 32;
  d.stage2.seed = 7;
  const mixer_spec kind(GENERATE(as<std::string>{}, "mh_lstm", "selective_scan"));
  d.target = GENERATE(distill_target::pre_proj, distill_target::mixer_out, distill_target::block_out);
  CAPTURE(kind.kind(), to_string(d.target));
  auto student_of = [&](teacher_cache<float>* cache, const distill_options& o, std::vector<index_t> layers) {
    Rng rng(11);
    HybridViT<float> s = make_student(teacher, layers, kind, rng);
    distill(teacher, s, layers, train, nullptr, o, {}, cache);
    return s;
  };
  auto values = [](HybridViT<float>& m) {
    std::vector<float> v;
    for (auto& p : m.parameters()) v.insert(v.end(), p.value.begin(), p.value.end());
    return v;
  };
  const std::size_t big = std::size_t{1} << 30;
  auto plain = student_of(nullptr, d, {0, 2});
  auto plain_other = student_of(nullptr, d, {1});
  teacher_cache<float> cache(big, big);
  auto first = student_of(&cache, d, {0, 2});  // fills the cache
  REQUIRE(cache.target_misses() == 4);
  REQUIRE(cache.logit_misses() == 6);
  REQUIRE(cache.hits() == 0);
  // Other layers, the same batches: every teacher output from the cache (a kept capture holds
  // every block, the mixer outputs derived from the pre-proj outputs where it dropped them).
  auto other_layers = student_of(&cache, d, {1});
  REQUIRE(cache.misses() == 10);
  REQUIRE(cache.target_hits() == 4);
  REQUIRE(cache.logit_hits() == 6);
  const auto want = values(plain);
  REQUIRE(values(first) == want);
  REQUIRE(values(other_layers) == values(plain_other));
  // Other batches (another data seed) are not in the cache: computed, and kept.
  distill_options other = d;
  other.stage1.seed = 8;
  other.stage2.seed = 8;
  student_of(&cache, other, {0, 2});
  REQUIRE(cache.target_misses() == 8);
  REQUIRE(cache.logit_misses() == 12);
  // A cache too small to keep a batch computes every time and still gives the same student.
  teacher_cache<float> tiny(16, 16);
  auto uncached = student_of(&tiny, d, {0, 2});
  REQUIRE(tiny.hits() == 0);
  REQUIRE(values(uncached) == want);
  // clear() forgets: the same batches run the teacher again.
  cache.clear();
  auto after_clear = student_of(&cache, d, {0, 2});
  REQUIRE(values(after_clear) == want);
  REQUIRE(cache.target_misses() == 12);
}

TEST_CASE("capturing the pre-proj outputs leaves the teacher's forward unchanged bit for bit", "[distill][pipeline]") {
  HybridViT<float> teacher(test::tiny_vit_config());
  Rng init(6);
  teacher.init(init);
  Tensor<float> images(Shape{5, 1, 28, 28});
  for (auto& v : images) v = static_cast<float>(init.uniform(-1, 1));
  Tensor<float> plain(Shape{5, 10}), with_pre(Shape{5, 10});
  vit_capture<float> a, b;
  a.mixers = a.mixer_inputs = true;
  b.mixers = b.pre_proj = true;
  teacher.forward(images.view(), plain.view(), &a);
  teacher.forward(images.view(), with_pre.view(), &b);
  REQUIRE(std::equal(plain.begin(), plain.end(), with_pre.begin()));
  REQUIRE(b.pre_proj_out.size() == a.mixer_out.size());
  for (std::size_t l = 0; l < a.mixer_out.size(); ++l) {
    REQUIRE(std::equal(a.mixer_out[l].begin(), a.mixer_out[l].end(), b.mixer_out[l].begin()));
    // The pre-proj output is the one the attention computes alone from the block's input.
    Tensor<float> pre(b.pre_proj_out[l].shape());
    const auto& attn = std::get<Attention<float>>(teacher.mixer(static_cast<index_t>(l)));
    attn.forward_pre_proj(a.mixer_in[l].view(), pre.view(), nullptr);
    REQUIRE(std::equal(pre.begin(), pre.end(), b.pre_proj_out[l].begin()));
  }
}
