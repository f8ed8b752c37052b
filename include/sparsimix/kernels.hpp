// sparsimix kernels: SIMD activations, softmax, layernorm, bias+activation, reductions, the
// LSTM recurrence, depthwise conv1d, the selective scan (+ scalar twins in kernels/ref/): every
// kernel the runtime dispatcher serves. The attention kernels (Eigen products) have their own header.
#pragma once
#include "kernels/activations.hpp"
#include "kernels/bias_act.hpp"
#include "kernels/conv.hpp"
#include "kernels/layernorm.hpp"
#include "kernels/lstm.hpp"
#include "kernels/reduce.hpp"
#include "kernels/scan.hpp"
#include "kernels/softmax.hpp"
