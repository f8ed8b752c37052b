// AnyMixer<T>: a type-erased holder for any user type that models SeqMixer, so a HybridViT
// block can hold mixers sparsimix does not know. AnyMixer models SeqMixer itself.
#pragma once
#include <memory>
#include <type_traits>
#include <utility>

#include "../concepts.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

template <class T = float>
class AnyMixer {
  struct cache_base {
    virtual ~cache_base() = default;
  };
  struct concept_base {
    virtual ~concept_base() = default;
    virtual std::unique_ptr<concept_base> clone() const = 0;
    virtual index_t dim() const = 0;
    virtual void forward(ConstSeq<T> x, Seq<T> y, const TokenMask* mask) const = 0;
    virtual void forward(ConstSeq<T> x, Seq<T> y, std::unique_ptr<cache_base>& c, const TokenMask* mask) = 0;
    virtual void backward(const cache_base& c, ConstSeq<T> dy, Seq<T> dx) = 0;
    virtual ParamList<T> parameters() = 0;
  };
  template <class M>
  struct model final : concept_base {
    struct cache final : cache_base {
      typename M::cache_type value{};
    };
    M m;
    explicit model(M mm) : m(std::move(mm)) {}
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
    void backward(const cache_base& c, ConstSeq<T> dy, Seq<T> dx) override {
      m.backward(static_cast<const cache&>(c).value, dy, dx);
    }
    ParamList<T> parameters() override { return m.parameters(); }
  };

 public:
  using scalar_type = T;
  struct cache_type {
    std::unique_ptr<cache_base> impl;
  };

  template <class M>
    requires(!std::is_same_v<std::remove_cvref_t<M>, AnyMixer> && SeqMixer<std::remove_cvref_t<M>> &&
             std::is_same_v<typename std::remove_cvref_t<M>::scalar_type, T>)
  AnyMixer(M&& m) : impl_(std::make_unique<model<std::remove_cvref_t<M>>>(std::forward<M>(m))) {}
  AnyMixer(const AnyMixer& o) : impl_(o.impl_ ? o.impl_->clone() : nullptr) {}
  AnyMixer(AnyMixer&&) noexcept = default;
  AnyMixer& operator=(const AnyMixer& o) {
    if (this != &o) impl_ = o.impl_ ? o.impl_->clone() : nullptr;
    return *this;
  }
  AnyMixer& operator=(AnyMixer&&) noexcept = default;

  index_t dim() const { return impl_->dim(); }
  void forward(ConstSeq<T> x, Seq<T> y, const TokenMask* mask) const { impl_->forward(x, y, mask); }
  void forward(ConstSeq<T> x, Seq<T> y, cache_type& c, const TokenMask* mask) { impl_->forward(x, y, c.impl, mask); }
  void backward(const cache_type& c, ConstSeq<T> dy, Seq<T> dx) {
    if (!c.impl) throw config_error("AnyMixer::backward: the cache holds no training forward");
    impl_->backward(*c.impl, dy, dx);
  }
  ParamList<T> parameters() { return impl_->parameters(); }

  // The held mixer, if it is an M.
  template <class M>
  M* get() noexcept {
    auto* p = dynamic_cast<model<M>*>(impl_.get());
    return p ? &p->m : nullptr;
  }

 private:
  std::unique_ptr<concept_base> impl_;
};

SPARSIMIX_ABI_END
}  // namespace sparsimix
