// What the `sparsimix` subcommands share: terminal output, checks of the values and paths a
// user gives (made before any work starts), the data splits, the student spec parser and
// the JSON pieces several reports carry.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "../data/open.hpp"
#include "../distill/prune.hpp"
#include "../experiment/budget.hpp"
#include "../io/file_checks.hpp"
#include "../models/cost.hpp"

namespace sparsimix::cli {
SPARSIMIX_ABI_BEGIN

// ---- terminal output ----------------------------------------------------------------------

inline std::string clock_str(double s) {
  const long t = static_cast<long>(s + 0.5);
  char b[32];
  std::snprintf(b, sizeof b, "%02ld:%02ld", t / 60, t % 60);
  return b;
}

// Data-parallel runs (`mpirun -np N sparsimix_mpi train|distill|prune`, docs/distributed.md):
// the process group the training phases share; null in a single process.
inline process_group*& parallel_group() noexcept {
  static process_group* group = nullptr;
  return group;
}
// Whether this process writes files and prints: the only one, or process 0 of a group.
inline bool is_writer() noexcept { return !parallel_group() || parallel_group()->rank() == 0; }

// One updating line on a terminal; a line every 10 s otherwise (logs stay readable).
inline void print_progress(const std::string& phase, const fit_progress& p) {
  if (!is_writer()) return;
  static const bool tty = ::isatty(2) != 0;
  static auto last = std::chrono::steady_clock::now() - std::chrono::hours(1);
  const auto now = std::chrono::steady_clock::now();
  const bool done = p.step == p.steps;
  if (!tty && !done && std::chrono::duration<double>(now - last).count() < 10) return;
  last = now;
  std::fprintf(stderr, "%s[%s] step %td/%td epoch %td loss %.4f acc %.3f lr %.2e %.0f img/s ETA %s%s",
               tty ? "\r\033[K" : "", phase.c_str(), p.step, p.steps, p.epoch, p.loss, p.batch_accuracy, p.lr,
               p.images_per_second, clock_str(p.eta_seconds).c_str(), (done || !tty) ? "\n" : "");
}

inline void log_line(const std::string& s) {
  if (is_writer()) std::fprintf(stderr, "%s\n", s.c_str());
}

// Resumable commands (--checkpoint-every N --resume): each training phase of a command keeps
// its whole state in OUT.<phase>.state (fit_options::checkpoint); after a kill, --resume
// reruns the command, and each phase continues from its file (a finished phase reruns only the
// steps after its last state, which gives the same weights). The files go once the command has
// written its outputs.
class resumable_phases {
 public:
  resumable_phases(std::string command, std::string out, index_t every, bool resume)
      : command_(std::move(command)), out_(std::move(out)), every_(every), resume_(resume) {}
  // Makes the phase `f` resumable under OUT.<phase>.state when the command asked for it.
  void attach(fit_options& f, const std::string& phase) {
    if (every_ <= 0 && !resume_) return;
    const std::string path = out_ + "." + phase + ".state";
    f.checkpoint = {path, every_, resume_};
    files_.push_back(path);
    if (resume_ && std::filesystem::exists(path)) log_line(command_ + ": resuming " + phase + " from " + path);
  }
  // The run is complete: nothing to resume.
  void remove_states() const {
    for (const auto& f : files_) {
      std::error_code ignored;
      std::filesystem::remove(f, ignored);
    }
  }

 private:
  std::string command_, out_;
  index_t every_ = 0;
  bool resume_ = false;
  std::vector<std::string> files_;
};

inline std::string read_text_file(const std::string& path, std::string_view what) {
  io::require_input_file(path, what);
  std::ifstream f(path);
  if (!f) throw io_error(detail::concat("cannot open ", what, " '", path, "'"));
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// ---- option values --------------------------------------------------------------------------
// A value the user gave on the command line, checked: `where` is the command ("train"),
// `option` the option ("--steps"); an unset optional means "the budget's".

inline index_t checked_at_least(std::string_view where, std::string_view option, index_t v, index_t min) {
  if (v < min) throw config_error(detail::concat(where, ": ", option, " is ", v, ", expected >= ", min));
  return v;
}
inline std::optional<index_t> checked_at_least(std::string_view where, std::string_view option,
                                               const std::optional<index_t>& v, index_t min) {
  if (v) checked_at_least(where, option, *v, min);
  return v;
}
inline std::optional<double> checked_positive(std::string_view where, std::string_view option,
                                              const std::optional<double>& v) {
  if (v && !(std::isfinite(*v) && *v > 0))
    throw config_error(detail::concat(where, ": ", option, " is ", *v, ", expected a finite value > 0"));
  return v;
}

// "0,2,5" -> {0, 2, 5}: comma-separated, distinct layer indices below `depth`.
inline std::vector<index_t> parse_layer_list(std::string_view where, const std::string& text, index_t depth) {
  std::vector<index_t> out;
  std::set<index_t> seen;
  std::size_t pos = 0;
  while (true) {
    const std::size_t end = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, end - pos);
    if (item.empty() || item.size() > 9 || !std::all_of(item.begin(), item.end(), [](char c) { return c >= '0' && c <= '9'; }))
      throw config_error(detail::concat(where, ": --layers '", text, "': '", item,
                                        "' is not a layer index (expected e.g. 0,2)"));
    const index_t l = std::stol(item);
    if (l >= depth)
      throw config_error(detail::concat(where, ": --layers '", text, "': layer ", l, " is out of range 0..", depth - 1));
    if (!seen.insert(l).second)
      throw config_error(detail::concat(where, ": --layers '", text, "': layer ", l, " is listed twice"));
    out.push_back(l);
    if (end == text.size()) break;
    pos = end + 1;
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---- data -----------------------------------------------------------------------------------

struct data_splits {
  data::image_dataset train, val, test;
};

// How --data's images become model inputs: image folders and CIFAR (docs/own-data.md);
// Fashion-MNIST keeps its own 28x28 normalisation and ignores them.
struct data_options {
  std::optional<double> crop_pct;      // unset: the format's (0.875 for folders, 1 for CIFAR)
  std::string interpolation = "bicubic";
  std::string rounding = "pil";        // pil (timm's) or tensor (torchvision's float path)
  std::string mean, std;               // "0.485,0.456,0.406"; empty: ImageNet's (0.5 for gray)
  double crop_scale_min = 0.08;        // training crop (--augment): smallest area fraction
  int decode_threads = 0;              // 0: one per core
};

// "0.5,0.5,0.5" as floats; throws config_error naming the option.
inline std::vector<float> parse_float_list(std::string_view option, const std::string& text) {
  std::vector<float> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t end = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, end - pos);
    char* stop = nullptr;
    const float v = std::strtof(item.c_str(), &stop);
    if (item.empty() || stop != item.c_str() + item.size() || !std::isfinite(v))
      throw config_error(detail::concat(option, " '", text, "': '", item, "' is not a number (expected e.g. 0.5,0.5,0.5)"));
    out.push_back(v);
    pos = end + 1;
  }
  return out;
}

// The preprocessing the options ask for, for a model of config `c` (crop_pct unset:
// `default_crop_pct`), checked.
inline data::preprocess_options make_preprocess(const data_options& o, const vit_config& c, double default_crop_pct) {
  data::preprocess_options p;
  p.img_size = c.img_size;
  p.channels = c.in_chans;
  p.crop_pct = o.crop_pct.value_or(default_crop_pct);
  p.interp = data::parse_interpolation(o.interpolation);
  p.rounding = data::parse_resize_rounding(o.rounding);
  if (!o.mean.empty()) p.mean = parse_float_list("--mean", o.mean);
  if (!o.std.empty()) p.std = parse_float_list("--std", o.std);
  p.scale_min = o.crop_scale_min;
  if (c.in_chans != 1 && c.in_chans != 3)
    throw config_error(detail::concat("the model takes ", c.in_chans, " input channels; images can give 1 (gray) or 3 (RGB)"));
  p.check();
  return p;
}

// The preprocessing of `dir`'s images for a model of config `c` (Fashion-MNIST ignores it).
inline data::preprocess_options preprocess_for(const std::string& dir, const data_options& o, const vit_config& c) {
  const auto format = data::detect_dataset_format(dir);
  if (format == data::dataset_format::fashion_mnist) return data::preprocess_options{};
  return make_preprocess(o, c, data::default_crop_pct(format));
}

// A data-parallel run's processes and how its gradient sums went (docs/distributed.md).
inline void add_parallel(nlohmann::ordered_json& j, const fit_result& r) {
  if (!parallel_group()) return;
  j["processes"] = parallel_group()->size();
  j["gradient_sync_wait_seconds"] = r.sync_wait_seconds;
  j["gradient_buckets_overlapped"] = r.overlapped_buckets;
}

// Float option values as typed (0.485, not 0.48500001430511475).
inline std::vector<double> rounded(const std::vector<float>& v) {
  std::vector<double> out;
  for (float x : v) out.push_back(std::strtod(detail::concat(x).c_str(), nullptr));
  return out;
}

// The data and its preprocessing as reports record them (config.json, OUT.json).
inline nlohmann::ordered_json data_json(const std::string& dir, const data_options& o, const vit_config& c) {
  const auto format = data::detect_dataset_format(dir);
  nlohmann::ordered_json j{{"dir", dir}, {"format", std::string(to_string(format))}};
  if (format == data::dataset_format::fashion_mnist) {
    j["preprocessing"] = {{"normalize", {{"mean", data::fashion_mnist_mean}, {"std", data::fashion_mnist_std}}}};
    return j;
  }
  const auto p = preprocess_for(dir, o, c);
  j["preprocessing"] = {{"img_size", p.img_size},
                        {"channels", p.channels},
                        {"eval", {{"resize", p.resize_size()}, {"crop_pct", p.crop_pct}, {"center_crop", p.img_size}}},
                        {"augment_transform", {{"random_resized_crop", {{"scale", {p.scale_min, p.scale_max}},
                                                                      {"ratio", {p.ratio_min, p.ratio_max}}}},
                                           {"horizontal_flip", 0.5}}},
                        {"interpolation", std::string(to_string(p.interp))},
                        {"antialias", true},
                        {"resize_rounding", std::string(to_string(p.rounding))},
                        {"mean", rounded(p.effective_mean())},
                        {"std", rounded(p.effective_std())}};
  return j;
}

// Training images with the budget's validation images held out, and the test split, of the
// data in `dir` preprocessed for a model of config `c` (data/open.hpp).
inline data_splits load_splits(const std::string& dir, const budget& b, const data_options& o, const vit_config& c) {
  const auto pre = preprocess_for(dir, o, c);
  auto [tr, va] = data::load_train_val(dir, pre, b.val_size, b.train_limit);
  data_splits d{std::move(tr), std::move(va), data::load_dataset(dir, "test", pre, b.test_limit)};
  for (auto* ds : {&d.train, &d.val, &d.test}) ds->decode_threads = o.decode_threads;
  return d;
}

// The demo's data: Fashion-MNIST only (its teacher is a 28x28 gray model).
inline data_splits load_splits(const std::string& dir, const budget& b) {
  if (data::detect_dataset_format(dir) != data::dataset_format::fashion_mnist)
    throw config_error(detail::concat("--data '", dir, "': the demo runs on Fashion-MNIST; for your own images use "
                                      "train, sparsity, distill and eval (docs/own-data.md)"));
  return load_splits(dir, b, data_options{}, b.teacher);
}

// One split ("train" or "test") of `dir` for a model of config `c`; `limit` > 0 keeps the first.
inline data::image_dataset load_split(const std::string& dir, const std::string& split, const data_options& o,
                                      const vit_config& c, index_t limit = 0) {
  auto ds = data::load_dataset(dir, split, preprocess_for(dir, o, c), limit);
  ds.decode_threads = o.decode_threads;
  return ds;
}

// The model reads the data's images and labels: [in_chans, img, img] and classes
// 0..num_classes-1 (checked before any work; the forward pass would say it later, in
// terms of tensors rather than of the model and the data).
inline void check_model_fits_data(std::string_view where, const vit_config& c, const data::image_dataset& ds) {
  const Shape is = ds.image_shape();
  std::int64_t max_label = -1;
  for (index_t i = 0; i < ds.labels.numel(); ++i) max_label = std::max(max_label, ds.labels.data()[i]);
  const bool shape_ok = is.rank() == 3 && is[0] == c.in_chans && is[1] == c.img_size && is[2] == c.img_size;
  if (!shape_ok || max_label >= c.num_classes)
    throw config_error(detail::concat(where, ": the model takes [", c.in_chans, ", ", c.img_size, ", ", c.img_size,
                                      "] images of ", c.num_classes, " classes; the data has ", is.str(), " images of ",
                                      max_label + 1, " classes"));
}

// "mh_lstm" or "selective_scan:d_state=8,bidirectional=false": a registered kind, starting
// from the experiment's default student of that kind (default_students()) when it has one.
inline mixer_spec student_spec(const std::string& text) {
  const auto colon = text.find(':');
  const std::string kind = text.substr(0, colon);
  mixer_registry::instance().at(kind, "--mixer");
  std::vector<mixer_option> opts;
  for (const auto& d : default_students())
    if (d.kind() == kind) opts = d.options();
  if (colon != std::string::npos) {
    for (const auto& item : parse_mixer_options(text.substr(colon + 1), "--mixer")) {
      auto it = std::find_if(opts.begin(), opts.end(), [&](const mixer_option& o) { return o.name == item.name; });
      if (it != opts.end()) it->value = item.value;
      else opts.push_back(item);
    }
  }
  return normalize_spec(mixer_spec(kind, std::move(opts)), "--mixer " + text);
}

// ---- report pieces --------------------------------------------------------------------------

// params, nonzero_params, stored_params (models/pruning.hpp, docs/report.md), and
// multiply_adds per image (models/cost.hpp; null when a custom mixer does not count them).
inline void add_parameter_counts(nlohmann::ordered_json& j, HybridViT<float>& model) {
  const auto c = count_parameters(model);
  j["params"] = c.params;
  j["nonzero_params"] = c.nonzero_params;
  j["stored_params"] = c.stored_params;
  if (const auto m = count_multiply_adds(model))
    j["multiply_adds"] = *m;
  else
    j["multiply_adds"] = nullptr;
}

// {block, widths: [[fwd per head], [bwd per head]]} per mh_lstm block (docs/pruning.md).
inline nlohmann::ordered_json widths_json(const pruning_summary& s) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& [block, w] : s.widths) {
    const std::size_t H = w.size() / 2;
    std::vector<index_t> fwd(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(H)),
        bwd(w.begin() + static_cast<std::ptrdiff_t>(H), w.end());
    out.push_back({{"block", block}, {"widths", {fwd, bwd}}});
  }
  return out;
}

// Retention keys of a halting model's evaluation (docs/report.md); nothing without halting.
inline void add_retention(nlohmann::ordered_json& j, const eval_result& e) {
  if (e.retention.empty()) return;
  j["mean_retention"] = e.mean_retention();
  j["retention_per_layer"] = e.retention;
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::cli
