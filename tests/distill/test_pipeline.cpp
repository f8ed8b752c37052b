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

TEST_CASE("stage 2 with the teacher's logits from a cache trains the same student bit for bit",
          "[distill][pipeline]") {
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
  const mixer_spec lstm("mh_lstm");
  auto student_of = [&](teacher_logits_cache<float>* cache, const distill_options& o) {
    Rng rng(11);
    HybridViT<float> s = make_student(teacher, {0, 2}, lstm, rng);
    distill(teacher, s, {0, 2}, train, nullptr, o, {}, cache);
    return s;
  };
  auto values = [](HybridViT<float>& m) {
    std::vector<float> v;
    for (auto& p : m.parameters()) v.insert(v.end(), p.value.begin(), p.value.end());
    return v;
  };
  auto plain = student_of(nullptr, d);
  teacher_logits_cache<float> cache;
  auto first = student_of(&cache, d);  // fills the cache
  REQUIRE(cache.misses() == 6);
  REQUIRE(cache.hits() == 0);
  auto second = student_of(&cache, d);  // every stage-2 batch from the cache
  REQUIRE(cache.misses() == 6);
  REQUIRE(cache.hits() == 6);
  const auto want = values(plain);
  REQUIRE(values(first) == want);
  REQUIRE(values(second) == want);
  // Other batches (another data seed) are not in the cache: computed, and kept.
  distill_options other = d;
  other.stage2.seed = 8;
  student_of(&cache, other);
  REQUIRE(cache.misses() == 12);
  REQUIRE(cache.hits() == 6);
  // A cache too small to keep a batch computes every time and still gives the same student.
  teacher_logits_cache<float> tiny(16);
  auto uncached = student_of(&tiny, d);
  REQUIRE(tiny.hits() == 0);
  REQUIRE(values(uncached) == want);
}
