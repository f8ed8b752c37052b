// sparsimix: the whole public surface (heavy; prefer the per-folder headers in libraries).
// The command line (sparsimix/cli/main.hpp) is separate: it needs CLI11.
#pragma once
#include "autograd.hpp"
#include "concepts.hpp"
#include "core.hpp"
#include "data.hpp"
#include "distill.hpp"
#include "experiment.hpp"
#include "io.hpp"
#include "kernels.hpp"
#include "mixers.hpp"
#include "models.hpp"
#include "version.hpp"
