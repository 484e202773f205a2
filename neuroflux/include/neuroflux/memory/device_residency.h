// Moving modules between the device and the host. NeuroFlux keeps only the block in training on
// the device; finished and future blocks wait on the host. On CUDA that is .to(); on a CPU run
// "the host" is untracked memory, so the MemoryMeter's budget sees exactly what a device would.
#pragma once

#include <c10/core/Device.h>
#include <torch/nn/module.h>

#include <vector>

namespace neuroflux {

/// Parameters and buffers of `module` to host memory outside the budget.
void move_to_host(torch::nn::Module& module, const c10::Device& device);
/// Parameters and buffers of `module` to `device` (tracked memory on a CPU run).
void move_to_device(torch::nn::Module& module, const c10::Device& device);

/// Brings modules that wait on the host to the device for the guard's lifetime and sends them
/// back after, so only they count against the budget meanwhile: how a unit is profiled (and
/// trained) while the rest of the model stays off the device.
class OnDeviceWhileAlive {
 public:
  OnDeviceWhileAlive(std::vector<torch::nn::Module*> modules, const c10::Device& device);
  ~OnDeviceWhileAlive();
  OnDeviceWhileAlive(const OnDeviceWhileAlive&) = delete;
  OnDeviceWhileAlive& operator=(const OnDeviceWhileAlive&) = delete;

 private:
  std::vector<torch::nn::Module*> modules_;
  c10::Device device_;
};

}  // namespace neuroflux
