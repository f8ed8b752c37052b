// sparsimix io: safetensors, atomic files.
#pragma once
#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"
