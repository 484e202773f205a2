// A unit chain with one auxiliary head per unit: what local learning trains. The last unit's
// head is the chain's own classifier.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>

#include <string>
#include <vector>

#include "neuroflux/config/config.h"
#include "neuroflux/local/aux_head.h"
#include "neuroflux/local/local_loss.h"
#include "neuroflux/models/unit_chain.h"

namespace neuroflux {

class LocalModelImpl : public torch::nn::Module {
 public:
  /// `specs` has one entry per unit; the last must be {classifier = true}. `loss` adds the
  /// information-keeping terms (local/local_loss.h), with a decoder per unit that needs one.
  LocalModelImpl(UnitChain chain, std::vector<AuxHeadSpec> specs, LocalLossSpec loss = {});

  UnitChain& chain() { return chain_; }
  int64_t size() const { return chain_->size(); }
  torch::nn::Sequential& head(int64_t unit);
  const std::vector<AuxHeadSpec>& specs() const { return specs_; }

  /// Unit `i`'s depth-faded loss terms and decoder.
  UnitLossTerms& loss_terms(int64_t unit);
  const LocalLossSpec& loss_spec() const { return loss_spec_; }

  /// Unit `i`'s, its head's and its decoder's parameters: what one per-unit optimizer steps.
  std::vector<at::Tensor> unit_and_head_parameters(int64_t unit);

 private:
  UnitChain chain_;
  std::vector<torch::nn::Sequential> heads_;  // heads_[i] for i < size() - 1
  std::vector<AuxHeadSpec> specs_;
  LocalLossSpec loss_spec_;
  std::vector<UnitLossTerms> loss_terms_;  // one per unit
};
TORCH_MODULE(LocalModel);

/// The heads classic local learning trains with (and NeuroFlux with neuroflux.aux other than
/// "adaptive"): width neuroflux.aux_width, the deep family for neuroflux.aux = "deep", copies
/// of the following units for "copies" (copies_head_specs, at most neuroflux.aux_depth), else
/// conv.
std::vector<AuxHeadSpec> classic_head_specs(const Config& config, UnitChainImpl& chain);

/// What units [first, last] of `model` bring to the device: each unit, its head and its decoder.
std::vector<torch::nn::Module*> block_modules(LocalModel& model, int64_t first, int64_t last);

/// Units [first, last] of `model`, their heads and decoders to `device`, tracked as the block in training
/// (memory/device_residency.h), or back to untracked host memory.
void move_units_to_device(LocalModel& model, int64_t first, int64_t last,
                          const c10::Device& device);
void move_units_to_host(LocalModel& model, int64_t first, int64_t last, const c10::Device& device);

/// Fixed heads: {pool 1, width} of `family` for every unit but the last, the classifier for the
/// last.
std::vector<AuxHeadSpec> fixed_head_specs(int64_t units, int64_t width, bool batch_norm = true,
                                          const std::string& family = "conv");

}  // namespace neuroflux
