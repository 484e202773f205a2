#include "neuroflux/memory/device_residency.h"

#include <torch/torch.h>

#include "neuroflux/memory/memory_meter.h"

namespace neuroflux {
namespace {

void copy_all(torch::nn::Module& module, const c10::Device& target, bool untracked) {
  torch::NoGradGuard no_grad;
  auto move = [&](at::Tensor& t) {
    if (!t.defined()) return;
    at::Tensor copy;
    if (untracked) {
      UntrackedScope scope;
      copy = t.to(at::TensorOptions(target), false, /*copy=*/true);
    } else {
      copy = t.to(at::TensorOptions(target), false, /*copy=*/true);
    }
    t.set_data(copy);
  };
  for (auto& p : module.parameters()) {
    move(p);
    p.mutable_grad() = at::Tensor();  // gradients never travel: they are rebuilt on the device
  }
  for (auto& b : module.buffers()) move(b);
}

}  // namespace

void move_to_host(torch::nn::Module& module, const c10::Device& device) {
  copy_all(module, c10::Device(c10::kCPU), /*untracked=*/device.is_cpu());
}

void move_to_device(torch::nn::Module& module, const c10::Device& device) {
  copy_all(module, device, /*untracked=*/false);
}

OnDeviceWhileAlive::OnDeviceWhileAlive(std::vector<torch::nn::Module*> modules,
                                       const c10::Device& device)
    : modules_(std::move(modules)), device_(device) {
  try {
    for (torch::nn::Module* m : modules_) move_to_device(*m, device_);
  } catch (...) {
    // A refused move leaves nothing on the device: what did arrive goes back.
    for (torch::nn::Module* m : modules_) move_to_host(*m, device_);
    throw;
  }
}

OnDeviceWhileAlive::~OnDeviceWhileAlive() {
  // Host memory outside the budget: the way back is never refused by the meter.
  try {
    for (torch::nn::Module* m : modules_) move_to_host(*m, device_);
  } catch (...) {
  }
}

}  // namespace neuroflux
