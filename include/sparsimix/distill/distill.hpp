// Layer-wise distillation of attention layers into sequential mixers (FAR, docs/method.md 1.7-1.8,
// 2.4-2.5, 6.1-6.8) under a fixed step budget:
//   stage 1: only the new mixers train; they match the teacher's mixer outputs (a
//            similarity loss summed over replaced layers) plus cross-entropy;
//   stage 2: the whole hybrid fine-tunes with cross-entropy + KL to the teacher's logits.
#pragma once
#include <algorithm>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "../core/enum_names.hpp"
#include "analysis.hpp"
#include "teacher_cache.hpp"
#include "train.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// What a replaced layer's student is matched to in stage 1.
//   pre_proj:  (default, FAR's HEAD code, docs/method.md 1.7, 6.1) MSE between the student's
//              pre-projection output (mh_lstm: head_proj output s) and the teacher
//              attention's output before proj; post_proj is the teacher's proj, frozen in
//              stage 1. A mixer without a pre-projection output (selective_scan: a Mamba
//              block ends in its own out_proj) is matched on its output (mixer_out);
//   mixer_out: MSE between the student mixer's output and the teacher attention's output;
//   block_out: MSE between block outputs; cosine: 1 - cosine over channels of block outputs.
enum class distill_target { pre_proj, mixer_out, block_out, cosine };

// The names configs, the command line and reports use for each distillation target.
inline constexpr detail::enum_table<distill_target, 4> distill_target_names{
    {{distill_target::pre_proj, "pre_proj"},
     {distill_target::mixer_out, "mixer_out"},
     {distill_target::block_out, "block_out"},
     {distill_target::cosine, "cosine"}}};
// The target's name in configs and reports.
constexpr std::string_view to_string(distill_target t) noexcept { return detail::enum_to_string(distill_target_names, t); }
// The target named `s`; throws config_error naming the choices otherwise.
inline distill_target parse_distill_target(std::string_view s) {
  return detail::enum_parse(distill_target_names, s, "distillation target");
}

// The two-stage distillation recipe: each stage's training, the stage-1 target, and loss weights.
struct distill_options {
  // The training of stage 1 (the new mixers) and stage 2 (the whole hybrid); steps 0 skips a stage.
  fit_options stage1, stage2;
  distill_target target = distill_target::pre_proj;  // what stage 1 matches the student to
  // Teacher-forced: each replaced mixer sees the teacher's own block input (LN1 output),
  // so one teacher pass trains every replaced layer locally; the loss is the similarity
  // alone (no cross-entropy). Free-running (default, FAR's code): the student runs on its
  // own residual stream and cross-entropy is added.
  bool teacher_forced = false;
  double sim_weight = 1.0;     // weight of the similarity loss (stage 1)
  double ce_weight = 1.0;      // weight of the cross-entropy (stage 1, free-running)
  bool normalise_sim = false;  // divide the similarity sum by the number of replaced layers
  double kd_weight = 1.0;      // stage 2
  double kd_temperature = 1.0;  // softening of both logits in the stage-2 KL (Hinton's T)
  // Mask-guided distillation of an A-ViT teacher (docs/method.md 2.4, 6.12): in stage 1 the
  // student runs under the teacher's token masks, the similarity counts alive tokens only, and
  // avit_weight * (sum_l BernoulliKL(hT_l || hS_l) + keep_weight * sum_l (keepS_l - keepT_l)^2)
  // is added; in stage 2 the student halts on its own and adds avit_weight * (its ponder and
  // prior losses, halting_loss below).
  bool mask_guided = false;
  double avit_weight = 0.1;           // weight of the A-ViT terms (mask-guided stage 1, halting stage 2)
  double keep_weight = 5.0;           // weight of the keep-ratio match inside the stage-1 A-ViT term
  halting_loss_options halting_loss;  // stage 2 of a halting student
  // Layer-parallel teacher-forced stage 1 (docs/distributed.md): the processes of this group
  // split the replaced layers (process r trains the layers at positions r, r + P, ... of the
  // sorted list, on the whole of every batch), then share the trained mixers, so each ends
  // with the student serial stage 1 gives. Needs teacher_forced; stage1.parallel must be null.
  process_group* layer_parallel = nullptr;
};

// What distill() did in each stage.
struct distill_result {
  fit_result stage1, stage2;  // the stage-1 and stage-2 fit() runs
};

// The A-ViT term of mask-guided distillation on the tape (models/halting.hpp,
// halting_distill_loss) for the student's last traced forward: its value, and its gradient
// w.r.t. channel 0 of every block output entering backward through external_loss.
template <class T>
Var halting_distill_term(Tape<T>& tape, const HybridViT<T>& student, const vit_trace& trace,
                         const Tensor<double>& teacher_scores, const Tensor<std::uint8_t>& teacher_masks,
                         double keep_weight) {
  const auto& hs = student.halting();
  const index_t L = student.depth();
  if (static_cast<index_t>(trace.block_out.size()) != L || hs.layers_done() != L)
    throw config_error("halting_distill_term: needs the trace of a complete tape forward of the student");
  Tensor<double> g;
  const double value =
      halting_distill_loss(teacher_scores, teacher_masks, hs.scores(), hs.cfg().gamma, keep_weight, &g);
  return channel0_loss(tape, trace, static_cast<T>(value), g.data());
}

// A copy of `teacher` with blocks `layers` holding fresh mixers of kind `spec` (any
// registered kind; same width and heads). A mixer that InitsFromTeacher starts from the
// layer it replaces: mh_lstm's post_proj is the teacher attention's proj (FAR, docs/method.md 1.3).
template <class T>
HybridViT<T> make_student(const HybridViT<T>& teacher, const std::vector<index_t>& layers, const mixer_spec& spec,
                          Rng& rng) {
  HybridViT<T> student = teacher;
  const auto& cfg = teacher.config();
  for (index_t l : layers) {
    if (l < 0 || l >= teacher.depth())
      throw config_error(detail::concat("make_student: layer ", l, " out of range [0, ", teacher.depth(), ")"));
    Mixer<T> m = make_mixer<T>(spec, mixer_dims{cfg.embed_dim, cfg.num_heads}, rng);
    std::visit(
        [&](auto& mm) {
          if constexpr (InitsFromTeacher<std::remove_cvref_t<decltype(mm)>>) mm.init_from_teacher(teacher.mixer_tensors(l));
        },
        m);
    student.replace_mixer(l, std::move(m));
  }
  return student;
}

// The names (model-level, "blocks.{l}.attn.<name>") of the replaced mixers' parameters taken
// from the teacher, which stage 1 keeps frozen.
template <class T>
std::set<std::string> teacher_initialised_params(const HybridViT<T>& student, const std::set<index_t>& layers) {
  std::set<std::string> out;
  for (index_t l : layers)
    std::visit(
        [&](const auto& m) {
          if constexpr (InitsFromTeacher<std::remove_cvref_t<decltype(m)>>)
            for (const auto& n : m.teacher_initialised()) out.insert(detail::concat("blocks.", l, ".attn.", n));
        },
        student.mixer(l));
  return out;
}

// Runs both stages on `student` (made by make_student from `teacher`, replacing `layers`).
// `cache`, when given, answers the teacher's forwards of batches it has seen (the distillations
// of one experiment share one): stage 2's logits, and stage 1's targets of a free-running,
// not mask-guided distillation from a teacher without halting. The student is the same bit for bit.
template <class T>
distill_result distill(const HybridViT<T>& teacher, HybridViT<T>& student, const std::vector<index_t>& layers,
                       const data::image_dataset& train, const data::image_dataset* val, const distill_options& opt,
                       const std::function<void(int stage, const fit_progress&)>& on_progress = {},
                       teacher_cache<T>* cache = nullptr) {
  if (layers.empty()) throw config_error("distill: no layer to replace");
  if (opt.mask_guided) {
    if (!teacher.config().halting || !student.config().halting)
      throw config_error("distill: mask-guided distillation needs a teacher with halting (train one with "
                         "`sparsimix train --halting`)");
    if (opt.teacher_forced)
      throw config_error("distill: mask-guided distillation runs the student free (not teacher-forced)");
  }
  const std::set<index_t> replaced(layers.begin(), layers.end());
  // Layer-parallel stage 1: the layers this process trains.
  process_group* const lp = opt.layer_parallel && opt.layer_parallel->size() > 1 ? opt.layer_parallel : nullptr;
  if (opt.layer_parallel && !opt.teacher_forced)
    throw config_error("distill: layer-parallel stage 1 needs teacher-forced distillation (each layer on the teacher's "
                       "block inputs)");
  if (lp && opt.stage1.parallel)
    throw config_error("distill: stage 1 is either layer-parallel or data-parallel, not both");
  std::set<index_t> mine;
  {
    index_t pos = 0;
    for (index_t l : replaced)
      if (!lp || pos++ % lp->size() == lp->rank()) mine.insert(l);
  }
  distill_result res;
  vit_capture<T> cap;
  const bool pre = opt.target == distill_target::pre_proj;
  cap.mixers = pre || opt.target == distill_target::mixer_out || opt.teacher_forced;
  cap.blocks = opt.target == distill_target::block_out || opt.target == distill_target::cosine;
  cap.pre_proj = pre;
  cap.mixer_inputs = opt.teacher_forced;
  Tensor<T> teacher_logits;
  Tensor<double> teacher_scores;         // mask-guided: the teacher's halting of this batch
  Tensor<std::uint8_t> teacher_masks;
  auto run_teacher = [&](const Tensor<T>& images, vit_capture<T>& c) {
    teacher_logits.resize(Shape{images.size(0), teacher.config().num_classes});
    teacher.forward(images.view(), teacher_logits.view(), &c);
    if (opt.mask_guided) {
      teacher_scores = teacher.halting().scores();
      teacher_masks = teacher.halting().layer_masks();
    }
  };
  // Stage 1's teacher targets of one batch: from the cache (which may hold a block's pre-proj
  // output in place of its mixer output) or from the forward into `cap`.
  const bool cache_targets =
      cache && !opt.mask_guided && !opt.teacher_forced && !teacher.config().halting.has_value();
  const vit_capture<T>* targets = &cap;
  std::vector<Tensor<T>> derived(static_cast<std::size_t>(teacher.depth()));
  auto teacher_targets = [&](const Tensor<T>& images) {
    if (cache_targets)
      targets = &cache->targets(images, cap, [&](const Tensor<T>& x, vit_capture<T>& c) { run_teacher(x, c); });
    else
      run_teacher(images, cap);
  };
  auto mixer_target = [&](index_t l) -> const Tensor<T>& {
    return teacher_cache<T>::mixer_output(teacher, *targets, l, derived[static_cast<std::size_t>(l)]);
  };
  const T sim_scale = static_cast<T>(opt.sim_weight / (opt.normalise_sim ? double(replaced.size()) : 1.0));

  // ---- stage 1: only the replaced mixers (mh_lstm: all but post_proj, FAR) ------------
  // (steps 0: the student's stage 1 is done already, e.g. a study that evaluates in between)
  if (opt.stage1.steps > 0) {
    typename AdamW<T>::config oc;
    oc.lr = opt.stage1.lr;
    oc.weight_decay = opt.stage1.weight_decay;
    AdamW<T> optimizer(oc);
    ParamList<T> params;
    const std::set<std::string> from_teacher = teacher_initialised_params(student, replaced);
    for (auto& p : student.parameters()) {
      bool in_replaced = false;
      for (index_t l : mine)
        if (p.name.rfind("blocks." + std::to_string(l) + ".attn.", 0) == 0) in_replaced = true;
      if (in_replaced && !from_teacher.count(p.name)) params.push_back(p);
    }
    optimizer.add_group(std::move(params));
    student.set_trainable([](const std::string&) { return false; });
    batch_loss_fn<T> loss = [&](Tape<T>& tape, const Tensor<T>& images, const std::vector<index_t>& labels,
                                double& acc) {
      teacher_targets(images);
      Var total;
      auto add = [&](Var v) { total = total.valid() ? tape.add(total, v) : v; };
      if (opt.teacher_forced) {
        for (index_t l : mine) {
          const auto k = static_cast<std::size_t>(l);
          const Var x = tape.input(targets->mixer_in[k].view());
          const Var sim = std::visit(
              [&](auto& m) {
                if constexpr (HasPreProjOutput<std::remove_cvref_t<decltype(m)>>) {
                  if (pre && targets->pre_proj_out[k].numel() && provides_pre_proj_output(m)) {
                    auto [y, s] = tape.mixer_pre_proj(m, x, nullptr);
                    return tape.mse(s, tape.input(targets->pre_proj_out[k].view()));
                  }
                }
                return tape.mse(tape.mixer(m, x, nullptr), tape.input(mixer_target(l).view()));
              },
              student.mixer(l));
          add(tape.scale(sim, sim_scale));
        }
        acc = 0;
        return total;
      }
      vit_trace trace;
      trace.want_pre_proj = pre;
      if (opt.mask_guided) trace.forced_masks = &teacher_masks;
      const Var logits = student.forward(tape, images.view(), &trace);
      acc = batch_accuracy(tape.value(logits), labels);
      for (index_t l : replaced) {
        const auto k = static_cast<std::size_t>(l);
        // Mask-guided: only the tokens block l processed count (docs/method.md 6.12).
        std::optional<TokenMask> alive;
        if (opt.mask_guided) alive = layer_mask(teacher.halting(), l);
        const TokenMask* m = alive ? &*alive : nullptr;
        Var sim;
        switch (opt.target) {
          case distill_target::pre_proj:
            if (trace.pre_proj[k].valid() && targets->pre_proj_out[k].numel()) {
              sim = tape.mse(trace.pre_proj[k], tape.input(targets->pre_proj_out[k].view()), m);
              break;
            }
            [[fallthrough]];
          case distill_target::mixer_out:
            sim = tape.mse(trace.mixer_out[k], tape.input(mixer_target(l).view()), m);
            break;
          case distill_target::block_out:
            sim = tape.mse(trace.block_out[k], tape.input(targets->block_out[k].view()), m);
            break;
          case distill_target::cosine:
            sim = tape.cosine_loss(trace.block_out[k], tape.input(targets->block_out[k].view()));
            break;
        }
        add(tape.scale(sim, sim_scale));
      }
      if (opt.ce_weight > 0) add(tape.scale(tape.cross_entropy(logits, labels), static_cast<T>(opt.ce_weight)));
      if (opt.mask_guided && opt.avit_weight > 0)
        add(tape.scale(halting_distill_term(tape, student, trace, teacher_scores, teacher_masks, opt.keep_weight),
                       static_cast<T>(opt.avit_weight)));
      return total;
    };
    fit_options f1 = opt.stage1;
    if (lp) {
      f1.shared_norm = lp;  // clip by the norm over every process's layers, as one process would
      if (!f1.checkpoint.path.empty()) f1.checkpoint.path += ".rank" + std::to_string(lp->rank());
    }
    res.stage1 = fit(student, optimizer, train, val, f1, loss,
                     on_progress ? std::function<void(const fit_progress&)>([&](const fit_progress& p) { on_progress(1, p); })
                                 : std::function<void(const fit_progress&)>{});
    if (lp) {
      // Each layer's trained mixer goes from its process to all: the others add zeros.
      index_t pos = 0;
      for (index_t l : replaced) {
        const bool owner = pos++ % lp->size() == lp->rank();
        for (auto& p : std::visit([](auto& m) { return m.parameters(); }, student.mixer(l))) {
          std::vector<double> v(static_cast<std::size_t>(p.value.numel()), 0.0);
          if (owner) std::copy(p.value.begin(), p.value.end(), v.begin());
          lp->sum(v.data(), static_cast<index_t>(v.size()));
          std::transform(v.begin(), v.end(), p.value.begin(), [](double x) { return static_cast<T>(x); });
        }
      }
    }
  }

  // ---- stage 2: everything, cross-entropy + KL to the teacher's logits ---------------
  if (opt.stage2.steps > 0) {
    typename AdamW<T>::config oc;
    oc.lr = opt.stage2.lr;
    oc.weight_decay = opt.stage2.weight_decay;
    AdamW<T> optimizer(oc);
    student.set_trainable([](const std::string&) { return true; });
    optimizer.add_group(student.parameters());
    cap = vit_capture<T>{};
    const bool halts = student.config().halting.has_value();
    vit_trace trace;
    batch_loss_fn<T> loss = [&](Tape<T>& tape, const Tensor<T>& images, const std::vector<index_t>& labels,
                                double& acc) {
      const Var logits = student.forward(tape, images.view(), halts ? &trace : nullptr);
      acc = batch_accuracy(tape.value(logits), labels);
      Var total = tape.cross_entropy(logits, labels);
      if (halts && opt.avit_weight > 0) {
        // The student's own halting (docs/method.md 2.4, stage 2): CE + 0.1 (ponder + prior).
        const auto& h = opt.halting_loss;
        total = tape.add(total, tape.scale(student.halting_loss(tape, trace, h.ponder_weight, h.prior_weight,
                                                                h.target_depth),
                                           static_cast<T>(opt.avit_weight)));
      }
      if (opt.kd_weight > 0) {
        const Tensor<T>* tl = &teacher_logits;
        if (cache) {
          tl = &cache->logits(images, [&](const Tensor<T>& x, Tensor<T>& out) {
            run_teacher(x, cap);
            out = teacher_logits;
          });
        } else {
          run_teacher(images, cap);
        }
        const Var kd = tape.kl_div_logits(logits, tape.input(tl->view()), static_cast<T>(opt.kd_temperature));
        total = tape.add(total, tape.scale(kd, static_cast<T>(opt.kd_weight)));
      }
      return total;
    };
    res.stage2 = fit(student, optimizer, train, val, opt.stage2, loss,
                     on_progress ? std::function<void(const fit_progress&)>([&](const fit_progress& p) { on_progress(2, p); })
                                 : std::function<void(const fit_progress&)>{});
  }
  student.set_trainable([](const std::string&) { return true; });
  return res;
}

// Compiled in sparsimix::compiled (docs/build-time.md).
SPARSIMIX_EXTERN_TEMPLATE(HybridViT<float> make_student<float>(const HybridViT<float>&, const std::vector<index_t>&, const mixer_spec&, Rng&))
SPARSIMIX_EXTERN_TEMPLATE(HybridViT<double> make_student<double>(const HybridViT<double>&, const std::vector<index_t>&, const mixer_spec&, Rng&))
SPARSIMIX_EXTERN_TEMPLATE(std::set<std::string> teacher_initialised_params<float>(const HybridViT<float>&, const std::set<index_t>&))
SPARSIMIX_EXTERN_TEMPLATE(std::set<std::string> teacher_initialised_params<double>(const HybridViT<double>&, const std::set<index_t>&))
SPARSIMIX_EXTERN_TEMPLATE(distill_result distill<float>(const HybridViT<float>&, HybridViT<float>&, const std::vector<index_t>&, const data::image_dataset&, const data::image_dataset*, const distill_options&, const std::function<void(int stage, const fit_progress&)>&, teacher_cache<float>*))
SPARSIMIX_EXTERN_TEMPLATE(distill_result distill<double>(const HybridViT<double>&, HybridViT<double>&, const std::vector<index_t>&, const data::image_dataset&, const data::image_dataset*, const distill_options&, const std::function<void(int stage, const fit_progress&)>&, teacher_cache<double>*))

SPARSIMIX_ABI_END
}  // namespace sparsimix
