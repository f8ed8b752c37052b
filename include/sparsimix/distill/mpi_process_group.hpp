// The process_group of data-parallel training over MPI (Open MPI from Debian: libopenmpi-dev,
// openmpi-bin), compiled only with SPARSIMIX_USE_MPI (CMake option SPARSIMIX_MPI, which links
// MPI::MPI_CXX): the library stays usable without MPI. Sums are MPI_Iallreduce calls, waited
// on with a deadline: a process that stops answering ends the job with MPI_Abort and a message
// instead of a hang. docs/distributed.md.
#pragma once
#if defined(SPARSIMIX_USE_MPI)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include <mpi.h>

#include "data_parallel.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// MPI_COMM_WORLD as a process_group. MPI must be initialised (and stays so) while it is used.
class mpi_process_group final : public process_group {
 public:
  // `timeout_seconds`: how long a sum may wait for the other processes before the job is
  // aborted (SPARSIMIX_MPI_TIMEOUT overrides it); SPARSIMIX_MPI_BUCKET sets the gradient
  // values per bucket.
  explicit mpi_process_group(double timeout_seconds = 300) : timeout_(timeout_seconds) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    if (const char* env = std::getenv("SPARSIMIX_MPI_TIMEOUT")) timeout_ = std::atof(env);
    if (const char* env = std::getenv("SPARSIMIX_MPI_BUCKET")) bucket_ = std::max<index_t>(1, std::atol(env));
  }
  index_t bucket_values() const override { return bucket_; }
  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return size_; }
  void start_sum(float* values, index_t n) override { start(values, n, MPI_FLOAT); }
  void start_sum(double* values, index_t n) override { start(values, n, MPI_DOUBLE); }
  void progress() override {
    if (requests_.empty()) return;
    int done = 0;
    MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE);
  }
  void wait_all() override {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_);
    int done = 0;
    while (!requests_.empty()) {
      MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE);
      if (done) break;
      if (std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr,
                     "sparsimix: process %d of %d: a gradient sum waited more than %.0f s for the other processes "
                     "(one stopped or hangs); aborting the job\n",
                     rank_, size_, timeout_);
        MPI_Abort(MPI_COMM_WORLD, 3);
      }
      std::this_thread::yield();
    }
    requests_.clear();
  }

 private:
  void start(void* values, index_t n, MPI_Datatype type) {
    if (size_ == 1) return;  // one process: the sum is the value
    MPI_Request r;
    MPI_Iallreduce(MPI_IN_PLACE, values, static_cast<int>(n), type, MPI_SUM, MPI_COMM_WORLD, &r);
    requests_.push_back(r);
  }

  int rank_ = 0, size_ = 1;
  double timeout_;
  index_t bucket_ = index_t{1} << 18;
  std::vector<MPI_Request> requests_;
};

SPARSIMIX_ABI_END
}  // namespace sparsimix
#endif
