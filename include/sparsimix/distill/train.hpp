// Training and evaluation loops for HybridViT classifiers: one fit() loop (AdamW, cosine
// schedule with linear warm-up, gradient clipping, progress reports) that teacher training
// and both distillation stages use with their own loss.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <cstdint>
#include <vector>

#include "../autograd/optim.hpp"
#include "../autograd/schedule.hpp"
#include "../autograd/tape.hpp"
#include "../models/vit.hpp"
#include "../models/pruning.hpp"
#include "../data/loader.hpp"
#include "../io/model_config.hpp"
#include "data_parallel.hpp"
#include "fit_state.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// A model's score on a dataset: accuracy, mean loss and, for A-ViT models, token retention.
struct eval_result {
  double accuracy = 0;  // fraction in [0, 1]
  double loss = 0;      // mean cross-entropy
  index_t count = 0;    // examples evaluated
  // A-ViT models only (empty otherwise): per block, the fraction of patch tokens it processed
  // (FAR's keep_ratio), over the evaluated images.
  std::vector<double> retention;
  // Mean of `retention` over blocks: the fraction of the dense model's patch-token work done
  // (1 without halting).
  double mean_retention() const {
    if (retention.empty()) return 1.0;
    double s = 0;
    for (double r : retention) s += r;
    return s / static_cast<double>(retention.size());
  }
};

// The batch evaluate() runs in: at 64 a block's activations stay in cache, and on the 2-core
// VM the teacher and a pruned hybrid evaluated 10,000 test images 20% faster than in batches
// of 500, with the same accuracies and losses to the last bit (a row's value depends on the
// batch only through the GEMMs' SIMD tails, and 64 x 50 tokens leave none).
inline constexpr index_t default_eval_batch = 64;

// Accuracy and mean cross-entropy over `limit` examples (0: all), in batches; for a halting
// model also the token retention per block. `correct`, when given, receives 1 per example
// classified right and 0 otherwise (paired comparisons between models, experiment/study.hpp).
template <class T>
eval_result evaluate(const HybridViT<T>& model, const data::image_dataset& ds, index_t batch = default_eval_batch, index_t limit = 0,
                     std::vector<std::uint8_t>* correct = nullptr) {
  const index_t n = limit > 0 ? std::min(limit, ds.size()) : ds.size();
  const index_t classes = model.config().num_classes;
  const Shape is = ds.image_shape();
  Tensor<T> images, logits;
  eval_result r;
  double loss = 0;
  index_t right = 0;
  if (correct) correct->assign(static_cast<std::size_t>(n), 0);
  for (index_t start = 0; start < n; start += batch) {
    const index_t b = std::min(batch, n - start);
    images.resize(Shape{b, is[0], is[1], is[2]});
    ds.copy_images(start, b, images.data());
    logits.resize(Shape{b, classes});
    model.forward(images.view(), logits.view());
    if (model.config().halting) {
      const auto& h = model.halting();
      r.retention.resize(static_cast<std::size_t>(model.depth()), 0.0);
      for (index_t l = 0; l < model.depth(); ++l)
        r.retention[static_cast<std::size_t>(l)] += h.keep_ratio(l) * static_cast<double>(b);
    }
    for (index_t i = 0; i < b; ++i) {
      const T* z = logits.data() + i * classes;
      const index_t y = static_cast<index_t>(ds.labels.data()[start + i]);
      const index_t pred = std::max_element(z, z + classes) - z;
      right += pred == y;
      if (correct) (*correct)[static_cast<std::size_t>(start + i)] = pred == y;
      const double mx = static_cast<double>(z[pred]);
      double se = 0;
      for (index_t c = 0; c < classes; ++c) se += std::exp(static_cast<double>(z[c]) - mx);
      loss += mx + std::log(se) - static_cast<double>(z[y]);
    }
  }
  r.count = n;
  for (auto& v : r.retention) v /= static_cast<double>(n);
  r.accuracy = n ? static_cast<double>(right) / static_cast<double>(n) : 0.0;
  r.loss = n ? loss / static_cast<double>(n) : 0.0;
  return r;
}

// evaluate() split over the processes of `group`: each runs its contiguous share of the
// first `limit` examples (0: all) and the counts are summed, so every process gets the
// accuracy one process would (the loss and retention to float rounding).
template <class T>
eval_result evaluate_shared(const HybridViT<T>& model, const data::image_dataset& ds, process_group& group,
                            index_t limit = 0) {
  const index_t n = limit > 0 ? std::min(limit, ds.size()) : ds.size();
  const index_t p = group.size(), r = group.rank();
  std::vector<index_t> mine;
  for (index_t i = n * r / p; i < n * (r + 1) / p; ++i) mine.push_back(i);
  eval_result part = mine.empty() ? eval_result{} : evaluate(model, ds.subset(mine), default_eval_batch);
  const std::size_t L = static_cast<std::size_t>(model.depth());
  std::vector<double> sums(2 + (model.config().halting ? L : 0), 0.0);
  const double count = static_cast<double>(mine.size());
  sums[0] = part.accuracy * count;
  sums[1] = part.loss * count;
  for (std::size_t l = 0; l + 2 < sums.size() && l < part.retention.size(); ++l) sums[2 + l] = part.retention[l] * count;
  group.sum(sums.data(), static_cast<index_t>(sums.size()));
  eval_result all;
  all.count = n;
  const double total = static_cast<double>(std::max<index_t>(n, 1));
  all.accuracy = std::round(sums[0]) / total;  // a count of correct images
  all.loss = sums[1] / total;
  for (std::size_t l = 2; l < sums.size(); ++l) all.retention.push_back(sums[l] / total);
  return all;
}

// Median wall-clock milliseconds of a batch-1 inference forward (after warm-up).
template <class T>
double measure_latency_ms(const HybridViT<T>& model, const data::image_dataset& ds, int runs = 50) {
  const Shape is = ds.image_shape();
  Tensor<T> image(Shape{1, is[0], is[1], is[2]}), logits(Shape{1, model.config().num_classes});
  ds.copy_images(0, 1, image.data());
  for (int i = 0; i < 5; ++i) model.forward(image.view(), logits.view());
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    model.forward(image.view(), logits.view());
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(ms.begin(), ms.begin() + runs / 2, ms.end());
  return ms[static_cast<std::size_t>(runs / 2)];
}

// Images per second of batched inference (median of `runs` batches of `batch` test images).
template <class T>
double measure_throughput(const HybridViT<T>& model, const data::image_dataset& ds, index_t batch, int runs = 5) {
  const index_t b = std::min(batch, ds.size());
  const Shape is = ds.image_shape();
  Tensor<T> images(Shape{b, is[0], is[1], is[2]}), logits(Shape{b, model.config().num_classes});
  ds.copy_images(0, b, images.data());
  model.forward(images.view(), logits.view());
  std::vector<double> s;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    model.forward(images.view(), logits.view());
    s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(s.begin(), s.begin() + runs / 2, s.end());
  return static_cast<double>(b) / s[static_cast<std::size_t>(runs / 2)];
}

// A model's speed, as measure_speeds reports it.
struct speed_result {
  double latency_ms = 0;    // median batch-1 forward, milliseconds
  double images_per_s = 0;  // median throughput at the timed batch size
};

// Speeds of several models timed side by side: `rounds` rounds each go through every model in
// turn (latency_runs / rounds batch-1 forwards, at least 3, and 3 batches of `batch` after a
// warm-up), and each number is the median over the rounds, so a noisy moment of the machine
// hits every model of one round instead of making one model look slow.
template <class T>
std::vector<speed_result> measure_speeds(const std::vector<const HybridViT<T>*>& models, const data::image_dataset& ds,
                                         index_t batch, int rounds, int latency_runs) {
  rounds = std::max(1, rounds);
  const int runs = std::max(3, latency_runs / rounds);
  std::vector<std::vector<double>> lat(models.size()), ips(models.size());
  for (int round = 0; round < rounds; ++round)
    for (std::size_t i = 0; i < models.size(); ++i) {
      lat[i].push_back(measure_latency_ms(*models[i], ds, runs));
      ips[i].push_back(measure_throughput(*models[i], ds, batch, 3));
    }
  auto median = [](std::vector<double> x) {
    std::nth_element(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(x.size() / 2), x.end());
    return x[x.size() / 2];
  };
  std::vector<speed_result> out(models.size());
  for (std::size_t i = 0; i < models.size(); ++i) out[i] = {median(lat[i]), median(ips[i])};
  return out;
}

// The training recipe of one fit(): budget, AdamW and schedule, data, validation, checkpoints.
struct fit_options {
  index_t steps = 1000;          // optimizer updates (the fixed budget)
  index_t batch = 128;           // examples per step
  double lr = 1e-3;              // peak learning rate, reached after warm-up
  double weight_decay = 0.05;    // AdamW's decoupled weight decay
  double warmup_fraction = 0.05;  // share of `steps` spent in linear warm-up
  double min_lr = 1e-5;          // where the cosine decay ends
  double clip_norm = 1.0;        // <= 0: no clipping
  bool augment = false;          // random shifts and flips of the training images
  std::uint64_t seed = 0;        // data order and augmentation
  index_t eval_every = 0;        // steps between validation runs (0: only at the end)
  index_t eval_limit = 0;        // validation examples per run (0: all)
  halting_loss_options halting;  // A-ViT loss weights, used when the model halts tokens
  // FAR's Hoyer-Square regulariser over the LSTM units (models/pruning.hpp), added to the loss
  // with this weight (0: off; FAR uses 5e-5).
  double hoyer_square = 0;
  // End with the weights of the best validation run (not the last step's); needs `val`.
  bool restore_best = false;
  // Resumable runs: the state file, how often to write it, whether to continue from it.
  fit_checkpoint_options checkpoint;
  // Data-parallel training (distill/data_parallel.hpp): each process of the group trains on
  // its slice of every batch and gradients are averaged across them, giving the run one
  // process would (the same global batch and learning rate); only process 0 writes state
  // files. Null: one process. Not owned.
  process_group* parallel = nullptr;
  // Layer-parallel training (distill_options::layer_parallel): the processes train different
  // parameters on the same batches; gradient clipping uses the norm over all of them. Not owned.
  process_group* shared_norm = nullptr;
};

// What fit() reports about once a second (on_progress), for progress lines and logs.
struct fit_progress {
  index_t step = 0, steps = 0, epoch = 0;  // steps done of `steps`, in data epoch `epoch`
  // Smoothed loss, last batch's accuracy, current lr, images/s, seconds left and seconds spent.
  double loss = 0, batch_accuracy = 0, lr = 0, images_per_second = 0, eta_seconds = 0, elapsed_seconds = 0;
};

// What a fit() run did: its length, speed, final loss and best validation run.
struct fit_result {
  index_t steps = 0;              // optimizer updates in total, resumed ones included
  double seconds = 0, images_per_second = 0, final_loss = 0;  // time, throughput, smoothed loss
  double best_val_accuracy = -1;  // -1 without validation
  index_t best_step = -1;         // step of best_val_accuracy (-1 without validation)
  // Streamed data (image folders, CIFAR): images decoded per second of decoding wall time (in
  // the background, overlapping training) and the seconds training waited for a batch.
  double decode_images_per_second = 0, data_wait_seconds = 0;
  // Data-parallel runs: seconds waiting for gradient sums after backward, and the share of
  // gradient buckets whose sum started while backward was still running.
  double sync_wait_seconds = 0, overlapped_buckets = 0;
};

namespace detail {

// Where the forward pass on `images` first overflows, for the error that stops a diverging
// run: "the output of block 2's mixer (mh_lstm)", "the output of block 2 (after its MLP)" or
// "the logits"; empty when the inference forward stays in range (the trouble is then in the
// loss itself). An activation overflows when it is not finite or beyond sqrt(max) (1.8e19 in
// float), where the next layernorm's variance does: the block that produced it is named,
// not the one whose layernorm turned it into NaN.
template <class T>
std::string first_nonfinite_activation(const HybridViT<T>& model, const Tensor<T>& images) {
  vit_capture<T> cap;
  cap.blocks = cap.mixers = true;
  Tensor<T> logits(Shape{images.size(0), model.config().num_classes});
  model.forward(images.view(), logits.view(), &cap);
  const T limit = std::sqrt(std::numeric_limits<T>::max());
  auto finite = [limit](const Tensor<T>& t) {
    return std::all_of(t.begin(), t.end(), [limit](T v) { return std::isfinite(v) && std::abs(v) <= limit; });
  };
  for (index_t l = 0; l < model.depth(); ++l) {
    const auto i = static_cast<std::size_t>(l);
    if (!finite(cap.mixer_out[i])) {
      const std::optional<mixer_spec> spec = spec_of(model.mixer(l));
      return sparsimix::detail::concat("the output of block ", l, "'s mixer (",
                                       spec ? spec->kind() : std::string("an unregistered mixer"), ")");
    }
    if (!finite(cap.block_out[i])) return sparsimix::detail::concat("the output of block ", l, " (after its MLP)");
  }
  return finite(logits) ? std::string() : std::string("the logits (final norm and head)");
}

}  // namespace detail

// The loss of one batch on the tape; may set batch_accuracy (fraction) for progress lines.
template <class T>
using batch_loss_fn = std::function<Var(Tape<T>&, const Tensor<T>& images, const std::vector<index_t>& labels,
                                        double& batch_accuracy)>;

// What a resumed run must share with the run that wrote the state: every fit option that
// changes the numbers, the training set's size and the model's config (doubles in hex, exact).
template <class T>
std::string fit_settings_fingerprint(const HybridViT<T>& model, const fit_options& o, index_t train_size) {
  auto x = [](double v) {
    char b[40];
    std::snprintf(b, sizeof b, "%a", v);
    return std::string(b);
  };
  return detail::concat("steps=", o.steps, " batch=", o.batch, " lr=", x(o.lr), " wd=", x(o.weight_decay),
                        " warmup=", x(o.warmup_fraction), " min_lr=", x(o.min_lr), " clip=", x(o.clip_norm),
                        " augment=", o.augment, " seed=", o.seed, " eval_every=", o.eval_every,
                        " eval_limit=", o.eval_limit, " ponder=", x(o.halting.ponder_weight),
                        " prior=", x(o.halting.prior_weight), " target_depth=", o.halting.target_depth,
                        " hoyer=", x(o.hoyer_square), " restore_best=", o.restore_best, " train=", train_size,
                        " scalar=", sizeof(T), " model=", io::to_string(model.config()));
}

// Runs `opt.steps` AdamW updates of `params` (groups already set up by the caller) on
// batches of `train`, calling on_progress about every second and on_eval(step, result) after
// each validation run (which may save a checkpoint and returns nothing).
template <class T>
fit_result fit(HybridViT<T>& model, AdamW<T>& optimizer, const data::image_dataset& train, const data::image_dataset* val,
               const fit_options& opt, const batch_loss_fn<T>& batch_loss,
               const std::function<void(const fit_progress&)>& on_progress = {},
               const std::function<void(index_t, const eval_result&)>& on_eval = {}) {
  if (opt.steps < 1) throw config_error(detail::concat("fit: steps is ", opt.steps, ", expected >= 1"));
  data::loader_options lo;
  lo.batch = opt.batch;
  lo.augment = opt.augment;
  lo.seed = opt.seed;
  if (opt.parallel) {
    if (opt.batch % opt.parallel->size() != 0)
      throw config_error(detail::concat("fit: batch ", opt.batch, " does not split over ", opt.parallel->size(),
                                        " processes (give a batch that is a multiple of the process count)"));
    lo.shard = opt.parallel->rank();
    lo.shards = opt.parallel->size();
  }
  data::batch_loader loader(train, lo);
  if (loader.batches_per_epoch() < 1)
    throw config_error(detail::concat("fit: ", train.size(), " examples make no batch of ", opt.batch));
  const auto warmup = static_cast<index_t>(std::lround(opt.warmup_fraction * static_cast<double>(opt.steps)));
  const cosine_schedule schedule(opt.lr, opt.steps, std::min(warmup, opt.steps), std::min(opt.min_lr, opt.lr));
  const ParamList<T> trainable = optimizer.trainable();
  std::optional<gradient_buckets<T>> sync;
  if (opt.parallel) sync.emplace(*opt.parallel, trainable);
  Tape<T> tape;
  tape.track_grad_positions(sync.has_value());
  Tensor<float> images_f;
  Tensor<T> images;
  std::vector<index_t> labels;
  fit_result res;
  index_t epoch = 0;
  double loss_ema = 0, seconds_before = 0;
  index_t first_step = 0;
  // Resumable runs (fit_state.hpp): the settings a state file must match, the best weights.
  const bool checkpointing = !opt.checkpoint.path.empty();
  if (opt.restore_best && !val) throw config_error("fit: restore_best needs validation data");
  std::vector<Tensor<T>> best;
  const std::string settings = checkpointing ? fit_settings_fingerprint(model, opt, train.size()) : std::string();
  if (checkpointing && opt.checkpoint.resume && std::filesystem::exists(opt.checkpoint.path)) {
    fit_run_state st;
    load_fit_state(opt.checkpoint.path, settings, model, optimizer, st, best);
    first_step = st.step;
    epoch = st.epoch;
    loader.resume(st.epoch, st.loader_position, st.loader_rng);
    loss_ema = st.loss_ema;
    res.best_val_accuracy = st.best_val_accuracy;
    res.best_step = st.best_step;
    res.final_loss = loss_ema;
    seconds_before = st.seconds;
  }
  const detail::stop_signal_scope signals(checkpointing);
  const auto t0 = std::chrono::steady_clock::now();
  auto last_report = t0;
  auto save_state = [&](index_t steps_done) {
    fit_run_state st;
    st.step = steps_done;
    st.epoch = epoch;
    st.loader_position = loader.position();
    st.loader_rng = loader.rng_state();
    st.loss_ema = loss_ema;
    st.best_val_accuracy = res.best_val_accuracy;
    st.best_step = res.best_step;
    st.seconds = seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    save_fit_state(opt.checkpoint.path, settings, model, optimizer, st, best);
  };
  for (index_t step = first_step; step < opt.steps; ++step) {
    if (!loader.next(images_f, labels)) {
      loader.start_epoch(++epoch);
      loader.next(images_f, labels);
    }
    images.resize(images_f.shape());
    for (index_t i = 0; i < images.numel(); ++i) images.data()[i] = static_cast<T>(images_f.data()[i]);
    tape.clear();
    optimizer.zero_grad();
    double batch_acc = 0;
    const Var loss = batch_loss(tape, images, labels, batch_acc);
    double lv = static_cast<double>(tape.item(loss));
    if (opt.parallel) {
      // Every process reports (and stops on) the global batch's loss, the mean of the slices'.
      double both[2] = {lv, batch_acc};
      opt.parallel->sum(both, 2);
      lv = both[0] / opt.parallel->size();
      batch_acc = both[1] / opt.parallel->size();
    }
    if (!std::isfinite(lv)) {
      // Name the layer too: "the loss is NaN" alone leaves a user to bisect the model.
      const std::string where = detail::first_nonfinite_activation(model, images);
      throw numeric_error(detail::concat("fit: loss is ", lv, " at step ", step, " (lr ", schedule(step), ")",
                                         where.empty() ? std::string() : "; the forward pass first overflows at " + where));
    }
    if (sync) {
      sync->prepare(tape);
      tape.backward(loss, [&](index_t i) { sync->node_done(i); });
      sync->finish();
    } else {
      tape.backward(loss);
    }
    // A finite loss can still give an Inf/NaN gradient (an overflow inside backward): stop
    // here, naming the parameter (and so the layer), before AdamW spreads it into every weight.
    for (const auto& p : trainable) {
      const T* g = p.grad.data();
      for (index_t i = 0, n = p.grad.numel(); i < n; ++i)
        if (!std::isfinite(g[i]))
          throw numeric_error(detail::concat("fit: the gradient of ", p.name, " is ", g[i], " at element ", i,
                                             ", step ", step, " (loss ", lv, ", lr ", schedule(step), ")"));
    }
    // The regulariser depends on the weights alone: its gradient goes straight to the grads.
    const double reg = opt.hoyer_square > 0 ? opt.hoyer_square * add_hoyer_square_grad(model, opt.hoyer_square) : 0.0;
    if (opt.clip_norm > 0) {
      if (opt.shared_norm) {
        double ss = 0;
        for (const auto& p : trainable)
          for (const T g : p.grad) ss += static_cast<double>(g) * static_cast<double>(g);
        opt.shared_norm->sum(&ss, 1);
        const double coef = opt.clip_norm / (std::sqrt(ss) + 1e-6);  // clip_grad_norm's rule
        if (coef < 1 || std::isnan(coef))
          for (const auto& p : trainable)
            for (T& g : p.grad) g *= static_cast<T>(coef);
      } else {
        clip_grad_norm(trainable, opt.clip_norm);
      }
    }
    optimizer.set_lr(schedule(step));
    optimizer.step();
    apply_pruning(model);  // AdamW's moments would move pruned weights off 0
    loss_ema = step == 0 ? lv + reg : 0.98 * loss_ema + 0.02 * (lv + reg);
    res.final_loss = loss_ema;
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - t0).count();
    if (on_progress && (std::chrono::duration<double>(now - last_report).count() >= 1.0 || step + 1 == opt.steps)) {
      last_report = now;
      fit_progress p;
      p.step = step + 1;
      p.steps = opt.steps;
      p.epoch = epoch;
      p.loss = loss_ema;
      p.batch_accuracy = batch_acc;
      p.lr = schedule(step);
      p.elapsed_seconds = elapsed;
      p.images_per_second = static_cast<double>((step + 1 - first_step) * opt.batch) / elapsed;
      p.eta_seconds = elapsed / static_cast<double>(step + 1 - first_step) * static_cast<double>(opt.steps - step - 1);
      on_progress(p);
    }
    const bool eval_now = val && ((opt.eval_every > 0 && (step + 1) % opt.eval_every == 0) || step + 1 == opt.steps);
    if (eval_now) {
      const auto r = opt.parallel ? evaluate_shared(model, *val, *opt.parallel, opt.eval_limit)
                                  : evaluate(model, *val, default_eval_batch, opt.eval_limit);
      if (r.accuracy > res.best_val_accuracy) {
        res.best_val_accuracy = r.accuracy;
        res.best_step = step + 1;
        if (opt.restore_best) {
          const ParamList<T> params = model.parameters();
          best.resize(params.size());
          for (std::size_t k = 0; k < params.size(); ++k) {
            best[k].resize(params[k].value.shape());
            best[k].copy_from(TensorView<const T>(params[k].value));
          }
        }
      }
      if (on_eval) on_eval(step + 1, r);
    }
    if (checkpointing) {
      const int sig = detail::stop_signal().load();
      const bool last = step + 1 == opt.steps;
      const bool writer = !opt.parallel || opt.parallel->rank() == 0;
      if (writer && (sig != 0 || (!last && opt.checkpoint.every > 0 && (step + 1) % opt.checkpoint.every == 0)))
        save_state(step + 1);
      if (sig != 0)
        throw interrupted_error(detail::concat("fit: stopped by signal ", sig, " after step ", step + 1, " of ",
                                               opt.steps, "; the state is in ", opt.checkpoint.path,
                                               " (run again with resume to continue)"));
    }
  }
  if (opt.restore_best && !best.empty()) {
    const ParamList<T> params = model.parameters();
    for (std::size_t k = 0; k < params.size(); ++k) std::copy_n(best[k].data(), best[k].numel(), params[k].value.data());
  }
  res.steps = opt.steps;
  const double seconds_here = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.seconds = seconds_before + seconds_here;
  res.images_per_second = static_cast<double>((opt.steps - first_step) * opt.batch) / seconds_here;
  res.decode_images_per_second = loader.stats().decode_images_per_second();
  res.data_wait_seconds = loader.stats().wait_seconds;
  if (sync) {
    res.sync_wait_seconds = sync->stats().wait_seconds;
    res.overlapped_buckets = sync->stats().buckets ? static_cast<double>(sync->stats().buckets_in_backward) /
                                                         static_cast<double>(sync->stats().buckets)
                                                   : 0.0;
  }
  return res;
}

// Fraction of rows whose arg-max is the label (for progress lines).
template <class T>
double batch_accuracy(TensorView<const T> logits, const std::vector<index_t>& labels) {
  const index_t B = logits.size(0), K = logits.size(1);
  index_t correct = 0;
  for (index_t i = 0; i < B; ++i) {
    const T* z = logits.data() + i * K;
    correct += (std::max_element(z, z + K) - z) == labels[static_cast<std::size_t>(i)];
  }
  return B ? static_cast<double>(correct) / static_cast<double>(B) : 0.0;
}

// Supervised training of every parameter: cross-entropy (optional label smoothing), plus the
// A-ViT ponder and prior losses (opt.halting) when the model halts tokens.
template <class T>
fit_result train_classifier(HybridViT<T>& model, const data::image_dataset& train, const data::image_dataset* val,
                            const fit_options& opt, double label_smoothing = 0.0,
                            const std::function<void(const fit_progress&)>& on_progress = {},
                            const std::function<void(index_t, const eval_result&)>& on_eval = {}) {
  typename AdamW<T>::config oc;
  oc.lr = opt.lr;
  oc.weight_decay = opt.weight_decay;
  AdamW<T> optimizer(oc);
  model.set_trainable([](const std::string&) { return true; });
  optimizer.add_group(model.parameters());
  const bool halts = model.config().halting.has_value();
  vit_trace trace;
  batch_loss_fn<T> loss = [&](Tape<T>& tape, const Tensor<T>& images, const std::vector<index_t>& labels,
                              double& acc) {
    const Var logits = model.forward(tape, images.view(), halts ? &trace : nullptr);
    acc = batch_accuracy(tape.value(logits), labels);
    const Var ce = tape.cross_entropy(logits, labels, static_cast<T>(label_smoothing));
    if (!halts) return ce;
    // A-ViT (docs/method.md 3.4): CE + alpha_p * ponder + alpha_d * KL(prior).
    return tape.add(ce, model.halting_loss(tape, trace, opt.halting.ponder_weight, opt.halting.prior_weight,
                                           opt.halting.target_depth));
  };
  return fit(model, optimizer, train, val, opt, loss, on_progress, on_eval);
}

// Compiled in sparsimix::compiled (docs/build-time.md).
SPARSIMIX_EXTERN_TEMPLATE(eval_result evaluate<float>(const HybridViT<float>&, const data::image_dataset&, index_t, index_t,
                                                       std::vector<std::uint8_t>*))
SPARSIMIX_EXTERN_TEMPLATE(eval_result evaluate<double>(const HybridViT<double>&, const data::image_dataset&, index_t, index_t,
                                                        std::vector<std::uint8_t>*))
SPARSIMIX_EXTERN_TEMPLATE(double measure_latency_ms<float>(const HybridViT<float>&, const data::image_dataset&, int))
SPARSIMIX_EXTERN_TEMPLATE(double measure_latency_ms<double>(const HybridViT<double>&, const data::image_dataset&, int))
SPARSIMIX_EXTERN_TEMPLATE(fit_result fit<float>(HybridViT<float>&, AdamW<float>&, const data::image_dataset&, const data::image_dataset*, const fit_options&, const batch_loss_fn<float>&, const std::function<void(const fit_progress&)>&, const std::function<void(index_t, const eval_result&)>&))
SPARSIMIX_EXTERN_TEMPLATE(fit_result fit<double>(HybridViT<double>&, AdamW<double>&, const data::image_dataset&, const data::image_dataset*, const fit_options&, const batch_loss_fn<double>&, const std::function<void(const fit_progress&)>&, const std::function<void(index_t, const eval_result&)>&))
SPARSIMIX_EXTERN_TEMPLATE(fit_result train_classifier<float>(HybridViT<float>&, const data::image_dataset&, const data::image_dataset*, const fit_options&, double, const std::function<void(const fit_progress&)>&, const std::function<void(index_t, const eval_result&)>&))
SPARSIMIX_EXTERN_TEMPLATE(fit_result train_classifier<double>(HybridViT<double>&, const data::image_dataset&, const data::image_dataset*, const fit_options&, double, const std::function<void(const fit_progress&)>&, const std::function<void(index_t, const eval_result&)>&))

SPARSIMIX_ABI_END
}  // namespace sparsimix
