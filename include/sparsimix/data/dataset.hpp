// A labelled image set, held in memory (Fashion-MNIST: 60k images of 28x28 are 188 MB as
// floats) or streamed from an image_source that decodes one example at a time (image folders,
// CIFAR), so memory does not grow with the dataset. Every consumer reads images through
// copy_images / load_batch, which decode a source's examples on a pool of threads.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/rng.hpp"
#include "../core/tensor.hpp"

namespace sparsimix::data {
SPARSIMIX_ABI_BEGIN

// Examples decoded on demand. load() is called from several threads at once and must be
// safe to (it reads files or immutable memory).
class image_source {
 public:
  virtual ~image_source() = default;
  // Number of examples.
  virtual index_t size() const = 0;
  // One example's shape after preprocessing: [channels, height, width].
  virtual Shape image_shape() const = 0;
  // Writes example i (channels * height * width floats) to dst: the evaluation transform, or
  // the training transform drawn from `augment` when it is not null.
  virtual void load(index_t i, float* dst, Rng* augment) const = 0;
  // What example i is, for messages (a file name, "data_batch_2.bin record 17").
  virtual std::string describe(index_t i) const = 0;
  // A short description of the preprocessing, for reports (empty: none).
  virtual std::string preprocessing() const { return {}; }
};

// Images and labels [N]: `images` [N, C, H, W] in memory, or `source` (then `images` is
// empty) with example i at source index indices[i] (all of the source in order when
// `indices` is empty).
struct image_dataset {
  Tensor<float> images;                          // in memory: [N, C, H, W], normalised
  Tensor<std::int64_t> labels;                   // [N], class indices 0..classes-1
  std::shared_ptr<const image_source> source;    // streamed: decodes the images
  std::vector<index_t> indices;                  // streamed: source index of each example
  int decode_threads = 0;                        // streamed: decoding threads (0: all cores)

  // An empty dataset.
  image_dataset() = default;
  // Images held in memory.
  image_dataset(Tensor<float> imgs, Tensor<std::int64_t> labs) : images(std::move(imgs)), labels(std::move(labs)) {}
  // Images streamed from `src` (labels[i] belongs to source index idx[i], or to i).
  image_dataset(std::shared_ptr<const image_source> src, Tensor<std::int64_t> labs, std::vector<index_t> idx = {})
      : labels(std::move(labs)), source(std::move(src)), indices(std::move(idx)) {}

  // Number of examples N.
  index_t size() const noexcept { return labels.numel(); }
  // True when images are decoded on demand.
  bool streamed() const noexcept { return source != nullptr; }
  // One example's shape [C, H, W].
  Shape image_shape() const {
    if (source) return source->image_shape();
    const Shape& s = images.shape();
    return Shape{s[1], s[2], s[3]};
  }
  // Values per example (C * H * W).
  index_t image_numel() const { return image_shape().numel(); }
  // The source index of example i.
  index_t source_index(index_t i) const { return indices.empty() ? i : indices[static_cast<std::size_t>(i)]; }
  // What example i is (a file name for streamed data), for messages.
  std::string describe(index_t i) const {
    return source ? source->describe(source_index(i)) : sparsimix::detail::concat("image ", i);
  }

  // Examples idx[0..n) into dst ([n, C, H, W]); with `augment_seeds` (one per example) a
  // streamed source applies its training transform from Rng(seed). Streamed examples are
  // decoded on decode_threads threads; the first error is rethrown after all have stopped.
  void load_batch(const index_t* idx, index_t n, float* dst, const std::uint64_t* augment_seeds = nullptr) const {
    const index_t per = image_numel();
    if (!source) {
      for (index_t i = 0; i < n; ++i) std::copy_n(images.data() + idx[i] * per, per, dst + i * per);
      return;
    }
    auto one = [&](index_t i) {
      if (augment_seeds) {
        Rng rng(augment_seeds[i]);
        source->load(source_index(idx[i]), dst + i * per, &rng);
      } else {
        source->load(source_index(idx[i]), dst + i * per, nullptr);
      }
    };
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int threads = static_cast<int>(std::min<index_t>(n, decode_threads > 0 ? decode_threads : hw));
    if (threads <= 1) {
      for (index_t i = 0; i < n; ++i) one(i);
      return;
    }
    std::atomic<index_t> next{0};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto worker = [&] {
      for (index_t i; (i = next.fetch_add(1)) < n;) {
        try {
          one(i);
        } catch (...) {
          const std::lock_guard<std::mutex> lock(error_mutex);
          if (!error) error = std::current_exception();
          next.store(n);  // stop the others early
        }
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
    worker();
    for (auto& t : pool) t.join();
    if (error) std::rethrow_exception(error);
  }

  // Examples first..first+count-1 (evaluation transform) into dst, converted to T.
  template <class T>
  void copy_images(index_t first, index_t count, T* dst) const {
    const index_t per = image_numel();
    if constexpr (std::is_same_v<T, float>) {
      if (!source) {
        std::copy_n(images.data() + first * per, count * per, dst);
        return;
      }
    }
    std::vector<index_t> idx(static_cast<std::size_t>(count));
    for (index_t i = 0; i < count; ++i) idx[static_cast<std::size_t>(i)] = first + i;
    if constexpr (std::is_same_v<T, float>) {
      load_batch(idx.data(), count, dst);
    } else {
      std::vector<float> tmp(static_cast<std::size_t>(count * per));
      load_batch(idx.data(), count, tmp.data());
      std::copy(tmp.begin(), tmp.end(), dst);
    }
  }

  // Examples keep[0..] of this dataset (shares a streamed source; copies in-memory images).
  image_dataset subset(const std::vector<index_t>& keep) const {
    const index_t n = static_cast<index_t>(keep.size());
    Tensor<std::int64_t> labs(Shape{n});
    for (index_t i = 0; i < n; ++i) labs.data()[i] = labels.data()[keep[static_cast<std::size_t>(i)]];
    if (source) {
      std::vector<index_t> idx(keep.size());
      for (std::size_t i = 0; i < keep.size(); ++i) idx[i] = source_index(keep[i]);
      image_dataset out(source, std::move(labs), std::move(idx));
      out.decode_threads = decode_threads;
      return out;
    }
    const Shape s = image_shape();
    Tensor<float> imgs(Shape{n, s[0], s[1], s[2]});
    load_batch(keep.data(), n, imgs.data());
    return image_dataset(std::move(imgs), std::move(labs));
  }
};

// Fashion-MNIST statistics of the training set (pixel values scaled to [0, 1]).
inline constexpr float fashion_mnist_mean = 0.2860f;
inline constexpr float fashion_mnist_std = 0.3530f;  // their standard deviation

SPARSIMIX_ABI_END
}  // namespace sparsimix::data
