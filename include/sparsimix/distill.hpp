// sparsimix distill: sparsity metrics and measurement, data loading, training loops,
// layer-wise distillation.
#pragma once
#include "distill/analysis.hpp"
#include "distill/data.hpp"
#include "distill/distill.hpp"
#include "distill/experiment.hpp"
#include "distill/sparsity.hpp"
#include "distill/train.hpp"
