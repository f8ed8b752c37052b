// sparsimix core: tensors, shapes, errors, masks, RNG, threading, GEMM helpers.
#pragma once
#include "core/enum_names.hpp"
#include "core/error.hpp"
#include "core/linalg.hpp"
#include "core/malloc_tuning.hpp"
#include "core/param.hpp"
#include "core/parallel.hpp"
#include "core/rng.hpp"
#include "core/shape.hpp"
#include "core/tensor.hpp"
#include "core/token_mask.hpp"
#include "core/token_packing.hpp"
#include "core/workspace_pool.hpp"
