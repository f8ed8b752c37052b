// OpenBLAS sgemm throughput: the machine's practical float32 peak that docs/performance.md
// divides every GFLOP/s by. Square row-major C = A B at n = 512, 1024, 2048; threads from
// the command line (openblas_set_num_threads; OPENBLAS_NUM_THREADS is pinned too by run.sh).
// Prints one JSON object: {"threads": t, "results": [{"n": .., "median_s": .., "gflops": ..,
// "cpu_median_s": .., "cpu_gflops": ..}]}: wall time, and the calling thread's CPU time
// (with 1 thread OpenBLAS computes in the caller, so CPU time drops the time this process
// waited for a core on a shared machine).
// Build: g++ -O2 -march=native sgemm_peak.cpp -lopenblas
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

extern "C" void openblas_set_num_threads(int);

static double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 7;
  openblas_set_num_threads(threads);
  std::printf("{\"threads\": %d, \"results\": [", threads);
  bool first = true;
  for (int n : {512, 1024, 2048}) {
    std::vector<float> a(static_cast<std::size_t>(n) * n, 0.5f), b(a.size(), 0.25f), c(a.size());
    const double flop = 2.0 * n * n * static_cast<double>(n);
    const int inner = std::max(1, static_cast<int>(2e9 / flop));  // ~2 GFLOP per sample
    std::vector<double> t, tc;
    for (int r = 0; r < reps + 1; ++r) {
      const double c0 = thread_cpu_s();
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < inner; ++i)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f,
                    c.data(), n);
      const auto t1 = std::chrono::steady_clock::now();
      const double c1 = thread_cpu_s();
      if (r > 0) {  // r = 0: warm-up
        t.push_back(std::chrono::duration<double>(t1 - t0).count() / inner);
        tc.push_back((c1 - c0) / inner);
      }
    }
    std::sort(t.begin(), t.end());
    std::sort(tc.begin(), tc.end());
    const double med = t[t.size() / 2], cmed = tc[tc.size() / 2];
    std::printf("%s{\"n\": %d, \"median_s\": %.9g, \"gflops\": %.4g, \"best_gflops\": %.4g, \"cpu_median_s\": %.9g, "
                "\"cpu_gflops\": %.4g}",
                first ? "" : ", ", n, med, flop / med * 1e-9, flop / t.front() * 1e-9, cmed, flop / cmed * 1e-9);
    first = false;
  }
  std::printf("]}\n");
  return 0;
}
