// The zoo's initialisation in a file of its own: "copies" heads re-initialise copied units with
// it, and the fuzz harnesses link aux_head.cpp without the whole zoo.
#include <torch/nn/init.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/utils.h>

#include "neuroflux/models/model_zoo.h"

namespace neuroflux {

// He et al. (2015) for convs, fan_out as torchvision does for its classification nets: with
// fan_out the backward pass keeps unit variance, which is what matters for the per-unit losses
// of local learning. BN starts as the identity; the classifier starts near zero so the first
// logits are almost uniform.
void init_weights(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (const auto& m : module.modules()) {
    if (auto* c = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
      if (c->bias.defined()) c->bias.zero_();
    } else if (auto* b = m->as<torch::nn::BatchNorm2d>()) {
      b->weight.fill_(1.0);
      b->bias.zero_();
    } else if (auto* l = m->as<torch::nn::Linear>()) {
      l->weight.normal_(0.0, 0.01);
      if (l->bias.defined()) l->bias.zero_();
    }
  }
}

}  // namespace neuroflux
