// Tensor<T>: owning, 64-byte aligned, contiguous row-major, rank <= 4.
// TensorView<T>: non-owning view of the same layout (T may be const).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include "shape.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Byte alignment of every Tensor's storage: a full cache line, and enough for AVX-512 loads.
inline constexpr std::size_t tensor_alignment = 64;

// Non-owning view of a contiguous row-major array of rank <= 4 (`TensorView<const T>`: read-only).
template <class T>
class TensorView {
 public:
  using value_type = std::remove_const_t<T>;  // the element type without const, for copies
  using element_type = T;                     // T itself (const for a read-only view)

  constexpr TensorView() = default;
  // Views `shape.numel()` elements at `data`; the caller keeps them alive.
  TensorView(T* data, Shape shape) noexcept : data_(data), shape_(shape) {}
  // A mutable view converts to a const one.
  template <class U>
    requires(std::is_const_v<T> && std::is_same_v<const U, T>)
  TensorView(TensorView<U> other) noexcept : data_(other.data()), shape_(other.shape()) {}

  // First element (row-major).
  T* data() const noexcept { return data_; }
  // Extents, outermost first.
  const Shape& shape() const noexcept { return shape_; }
  // Number of dimensions, 0 to 4.
  int rank() const noexcept { return shape_.rank(); }
  // Extent of dimension `dim`.
  index_t size(int dim) const noexcept { return shape_[dim]; }
  // Element count: the product of the extents.
  index_t numel() const noexcept { return shape_.numel(); }
  // True when there is nothing to read (no data or a zero extent).
  bool empty() const noexcept { return data_ == nullptr || numel() == 0; }
  // Start of the elements in memory order, for range-for and the standard algorithms.
  T* begin() const noexcept { return data_; }
  // One past the last element.
  T* end() const noexcept { return data_ + numel(); }

  // Element at one index per dimension (checked by SPARSIMIX_ASSERT in debug builds).
  template <class... I>
  T& operator()(I... idx) const noexcept {
    static_assert(sizeof...(I) >= 1 && sizeof...(I) <= Shape::max_rank);
    SPARSIMIX_ASSERT(static_cast<int>(sizeof...(I)) == rank());
    const index_t ii[] = {static_cast<index_t>(idx)...};
    index_t off = 0;
    for (int d = 0; d < static_cast<int>(sizeof...(I)); ++d) {
      SPARSIMIX_ASSERT(ii[d] >= 0 && ii[d] < shape_[d]);
      off = off * shape_[d] + ii[d];
    }
    return data_[off];
  }

  // The i-th slice along dimension 0 (rank drops by one).
  TensorView<T> operator[](index_t i) const noexcept {
    SPARSIMIX_ASSERT(rank() >= 1 && i >= 0 && i < shape_[0]);
    Shape s = drop_first();
    return TensorView<T>(data_ + i * s.numel(), s);
  }
  // Same data, another shape with the same element count.
  TensorView<T> reshape(Shape s) const {
    if (s.numel() != numel())
      throw shape_error(detail::concat("reshape: cannot view ", shape_.str(), " as ", s.str()));
    return TensorView<T>(data_, s);
  }

 private:
  Shape drop_first() const {
    switch (rank()) {
      case 1: return Shape{};
      case 2: return Shape{shape_[1]};
      case 3: return Shape{shape_[1], shape_[2]};
      default: return Shape{shape_[1], shape_[2], shape_[3]};
    }
  }
  T* data_ = nullptr;
  Shape shape_{0};  // empty, not a scalar: a default view has no elements
};

namespace detail {
struct aligned_free {
  void operator()(void* p) const noexcept { ::operator delete(p, std::align_val_t(tensor_alignment)); }
};
}  // namespace detail

// Owning, 64-byte aligned, contiguous row-major array of rank <= 4; copies are deep.
template <class T>
class Tensor {
  static_assert(std::is_trivially_copyable_v<T>, "Tensor<T> holds trivially copyable scalars");

 public:
  using value_type = T;  // the scalar type (float or double in the library)

  Tensor() = default;
  // Zero-filled tensor of the given shape.
  explicit Tensor(Shape shape) { resize(shape); zero(); }
  // Tensor of the given shape with every element set to `value`.
  Tensor(Shape shape, T value) { resize(shape); fill(value); }
  // Deep copy: new storage with the same shape and contents.
  Tensor(const Tensor& o) : Tensor() { resize(o.shape_); copy_from(o.view()); }
  // Takes the storage over; `o` must be assigned before its next use.
  Tensor(Tensor&& o) noexcept = default;
  // Deep copy assignment: reuses this tensor's storage when it is large enough.
  Tensor& operator=(const Tensor& o) {
    if (this != &o) { resize(o.shape_); copy_from(o.view()); }
    return *this;
  }
  // Takes `o`'s storage over (freeing this one's); `o` must be assigned before its next use.
  Tensor& operator=(Tensor&& o) noexcept = default;

  // Changes the shape; reallocates only when capacity is short, so inference buffers
  // stop allocating after the first call. Contents are unspecified afterwards.
  void resize(Shape shape) {
    const index_t n = shape.numel();
    if (n > capacity_) {
      storage_.reset(static_cast<T*>(::operator new(static_cast<std::size_t>(n) * sizeof(T),
                                                    std::align_val_t(tensor_alignment))));
      capacity_ = n;
    }
    shape_ = shape;
  }
  // Sets every element to zero (the shape is kept).
  void zero() noexcept {
    if (numel()) std::memset(static_cast<void*>(data()), 0, static_cast<std::size_t>(numel()) * sizeof(T));
  }
  // Sets every element to `v`.
  void fill(T v) noexcept { std::fill(data(), data() + numel(), v); }
  // Copies `src` element by element; throws shape_error unless the element counts match.
  void copy_from(TensorView<const T> src) {
    if (src.numel() != numel())
      throw shape_error(detail::concat("Tensor::copy_from: source is ", src.shape().str(),
                                       ", destination is ", shape_.str()));
    if (numel()) std::memcpy(static_cast<void*>(data()), src.data(), static_cast<std::size_t>(numel()) * sizeof(T));
  }

  // First element (row-major); nullptr while empty.
  T* data() noexcept { return storage_.get(); }
  // First element, read-only.
  const T* data() const noexcept { return storage_.get(); }
  // Extents, outermost first.
  const Shape& shape() const noexcept { return shape_; }
  // Number of dimensions, 0 to 4.
  int rank() const noexcept { return shape_.rank(); }
  // Extent of dimension `dim`.
  index_t size(int dim) const noexcept { return shape_[dim]; }
  // Element count: the product of the extents.
  index_t numel() const noexcept { return shape_.numel(); }
  // Start of the elements in memory order, for range-for and the standard algorithms.
  T* begin() noexcept { return data(); }
  // One past the last element.
  T* end() noexcept { return data() + numel(); }
  // Read-only start of the elements in memory order.
  const T* begin() const noexcept { return data(); }
  // One past the last element, read-only.
  const T* end() const noexcept { return data() + numel(); }

  // A mutable view of the whole tensor, for kernels and layers.
  TensorView<T> view() noexcept { return {data(), shape_}; }
  // A read-only view of the whole tensor.
  TensorView<const T> view() const noexcept { return {data(), shape_}; }
  // Lets a Tensor go where a TensorView is expected.
  operator TensorView<T>() noexcept { return view(); }
  // Lets a const Tensor go where a read-only view is expected.
  operator TensorView<const T>() const noexcept { return view(); }

  // Element at one index per dimension (checked by SPARSIMIX_ASSERT in debug builds).
  template <class... I>
  T& operator()(I... idx) noexcept { return view()(idx...); }
  // Read-only element at one index per dimension.
  template <class... I>
  const T& operator()(I... idx) const noexcept { return view()(idx...); }
  // The i-th slice along dimension 0 (rank drops by one).
  TensorView<T> operator[](index_t i) noexcept { return view()[i]; }
  // The i-th slice along dimension 0, read-only.
  TensorView<const T> operator[](index_t i) const noexcept { return view()[i]; }

 private:
  std::unique_ptr<T, detail::aligned_free> storage_;
  index_t capacity_ = 0;
  Shape shape_{0};  // empty, not a scalar: a default Tensor has no elements
};

// Sequences of tokens: [B, N, C] views.
template <class T> using Seq = TensorView<T>;
// Read-only sequences of tokens: [B, N, C] views.
template <class T> using ConstSeq = TensorView<const T>;

// Throws numeric_error naming the tensor and the first bad index if any value is NaN/Inf.
template <class T>
void check_finite(const char* where, const char* name, TensorView<const T> t) {
  for (index_t i = 0; i < t.numel(); ++i) {
    const T v = t.data()[i];
    if (!std::isfinite(v))
      throw numeric_error(detail::concat(where, ": ", name, " ", t.shape().str(), " has a non-finite value (",
                                         v, ") at flat index ", i));
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
