// sparsimix kernels: SIMD activations, softmax, layernorm, reductions (+ scalar twins in ref/).
#pragma once
#include "kernels/activations.hpp"
