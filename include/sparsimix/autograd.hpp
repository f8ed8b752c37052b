// sparsimix autograd: the flat tape and its ops and losses, optimizers (AdamW, SGD) with
// parameter groups, gradient clipping, the cosine schedule, and gradcheck utilities.
#pragma once
#include "autograd/gradcheck.hpp"
#include "autograd/optim.hpp"
#include "autograd/schedule.hpp"
#include "autograd/tape.hpp"
