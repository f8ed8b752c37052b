// sparsimix data: Fashion-MNIST (IDX), CIFAR-10/100, image folders with DeiT preprocessing,
// and a deterministic batch loader that decodes streamed images in the background.
#pragma once
#include "data/cifar.hpp"
#include "data/dataset.hpp"
#include "data/idx.hpp"
#include "data/image_decode.hpp"
#include "data/image_folder.hpp"
#include "data/loader.hpp"
#include "data/open.hpp"
#include "data/preprocess.hpp"
