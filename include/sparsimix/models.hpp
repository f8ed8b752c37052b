// sparsimix models: the ViT config, HybridViT (any mixer per block), the mixer registry, AnyMixer, the A-ViT halting controller.
#pragma once
#include "models/any_mixer.hpp"
#include "models/cost.hpp"
#include "models/halting.hpp"
#include "models/mixer_state.hpp"
#include "models/pruning.hpp"
#include "models/registry.hpp"
#include "models/vit.hpp"
#include "models/vit_config.hpp"
