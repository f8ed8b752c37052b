// HybridViT: a timm VisionTransformer (pre-norm blocks, CLS token, learned positions,
// exact-erf GELU MLP) whose block i holds any token mixer (docs/formats.md section 2):
//   x = [cls; patch_embed(img)] + pos
//   x = x + mixer_i(LN1(x));  x = x + fc2(GELU(fc1(LN2(x))))      for each block i
//   logits = head(LN(x[:, 0]))
// Inference runs without the tape and stops allocating after its first call; training
// builds the same graph on a Tape (autograd/tape.hpp). This header does not include the tape:
// the training members are templates on the tape type, compiled only in programs that train
// (and so include autograd/tape.hpp), so reading a checkpoint never compiles the tape.
#pragma once
#include <algorithm>
#include <cmath>
#include <concepts>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "../autograd/var.hpp"
#include "../concepts.hpp"
#include "../core/linalg.hpp"
#include "../core/rng.hpp"
#include "../core/token_packing.hpp"
#include "../core/workspace_pool.hpp"
#include "../kernels/bias_act.hpp"
#include "../kernels/layernorm.hpp"
#include "halting.hpp"
#include "mixer_state.hpp"
#include "registry.hpp"
#include "vit_config.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// What a forward may also return: per block, the block output [B, N, C], the mixer's
// output [B, N, C] (before the residual add), and for attention blocks the maps [B, H, N, N].
template <class T>
struct vit_capture {
  // Which of the outputs below the forward fills: block outputs, mixer outputs, attention
  // maps, mixer inputs, pre-projection outputs.
  bool blocks = false, mixers = false, maps = false, mixer_inputs = false, pre_proj = false;
  std::vector<Tensor<T>> block_out, mixer_out, attn_map;  // per block; attn_map[i] empty if not attention
  std::vector<Tensor<T>> mixer_in;                        // LN1 outputs (the mixers' inputs)
  // Attention blocks: the output before proj, concat_heads(softmax(q k^T / sqrt d) v)
  // (FAR's distillation target, docs/method.md 1.7); empty for other blocks.
  std::vector<Tensor<T>> pre_proj_out;
  // Halting models: `halting` asks for this forward's A-ViT state (masks, depth, ponder) in
  // halting_state, the way to read it when threads share one model (HybridViT::halting()
  // holds whichever forward finished last).
  bool halting = false;
  std::optional<HaltingController<T>> halting_state;  // filled when `halting` is set
};

// Tape vars of one training forward, per block: mixer input (LN1 output), mixer output,
// block output (masked under halting), and, when asked for, the pre-projection output of
// mixers that have one (HasPreProjOutput: mh_lstm's head_proj output; invalid Var otherwise).
struct vit_trace {
  bool want_pre_proj = false;  // also record the pre-projection outputs
  // Mask-guided distillation (docs/method.md 2.4): a halting model runs block l under
  // (*forced_masks)[l] ([L, B, N], e.g. a teacher's HaltingController::layer_masks()) instead of
  // its own mask; its controller still computes its own scores (for the distillation KL).
  const Tensor<std::uint8_t>* forced_masks = nullptr;
  std::vector<Var> mixer_in, mixer_out, block_out, pre_proj;  // per block, as described above
  Var logits;                                                 // the classifier output [B, classes]
};

// A loss computed outside the tape from channel 0 of every block output (the A-ViT terms):
// its value enters once, and grad [L, B, N] (d loss / d block_out_l[b, n, 0], any scalar type)
// flows into the traced block outputs through one external_loss per block.
template <class Tp, class G>
Var channel0_loss(Tp& tape, const vit_trace& trace, typename Tp::scalar_type value, const G* grad) {
  using T = typename Tp::scalar_type;
  if (trace.block_out.empty()) throw config_error("channel0_loss: the trace holds no block output");
  const Shape ys = tape.shape(trace.block_out[0]);
  const index_t B = ys[0], N = ys[1], C = ys[2];
  Tensor<T> inject(Shape{B, N, C});
  Var total;
  for (std::size_t l = 0; l < trace.block_out.size(); ++l) {
    inject.zero();
    const G* gl = grad + static_cast<index_t>(l) * B * N;
    for (index_t r = 0; r < B * N; ++r) inject.data()[r * C] = static_cast<T>(gl[r]);
    const Var term = tape.external_loss(l == 0 ? value : T(0), trace.block_out[l], inject.view());
    total = total.valid() ? tape.add(total, term) : term;
  }
  return total;
}

// A timm ViT whose every block holds any token mixer: the teacher, the students and the hybrids.
template <class T = float>
class HybridViT {
 public:
  using scalar_type = T;  // T, the scalar type of every tensor

  // Builds every parameter (zeros) and the mixers of cfg.mixers; call init() or load weights.
  explicit HybridViT(vit_config cfg);

  // The architecture, with each block's current mixer spec.
  const vit_config& config() const noexcept { return cfg_; }
  // The A-ViT halting state of the last forward (masks, depth, ponder, prior); throws
  // config_error when the model has no halting. Not for threads sharing the model: another
  // thread's forward replaces it (ask vit_capture::halting instead).
  const HaltingController<T>& halting() const {
    if (!halting_) throw config_error("HybridViT::halting: the model was configured without halting");
    return *halting_;
  }
  // Number of blocks L.
  index_t depth() const noexcept { return cfg_.depth; }
  // Token width C.
  index_t dim() const noexcept { return cfg_.embed_dim; }

  // timm's default init: Linear weights N(0, 0.02) (truncated at +-2, as timm's absolute
  // bounds), biases 0, LayerNorm 1/0, pos_embed N(0, 0.02), cls_token N(0, 1e-6), patch
  // conv PyTorch's default U(+-1/sqrt(fan_in)); each mixer's own init.
  void init(Rng& rng);

  // Block i's mixer (throws std::out_of_range for a bad i).
  Mixer<T>& mixer(index_t i) { return blocks_.at(static_cast<std::size_t>(i)).mixer; }
  // Block i's mixer, read-only.
  const Mixer<T>& mixer(index_t i) const { return blocks_.at(static_cast<std::size_t>(i)).mixer; }

  // Swaps block i's mixer, keeping every other weight. The config records the spec of the
  // mixer itself (spec_of), so what a checkpoint saves always describes what the block holds;
  // an AnyMixer of an unregistered type makes the model unsaveable (serializable() false).
  void replace_mixer(index_t i, Mixer<T> m);
  // Block i's mixer tensors in PyTorch's layout (names relative to the mixer, "proj.weight").
  named_tensors<T> mixer_tensors(index_t i) const;
  // True when every block's mixer can be described by the config (no AnyMixer).
  bool serializable() const noexcept { return custom_.empty(); }

  // Every trainable tensor with its PyTorch name (MultiHeadLSTM's compact ".blocks" storage
  // under its own names; see mixer_state for the dense layout).
  ParamList<T> parameters();
  // Zeroes every parameter gradient.
  void zero_grad() {
    for (auto& p : parameters()) std::fill(p.grad.begin(), p.grad.end(), T(0));
  }
  // Which of the model's own (non-mixer) tensors get gradients in the tape forward: a frozen
  // one is read as a constant, saving its weight-gradient GEMM. Mixers always compute theirs
  // (an optimizer group decides whether they move).
  template <class Pred>
  void set_trainable(Pred&& trainable) {
    for_each_own([&](const std::string& name, pt& p) { p.trainable = trainable(name); });
  }
  // Trainable entries that can be non-zero: the compact storage, without the structural zeros
  // of the PyTorch layouts (count_parameters in models/pruning.hpp also gives those).
  index_t num_parameters();

  // The PyTorch state_dict (timm order, dense layouts), values or gradients.
  named_tensors<T> state_dict(bool grads = false);

  // Loads every tensor of state_dict() from lookup(name) -> Tensor<T>. Shapes are checked
  // for every tensor before any weight changes (mixers check their own before writing).
  template <class Lookup>
  void load_state_dict(Lookup&& lookup) {
    std::vector<std::pair<pt*, Tensor<T>>> staged;
    for_each_own([&](const std::string& name, pt& p) {
      Tensor<T> t = lookup(name);
      if (!(t.shape() == p.v.shape()))
        throw shape_error(detail::concat("HybridViT::load_state_dict: ", name, " is ", t.shape().str(), ", expected ",
                                         p.v.shape().str()));
      staged.emplace_back(&p, std::move(t));
    });
    // Mixers: load each into a copy first, so a failure in block 5 leaves blocks 0-4 as they were.
    std::vector<Mixer<T>> mixers;
    for (index_t i = 0; i < depth(); ++i) {
      Mixer<T> m = blocks_[static_cast<std::size_t>(i)].mixer;
      const std::string p = "blocks." + std::to_string(i) + ".attn.";
      std::visit([&](auto& mm) {
        load_mixer_state(mm, [&](const std::string& n) { return lookup(p + n); }, "HybridViT::load_state_dict");
      }, m);
      mixers.push_back(std::move(m));
    }
    for (auto& [p, t] : staged) p->v.copy_from(t.view());
    for (index_t i = 0; i < depth(); ++i) blocks_[static_cast<std::size_t>(i)].mixer = std::move(mixers[static_cast<std::size_t>(i)]);
  }

  // ---- inference ----------------------------------------------------------------------

  // logits [B, classes] from images [B, in_chans, img, img]. `cap` selects extra outputs.
  void forward(TensorView<const T> images, TensorView<T> logits, vit_capture<T>* cap = nullptr) const;

  // ---- training -----------------------------------------------------------------------

  // The same forward on a tape: returns logits [B, classes]; every parameter is bound so
  // tape.backward() accumulates into this model's gradients.
  template <class Tp>
    requires std::same_as<Tp, Tape<T>>
  Var forward(Tp& tape, TensorView<const T> images, vit_trace* trace = nullptr);

  // The A-ViT losses alpha_p * ponder + alpha_d * prior KL (prior centred at target_depth,
  // 0: ceil(2L/3)) of the last tape forward (which must have been traced), as a scalar on the tape. The halting controller computes the
  // value and its gradient w.r.t. channel 0 of each block output; they enter the tape as one
  // external_loss per block (the value on the first), so backward sends that gradient into
  // the block outputs.
  template <class Tp>
    requires std::same_as<Tp, Tape<T>>
  Var halting_loss(Tp& tape, const vit_trace& trace, double alpha_p = 5e-4, double alpha_d = 1e-3,
                   index_t target_depth = 0);

 private:
  struct pt {
    Tensor<T> v, g;
    bool trainable = true;  // false: bound as a constant on the tape (no weight gradient work)
    pt() = default;
    pt(std::initializer_list<index_t> s) : v(Shape(s)), g(Shape(s)) {}
  };
  struct block {
    pt n1_w, n1_b, n2_w, n2_b, fc1_w, fc1_b, fc2_w, fc2_b;
    Mixer<T> mixer;
  };
  struct workspace {
    Tensor<T> patches, emb, x, ln, mix, hid, cls, cls_ln;
    Tensor<T> alive_x;      // [M, C] the alive tokens' residual stream (halting inference)
    token_packing alive;    // which rows those are
    std::optional<HaltingController<T>> halting;  // this forward's A-ViT state
  };

  template <class Tp>
  static Var bind(Tp& tape, pt& p) {
    return p.trainable ? tape.param(p.v.view(), p.g.view()) : tape.frozen(p.v.view());
  }
  // Every tensor in timm's state_dict order: own(name, tensor, decays) for the model's own
  // tensors, mixer("blocks.{i}.attn.", mixer) where block i's mixer sits in that order.
  template <class Own, class MixerFn>
  void visit_state(Own&& own, MixerFn&& mixer) {
    own("patch_embed.proj.weight", patch_w_, true);
    own("patch_embed.proj.bias", patch_b_, false);
    own("cls_token", cls_, false);
    own("pos_embed", pos_, false);
    for (index_t i = 0; i < depth(); ++i) {
      auto& b = blocks_[static_cast<std::size_t>(i)];
      const std::string p = "blocks." + std::to_string(i) + ".";
      own(p + "norm1.weight", b.n1_w, false);
      own(p + "norm1.bias", b.n1_b, false);
      mixer(p + "attn.", b.mixer);
      own(p + "norm2.weight", b.n2_w, false);
      own(p + "norm2.bias", b.n2_b, false);
      own(p + "mlp.fc1.weight", b.fc1_w, true);
      own(p + "mlp.fc1.bias", b.fc1_b, false);
      own(p + "mlp.fc2.weight", b.fc2_w, true);
      own(p + "mlp.fc2.bias", b.fc2_b, false);
    }
    own("norm.weight", norm_w_, false);
    own("norm.bias", norm_b_, false);
    own("head.weight", head_w_, true);
    own("head.bias", head_b_, false);
  }
  template <class F>
  void for_each_own(F&& f) {
    visit_state([&](const std::string& name, pt& p, bool) { f(name, p); }, [](const std::string&, Mixer<T>&) {});
  }

  void init_norms();

  index_t check_images(const char* where, TensorView<const T> images) const {
    check_shape(where, "images", images.shape(), {-1, cfg_.in_chans, cfg_.img_size, cfg_.img_size});
    // One rule for every model and both passes: a batch holds at least one image (a mean
    // loss over none is undefined, and halting has no token to keep).
    if (images.size(0) == 0)
      throw shape_error(detail::concat(where, ": images is ", images.shape().str(), ", expected at least one image"));
    return images.size(0);
  }

  // [B, Cin, H, W] -> [B, np, Cin*P*P] in the Conv2d weight's (c, ky, kx) order.
  void patchify(TensorView<const T> images, index_t B, T* out) const;

  // w.x = [cls; patches W^T + b] + pos, [B, N, C].
  void embed(TensorView<const T> images, index_t B, workspace& w) const;

  // x += fc2(GELU(fc1(LN2(x)))) over `rows` tokens.
  // x[rows, C] += fc2(GELU(fc1(LN2(x)))), with ln [rows, C] and hid [rows, 4C] as scratch.
  void mlp(const block& b, T* x, T* ln, T* hid, index_t rows, T eps) const;

  // logits = head(LN(x[:, 0])).
  void head(workspace& w, index_t B, T* logits) const;

  vit_config cfg_;
  pt patch_w_, patch_b_, cls_, pos_, norm_w_, norm_b_, head_w_, head_b_;
  std::vector<block> blocks_;
  std::vector<index_t> custom_;  // blocks holding an AnyMixer
  // A-ViT state of the last forward: the tape forward's own; a const forward swaps its
  // leased state in under halting_mutex_.
  mutable std::optional<HaltingController<T>> halting_;
  mutable detail::copyable_mutex halting_mutex_;
  std::vector<TokenMask> train_masks_;             // per block, alive until the tape's backward
  workspace_pool<workspace> pool_;  // the const forwards'
  Tensor<T> train_patches_;          // the tape forward's patchified images
};

template <class T>
HybridViT<T>::HybridViT(vit_config cfg) : cfg_(std::move(cfg)) {
  cfg_.validate();
  const index_t C = cfg_.embed_dim;
  patch_w_ = pt({C, cfg_.in_chans, cfg_.patch_size, cfg_.patch_size});
  patch_b_ = pt({C});
  cls_ = pt({1, 1, C});
  pos_ = pt({1, cfg_.num_tokens(), C});
  norm_w_ = pt({C});
  norm_b_ = pt({C});
  head_w_ = pt({cfg_.num_classes, C});
  head_b_ = pt({cfg_.num_classes});
  Rng rng(0);
  blocks_.reserve(static_cast<std::size_t>(cfg_.depth));
  for (index_t i = 0; i < cfg_.depth; ++i) {
    const index_t Hd = cfg_.mlp_hidden();
    auto& spec = cfg_.mixers[static_cast<std::size_t>(i)];
    spec = normalize_spec(spec, detail::concat("vit config: mixers[", i, "]"));
    blocks_.push_back(block{pt({C}), pt({C}), pt({C}), pt({C}), pt({Hd, C}), pt({Hd}), pt({C, Hd}), pt({C}),
                            make_mixer<T>(spec, mixer_dims{C, cfg_.num_heads}, rng)});
  }
  init_norms();
  if (cfg_.halting)
    halting_.emplace(typename HaltingController<T>::config{cfg_.halting->gamma, cfg_.halting->beta, cfg_.halting->eps});
}

template <class T>
void HybridViT<T>::init(Rng& rng) {
  auto trunc = [&](Tensor<T>& t, double std) {
    for (auto& v : t) {
      double z;
      do z = rng.normal(0.0, std); while (std::abs(z) > 2.0);
      v = static_cast<T>(z);
    }
  };
  const double bound = 1.0 / std::sqrt(double(cfg_.in_chans * cfg_.patch_size * cfg_.patch_size));
  fill_uniform(rng, patch_w_.v.data(), patch_w_.v.numel(), -bound, bound);
  fill_uniform(rng, patch_b_.v.data(), patch_b_.v.numel(), -bound, bound);
  trunc(cls_.v, 1e-6);
  trunc(pos_.v, 0.02);
  trunc(head_w_.v, 0.02);
  head_b_.v.zero();
  for (auto& b : blocks_) {
    trunc(b.fc1_w.v, 0.02);
    b.fc1_b.v.zero();
    trunc(b.fc2_w.v, 0.02);
    b.fc2_b.v.zero();
    std::visit([&](auto& m) {
      if constexpr (requires { m.init(rng); }) m.init(rng);
    }, b.mixer);
  }
  init_norms();
}

template <class T>
void HybridViT<T>::replace_mixer(index_t i, Mixer<T> m) {
  if (i < 0 || i >= depth())
    throw config_error(detail::concat("HybridViT::replace_mixer: block ", i, " out of range [0, ", depth(), ")"));
  const index_t d = std::visit([](const auto& mm) { return static_cast<index_t>(mm.dim()); }, m);
  if (d != dim())
    throw shape_error(detail::concat("HybridViT::replace_mixer: mixer dim is ", d, ", expected ", dim()));
  const std::optional<mixer_spec> spec = spec_of(m);
  blocks_[static_cast<std::size_t>(i)].mixer = std::move(m);
  custom_.erase(std::remove(custom_.begin(), custom_.end(), i), custom_.end());
  if (spec)
    cfg_.mixers[static_cast<std::size_t>(i)] = *spec;
  else
    custom_.push_back(i);
}

template <class T>
named_tensors<T> HybridViT<T>::mixer_tensors(index_t i) const {
  // parameters() hands out mutable views; this only reads them.
  auto& m = const_cast<Mixer<T>&>(mixer(i));
  return std::visit([](auto& mm) { return sparsimix::mixer_state(mm); }, m);
}

template <class T>
ParamList<T> HybridViT<T>::parameters() {
  ParamList<T> ps;
  visit_state([&](const std::string& name, pt& p, bool decay) { ps.push_back({name, p.v.view(), p.g.view(), decay}); },
              [&](const std::string& prefix, Mixer<T>& mixer) {
                for (auto& mp : std::visit([](auto& m) { return m.parameters(); }, mixer)) {
                  mp.name = prefix + mp.name;
                  ps.push_back(std::move(mp));
                }
              });
  return ps;
}

template <class T>
index_t HybridViT<T>::num_parameters() {
  index_t n = 0;
  for (const auto& p : parameters()) n += p.value.numel();
  return n;
}

template <class T>
named_tensors<T> HybridViT<T>::state_dict(bool grads) {
  named_tensors<T> out;
  visit_state(
      [&](const std::string& name, pt& p, bool) {
        Tensor<T> t(p.v.shape());
        t.copy_from(grads ? p.g.view() : p.v.view());
        out.emplace_back(name, std::move(t));
      },
      [&](const std::string& prefix, Mixer<T>& mixer) {
        for (auto& [name, t] : std::visit([&](auto& m) { return mixer_state(m, grads); }, mixer))
          out.emplace_back(prefix + name, std::move(t));
      });
  return out;
}

template <class T>
void HybridViT<T>::forward(TensorView<const T> images, TensorView<T> logits, vit_capture<T>* cap) const {
  const index_t B = check_images("HybridViT::forward", images);
  check_shape("HybridViT::forward", "logits", logits.shape(), {B, cfg_.num_classes});
  const index_t C = dim(), N = cfg_.num_tokens(), rows = B * N;
  const auto lease = pool_.acquire();
  auto& w = *lease;
  if (cfg_.halting && !w.halting)
    w.halting.emplace(typename HaltingController<T>::config{cfg_.halting->gamma, cfg_.halting->beta, cfg_.halting->eps});
  auto& halting = w.halting;
  embed(images, B, w);
  if (cap) {
    cap->block_out.resize(static_cast<std::size_t>(depth()));
    cap->mixer_out.resize(static_cast<std::size_t>(depth()));
    cap->attn_map.resize(static_cast<std::size_t>(depth()));
    if (cap->mixer_inputs) cap->mixer_in.resize(static_cast<std::size_t>(depth()));
    if (cap->pre_proj) cap->pre_proj_out.resize(static_cast<std::size_t>(depth()));
  }
  w.ln.resize(Shape{B, N, C});
  w.mix.resize(Shape{B, N, C});
  w.hid.resize(Shape{rows, cfg_.mlp_hidden()});
  const T eps = static_cast<T>(cfg_.ln_eps);
  if (halting) halting->reset(B, N, depth());
  for (index_t i = 0; i < depth(); ++i) {
    const auto& b = blocks_[static_cast<std::size_t>(i)];
    // Under halting, block i runs on x * m with m the mask before it (docs/formats.md 1).
    const TokenMask* mask = halting ? &halting->mask() : nullptr;
    if (mask) zero_dead_tokens(*mask, w.x.data(), C);
    parallel_rows(rows, C, [&](index_t, index_t r0, index_t r1) {
      kernels::layernorm_forward(w.x.data() + r0 * C, b.n1_w.v.data(), b.n1_b.v.data(), w.ln.data() + r0 * C,
                                 static_cast<T*>(nullptr), static_cast<T*>(nullptr), r1 - r0, C, eps);
    });
    if (cap && cap->mixer_inputs) cap->mixer_in[static_cast<std::size_t>(i)] = w.ln;
    const bool want_map = cap && cap->maps && std::holds_alternative<Attention<T>>(b.mixer);
    // The pre-proj output comes with the mixer output from one attention pass, unless maps
    // are wanted too (their own pass).
    bool mixed = false;
    if (cap && cap->pre_proj) {
      auto& pre = cap->pre_proj_out[static_cast<std::size_t>(i)];
      if (const auto* a = std::get_if<Attention<T>>(&b.mixer)) {
        pre.resize(Shape{B, N, C});
        if (want_map) {
          a->forward_pre_proj(w.ln.view(), pre.view(), mask);
        } else {
          a->forward_pre_proj(w.ln.view(), pre.view(), w.mix.view(), mask);
          mixed = true;
        }
      } else {
        pre = Tensor<T>();
      }
    }
    if (want_map) {
      auto& map = cap->attn_map[static_cast<std::size_t>(i)];
      const auto& a = std::get<Attention<T>>(b.mixer);
      map.resize(Shape{B, a.num_heads(), N, N});
      a.forward_capture(w.ln.view(), w.mix.view(), map.view(), mask);
    } else if (mixed) {
      cap->attn_map[static_cast<std::size_t>(i)] = Tensor<T>();
    } else {
      std::visit([&](const auto& m) { m.forward(w.ln.view(), w.mix.view(), mask); }, b.mixer);
      if (cap) cap->attn_map[static_cast<std::size_t>(i)] = Tensor<T>();
    }
    if (cap && cap->mixers) cap->mixer_out[static_cast<std::size_t>(i)] = w.mix;
    T* x = w.x.data();
    const T* mx = w.mix.data();
    const index_t alive = mask ? w.alive.plan(mask, B, N) : rows;
    if (alive < rows) {
      // Halted tokens cost nothing past their mixer (which packs the alive tokens itself): the
      // residual add, LN2 and the MLP run on the M alive rows only, and the halted rows of x
      // keep the zeros masking gave them, as the masked computation does.
      w.alive_x.resize(Shape{alive, C});
      T* ax = w.alive_x.data();
      for (index_t r = 0; r < alive; ++r) {
        const index_t src = w.alive.source(r) * C;
        for (index_t c = 0; c < C; ++c) ax[r * C + c] = x[src + c] + mx[src + c];
      }
      mlp(b, ax, w.ln.data(), w.hid.data(), alive, eps);
      w.alive.scatter(ax, x, C);
    } else {
      for (index_t k = 0; k < rows * C; ++k) x[k] += mx[k];
      mlp(b, x, w.ln.data(), w.hid.data(), rows, eps);
    }
    if (mask) halting->update(i, w.x.view());
    if (cap && cap->blocks) cap->block_out[static_cast<std::size_t>(i)] = w.x;
  }
  head(w, B, logits.data());
  if (halting) {
    if (cap && cap->halting) cap->halting_state = *halting;
    const std::lock_guard<std::mutex> lock(halting_mutex_.m);
    std::swap(halting_, halting);
  }
}

template <class T>
template <class Tp>
  requires std::same_as<Tp, Tape<T>>
Var HybridViT<T>::forward(Tp& tape, TensorView<const T> images, vit_trace* trace) {
  const index_t B = check_images("HybridViT::forward(tape)", images);
  const index_t C = dim(), P = cfg_.patch_size, F = cfg_.in_chans * P * P, np = cfg_.num_patches();
  train_patches_.resize(Shape{B, np, F});
  patchify(images, B, train_patches_.data());
  const Var patches = tape.input(train_patches_.view());
  const Var wp = tape.param(patch_w_.v.view().reshape(Shape{C, F}), patch_w_.g.view().reshape(Shape{C, F}));
  Var x = tape.concat_tokens(bind(tape, cls_), tape.linear(patches, wp, bind(tape, patch_b_)));
  x = tape.add(x, bind(tape, pos_));
  if (trace) {
    const bool want = trace->want_pre_proj;
    const Tensor<std::uint8_t>* forced = trace->forced_masks;
    *trace = vit_trace{};
    trace->want_pre_proj = want;
    trace->forced_masks = forced;
  }
  const Tensor<std::uint8_t>* forced = trace ? trace->forced_masks : nullptr;
  if (forced) {
    if (!halting_)
      throw config_error("HybridViT::forward(tape): forced masks need a model with halting (config \"halting\")");
    check_shape("HybridViT::forward(tape)", "forced_masks", forced->shape(), {depth(), B, cfg_.num_tokens()});
  }
  const T eps = static_cast<T>(cfg_.ln_eps);
  const index_t N = cfg_.num_tokens();
  if (halting_) {
    halting_->reset(B, N, depth());
    train_masks_.resize(static_cast<std::size_t>(depth()));
  }
  for (index_t i = 0; i < depth(); ++i) {
    auto& b = blocks_[static_cast<std::size_t>(i)];
    const TokenMask* mask = nullptr;
    if (halting_) {
      // The mixer node reads its mask again in backward: keep a copy per block.
      auto& block_mask = train_masks_[static_cast<std::size_t>(i)];
      if (forced) {
        const index_t BN = B * N;
        Tensor<std::uint8_t> alive(Shape{B, N});
        std::copy_n(forced->data() + i * BN, BN, alive.data());
        for (index_t s = 0; s < B; ++s) alive(s, 0) = 1;  // CLS never halts
        block_mask = TokenMask(std::move(alive));
      } else {
        block_mask = halting_->mask();
      }
      mask = &train_masks_[static_cast<std::size_t>(i)];
      x = tape.mask_tokens(x, *mask);
    }
    const Var h = tape.layernorm(x, bind(tape, b.n1_w), bind(tape, b.n1_b), eps);
    Var pre;
    const Var m = std::visit(
        [&](auto& mm) {
          if constexpr (HasPreProjOutput<std::remove_cvref_t<decltype(mm)>>) {
            if (trace && trace->want_pre_proj && provides_pre_proj_output(mm)) {
              auto [y, s] = tape.mixer_pre_proj(mm, h, mask);
              pre = s;
              return y;
            }
          }
          return tape.mixer(mm, h, mask);
        },
        b.mixer);
    x = tape.add(x, m);
    const Var h2 = tape.layernorm(x, bind(tape, b.n2_w), bind(tape, b.n2_b), eps);
    const Var f = tape.linear_gelu(h2, bind(tape, b.fc1_w), bind(tape, b.fc1_b));
    x = tape.add(x, tape.linear(f, bind(tape, b.fc2_w), bind(tape, b.fc2_b)));
    if (halting_) {
      x = tape.mask_tokens(x, *mask);
      halting_->update(i, tape.value(x));
    }
    if (trace) {
      trace->mixer_in.push_back(h);
      trace->mixer_out.push_back(m);
      trace->pre_proj.push_back(pre);
      trace->block_out.push_back(x);
    }
  }
  const Var cls = tape.layernorm(tape.slice_tokens(x, 0, 1), bind(tape, norm_w_), bind(tape, norm_b_), eps);
  const Var logits = tape.reshape(tape.linear(cls, bind(tape, head_w_), bind(tape, head_b_)),
                                  Shape{B, cfg_.num_classes});
  if (trace) trace->logits = logits;
  return logits;
}

template <class T>
template <class Tp>
  requires std::same_as<Tp, Tape<T>>
Var HybridViT<T>::halting_loss(Tp& tape, const vit_trace& trace, double alpha_p, double alpha_d, index_t target_depth) {
  const auto& hs = halting();
  if (static_cast<index_t>(trace.block_out.size()) != depth() || hs.layers_done() != depth())
    throw config_error("HybridViT::halting_loss: needs the trace of a complete tape forward");
  const Tensor<T> g = hs.loss_grad(alpha_p, alpha_d, target_depth);  // [L, B, N]
  const T value = static_cast<T>(alpha_p) * hs.ponder_loss() + static_cast<T>(alpha_d) * hs.prior_kl(target_depth);
  return channel0_loss(tape, trace, value, g.data());
}

template <class T>
void HybridViT<T>::init_norms() {
  norm_w_.v.fill(T(1));
  norm_b_.v.zero();
  for (auto& b : blocks_) {
    b.n1_w.v.fill(T(1));
    b.n1_b.v.zero();
    b.n2_w.v.fill(T(1));
    b.n2_b.v.zero();
  }
}

template <class T>
void HybridViT<T>::patchify(TensorView<const T> images, index_t B, T* out) const {
  const index_t P = cfg_.patch_size, g = cfg_.grid(), Cin = cfg_.in_chans, S = cfg_.img_size;
  for (index_t b = 0; b < B; ++b)
    for (index_t gy = 0; gy < g; ++gy)
      for (index_t gx = 0; gx < g; ++gx)
        for (index_t c = 0; c < Cin; ++c)
          for (index_t ky = 0; ky < P; ++ky) {
            const T* src = images.data() + ((b * Cin + c) * S + gy * P + ky) * S + gx * P;
            std::copy(src, src + P, out);
            out += P;
          }
}

template <class T>
void HybridViT<T>::embed(TensorView<const T> images, index_t B, workspace& w) const {
  const index_t C = dim(), P = cfg_.patch_size, F = cfg_.in_chans * P * P, np = cfg_.num_patches(), N = np + 1;
  w.patches.resize(Shape{B * np, F});
  patchify(images, B, w.patches.data());
  w.emb.resize(Shape{B * np, C});
  linear_forward(w.patches.data(), patch_w_.v.data(), patch_b_.v.data(), w.emb.data(), B * np, F, C);
  w.x.resize(Shape{B, N, C});
  const T* pos = pos_.v.data();
  for (index_t b = 0; b < B; ++b) {
    T* xb = w.x.data() + b * N * C;
    for (index_t c = 0; c < C; ++c) xb[c] = cls_.v.data()[c] + pos[c];
    const T* e = w.emb.data() + b * np * C;
    for (index_t k = 0; k < np * C; ++k) xb[C + k] = e[k] + pos[C + k];
  }
}

template <class T>
void HybridViT<T>::mlp(const block& b, T* x, T* ln, T* hid, index_t rows, T eps) const {
  const index_t C = dim(), Hd = cfg_.mlp_hidden();
  parallel_rows(rows, C, [&](index_t, index_t r0, index_t r1) {
    kernels::layernorm_forward(x + r0 * C, b.n2_w.v.data(), b.n2_b.v.data(), ln + r0 * C, static_cast<T*>(nullptr),
                               static_cast<T*>(nullptr), r1 - r0, C, eps);
  });
  linear_forward(ln, b.fc1_w.v.data(), static_cast<const T*>(nullptr), hid, rows, C, Hd);
  parallel_rows(rows, Hd, [&](index_t, index_t r0, index_t r1) {
    kernels::bias_gelu(hid + r0 * Hd, b.fc1_b.v.data(), r1 - r0, Hd, static_cast<T*>(nullptr));
  });
  linear_forward(hid, b.fc2_w.v.data(), b.fc2_b.v.data(), x, rows, Hd, C, accumulate::yes);
}

template <class T>
void HybridViT<T>::head(workspace& w, index_t B, T* logits) const {
  const index_t C = dim(), N = cfg_.num_tokens();
  w.cls.resize(Shape{B, C});
  w.cls_ln.resize(Shape{B, C});
  for (index_t b = 0; b < B; ++b) std::copy_n(w.x.data() + b * N * C, C, w.cls.data() + b * C);
  kernels::layernorm_forward(w.cls.data(), norm_w_.v.data(), norm_b_.v.data(), w.cls_ln.data(),
                             static_cast<T*>(nullptr), static_cast<T*>(nullptr), B, C, static_cast<T>(cfg_.ln_eps));
  linear_forward(w.cls_ln.data(), head_w_.v.data(), head_b_.v.data(), logits, B, C, cfg_.num_classes);
}

SPARSIMIX_EXTERN_TEMPLATE(class HybridViT<float>)
SPARSIMIX_EXTERN_TEMPLATE(class HybridViT<double>)
// Member templates are not covered by the class's instantiation: the tape members for Tape<T>.
SPARSIMIX_EXTERN_TEMPLATE(Var HybridViT<float>::forward<Tape<float>>(Tape<float>&, TensorView<const float>,
                                                                    vit_trace*))
SPARSIMIX_EXTERN_TEMPLATE(Var HybridViT<double>::forward<Tape<double>>(Tape<double>&, TensorView<const double>,
                                                                      vit_trace*))
SPARSIMIX_EXTERN_TEMPLATE(Var HybridViT<float>::halting_loss<Tape<float>>(Tape<float>&, const vit_trace&, double,
                                                                         double, index_t))
SPARSIMIX_EXTERN_TEMPLATE(Var HybridViT<double>::halting_loss<Tape<double>>(Tape<double>&, const vit_trace&, double,
                                                                           double, index_t))

SPARSIMIX_ABI_END
}  // namespace sparsimix
