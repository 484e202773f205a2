// The CUDA half of MemoryMeter; only built for real when LibTorch has CUDA.
#pragma once

#include "neuroflux/memory/memory_meter.h"

namespace neuroflux::detail {
MemoryMeter& cuda_memory_meter(c10::DeviceIndex index);
}
