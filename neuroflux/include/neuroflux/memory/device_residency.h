// Moving modules between the device and the host. NeuroFlux keeps only the block in training on
// the device; finished and future blocks wait on the host. On CUDA that is .to(); on a CPU run
// "the host" is untracked memory, so the MemoryMeter's budget sees exactly what a device would.
#pragma once

#include <c10/core/Device.h>
#include <torch/nn/module.h>

namespace neuroflux {

/// Parameters and buffers of `module` to host memory outside the budget.
void move_to_host(torch::nn::Module& module, const c10::Device& device);
/// Parameters and buffers of `module` to `device` (tracked memory on a CPU run).
void move_to_device(torch::nn::Module& module, const c10::Device& device);

}  // namespace neuroflux
