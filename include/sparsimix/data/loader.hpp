// Mini-batches from an image dataset: deterministic shuffling with the library RNG (the same
// seed gives the same batches on every machine), optional augmentation, streamed datasets
// decoded ahead in the background, batches split between the processes of data-parallel runs.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <future>
#include <numeric>
#include <utility>
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
  std::vector<index_t> a(static_cast<std::size_t>(keep)), b(static_cast<std::size_t>(n));
  std::iota(a.begin(), a.end(), index_t{0});
  std::iota(b.begin(), b.end(), keep);
  return {ds.subset(a), ds.subset(b)};
}

// How batch_loader cuts, orders and augments the batches.
struct loader_options {
  index_t batch = 128;     // examples per batch
  bool shuffle = true;     // a new permutation each epoch (off: dataset order)
  bool drop_last = true;   // training: every step sees a full batch
  bool augment = false;    // in memory: random shift by up to 2 pixels and horizontal flip;
                           // streamed: the source's training transform (random resized crop, flip)
  std::uint64_t seed = 0;  // shuffling and augmentation stream; epoch e reseeds from (seed, e)
  index_t prefetch = 2;    // streamed: batches decoded ahead in the background
  // Data-parallel training: this process gets slice `shard` of `shards` equal slices of every
  // batch (the batch a single process would get), so together the processes see it whole.
  int shard = 0, shards = 1;
};

// Where a streamed loader's time goes: decoding (summed over background batches) against
// the time next() waited for a batch that was not ready.
struct loader_stats {
  index_t images = 0;          // examples decoded
  double decode_seconds = 0;   // wall time of decoding them (batches overlap with training)
  double wait_seconds = 0;     // time next() blocked on decoding
  // Decoded images per second of decoding wall time (0 before any).
  double decode_images_per_second() const { return decode_seconds > 0 ? static_cast<double>(images) / decode_seconds : 0; }
};

// Mini-batches over an image_dataset, reproducible from (seed, epoch, position). Keeps a pointer
// to the dataset, which must outlive it.
class batch_loader {
 public:
  // Starts at epoch 0; throws config_error when opt.batch < 1 or the shards do not divide it.
  batch_loader(const image_dataset& ds, loader_options opt) : ds_(&ds), opt_(opt) {
    if (opt_.batch < 1) throw config_error(sparsimix::detail::concat("batch_loader: batch is ", opt_.batch, ", expected >= 1"));
    if (opt_.shards < 1 || opt_.shard < 0 || opt_.shard >= opt_.shards || opt_.batch % opt_.shards != 0)
      throw config_error(sparsimix::detail::concat("batch_loader: shard ", opt_.shard, " of ", opt_.shards,
                                                   " with batch ", opt_.batch, ": the processes must divide the batch"));
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
    epoch_ = epoch;
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
    const index_t take = std::min(opt_.batch, n - pos_);
    if (take <= 0 || (opt_.drop_last && take < opt_.batch)) return false;
    const Shape is = ds_->image_shape();
    const index_t per = is.numel();
    const auto [lo, hi] = shard_range(take);
    images.resize(Shape{hi - lo, is[0], is[1], is[2]});
    labels.resize(static_cast<std::size_t>(hi - lo));
    for (index_t i = lo; i < hi; ++i)
      labels[static_cast<std::size_t>(i - lo)] =
          static_cast<index_t>(ds_->labels.data()[order_[static_cast<std::size_t>(pos_ + i)]]);
    if (ds_->streamed()) {
      next_streamed(take, images);
    } else {
      std::vector<float> skipped(opt_.augment && opt_.shards > 1 ? static_cast<std::size_t>(per) : 0);
      for (index_t i = 0; i < take; ++i) {
        const index_t src = order_[static_cast<std::size_t>(pos_ + i)];
        const bool mine = i >= lo && i < hi;
        // Other shards' examples still draw their augmentation, so every process's stream
        // matches the single-process run's.
        if (!mine && !opt_.augment) continue;
        float* dst = mine ? images.data() + (i - lo) * per : skipped.data();
        if (opt_.augment)
          augment(ds_->images.data() + src * per, dst, is[0], is[1], is[2]);
        else
          std::copy_n(ds_->images.data() + src * per, per, dst);
      }
    }
    pos_ += take;
    return true;
  }

  // Decoding throughput and waiting of a streamed dataset so far.
  const loader_stats& stats() const noexcept { return stats_; }

 private:
  // This process's examples [lo, hi) of a batch of `take`.
  std::pair<index_t, index_t> shard_range(index_t take) const {
    return {take * opt_.shard / opt_.shards, take * (opt_.shard + 1) / opt_.shards};
  }

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

  struct decoded_batch {
    Tensor<float> images;
    double seconds = 0;
  };
  struct pending_batch {
    index_t epoch, position;
    std::future<decoded_batch> result;
  };

  // Whether a batch starts at `position` of an epoch.
  bool batch_at(index_t position) const {
    const index_t take = std::min(opt_.batch, ds_->size() - position);
    return take > 0 && !(opt_.drop_last && take < opt_.batch);
  }

  // Epoch e's order, as start_epoch(e) makes it (for decoding the next epoch's first batches
  // before the caller starts it).
  std::vector<index_t> order_of(index_t epoch) const {
    std::vector<index_t> order(order_.size());
    std::iota(order.begin(), order.end(), index_t{0});
    Rng r;
    r.reseed(opt_.seed * 1000003ULL + static_cast<std::uint64_t>(epoch));
    if (opt_.shuffle) r.shuffle(order.begin(), order.end());
    return order;
  }

  // Starts decoding the batch at `position` of `epoch` (whose order is `order`) in the
  // background. The task holds copies of what it reads, so the loader stays movable.
  void launch(index_t epoch, index_t position, const std::vector<index_t>& order) {
    const auto [lo, hi] = shard_range(std::min(opt_.batch, ds_->size() - position));
    std::vector<index_t> idx(order.begin() + position + lo, order.begin() + position + hi);
    std::vector<std::uint64_t> seeds;
    if (opt_.augment) {
      // One stream per (seed, epoch, position): the same images whatever thread decodes them.
      seeds.resize(idx.size());
      for (index_t i = lo; i < hi; ++i) {
        const std::uint64_t x = opt_.seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(epoch) * 0xBF58476D1CE4E5B9ULL +
                                static_cast<std::uint64_t>(position + i);
        seeds[static_cast<std::size_t>(i - lo)] = x;  // Rng(seed) mixes it through splitmix64
      }
    }
    const image_dataset* ds = ds_;
    pending_.push_back({epoch, position, std::async(std::launch::async, [ds, idx = std::move(idx), seeds = std::move(seeds)] {
                          const auto t0 = std::chrono::steady_clock::now();
                          const Shape is = ds->image_shape();
                          decoded_batch b{Tensor<float>(Shape{static_cast<index_t>(idx.size()), is[0], is[1], is[2]})};
                          ds->load_batch(idx.data(), static_cast<index_t>(idx.size()), b.images.data(),
                                         seeds.empty() ? nullptr : seeds.data());
                          b.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                          return b;
                        })});
  }

  void next_streamed(index_t take, Tensor<float>& images) {
    while (!pending_.empty() && (pending_.front().epoch != epoch_ || pending_.front().position != pos_)) {
      pending_.front().result.wait();  // a batch of another epoch or position (after resume)
      pending_.pop_front();
    }
    if (pending_.empty()) launch(epoch_, pos_, order_);
    const auto t0 = std::chrono::steady_clock::now();
    decoded_batch b = pending_.front().result.get();  // rethrows a decoding error
    stats_.wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    pending_.pop_front();
    stats_.images += b.images.size(0);
    stats_.decode_seconds += b.seconds;
    images = std::move(b.images);
    // Keep `prefetch` batches decoding while the caller trains on this one, into the next
    // epoch when this one ends (small folders have few batches per epoch).
    index_t e = pending_.empty() ? epoch_ : pending_.back().epoch;
    index_t p = pending_.empty() ? pos_ : pending_.back().position;
    while (static_cast<index_t>(pending_.size()) < opt_.prefetch) {
      p += p == pos_ && e == epoch_ && pending_.empty() ? take : opt_.batch;
      if (!batch_at(p)) {
        ++e;
        p = 0;
        if (!batch_at(0)) return;
        if (next_order_epoch_ != e) {
          next_order_ = order_of(e);
          next_order_epoch_ = e;
        }
      }
      launch(e, p, e == epoch_ ? order_ : next_order_);
    }
  }

  const image_dataset* ds_;
  loader_options opt_;
  std::vector<index_t> order_;
  index_t pos_ = 0, epoch_ = 0;
  Rng rng_;
  std::deque<pending_batch> pending_;
  std::vector<index_t> next_order_;  // order of epoch next_order_epoch_ (prefetching across epochs)
  index_t next_order_epoch_ = -1;
  loader_stats stats_;
};

SPARSIMIX_ABI_END
}  // namespace sparsimix::data
