// sparsimix io: model file formats: safetensors, checkpoints, config JSON, atomic files, path checks.
#pragma once
#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"
#include "io/file_checks.hpp"
#include "io/model_config.hpp"
#include "io/safetensors.hpp"
