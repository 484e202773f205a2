#include "neuroflux/local/unit_step.h"

#include <torch/torch.h>

#include <stdexcept>

#include "neuroflux/distributed/grad_reducer.h"
#include "neuroflux/local/im2col_unit.h"
#include "neuroflux/optim/optim.h"
#include "neuroflux/recompute/scheduled_chain.h"
#include "neuroflux/rowcentric/row_centric.h"

namespace neuroflux {

std::string to_string(UnitMode mode) {
  switch (mode) {
    case UnitMode::kRecompute: return "recompute";
    case UnitMode::kRowCentric: return "row_centric";
    case UnitMode::kIm2col: return "im2col";
    case UnitMode::kPlain: break;
  }
  return "plain";
}

UnitMode unit_mode_from_string(const std::string& name) {
  if (name == "plain") return UnitMode::kPlain;
  if (name == "recompute") return UnitMode::kRecompute;
  if (name == "row_centric") return UnitMode::kRowCentric;
  if (name == "im2col") return UnitMode::kIm2col;
  throw std::invalid_argument("unknown unit mode '" + name +
                              "' (plain, recompute, row_centric, im2col)");
}

std::vector<UnitMode> unit_modes_for(const torch::nn::Sequential& unit) {
  std::vector<UnitMode> modes{UnitMode::kPlain, UnitMode::kRecompute};
  if (rowcentric::is_row_stack(unit)) modes.push_back(UnitMode::kRowCentric);
  if (runs_im2col(unit)) modes.push_back(UnitMode::kIm2col);
  return modes;
}

at::Tensor unit_forward(torch::nn::Sequential& unit, const at::Tensor& input, UnitMode mode) {
  switch (mode) {
    case UnitMode::kRecompute: return checkpoint(unit, input);
    case UnitMode::kRowCentric:
      return rowcentric::row_centric_forward(input, rowcentric::row_layers_of(unit, "unit"), {});
    case UnitMode::kIm2col: return im2col_forward(unit, input);
    case UnitMode::kPlain: break;
  }
  return unit->forward(input);
}

UnitStepResult unit_step(torch::nn::Sequential& unit, torch::nn::Sequential& head,
                         torch::optim::Optimizer& optimizer, const at::Tensor& input,
                         const at::Tensor& labels, GradReducer* reducer, UnitMode mode,
                         UnitLossTerms* terms) {
  // Row-centric stripes add their weight gradients straight into .grad, once per stripe, which
  // the all-reduce hooks would count as several gradients.
  TORCH_CHECK(!(reducer && mode == UnitMode::kRowCentric),
              "row-centric units cannot train data-parallel (more than one rank)");
  if (updates_in_backward(optimizer)) {
    // The update runs when a weight's gradient is complete; these add it up after that.
    if (reducer) throw fused_update_data_parallel_error();
    if (mode == UnitMode::kRowCentric)
      throw ConfigError("/train/fused_update: a row-centric unit adds its weight gradients "
                        "stripe by stripe; plan without it (neuroflux.unit_modes \"plain\", or "
                        "a plan.json without row_centric units) or set fused_update false");
  }
  optimizer.zero_grad();
  const at::Tensor detached_input = input.detach();
  at::Tensor output = unit_forward(unit, detached_input, mode);
  const at::Tensor logits = head->forward(output);
  const at::Tensor loss = terms ? local_loss(logits, labels, detached_input, output, *terms)
                                : torch::cross_entropy_loss(logits, labels);
  if (reducer) reducer->arm();
  loss.backward();
  if (reducer) reducer->finish();
  optimizer.step();
  return {output.detach(), loss.detach(), logits.detach().argmax(1).eq(labels).sum()};
}

}  // namespace neuroflux
