// Precompiled for every target: parsing the LibTorch headers costs ~15 s per file on 2 cores.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>
