// Token packing, the one implementation of Note [token mask gather] (token_mask.hpp): the
// alive tokens of each sequence of a [B, N, C] batch, in (sequence, position) order, become
// the rows of a packed [M, C] buffer; results are scattered back with exact zeros at dead
// tokens. Without a mask every token is alive and packing is a plain copy (or nothing, when
// the mixer reads the dense buffer directly). Every mixer plans with it, and the masking op
// (zero_dead_tokens) is the one way dead rows are cleared.
#pragma once
#include <algorithm>
#include <cstring>
#include <vector>

#include "token_mask.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// The plan that packs the alive tokens of a [B, N, C] batch into [M, C] rows and scatters back.
class token_packing {
 public:
  // Packs [B, N, *] under `mask` (nullptr: all tokens). Keeps its buffers' capacity, so a
  // steady state of same-sized calls does not allocate. Returns M, the packed rows.
  index_t plan(const TokenMask* mask, index_t B, index_t N) {
    batch_ = B;
    tokens_ = N;
    masked_ = mask != nullptr;
    offset_.resize(static_cast<std::size_t>(B + 1));
    offset_[0] = 0;
    max_length_ = 0;
    if (!mask) {
      source_.clear();
      for (index_t b = 0; b < B; ++b) offset_[static_cast<std::size_t>(b + 1)] = (b + 1) * N;
      max_length_ = B > 0 ? N : 0;
      return B * N;
    }
    source_.resize(static_cast<std::size_t>(B * N));
    index_t r = 0;
    for (index_t b = 0; b < B; ++b) {
      const std::uint8_t* alive = mask->row(b);
      for (index_t n = 0; n < N; ++n)
        if (alive[n]) source_[static_cast<std::size_t>(r++)] = b * N + n;
      offset_[static_cast<std::size_t>(b + 1)] = r;
      max_length_ = std::max(max_length_, r - offset_[static_cast<std::size_t>(b)]);
    }
    source_.resize(static_cast<std::size_t>(r));  // shrinking keeps capacity
    return r;
  }

  // False until the first plan().
  bool planned() const noexcept { return !offset_.empty(); }
  // B of the last plan.
  index_t batch() const noexcept { return batch_; }
  // N of the last plan.
  index_t tokens() const noexcept { return tokens_; }
  // Whether the last plan had a mask (otherwise packed rows are the dense rows).
  bool masked() const noexcept { return masked_; }
  // M, the packed rows of the last plan.
  index_t rows() const noexcept { return offset_.empty() ? 0 : offset_.back(); }
  // Sequence b owns packed rows [offset(b), offset(b + 1)).
  index_t offset(index_t b) const noexcept { return offset_[static_cast<std::size_t>(b)]; }
  // The B + 1 sequence offsets as one array, for kernels that walk every sequence.
  const index_t* offsets() const noexcept { return offset_.data(); }  // [B + 1]
  // Alive tokens of sequence b: its packed rows.
  index_t length(index_t b) const noexcept { return offset(b + 1) - offset(b); }
  // The longest packed sequence (scratch sizes for per-sequence kernels).
  index_t max_length() const noexcept { return max_length_; }
  // The flat token b * N + n of packed row r.
  index_t source(index_t r) const noexcept { return masked_ ? source_[static_cast<std::size_t>(r)] : r; }
  // Every packed row's flat token, for kernels that gather themselves; nullptr when not masked.
  const index_t* sources() const noexcept { return masked_ ? source_.data() : nullptr; }  // [M], masked only

  // packed [M, C] = the alive rows of dense [B, N, C].
  template <class T>
  void gather(const T* dense, T* packed, index_t C) const {
    const auto bytes = static_cast<std::size_t>(C) * sizeof(T);
    if (!masked_) {
      if (rows() && dense != packed) std::memcpy(packed, dense, static_cast<std::size_t>(rows()) * bytes);
      return;
    }
    for (index_t r = 0; r < rows(); ++r) std::memcpy(packed + r * C, dense + source_[static_cast<std::size_t>(r)] * C, bytes);
  }

  // dense [B, N, C] = packed rows at their tokens, exact 0 at dead tokens.
  template <class T>
  void scatter(const T* packed, T* dense, index_t C) const {
    const auto bytes = static_cast<std::size_t>(C) * sizeof(T);
    if (!masked_) {
      if (rows() && dense != packed) std::memcpy(dense, packed, static_cast<std::size_t>(rows()) * bytes);
      return;
    }
    std::memset(static_cast<void*>(dense), 0, static_cast<std::size_t>(batch_ * tokens_) * bytes);
    for (index_t r = 0; r < rows(); ++r) std::memcpy(dense + source_[static_cast<std::size_t>(r)] * C, packed + r * C, bytes);
  }

 private:
  index_t batch_ = 0, tokens_ = 0, max_length_ = 0;
  bool masked_ = false;
  std::vector<index_t> offset_;  // [B + 1]
  std::vector<index_t> source_;  // [M] (masked only)
};

// The masking op: rows of dead tokens of x [B, N, C] become exact zeros.
template <class T>
void zero_dead_tokens(const TokenMask& mask, T* x, index_t C) {
  const index_t B = mask.batch(), N = mask.tokens();
  for (index_t b = 0; b < B; ++b) {
    const std::uint8_t* alive = mask.row(b);
    for (index_t n = 0; n < N; ++n)
      if (!alive[n]) std::fill_n(x + (b * N + n) * C, C, T(0));
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
