// Named parameters: a value and its gradient, under the PyTorch/timm name.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "tensor.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// A trainable tensor as optimizers and checkpoints see it: views of the value and its gradient.
template <class T>
struct Param {
  std::string name;     // PyTorch name relative to the module, e.g. "qkv.weight"
  TensorView<T> value;  // the module's own storage
  TensorView<T> grad;   // same shape; backward accumulates into it
  bool decay = true;    // false for biases, norms, A_log, D: excluded from weight decay
};

// A module's parameters, in state_dict order.
template <class T>
using ParamList = std::vector<Param<T>>;

// Tensors by PyTorch name, in state_dict order (copies, not views).
template <class T>
using named_tensors = std::vector<std::pair<std::string, Tensor<T>>>;

// Prepends "prefix." to every name (for nesting modules).
template <class T>
ParamList<T> prefixed(ParamList<T> ps, const std::string& prefix) {
  for (auto& p : ps) p.name = prefix + "." + p.name;
  return ps;
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
