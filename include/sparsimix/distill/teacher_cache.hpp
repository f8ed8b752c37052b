// The teacher's outputs per batch, kept across the distillations of one experiment (the
// demo's and the study's variants): stage 1's targets and stage 2's logits.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <type_traits>
#include <utility>
#include <variant>

#include "../core/hash.hpp"
#include "../models/vit.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Every variant's stage runs on the same batches (the data order depends on the stage's seed,
// not on the variant, and the distillation stages do not augment), so each batch's teacher
// forward need run once, not once per variant. A batch is recognised by its exact image values
// (kept beside its outputs), so a batch the cache has not seen, e.g. another seed's, is
// computed; a hit returns the values the forward would give (it is deterministic at a fixed
// thread count), so no result changes. Holds one teacher's outputs: use one cache per teacher.
//
// Two budgets, because the entries differ 40-fold in size for the same saving: a stage-2 entry
// is the images and the logits (0.4 MB for 128 Fashion-MNIST images), a stage-1 entry the
// images and every block's pre-projection output (15 MB at the demo's C 96, N 50), so stage-1
// entries cannot crowd out stage-2 ones. Batches beyond a budget are computed every time.
template <class T>
class teacher_cache {
 public:
  // Budgets in bytes: stage-2 logits and stage-1 targets (0 keeps none of that kind).
  explicit teacher_cache(std::size_t logits_bytes = std::size_t{1} << 30, std::size_t targets_bytes = 0)
      : logits_(logits_bytes), targets_(targets_bytes) {}

  // Stage 2: the logits for `images`, a kept copy or compute(images, logits) run and kept.
  // The reference stays valid until the next call.
  template <class F>
  const Tensor<T>& logits(const Tensor<T>& images, F&& compute) {
    return logits_.get(images, [&](const Tensor<T>& x, Tensor<T>& out) { compute(x, out); }, [](const Tensor<T>& t) {
      return static_cast<std::size_t>(t.numel()) * sizeof(T);
    });
  }

  // Stage 1: the teacher's capture of `images` with at least the outputs `want` asks for
  // (its blocks, mixers, mixer_inputs and pre_proj flags; maps and halting are not kept).
  // compute(images, capture) runs the teacher with the capture's flags set as `want`'s. A kept
  // capture holds no mixer output where it holds the attention's pre-projection output: the
  // caller gets it back bit for bit with mixer_output() below. Valid until the next call.
  template <class F>
  const vit_capture<T>& targets(const Tensor<T>& images, const vit_capture<T>& want, F&& compute) {
    auto covers = [&](const vit_capture<T>& have) {
      return (have.blocks || !want.blocks) && (have.mixers || !want.mixers) &&
             (have.mixer_inputs || !want.mixer_inputs) && (have.pre_proj || !want.pre_proj);
    };
    return targets_.get(
        images,
        [&](const Tensor<T>& x, vit_capture<T>& out) {
          copy_flags(want, out);
          compute(x, out);
          out.attn_map.clear();
        },
        [](const vit_capture<T>& c) {
          std::size_t n = 0;
          for (const auto* v : {&c.block_out, &c.mixer_out, &c.mixer_in, &c.pre_proj_out})
            for (const auto& t : *v) n += static_cast<std::size_t>(t.numel());
          return n * sizeof(T);
        },
        covers, [](const vit_capture<T>& c) {
          // The pre-proj output determines the mixer output (mixer_output()): keep one.
          vit_capture<T> kept;
          copy_flags(c, kept);
          kept.block_out = c.block_out;
          kept.mixer_in = c.mixer_in;
          kept.pre_proj_out = c.pre_proj_out;
          kept.mixer_out.resize(c.mixer_out.size());
          for (std::size_t l = 0; l < c.mixer_out.size(); ++l)
            if (l >= c.pre_proj_out.size() || !c.pre_proj_out[l].numel()) kept.mixer_out[l] = c.mixer_out[l];
          return kept;
        });
  }

  // Block l's mixer output from a capture targets() returned: the kept tensor, or `teacher`'s
  // attention projection of the kept pre-proj output written into `scratch`.
  static const Tensor<T>& mixer_output(const HybridViT<T>& teacher, const vit_capture<T>& c, index_t l,
                                       Tensor<T>& scratch) {
    const auto k = static_cast<std::size_t>(l);
    if (k < c.mixer_out.size() && c.mixer_out[k].numel()) return c.mixer_out[k];
    const auto* a = std::get_if<Attention<T>>(&teacher.mixer(l));
    if (!a || k >= c.pre_proj_out.size() || !c.pre_proj_out[k].numel())
      throw config_error(detail::concat("teacher_cache::mixer_output: block ", l,
                                        " has neither a kept mixer output nor an attention pre-projection output"));
    scratch.resize(c.pre_proj_out[k].shape());
    a->project(c.pre_proj_out[k].view(), scratch.view(), nullptr);
    return scratch;
  }

  // Forgets every batch (e.g. when the next variants train on another seed's batches).
  void clear() {
    logits_.clear();
    targets_.clear();
  }
  // Requests answered from the cache, both stages.
  index_t hits() const noexcept { return logits_.hits + targets_.hits; }
  // Requests that ran the teacher, both stages.
  index_t misses() const noexcept { return logits_.misses + targets_.misses; }
  // Stage-1 requests answered from the cache.
  index_t target_hits() const noexcept { return targets_.hits; }
  // Stage-2 requests answered from the cache.
  index_t logit_hits() const noexcept { return logits_.hits; }
  // Stage-1 requests that ran the teacher.
  index_t target_misses() const noexcept { return targets_.misses; }
  // Stage-2 requests that ran the teacher.
  index_t logit_misses() const noexcept { return logits_.misses; }

 private:
  // The outputs a capture asks for (not maps or halting, which are not kept).
  static void copy_flags(const vit_capture<T>& from, vit_capture<T>& to) {
    to.blocks = from.blocks;
    to.mixers = from.mixers;
    to.mixer_inputs = from.mixer_inputs;
    to.pre_proj = from.pre_proj;
  }

  // Entries of one kind under one byte budget, keyed by FNV-1a of the images' bytes.
  template <class V>
  struct store {
    explicit store(std::size_t budget) : max_bytes(budget) {}
    // One kept batch.
    struct entry {
      // The batch's images, compared value by value on a hash match.
      Tensor<T> images;
      // What the teacher gave for them.
      V value;
    };
    std::unordered_multimap<std::uint64_t, entry> entries;
    V scratch;
    std::size_t bytes = 0, max_bytes;
    index_t hits = 0, misses = 0;

    // `covers(kept)`: whether a kept value answers this request; `keep(computed)`: the value to
    // keep for a computed one.
    template <class Compute, class Size, class Covers = std::nullptr_t, class Keep = std::nullptr_t>
    const V& get(const Tensor<T>& images, Compute&& compute, Size&& size, Covers covers = nullptr,
                 Keep keep = nullptr) {
      const std::uint64_t key = detail::fnv1a(images.data(), static_cast<std::size_t>(images.numel()) * sizeof(T));
      auto [lo, hi] = entries.equal_range(key);
      for (auto it = lo; it != hi; ++it)
        if (it->second.images.shape() == images.shape() &&
            std::equal(images.begin(), images.end(), it->second.images.begin())) {
          if constexpr (!std::is_same_v<Covers, std::nullptr_t>)
            if (!covers(it->second.value)) continue;
          ++hits;
          return it->second.value;
        }
      ++misses;
      compute(images, scratch);
      if (max_bytes == 0) return scratch;
      V kept;
      if constexpr (std::is_same_v<Keep, std::nullptr_t>)
        kept = scratch;
      else
        kept = keep(scratch);
      const std::size_t b = static_cast<std::size_t>(images.numel()) * sizeof(T) + size(kept);
      if (bytes + b > max_bytes) return scratch;
      bytes += b;
      entries.emplace(key, entry{images, std::move(kept)});
      return scratch;
    }
    void clear() {
      entries.clear();
      bytes = 0;
    }
  };
  store<Tensor<T>> logits_;
  store<vit_capture<T>> targets_;
};

SPARSIMIX_ABI_END
}  // namespace sparsimix
