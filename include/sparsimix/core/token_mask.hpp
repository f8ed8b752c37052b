// TokenMask: which tokens of each sequence are alive, [B, N] bytes (1 alive, 0 dead).
// Note [token mask gather]: mixers that read a mask treat dead tokens as absent.
// Attention excludes dead keys from the softmax exactly; the LSTM and the selective scan
// gather the alive tokens of each sequence in order, run on that shorter sequence and
// scatter back, writing 0 at dead positions (no bias). Every mixer cites this note.
#pragma once
#include <cstdint>

#include "tensor.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Which tokens of each sequence are alive: [B, N] bytes, 1 alive and 0 dead.
class TokenMask {
 public:
  TokenMask() = default;
  // All tokens alive.
  TokenMask(index_t batch, index_t tokens) : alive_(Shape{batch, tokens}, std::uint8_t{1}) {}
  // Takes a [B, N] byte tensor, nonzero = alive; throws shape_error on another rank.
  explicit TokenMask(Tensor<std::uint8_t> alive) : alive_(std::move(alive)) {
    check_shape("TokenMask", "alive", alive_.shape(), {-1, -1});
  }

  // Number of sequences B.
  index_t batch() const noexcept { return alive_.size(0); }
  // Tokens per sequence N, alive or not.
  index_t tokens() const noexcept { return alive_.size(1); }
  // Whether token n of sequence b is alive.
  bool alive(index_t b, index_t n) const noexcept { return alive_(b, n) != 0; }
  // Marks token n of sequence b alive or dead.
  void set(index_t b, index_t n, bool a) noexcept { alive_(b, n) = a ? 1 : 0; }
  // The N bytes of sequence b.
  const std::uint8_t* row(index_t b) const noexcept { return alive_.data() + b * tokens(); }
  // Alive tokens in sequence b.
  index_t count(index_t b) const noexcept {
    index_t c = 0;
    for (index_t n = 0; n < tokens(); ++n) c += row(b)[n] != 0;
    return c;
  }
  // The [B, N] bytes, for copying or saving the mask.
  const Tensor<std::uint8_t>& tensor() const noexcept { return alive_; }

  // Throws shape_error unless the mask fits a [B, N, *] input of `where`.
  void check_fits(const char* where, const Shape& x) const {
    if (x.rank() != 3 || x[0] != batch() || x[1] != tokens())
      throw shape_error(detail::concat(where, ": mask is ", alive_.shape().str(), ", expected [",
                                       x.rank() >= 2 ? x[0] : -1, ", ", x.rank() >= 2 ? x[1] : -1,
                                       "] to match x ", x.str()));
  }

 private:
  Tensor<std::uint8_t> alive_;
};

SPARSIMIX_ABI_END
}  // namespace sparsimix
