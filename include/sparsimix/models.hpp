// sparsimix models: ViT configuration (hybrid ViT to come).
#pragma once
#include "models/vit_config.hpp"
