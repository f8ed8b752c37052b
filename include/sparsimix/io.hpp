// sparsimix io: safetensors, model checkpoints and configs, IDX (Fashion-MNIST), atomic files.
#pragma once
#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"
#include "io/idx.hpp"
#include "io/model_config.hpp"
#include "io/safetensors.hpp"
