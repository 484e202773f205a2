#include <torch/torch.h>

#include "neuroflux/util/errors.h"
#include "neuroflux/models/unit_chain.h"
#include "neuroflux/util/size_format.h"

#include <sstream>
#include <unordered_set>

namespace neuroflux {

namespace {


// Device and dtype of the dry run: those of the first parameter or buffer, so a chain built from
// modules already moved to a GPU (or converted to double) is probed where it lives.
at::TensorOptions probe_options(const torch::nn::Module& module) {
  for (const auto& p : module.parameters()) return p.options().requires_grad(false);
  for (const auto& b : module.buffers()) {
    if (b.is_floating_point()) return b.options().requires_grad(false);
  }
  return at::TensorOptions().dtype(at::kFloat);
}

}  // namespace

UnitChainImpl::UnitChainImpl(std::vector<torch::nn::Sequential> units,
                             torch::nn::Sequential classifier, std::vector<int64_t> input_shape,
                             int64_t num_classes, std::string name)
    : units_(std::move(units)),
      classifier_(std::move(classifier)),
      input_shape_(std::move(input_shape)),
      num_classes_(num_classes),
      name_(std::move(name)) {
  TORCH_CHECK(!units_.empty(), "UnitChain '", name_, "': a chain needs at least one unit");
  TORCH_CHECK(input_shape_.size() == 3, "UnitChain '", name_,
              "': input_shape must be (channels, height, width), got ",
              shape_string(input_shape_));
  for (int64_t d : input_shape_) {
    TORCH_CHECK(d > 0, "UnitChain '", name_, "': input_shape must be positive, got ",
                shape_string(input_shape_));
  }
  TORCH_CHECK(num_classes_ > 0, "UnitChain '", name_, "': num_classes must be positive, got ",
              num_classes_);
  for (size_t i = 0; i < units_.size(); ++i) {
    TORCH_CHECK(units_[i] && !units_[i]->is_empty(), "UnitChain '", name_, "': unit ", i,
                " is empty");
    units_[i] = register_module("unit" + std::to_string(i), units_[i]);
  }
  TORCH_CHECK(classifier_ && !classifier_->is_empty(), "UnitChain '", name_,
              "': the classifier is empty");
  classifier_ = register_module("classifier", classifier_);

  // Dry run for the per-unit shapes: a batch of 2 (a batch of 1 is a special case for some
  // layers), in eval mode so BatchNorm's running statistics are left untouched, without autograd.
  // The input is zeros rather than random values, so building a chain draws nothing from the RNG
  // and seeded runs stay reproducible.
  //
  // Afterwards each module's own mode is restored, not the chain's alone: train(true) would
  // switch on modules of a user's network that were put in eval mode on purpose. (The chain is
  // not yet owned by a shared_ptr here, so modules() must leave it out.)
  const bool was_training = is_training();
  std::vector<std::pair<std::shared_ptr<torch::nn::Module>, bool>> modes;
  for (const auto& m : modules(/*include_self=*/false)) modes.emplace_back(m, m->is_training());
  // modules() lists parents before their children, so restoring in order lets a child's own
  // mode override the one its parent's train() just gave it.
  auto restore_modes = [this, was_training, &modes] {
    train(was_training);
    for (const auto& [m, training] : modes) m->train(training);
  };
  eval();
  try {
    torch::NoGradGuard no_grad;
    std::vector<int64_t> batch_shape{2};
    batch_shape.insert(batch_shape.end(), input_shape_.begin(), input_shape_.end());
    at::Tensor x = torch::zeros(batch_shape, probe_options(*this));
    for (size_t i = 0; i < units_.size(); ++i) {
      try {
        x = units_[i]->forward(x);
      } catch (const c10::Error& e) {
        throw Error("model '" + name_ + "': unit " + std::to_string(i) +
                        " fails on input of shape " + shape_string(x.sizes()) + ": " +
                        e.what_without_backtrace(),
                    ExitCode::kBadInput);
      }
      TORCH_CHECK(x.dim() >= 2 && x.size(0) == 2, "UnitChain '", name_, "': unit ", i,
                  " must keep the batch dimension, gave ", shape_string(x.sizes()));
      output_shapes_.emplace_back(x.sizes().begin() + 1, x.sizes().end());
    }
    at::Tensor logits;
    try {
      logits = classifier_->forward(x);
    } catch (const c10::Error& e) {
      throw Error("model '" + name_ + "': the classifier fails on input of shape " +
                      shape_string(x.sizes()) + ": " + e.what_without_backtrace(),
                  ExitCode::kBadInput);
    }
    if (logits.dim() != 2 || logits.size(0) != 2 || logits.size(1) != num_classes_) {
      throw Error("model '" + name_ + "': the classifier gives outputs of shape " +
                      shape_string(logits.sizes()) + ", expected [2, " +
                      std::to_string(num_classes_) + "] for a batch of 2",
                  ExitCode::kBadInput);
    }
  } catch (...) {
    restore_modes();
    throw;
  }
  restore_modes();
}

at::Tensor UnitChainImpl::forward(const at::Tensor& x) {
  return classifier_->forward(forward_units(x, 0, size()));
}

at::Tensor UnitChainImpl::forward_units(at::Tensor x, int64_t first, int64_t last) {
  TORCH_CHECK(0 <= first && first <= last && last <= size(), "UnitChain '", name_,
              "': forward_units(", first, ", ", last, ") out of range for ", size(), " units");
  int64_t i = first;
  while (i < last) {
    if (!row_centric_ || !row_stack_[i]) {
      x = units_[i]->forward(x);
      ++i;
      continue;
    }
    // A run of plain conv-stack units up to and including the next pool: one stack, so only
    // its input and output stay alive. Cut at pools (LR-CNN's segments): one stack over a whole
    // VGG would give its few output rows a receptive field of nearly the whole image, and every
    // band would recompute almost everything (measured: slower and larger than plain).
    std::vector<rowcentric::RowLayer> layers;
    for (; i < last && row_stack_[i]; ++i) {
      rowcentric::append_row_layers(layers, units_[i], "unit" + std::to_string(i));
      const auto kind = layers.back().kind;
      if (kind == rowcentric::RowLayer::Kind::kMaxPool ||
          kind == rowcentric::RowLayer::Kind::kAvgPool) {
        ++i;
        break;
      }
    }
    x = rowcentric::row_centric_forward(x, layers, *row_centric_);
  }
  return x;
}

void UnitChainImpl::set_row_centric(std::optional<rowcentric::RowCentricOptions> options) {
  row_centric_ = std::move(options);
  row_stack_.assign(units_.size(), false);
  if (!row_centric_) return;
  for (size_t i = 0; i < units_.size(); ++i) row_stack_[i] = rowcentric::is_row_stack(units_[i]);
}

const std::vector<int64_t>& UnitChainImpl::output_shape(int64_t i) const {
  TORCH_CHECK(-1 <= i && i < size(), "UnitChain '", name_, "': output_shape(", i,
              ") out of range for ", size(), " units");
  return i < 0 ? input_shape_ : output_shapes_[i];
}

std::vector<at::Tensor> UnitChainImpl::unit_parameters(int64_t first, int64_t last,
                                                       bool with_classifier) const {
  TORCH_CHECK(0 <= first && first <= last && last <= size(), "UnitChain '", name_,
              "': unit_parameters(", first, ", ", last, ") out of range for ", size(),
              " units");
  std::vector<at::Tensor> params;
  for (int64_t i = first; i < last; ++i) {
    for (auto& p : units_[i]->parameters()) params.push_back(p);
  }
  if (with_classifier) {
    for (auto& p : classifier_->parameters()) params.push_back(p);
  }
  return params;
}

int64_t UnitChainImpl::parameter_count() const { return count_parameters(*this); }

int64_t count_parameters(const torch::nn::Module& module) {
  // A module reachable along two paths (shared weights) is listed twice by parameters(); count
  // each tensor once, as the memory it takes is paid once.
  std::unordered_set<const void*> seen;
  int64_t total = 0;
  for (const auto& p : module.parameters()) {
    if (seen.insert(p.unsafeGetTensorImpl()).second) total += p.numel();
  }
  return total;
}

}  // namespace neuroflux
