// Data-parallel training, independent of the transport: each process trains on its slice of
// every global batch, and the gradients are summed across processes in buckets that start as
// soon as backward has finished with them, while backward goes on (overlapping communication
// with computation, as PyTorch's DistributedDataParallel does). The transport is a
// process_group: MPI's in distill/mpi_process_group.hpp (CMake option SPARSIMIX_MPI), or a
// user's own. docs/distributed.md.
#pragma once
#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <vector>

#include "../autograd/tape.hpp"
#include "../core/error.hpp"
#include "../core/param.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// The processes of one data-parallel run and their sums.
class process_group {
 public:
  virtual ~process_group() = default;
  // This process's index, 0..size()-1; process 0 writes files and reports.
  virtual int rank() const noexcept = 0;
  // Number of processes.
  virtual int size() const noexcept = 0;
  // Starts summing `n` values in place across the processes (every process calls the same
  // starts in the same order); wait_all() completes them.
  virtual void start_sum(float* values, index_t n) = 0;
  // Same, for doubles.
  virtual void start_sum(double* values, index_t n) = 0;
  // Lets started sums advance (called between backward's nodes); may do nothing.
  virtual void progress() {}
  // Gradient values per bucket: smaller buckets start sooner, larger ones cost fewer calls
  // (docs/distributed.md models the trade-off). 2^18 floats (1 MiB) by default.
  virtual index_t bucket_values() const { return index_t{1} << 18; }
  // Completes every started sum.
  virtual void wait_all() = 0;
  // Sums in place and returns when done (metrics, counts).
  void sum(double* values, index_t n) {
    start_sum(values, n);
    wait_all();
  }
};

// Where the time of the gradient sums went, summed over steps.
struct gradient_sync_stats {
  index_t steps = 0;                // backward passes synchronised
  index_t buckets_in_backward = 0;  // buckets started before backward ended (overlapped)
  index_t buckets = 0;              // buckets started in all
  double wait_seconds = 0;          // time spent waiting for sums after backward
};

// The trainable gradients of a model in buckets of about `bucket_values` values, ordered by
// where backward finishes them (the tape's grad_positions(): the head's first, the patch
// embedding's last). Per step: prepare(tape) after the forward pass, node_done(i) from
// backward's callback, finish() after backward: every gradient then holds the mean over the
// processes, as if one process had run the whole global batch.
template <class T>
class gradient_buckets {
 public:
  // Takes the gradients of `trainable`, in buckets of group.bucket_values() values; `group`
  // must outlive this.
  gradient_buckets(process_group& group, ParamList<T> trainable)
      : group_(&group), trainable_(std::move(trainable)), bucket_values_(std::max<index_t>(1, group.bucket_values())) {}

  // Lays out the buckets from where this forward bound each gradient (the same on every
  // process, so every process starts the same sums in the same order).
  void prepare(const Tape<T>& tape) {
    std::map<const T*, index_t> first_use;
    for (const auto& [grad, at] : tape.grad_positions()) {
      auto [it, fresh] = first_use.emplace(grad, at);
      if (!fresh) it->second = std::min(it->second, at);
    }
    // Unbound gradients (not in this forward) are final from the start.
    std::vector<std::pair<index_t, std::size_t>> order;
    for (std::size_t k = 0; k < trainable_.size(); ++k) {
      const auto it = first_use.find(trainable_[k].grad.data());
      order.emplace_back(it == first_use.end() ? tape.num_nodes() : it->second, k);
    }
    std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<bucket> fresh;
    for (const auto& [at, k] : order) {
      const index_t n = trainable_[k].grad.numel();
      if (fresh.empty() || fresh.back().values + n > bucket_values_) fresh.push_back(bucket{});
      bucket& b = fresh.back();
      b.params.push_back(k);
      b.values += n;
      b.ready_at = std::min(b.ready_at, at);  // ready when its earliest-bound gradient is
    }
    // The same layout as the last step (the usual case): keep the buffers.
    const bool same = fresh.size() == buckets_.size() &&
                      std::equal(fresh.begin(), fresh.end(), buckets_.begin(),
                                 [](const bucket& a, const bucket& b) { return a.params == b.params; });
    if (same)
      for (std::size_t i = 0; i < fresh.size(); ++i) buckets_[i].ready_at = fresh[i].ready_at;
    else
      buckets_ = std::move(fresh);
    next_ = 0;
  }

  // Backward has run nodes num_nodes()-1 .. i: start every bucket that is now final.
  void node_done(index_t i) {
    // Started at node 0, a bucket overlaps nothing: backward has no node left.
    while (next_ < buckets_.size() && buckets_[next_].ready_at >= i) start(buckets_[next_++], i > 0);
    group_->progress();
  }

  // Starts what is left, waits for every sum and writes the means back into the gradients.
  void finish() {
    while (next_ < buckets_.size()) start(buckets_[next_++], false);
    const auto t0 = std::chrono::steady_clock::now();
    group_->wait_all();
    stats_.wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const T scale = T(1) / static_cast<T>(group_->size());
    for (auto& b : buckets_) {
      const T* src = b.flat.data();
      for (std::size_t k : b.params) {
        auto& g = trainable_[k].grad;
        for (index_t j = 0; j < g.numel(); ++j) g.data()[j] = src[j] * scale;
        src += g.numel();
      }
    }
    ++stats_.steps;
  }

  // Sums so far.
  const gradient_sync_stats& stats() const noexcept { return stats_; }

 private:
  struct bucket {
    std::vector<std::size_t> params;  // indices into trainable_
    index_t values = 0;
    index_t ready_at = std::numeric_limits<index_t>::max();
    std::vector<T> flat;  // the gradients, contiguous, summed in place
  };

  void start(bucket& b, bool in_backward) {
    b.flat.resize(static_cast<std::size_t>(b.values));
    T* dst = b.flat.data();
    for (std::size_t k : b.params) dst = std::copy_n(trainable_[k].grad.data(), trainable_[k].grad.numel(), dst);
    group_->start_sum(b.flat.data(), b.values);
    ++stats_.buckets;
    stats_.buckets_in_backward += in_backward;
  }

  process_group* group_;
  ParamList<T> trainable_;
  index_t bucket_values_;
  std::vector<bucket> buckets_;
  std::size_t next_ = 0;
  gradient_sync_stats stats_;
};

SPARSIMIX_ABI_END
}  // namespace sparsimix
