#include "neuroflux/local/local_model.h"

#include <torch/torch.h>

#include "neuroflux/memory/device_residency.h"

namespace neuroflux {

LocalModelImpl::LocalModelImpl(UnitChain chain, std::vector<AuxHeadSpec> specs,
                               LocalLossSpec loss)
    : chain_(register_module("chain", chain)), specs_(std::move(specs)), loss_spec_(loss) {
  TORCH_CHECK(static_cast<int64_t>(specs_.size()) == chain_->size(), "local model: ",
              specs_.size(), " head specs for ", chain_->size(), " units");
  TORCH_CHECK(specs_.back().classifier, "local model: the last unit's head must be the classifier");
  for (int64_t i = 0; i + 1 < chain_->size(); ++i) {
    TORCH_CHECK(!specs_[i].classifier, "local model: only the last head is the classifier");
    heads_.push_back(register_module(
        "head" + std::to_string(i),
        make_aux_head(chain_->output_shape(i), specs_[i], chain_->num_classes(),
                      specs_[i].family == "copies" ? following_units(*chain_, i)
                                                   : std::vector<torch::nn::Sequential>{})));
  }
  for (int64_t i = 0; i < chain_->size(); ++i) {
    UnitLossTerms terms;
    terms.sim_weight = depth_faded_weight(loss.sim_weight, i, chain_->size());
    terms.recon_weight = depth_faded_weight(loss.recon_weight, i, chain_->size());
    if (terms.recon_weight > 0)
      terms.decoder = register_module(
          "decoder" + std::to_string(i),
          make_decoder(chain_->output_shape(i), chain_->output_shape(i - 1)));
    loss_terms_.push_back(terms);
  }
}

UnitLossTerms& LocalModelImpl::loss_terms(int64_t unit) {
  TORCH_CHECK(unit >= 0 && unit < size(), "local model: no unit ", unit);
  return loss_terms_[static_cast<size_t>(unit)];
}

torch::nn::Sequential& LocalModelImpl::head(int64_t unit) {
  TORCH_CHECK(unit >= 0 && unit < size(), "local model: no unit ", unit);
  return unit + 1 == size() ? chain_->classifier() : heads_[unit];
}

std::vector<at::Tensor> LocalModelImpl::unit_and_head_parameters(int64_t unit) {
  std::vector<at::Tensor> params = chain_->unit(unit)->parameters();
  for (const auto& p : head(unit)->parameters()) params.push_back(p);
  if (const auto& decoder = loss_terms(unit).decoder)
    for (const auto& p : decoder->parameters()) params.push_back(p);
  return params;
}

std::vector<AuxHeadSpec> fixed_head_specs(int64_t units, int64_t width, bool batch_norm,
                                          const std::string& family) {
  std::vector<AuxHeadSpec> specs(units, AuxHeadSpec{1, width, false, batch_norm, family});
  specs.back() = AuxHeadSpec{1, 0, true};
  return specs;
}

std::vector<AuxHeadSpec> classic_head_specs(const Config& config, UnitChainImpl& chain) {
  if (config.neuroflux.aux == "copies") return copies_head_specs(chain, config.neuroflux.aux_depth);
  return fixed_head_specs(chain.size(), config.neuroflux.aux_width, config.model.batch_norm,
                          config.neuroflux.aux == "deep" ? "deep" : "conv");
}

std::vector<torch::nn::Module*> block_modules(LocalModel& model, int64_t first, int64_t last) {
  std::vector<torch::nn::Module*> modules;
  for (int64_t i = first; i <= last; ++i) {
    modules.push_back(model->chain()->unit(i).get());
    modules.push_back(model->head(i).get());
    if (auto& decoder = model->loss_terms(i).decoder) modules.push_back(decoder.get());
  }
  return modules;
}

void move_units_to_device(LocalModel& model, int64_t first, int64_t last,
                          const c10::Device& device) {
  for (torch::nn::Module* m : block_modules(model, first, last)) move_to_device(*m, device);
}

void move_units_to_host(LocalModel& model, int64_t first, int64_t last, const c10::Device& device) {
  for (torch::nn::Module* m : block_modules(model, first, last)) move_to_host(*m, device);
}

}  // namespace neuroflux
