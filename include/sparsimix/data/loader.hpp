// Mini-batches from an in-memory image dataset: deterministic shuffling with the library
// RNG (the same seed gives the same batches on every machine), optional light augmentation.
#pragma once
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "../core/rng.hpp"
#include "../core/tensor.hpp"
#include "idx.hpp"

namespace sparsimix::data {
SPARSIMIX_ABI_BEGIN

// Splits off the last `n` examples (a validation set, so model selection never sees test).
inline std::pair<image_dataset, image_dataset> split_tail(const image_dataset& ds, index_t n) {
  if (n < 0 || n >= ds.size())
    throw config_error(sparsimix::detail::concat("split_tail: cannot hold out ", n, " of ", ds.size(), " examples"));
  const index_t keep = ds.size() - n;
  const Shape is = ds.images.shape();
  const index_t per = is[1] * is[2] * is[3];
  image_dataset a{Tensor<float>(Shape{keep, is[1], is[2], is[3]}), Tensor<std::int64_t>(Shape{keep})};
  image_dataset b{Tensor<float>(Shape{n, is[1], is[2], is[3]}), Tensor<std::int64_t>(Shape{n})};
  std::copy_n(ds.images.data(), keep * per, a.images.data());
  std::copy_n(ds.images.data() + keep * per, n * per, b.images.data());
  std::copy_n(ds.labels.data(), keep, a.labels.data());
  std::copy_n(ds.labels.data() + keep, n, b.labels.data());
  return {std::move(a), std::move(b)};
}

// How batch_loader cuts, orders and augments the batches.
struct loader_options {
  index_t batch = 128;     // examples per batch
  bool shuffle = true;     // a new permutation each epoch (off: dataset order)
  bool drop_last = true;   // training: every step sees a full batch
  bool augment = false;    // random shift by up to 2 pixels and horizontal flip
  std::uint64_t seed = 0;  // shuffling and augmentation stream; epoch e reseeds from (seed, e)
};

// Mini-batches over an image_dataset, reproducible from (seed, epoch, position). Keeps a pointer
// to the dataset, which must outlive it.
class batch_loader {
 public:
  // Starts at epoch 0; throws config_error when opt.batch < 1.
  batch_loader(const image_dataset& ds, loader_options opt) : ds_(&ds), opt_(opt) {
    if (opt_.batch < 1) throw config_error(sparsimix::detail::concat("batch_loader: batch is ", opt_.batch, ", expected >= 1"));
    order_.resize(static_cast<std::size_t>(ds.size()));
    start_epoch(0);
  }

  // Batches next() returns per epoch (the short last one only without drop_last).
  index_t batches_per_epoch() const noexcept {
    const index_t n = ds_->size();
    return opt_.drop_last ? n / opt_.batch : (n + opt_.batch - 1) / opt_.batch;
  }

  // Order of epoch e depends only on (seed, e): resuming at an epoch reproduces it.
  void start_epoch(index_t epoch) {
    std::iota(order_.begin(), order_.end(), index_t{0});
    rng_.reseed(opt_.seed * 1000003ULL + static_cast<std::uint64_t>(epoch));
    if (opt_.shuffle) rng_.shuffle(order_.begin(), order_.end());
    pos_ = 0;
  }

  // Where the loader stands within its epoch: the next example's position and the
  // augmentation stream. resume(epoch, position, rng) continues exactly from there.
  index_t position() const noexcept { return pos_; }
  // The augmentation stream's state, for a checkpoint.
  Rng::state_type rng_state() const noexcept { return rng_.state(); }
  // Continues a run saved with position() and rng_state() in the given epoch.
  void resume(index_t epoch, index_t position, const Rng::state_type& rng) {
    if (position < 0 || position > ds_->size())
      throw config_error(sparsimix::detail::concat("batch_loader::resume: position ", position, " is outside 0..",
                                                   ds_->size()));
    start_epoch(epoch);
    pos_ = position;
    rng_.set_state(rng);
  }
  // Fills the next batch; false at the end of the epoch.
  bool next(Tensor<float>& images, std::vector<index_t>& labels) {
    const index_t n = ds_->size();
    index_t take = std::min(opt_.batch, n - pos_);
    if (take <= 0 || (opt_.drop_last && take < opt_.batch)) return false;
    const Shape is = ds_->images.shape();
    const index_t per = is[1] * is[2] * is[3];
    images.resize(Shape{take, is[1], is[2], is[3]});
    labels.resize(static_cast<std::size_t>(take));
    for (index_t i = 0; i < take; ++i) {
      const index_t src = order_[static_cast<std::size_t>(pos_ + i)];
      labels[static_cast<std::size_t>(i)] = static_cast<index_t>(ds_->labels.data()[src]);
      float* dst = images.data() + i * per;
      if (opt_.augment)
        augment(ds_->images.data() + src * per, dst, is[1], is[2], is[3]);
      else
        std::copy_n(ds_->images.data() + src * per, per, dst);
    }
    pos_ += take;
    return true;
  }

 private:
  // Shift by (dy, dx) in [-2, 2] filling with the background value (the image's minimum,
  // i.e. a normalised black pixel), then flip horizontally with probability 1/2.
  void augment(const float* src, float* dst, index_t ch, index_t h, index_t w) {
    const auto dy = static_cast<index_t>(rng_.below(5)) - 2, dx = static_cast<index_t>(rng_.below(5)) - 2;
    const bool flip = rng_.below(2) == 1;
    for (index_t c = 0; c < ch; ++c) {
      const float* s = src + c * h * w;
      const float bg = *std::min_element(s, s + h * w);
      float* d = dst + c * h * w;
      for (index_t y = 0; y < h; ++y)
        for (index_t x = 0; x < w; ++x) {
          const index_t sy = y - dy, sx0 = x - dx;
          const index_t sx = flip ? w - 1 - sx0 : sx0;
          d[y * w + x] = (sy >= 0 && sy < h && sx0 >= 0 && sx0 < w) ? s[sy * w + sx] : bg;
        }
    }
  }

  const image_dataset* ds_;
  loader_options opt_;
  std::vector<index_t> order_;
  index_t pos_ = 0;
  Rng rng_;
};

SPARSIMIX_ABI_END
}  // namespace sparsimix::data
