// sparsimix mixers: Attention, MultiHeadLSTM, SelectiveScan, HaltingMask (all SeqMixer).
#pragma once
#include "mixers/attention.hpp"
#include "mixers/halting.hpp"
#include "mixers/mh_lstm.hpp"
#include "mixers/selective_scan.hpp"
