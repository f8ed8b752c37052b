// fit() stopped by SIGTERM saves its whole state; a second fit() with resume continues from it
// and ends with exactly the weights of an uninterrupted run (the library side of `sparsimix
// train --checkpoint-every N --resume`; tests/cli/check_resume.py kills a real process).
#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>

#include <sparsimix/distill/train.hpp>

#include "support/tiny_vit.hpp"

using namespace sparsimix;

namespace {

data::image_dataset resume_images(index_t n, std::uint64_t seed) {
  data::image_dataset ds;
  ds.images = Tensor<float>(Shape{n, 1, 28, 28});
  ds.labels = Tensor<std::int64_t>(Shape{n});
  Rng rng(seed);
  for (index_t i = 0; i < ds.images.numel(); ++i) ds.images.data()[i] = static_cast<float>(rng.uniform());
  for (index_t i = 0; i < n; ++i) ds.labels.data()[i] = static_cast<std::int64_t>(rng.below(10));
  return ds;
}

std::vector<float> all_weights(HybridViT<float>& m) {
  std::vector<float> w;
  for (const auto& p : m.parameters()) w.insert(w.end(), p.value.begin(), p.value.end());
  return w;
}

}  // namespace

TEST_CASE("fit stopped by SIGTERM resumes to the uninterrupted run's weights, bit for bit", "[distill][resume]") {
  const auto train = resume_images(40, 1), val = resume_images(16, 2);
  fit_options o;
  o.steps = 14;
  o.batch = 8;  // 5 batches per epoch: the resume lands mid-epoch
  o.augment = true;
  o.eval_every = 1;
  o.restore_best = true;
  auto fresh = [] {
    HybridViT<float> m(test::tiny_vit_config());
    Rng rng(9);
    m.init(rng);
    return m;
  };
  HybridViT<float> a = fresh();
  const auto ra = train_classifier(a, train, &val, o);

  const std::string state = (std::filesystem::temp_directory_path() / "sparsimix_fit_resume.state").string();
  std::filesystem::remove(state);
  fit_options ob = o;
  ob.checkpoint = {state, 4, true};
  HybridViT<float> b = fresh();
  CHECK_THROWS_WITH(train_classifier(b, train, &val, ob, 0.0, {},
                                     [](index_t step, const eval_result&) {
                                       if (step == 7) std::raise(SIGTERM);
                                     }),
                    Catch::StartsWith("interrupted: fit: stopped by signal 15 after step 7 of 14"));
  REQUIRE(std::filesystem::exists(state));
  HybridViT<float> c = fresh();  // a new process would start from a fresh model too
  const auto rc = train_classifier(c, train, &val, ob);
  CHECK(all_weights(c) == all_weights(a));
  CHECK(rc.best_step == ra.best_step);
  CHECK(rc.best_val_accuracy == ra.best_val_accuracy);

  // Other settings than the state's are refused.
  fit_options other = ob;
  other.lr *= 2;
  HybridViT<float> d = fresh();
  CHECK_THROWS_WITH(train_classifier(d, train, &val, other),
                    Catch::Contains("the training state was written by a run with other settings"));
  std::filesystem::remove(state);
}
