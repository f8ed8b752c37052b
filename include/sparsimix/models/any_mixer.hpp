// AnyMixer<T>: a type-erased holder for any user type that models SeqMixer, so a HybridViT
// block can hold mixers sparsimix was not compiled with. AnyMixer models SeqMixer itself and
// forwards every optional capability of the held type (concepts.hpp): init, the
// pre-projection output, a dense checkpoint layout, initialisation from the teacher, and,
// for a type with a mixer_traits block, the spec a checkpoint records.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../concepts.hpp"
#include "../mixers/traits.hpp"
#include "mixer_state.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Holds any SeqMixer of scalar T behind one type (header comment): HybridViT's user-mixer slot.
template <class T = float>
class AnyMixer {
  struct cache_base {
    virtual ~cache_base() = default;
  };
  using lookup_fn = std::function<Tensor<T>(const std::string&)>;
  struct concept_base {
    virtual ~concept_base() = default;
    virtual std::unique_ptr<concept_base> clone() const = 0;
    virtual index_t dim() const = 0;
    virtual void forward(ConstSeq<T> x, Seq<T> y, const TokenMask* mask) const = 0;
    virtual void forward(ConstSeq<T> x, Seq<T> y, std::unique_ptr<cache_base>& c, const TokenMask* mask) = 0;
    virtual void backward(const cache_base& c, ConstSeq<T> dy, Seq<T> dx) = 0;
    virtual void backward(const cache_base& c, ConstSeq<T> dy, Seq<T> dx, ConstSeq<T> ds) = 0;
    virtual ParamList<T> parameters() = 0;
    virtual void init(Rng& rng) = 0;
    virtual bool has_pre_proj() const = 0;
    virtual std::optional<index_t> multiply_adds(index_t n) const = 0;
    virtual ConstSeq<T> pre_proj_output(const cache_base& c) const = 0;
    virtual named_tensors<T> state(bool grads) = 0;
    virtual std::vector<std::string> state_names() = 0;
    virtual void load_state(const lookup_fn& lookup) = 0;
    virtual std::vector<std::string> init_from_teacher(const named_tensors<T>& teacher) = 0;
    virtual std::vector<std::string> teacher_initialised() const = 0;
    virtual std::optional<mixer_spec> spec() const = 0;
  };
  template <class M>
  struct model final : concept_base {
    // The held type's training cache, behind the type-erased cache_type.
    struct cache final : cache_base {
      typename M::cache_type value{};  // the held mixer's own cache_type
    };
    M m;
    explicit model(M mm) : m(std::move(mm)) {}
    static const cache& cast(const cache_base& c) {
      const auto* p = dynamic_cast<const cache*>(&c);
      if (!p) throw config_error("AnyMixer: the cache comes from another mixer type's training forward");
      return *p;
    }
    std::unique_ptr<concept_base> clone() const override {
      if constexpr (std::is_copy_constructible_v<M>)
        return std::make_unique<model>(m);
      else
        throw config_error("AnyMixer: the held mixer type is not copyable");
    }
    index_t dim() const override { return static_cast<index_t>(m.dim()); }
    void forward(ConstSeq<T> x, Seq<T> y, const TokenMask* mask) const override { m.forward(x, y, mask); }
    void forward(ConstSeq<T> x, Seq<T> y, std::unique_ptr<cache_base>& c, const TokenMask* mask) override {
      // Reuse the cache object (and its buffers) when it already holds this mixer's type.
      if (!dynamic_cast<cache*>(c.get())) c = std::make_unique<cache>();
      m.forward(x, y, static_cast<cache&>(*c).value, mask);
    }
    void backward(const cache_base& c, ConstSeq<T> dy, Seq<T> dx) override { m.backward(cast(c).value, dy, dx); }
    void backward(const cache_base& c, ConstSeq<T> dy, Seq<T> dx, ConstSeq<T> ds) override {
      if constexpr (HasPreProjOutput<M>)
        m.backward(cast(c).value, dy, dx, ds);
      else
        throw config_error("AnyMixer::backward: the held mixer has no pre-projection output (HasPreProjOutput)");
    }
    ParamList<T> parameters() override { return m.parameters(); }
    void init(Rng& rng) override {
      if constexpr (Initializable<M>) m.init(rng);
    }
    bool has_pre_proj() const override { return HasPreProjOutput<M>; }
    std::optional<index_t> multiply_adds(index_t n) const override { return mixer_multiply_adds(m, n); }
    ConstSeq<T> pre_proj_output(const cache_base& c) const override {
      if constexpr (HasPreProjOutput<M>)
        return m.pre_proj_output(cast(c).value);
      else
        return ConstSeq<T>{};
    }
    named_tensors<T> state(bool grads) override { return mixer_state(m, grads); }
    std::vector<std::string> state_names() override { return mixer_state_names(m); }
    void load_state(const lookup_fn& lookup) override { load_mixer_state(m, lookup, "AnyMixer"); }
    std::vector<std::string> init_from_teacher(const named_tensors<T>& teacher) override {
      if constexpr (InitsFromTeacher<M>)
        return m.init_from_teacher(teacher);
      else
        return {};
    }
    std::vector<std::string> teacher_initialised() const override {
      if constexpr (InitsFromTeacher<M>)
        return m.teacher_initialised();
      else
        return {};
    }
    std::optional<mixer_spec> spec() const override {
      if constexpr (RegisteredMixer<M>)
        return spec_of(m);
      else
        return std::nullopt;
    }
  };

 public:
  using scalar_type = T;  // T, for generic code over mixers
  // A training forward's cache for whatever type is held (reused when the type stays the same).
  struct cache_type {
    std::unique_ptr<cache_base> impl;  // the held type's cache; empty before the first training forward
  };

  // Takes `m` (moved or copied); M must be a SeqMixer of the same scalar type.
  template <class M>
    requires(!std::is_same_v<std::remove_cvref_t<M>, AnyMixer> && SeqMixer<std::remove_cvref_t<M>> &&
             std::is_same_v<typename std::remove_cvref_t<M>::scalar_type, T>)
  AnyMixer(M&& m) : impl_(std::make_unique<model<std::remove_cvref_t<M>>>(std::forward<M>(m))) {}
  // Copies the held mixer (config_error if its type is not copyable).
  AnyMixer(const AnyMixer& o) : impl_(o.impl_ ? o.impl_->clone() : nullptr) {}
  // Takes the held mixer over; `o` holds nothing afterwards.
  AnyMixer(AnyMixer&&) noexcept = default;
  // Replaces the held mixer with a copy of o's.
  AnyMixer& operator=(const AnyMixer& o) {
    if (this != &o) impl_ = o.impl_ ? o.impl_->clone() : nullptr;
    return *this;
  }
  // Takes o's held mixer over.
  AnyMixer& operator=(AnyMixer&&) noexcept = default;

  // C, the held mixer's token width.
  index_t dim() const { return impl_->dim(); }
  // Inference forward of the held mixer.
  void forward(ConstSeq<T> x, Seq<T> y, const TokenMask* mask) const { impl_->forward(x, y, mask); }
  // Training forward of the held mixer; `c` keeps what backward reads.
  void forward(ConstSeq<T> x, Seq<T> y, cache_type& c, const TokenMask* mask) { impl_->forward(x, y, c.impl, mask); }
  // Backward of the held mixer from a training forward's cache.
  void backward(const cache_type& c, ConstSeq<T> dy, Seq<T> dx) { impl_->backward(held(c, "backward"), dy, dx); }
  // The held mixer's parameters.
  ParamList<T> parameters() { return impl_->parameters(); }

  // Capabilities, forwarded (a held type without one: init does nothing,
  // provides_pre_proj_output() is false, the dense layout is its parameters(),
  // init_from_teacher copies nothing, spec() is empty).
  void init(Rng& rng) { impl_->init(rng); }
  // Whether the held type has a pre-projection output (HasPreProjOutput).
  bool provides_pre_proj_output() const { return impl_->has_pre_proj(); }
  // The held mixer's multiply-adds over n tokens (CountsMultiplyAdds), or nothing if it does not count them.
  std::optional<index_t> multiply_adds(index_t n) const { return impl_->multiply_adds(n); }
  // The held mixer's pre-projection output of a training forward (empty if it has none).
  ConstSeq<T> pre_proj_output(const cache_type& c) const { return impl_->pre_proj_output(held(c, "pre_proj_output")); }
  // Backward with an extra gradient ds on the pre-projection output (config_error if it has none).
  void backward(const cache_type& c, ConstSeq<T> dy, Seq<T> dx, ConstSeq<T> ds) {
    impl_->backward(held(c, "backward"), dy, dx, ds);
  }
  // The held mixer's tensors in its dense checkpoint layout (its parameters if it has none).
  named_tensors<T> export_dense() const { return impl_->state(false); }
  // The gradients in the same layout.
  named_tensors<T> export_dense_grads() const { return impl_->state(true); }
  // The names export_dense writes, in order.
  std::vector<std::string> dense_names() const { return impl_->state_names(); }
  // Loads the dense layout: lookup(name) returns each tensor of dense_names().
  void import_dense(const lookup_fn& lookup) { impl_->load_state(lookup); }
  // Copies from the teacher's attention what the held type initialises from; returns the names.
  std::vector<std::string> init_from_teacher(const named_tensors<T>& teacher) { return impl_->init_from_teacher(teacher); }
  // The names init_from_teacher copies (empty for a type that copies nothing).
  std::vector<std::string> teacher_initialised() const { return impl_->teacher_initialised(); }
  // The spec a checkpoint records, if the held type is registered (has a mixer_traits block).
  std::optional<mixer_spec> spec() const { return impl_->spec(); }

  // The held mixer, if it is an M.
  template <class M>
  M* get() noexcept {
    auto* p = dynamic_cast<model<M>*>(impl_.get());
    return p ? &p->m : nullptr;
  }

 private:
  static const cache_base& held(const cache_type& c, const char* what) {
    if (!c.impl) throw config_error(detail::concat("AnyMixer::", what, ": the cache holds no training forward"));
    return *c.impl;
  }
  std::unique_ptr<concept_base> impl_;
};

SPARSIMIX_ABI_END
}  // namespace sparsimix
