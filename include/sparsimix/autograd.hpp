// sparsimix autograd: tape, ops, losses, optimizers, gradcheck.
#pragma once
#include "autograd/gradcheck.hpp"
