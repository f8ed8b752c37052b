// sparsimix kernels: SIMD activations, softmax, layernorm, bias+activation, reductions
// (+ scalar twins in kernels/ref/). Attention, LSTM and scan kernels have their own headers.
#pragma once
#include "kernels/activations.hpp"
#include "kernels/bias_act.hpp"
#include "kernels/layernorm.hpp"
#include "kernels/reduce.hpp"
#include "kernels/softmax.hpp"
