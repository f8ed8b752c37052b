// sparsimix models: the ViT config, HybridViT (any mixer per block), AnyMixer.
#pragma once
#include "models/any_mixer.hpp"
#include "models/mixer_state.hpp"
#include "models/vit.hpp"
#include "models/vit_config.hpp"
