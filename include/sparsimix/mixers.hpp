// sparsimix mixers: Attention, MultiHeadLSTM, SelectiveScan (the built-in type list) with their
// registry traits.
#pragma once
#include "mixers/attention.hpp"
#include "mixers/builtin.hpp"
#include "mixers/mh_lstm.hpp"
#include "mixers/selective_scan.hpp"
#include "mixers/traits.hpp"
