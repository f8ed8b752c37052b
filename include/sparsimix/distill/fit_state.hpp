// Resumable training: the complete state of a fit() run (the model's parameters, the
// optimizer's moments and step counts, the step, the data loader's epoch, position and
// augmentation stream, the best validation weights so far) in one safetensors file, written
// atomically. Resuming from it continues bit for bit on the same machine and thread count:
// the schedule, the batches and every update are those the uninterrupted run would make.
// The file is private to the program version that wrote it (parameters in the mixers'
// internal storage), unlike a checkpoint (docs/formats.md).
#pragma once
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "../autograd/optim.hpp"
#include "../core/rng.hpp"
#include "../io/safetensors.hpp"
#include "../models/vit.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Where fit() keeps its state (fit_options::checkpoint).
struct fit_checkpoint_options {
  std::string path;     // the state file; empty: no checkpoints
  index_t every = 0;    // write it every N steps (0: only when SIGINT/SIGTERM stops the run)
  bool resume = false;  // continue from `path` when it exists (else start at step 0)
};

// Everything fit() tracks besides the parameters and the optimizer.
struct fit_run_state {
  index_t step = 0;  // updates done
  index_t epoch = 0;  // the loader's epoch
  index_t loader_position = 0;  // the next example's position within the epoch
  Rng::state_type loader_rng;  // the augmentation stream
  double loss_ema = 0;  // smoothed loss, continued across the resume
  double best_val_accuracy = -1;  // best validation accuracy so far (-1: none yet)
  index_t best_step = -1;  // the step it was reached at (-1: none yet)
  double seconds = 0;  // training time of the processes before this one
};

namespace detail {
inline std::string u64_hex(std::uint64_t v) {
  char b[19];
  std::snprintf(b, sizeof b, "0x%016llx", static_cast<unsigned long long>(v));
  return b;
}
inline std::uint64_t double_bits(double d) {
  std::uint64_t u;
  std::memcpy(&u, &d, 8);
  return u;
}
inline double bits_double(std::uint64_t u) {
  double d;
  std::memcpy(&d, &u, 8);
  return d;
}
inline std::uint64_t parse_u64(const nlohmann::json& j, const char* key) {
  return std::stoull(j.at(key).get<std::string>(), nullptr, 16);
}

// SIGINT/SIGTERM set a flag while a checkpointing fit() runs; the loop saves and stops.
inline std::atomic<int>& stop_signal() {
  static std::atomic<int> s{0};
  return s;
}
inline void on_stop_signal(int sig) { stop_signal().store(sig); }

class stop_signal_scope {
 public:
  explicit stop_signal_scope(bool active) : active_(active) {
    if (!active_) return;
    stop_signal().store(0);
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  ~stop_signal_scope() {
    if (!active_) return;
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }
  stop_signal_scope(const stop_signal_scope&) = delete;
  stop_signal_scope& operator=(const stop_signal_scope&) = delete;

 private:
  bool active_;
  struct sigaction old_int_ {}, old_term_ {};
};
}  // namespace detail

// Writes the state atomically. `settings` (the fit options and the model config, as JSON)
// is stored so that a resume with other settings is refused. `best`: the best validation
// weights in model.parameters() order, or empty.
template <class T>
void save_fit_state(const std::string& path, const std::string& settings, HybridViT<T>& model, AdamW<T>& opt,
                    const fit_run_state& st, const std::vector<Tensor<T>>& best) {
  const io::dtype as = std::is_same_v<T, double> ? io::dtype::f64 : io::dtype::f32;
  io::safetensors_writer w;
  const ParamList<T> params = model.parameters();
  for (std::size_t k = 0; k < params.size(); ++k) {
    w.add<T>("param." + params[k].name, TensorView<const T>(params[k].value), as);
    if (!best.empty()) w.add("best." + params[k].name, best[k], as);
  }
  nlohmann::json groups = nlohmann::json::array();
  for (index_t g = 0; g < opt.num_groups(); ++g) {
    groups.push_back(opt.group_steps(g));
    for (std::size_t k = 0; k < opt.group_params(g).size(); ++k)
      for (int which = 1; which <= 2; ++which) {
        const Tensor<T>& s = opt.state_tensor(g, k, which);
        if (s.numel()) w.add(detail::concat("opt.", g, ".", k, ".", which), s, as);
      }
  }
  nlohmann::json rng = nlohmann::json::array();
  for (const auto v : st.loader_rng.s) rng.push_back(detail::u64_hex(v));
  const nlohmann::json meta{{"version", 1},
                            {"settings", settings},
                            {"step", st.step},
                            {"epoch", st.epoch},
                            {"loader_position", st.loader_position},
                            {"loader_rng", rng},
                            {"loader_rng_spare", detail::u64_hex(detail::double_bits(st.loader_rng.spare))},
                            {"loader_rng_has_spare", st.loader_rng.has_spare},
                            {"loss_ema", detail::u64_hex(detail::double_bits(st.loss_ema))},
                            {"best_val_accuracy", detail::u64_hex(detail::double_bits(st.best_val_accuracy))},
                            {"best_step", st.best_step},
                            {"seconds", st.seconds},
                            {"optimizer_group_steps", groups},
                            {"has_best", !best.empty()}};
  w.set_metadata("sparsimix.fit_state", meta.dump());
  w.write(path);
}

// Reads a state written by save_fit_state into the model, the optimizer (groups set up as
// when it was written), `st` and `best`. Throws config_error when `settings` differ and
// format_error when the file does not match the model.
template <class T>
void load_fit_state(const std::string& path, const std::string& settings, HybridViT<T>& model, AdamW<T>& opt,
                    fit_run_state& st, std::vector<Tensor<T>>& best) {
  const auto f = io::safetensors_file::load(path);
  const auto it = f.metadata().find("sparsimix.fit_state");
  if (it == f.metadata().end()) throw format_error(path + ": not a training state (no sparsimix.fit_state metadata)");
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(it->second);
    if (meta.at("version").get<int>() != 1) throw format_error(path + ": unknown training state version");
    if (meta.at("settings").get<std::string>() != settings)
      throw config_error(path + ": the training state was written by a run with other settings or another model; "
                                "resume with the same options, or delete it to start over");
    st.step = meta.at("step").get<index_t>();
    st.epoch = meta.at("epoch").get<index_t>();
    st.loader_position = meta.at("loader_position").get<index_t>();
    for (int i = 0; i < 4; ++i)
      st.loader_rng.s[i] = std::stoull(meta.at("loader_rng").at(static_cast<std::size_t>(i)).get<std::string>(), nullptr, 16);
    st.loader_rng.spare = detail::bits_double(detail::parse_u64(meta, "loader_rng_spare"));
    st.loader_rng.has_spare = meta.at("loader_rng_has_spare").get<bool>();
    st.loss_ema = detail::bits_double(detail::parse_u64(meta, "loss_ema"));
    st.best_val_accuracy = detail::bits_double(detail::parse_u64(meta, "best_val_accuracy"));
    st.best_step = meta.at("best_step").get<index_t>();
    st.seconds = meta.at("seconds").get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw format_error(path + ": broken training state metadata: " + e.what());
  }
  const ParamList<T> params = model.parameters();
  const bool has_best = meta.value("has_best", false);
  best.clear();
  for (const auto& p : params) {
    const auto v = f.get<T>("param." + p.name);
    if (v.numel() != p.value.numel())
      throw format_error(detail::concat(path, ": param.", p.name, " has ", v.numel(), " values, the model ",
                                        p.value.numel()));
    std::copy_n(v.data(), v.numel(), p.value.data());
    if (has_best) best.push_back(f.get<T>("best." + p.name));
  }
  const auto& groups = meta.at("optimizer_group_steps");
  if (static_cast<index_t>(groups.size()) != opt.num_groups())
    throw format_error(detail::concat(path, ": ", groups.size(), " optimizer groups, the run has ", opt.num_groups()));
  for (index_t g = 0; g < opt.num_groups(); ++g) {
    opt.set_group_steps(g, groups.at(static_cast<std::size_t>(g)).get<index_t>());
    for (std::size_t k = 0; k < opt.group_params(g).size(); ++k)
      for (int which = 1; which <= 2; ++which) {
        const std::string name = detail::concat("opt.", g, ".", k, ".", which);
        if (f.contains(name)) opt.state_tensor(g, k, which) = f.get<T>(name);
      }
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
