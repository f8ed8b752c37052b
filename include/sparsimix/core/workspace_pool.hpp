// The scratch buffers of const inference, shared safely between threads. A mixer or model
// keeps its inference workspaces (buffers that only grow, so a steady state of same-sized
// calls allocates nothing) in a pool: each forward leases one for its duration, and calls
// running at the same time on different threads lease different ones. After warm-up with k
// concurrent callers the pool holds k workspaces and a forward allocates nothing again.
// Copying the owner starts an empty pool: workspaces are caches, not state.
#pragma once
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "../fwd.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

namespace detail {
// A mutex a class can hold and stay copyable: a copy gets a fresh, unlocked mutex.
struct copyable_mutex {
  std::mutex m;
  copyable_mutex() = default;
  // A fresh mutex.
  copyable_mutex(const copyable_mutex&) noexcept {}
  // Keeps its own mutex.
  copyable_mutex& operator=(const copyable_mutex&) noexcept { return *this; }
};
}  // namespace detail

// A mutex-guarded free list of default-constructed W, leased out one per concurrent caller.
template <class W>
class workspace_pool {
 public:
  // One workspace, owned by the caller until it goes out of scope and returns to the pool.
  class lease {
   public:
    // Takes the workspace over from `o`.
    lease(lease&& o) noexcept : pool_(o.pool_), w_(std::move(o.w_)) {}
    lease(const lease&) = delete;             // one owner at a time
    lease& operator=(const lease&) = delete;  // one owner at a time
    lease& operator=(lease&&) = delete;       // one owner at a time
    // Returns the workspace to the pool.
    ~lease() {
      if (w_) pool_->give_back(std::move(w_));
    }
    // The leased workspace.
    W& operator*() const noexcept { return *w_; }
    // The leased workspace's members.
    W* operator->() const noexcept { return w_.get(); }

   private:
    friend class workspace_pool;
    lease(const workspace_pool* pool, std::unique_ptr<W> w) noexcept : pool_(pool), w_(std::move(w)) {}
    const workspace_pool* pool_;
    std::unique_ptr<W> w_;
  };

  workspace_pool() = default;  // empty
  // A copy starts empty (workspaces are caches).
  workspace_pool(const workspace_pool&) noexcept {}
  // So does a moved-to pool.
  workspace_pool(workspace_pool&&) noexcept {}
  // Keeps its own workspaces.
  workspace_pool& operator=(const workspace_pool&) noexcept { return *this; }
  // Keeps its own workspaces.
  workspace_pool& operator=(workspace_pool&&) noexcept { return *this; }

  // A free workspace, or a new one when every workspace is leased. Thread-safe.
  lease acquire() const {
    std::unique_ptr<W> w;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!free_.empty()) {
        w = std::move(free_.back());
        free_.pop_back();
      }
    }
    if (!w) w = std::make_unique<W>();
    return lease(this, std::move(w));
  }

  // Workspaces waiting in the pool (not leased); after k concurrent callers, k.
  std::size_t idle() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return free_.size();
  }

 private:
  void give_back(std::unique_ptr<W> w) const noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    try {
      free_.push_back(std::move(w));
    } catch (...) {  // out of memory for the free list: drop the workspace, the next call makes one
    }
  }

  mutable std::mutex mutex_;
  mutable std::vector<std::unique_ptr<W>> free_;
};

SPARSIMIX_ABI_END
}  // namespace sparsimix
