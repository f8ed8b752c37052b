// oneDNN's LSTM primitive on the MultiHeadLSTM shapes: per head one bidirectional LSTM
// (input d, hidden d, directions concatenated), the three heads run one after another, as
// FAR's mixer needs. Inference forward only (prop_kind::forward_inference); the pre/post/
// head projections of the mixer are NOT included, so the comparison with sparsimix's whole
// MultiHeadLSTM::forward favours oneDNN. Threads: OMP_NUM_THREADS (pinned by run.sh).
// Usage: dnnl_lstm B N heads d reps. Prints one JSON object with the median wall time and
// the median calling-thread CPU time of one pass over all heads.
// Build: g++ -O2 -march=native dnnl_lstm.cpp -ldnnl
#include <dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

static double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

int main(int argc, char** argv) {
  const memory::dim B = argc > 1 ? std::atol(argv[1]) : 8, T = argc > 2 ? std::atol(argv[2]) : 197;
  const int heads = argc > 3 ? std::atoi(argv[3]) : 3;
  const memory::dim d = argc > 4 ? std::atol(argv[4]) : 64;
  const int reps = argc > 5 ? std::atoi(argv[5]) : 9;
  engine eng(engine::kind::cpu, 0);
  stream s(eng);

  const memory::desc src_md({T, B, d}, dt::f32, tag::tnc);
  const memory::desc dst_md({T, B, 2 * d}, dt::f32, tag::tnc);
  const memory::desc wl_any({1, 2, d, 4, d}, dt::f32, tag::any), wi_any({1, 2, d, 4, d}, dt::f32, tag::any);
  const memory::desc bias_md({1, 2, 4, d}, dt::f32, tag::ldgo);
  const lstm_forward::desc desc(prop_kind::forward_inference, rnn_direction::bidirectional_concat, src_md,
                                memory::desc(), memory::desc(), wl_any, wi_any, bias_md, dst_md, memory::desc(),
                                memory::desc());
  const lstm_forward::primitive_desc pd(desc, eng);
  const lstm_forward prim(pd);

  std::srand(1);
  auto fill = [](memory& m) {
    auto* p = static_cast<float*>(m.get_data_handle());
    const std::size_t n = m.get_desc().get_size() / sizeof(float);
    for (std::size_t i = 0; i < n; ++i) p[i] = (static_cast<float>(std::rand()) / RAND_MAX - 0.5f) * 0.25f;
  };
  std::vector<memory> src, dst, wl, wi, bias;
  for (int h = 0; h < heads; ++h) {
    src.emplace_back(src_md, eng);
    dst.emplace_back(dst_md, eng);
    memory wl_user({{1, 2, d, 4, d}, dt::f32, tag::ldigo}, eng), wi_user({{1, 2, d, 4, d}, dt::f32, tag::ldigo}, eng);
    fill(src.back());
    fill(wl_user);
    fill(wi_user);
    wl.emplace_back(pd.weights_layer_desc(), eng);
    wi.emplace_back(pd.weights_iter_desc(), eng);
    reorder(wl_user, wl.back()).execute(s, wl_user, wl.back());
    reorder(wi_user, wi.back()).execute(s, wi_user, wi.back());
    bias.emplace_back(bias_md, eng);
    fill(bias.back());
  }
  s.wait();
  auto pass = [&] {
    for (int h = 0; h < heads; ++h)
      prim.execute(s, {{DNNL_ARG_SRC_LAYER, src[h]},
                       {DNNL_ARG_WEIGHTS_LAYER, wl[h]},
                       {DNNL_ARG_WEIGHTS_ITER, wi[h]},
                       {DNNL_ARG_BIAS, bias[h]},
                       {DNNL_ARG_DST_LAYER, dst[h]}});
    s.wait();
  };
  pass();  // warm-up (kernel JIT, first-touch)
  std::vector<double> tw, tc;
  for (int r = 0; r < reps; ++r) {
    const double c0 = thread_cpu_s();
    const auto t0 = std::chrono::steady_clock::now();
    pass();
    const auto t1 = std::chrono::steady_clock::now();
    tc.push_back(thread_cpu_s() - c0);
    tw.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  std::sort(tw.begin(), tw.end());
  std::sort(tc.begin(), tc.end());
  std::printf("{\"B\": %ld, \"N\": %ld, \"heads\": %d, \"d\": %ld, \"median_s\": %.9g, \"cpu_median_s\": %.9g, "
              "\"impl\": \"%s\"}\n",
              static_cast<long>(B), static_cast<long>(T), heads, static_cast<long>(d), tw[tw.size() / 2],
              tc[tc.size() / 2], pd.impl_info_str());
  return 0;
}
