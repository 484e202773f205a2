// A network as an ordered chain of units: a unit is what gets its own auxiliary head in local
// learning (a conv+BN+ReLU(+pool) in VGG, a residual block in ResNet, an inverted-residual block
// in MobileNetV2, or one child of a user's Sequential). The classifier maps the last unit's
// output to logits; in local learning it is the last unit's head.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "neuroflux/rowcentric/row_centric.h"

namespace neuroflux {

class UnitChainImpl : public torch::nn::Module {
 public:
  /// `input_shape` is per sample (C, H, W); unit output shapes are found by a dry run.
  UnitChainImpl(std::vector<torch::nn::Sequential> units, torch::nn::Sequential classifier,
                std::vector<int64_t> input_shape, int64_t num_classes, std::string name);

  /// All units then the classifier: logits.
  at::Tensor forward(const at::Tensor& x);
  /// Units [first, last) only.
  at::Tensor forward_units(at::Tensor x, int64_t first, int64_t last);

  /// Row-centric execution (model.row_centric): from now on forward_units runs every run of
  /// consecutive plain conv-stack units (Conv2d / ReLU / MaxPool2d / AvgPool2d only) as one
  /// row-centric stack; other units run as before. nullopt switches it off.
  void set_row_centric(std::optional<rowcentric::RowCentricOptions> options);
  const std::optional<rowcentric::RowCentricOptions>& row_centric() const { return row_centric_; }

  int64_t size() const { return static_cast<int64_t>(units_.size()); }
  torch::nn::Sequential& unit(int64_t i) { return units_.at(i); }
  torch::nn::Sequential& classifier() { return classifier_; }
  const std::vector<int64_t>& input_shape() const { return input_shape_; }
  /// Per-sample output shape (C, H, W) of unit i; i = -1 gives the chain's input shape.
  const std::vector<int64_t>& output_shape(int64_t i) const;
  int64_t num_classes() const { return num_classes_; }
  const std::string& name() const { return name_; }
  /// How many of the built model's units each unit of this chain runs (models/unit_groups.h);
  /// empty when each unit is one built unit. The export records it to rebuild the grouping.
  const std::vector<int64_t>& module_sizes() const { return module_sizes_; }
  void set_module_sizes(std::vector<int64_t> sizes) { module_sizes_ = std::move(sizes); }

  /// Parameters of units [first, last) (and the classifier when `with_classifier`).
  std::vector<at::Tensor> unit_parameters(int64_t first, int64_t last,
                                          bool with_classifier) const;
  int64_t parameter_count() const;

 private:
  std::vector<torch::nn::Sequential> units_;
  torch::nn::Sequential classifier_;
  std::vector<int64_t> input_shape_;
  std::vector<std::vector<int64_t>> output_shapes_;
  int64_t num_classes_;
  std::string name_;
  std::vector<int64_t> module_sizes_;
  std::optional<rowcentric::RowCentricOptions> row_centric_;
  std::vector<bool> row_stack_;  ///< per unit: may join a row-centric run
};
TORCH_MODULE(UnitChain);

int64_t count_parameters(const torch::nn::Module& module);

}  // namespace neuroflux
