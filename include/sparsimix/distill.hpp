// sparsimix distill: sparsity metrics, layer selection, distillation.
#pragma once
#include "distill/sparsity.hpp"
