// sparsimix data: datasets (Fashion-MNIST IDX) and a deterministic batch loader.
#pragma once
#include "data/idx.hpp"
#include "data/loader.hpp"
