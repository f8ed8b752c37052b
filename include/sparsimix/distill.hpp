// sparsimix distill: sparsity metrics and measurement, layer selection, training loops,
// layer-wise distillation.
#pragma once
#include "distill/analysis.hpp"
#include "distill/distill.hpp"
#include "distill/prune.hpp"
#include "distill/selection.hpp"
#include "distill/sparsity.hpp"
#include "distill/teacher_cache.hpp"
#include "distill/train.hpp"
