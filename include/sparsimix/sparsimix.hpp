// sparsimix: the whole public surface (heavy; prefer the per-folder headers in libraries).
#pragma once
#include "autograd.hpp"
#include "concepts.hpp"
#include "core.hpp"
#include "distill.hpp"
#include "io.hpp"
#include "kernels.hpp"
#include "mixers.hpp"
#include "models.hpp"
