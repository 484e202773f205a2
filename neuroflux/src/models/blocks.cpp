#include <torch/torch.h>

#include "models/blocks.h"

namespace neuroflux {

namespace nn = torch::nn;

BasicBlockImpl::BasicBlockImpl(BasicBlockOptions options_) : options(std::move(options_)) {
  reset();
}

void BasicBlockImpl::reset() {
  const bool bn = options.batch_norm();
  const int64_t in = options.in_channels();
  const int64_t out = options.out_channels();
  const int64_t stride = options.stride();
  conv1 = register_module(
      "conv1", nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(!bn)));
  if (bn) bn1 = register_module("bn1", nn::BatchNorm2d(out));
  relu1 = register_module("relu1", nn::ReLU());
  conv2 = register_module(
      "conv2", nn::Conv2d(nn::Conv2dOptions(out, out, 3).stride(1).padding(1).bias(!bn)));
  if (bn) bn2 = register_module("bn2", nn::BatchNorm2d(out));
  if (stride != 1 || in != out) {
    nn::Sequential projection(nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(!bn)));
    if (bn) projection->push_back(nn::BatchNorm2d(out));
    shortcut = register_module("shortcut", projection);
  }
  relu2 = register_module("relu2", nn::ReLU());
}

at::Tensor BasicBlockImpl::forward(const at::Tensor& x) {
  if (row_centric) {
    TORCH_CHECK(!bn1 && !bn2, "BasicBlock: row-centric execution needs a block without batch norm");
    const std::vector<rowcentric::RowLayer> main_path =
        rowcentric::row_layers_of(torch::nn::Sequential(conv1, relu1, conv2), "BasicBlock");
    at::Tensor y = rowcentric::row_centric_forward(x, main_path, *row_centric);
    y = y + (shortcut ? shortcut->forward(x) : x);
    return relu2->forward(y);
  }
  at::Tensor y = conv1->forward(x);
  if (bn1) y = bn1->forward(y);
  y = relu1->forward(y);
  y = conv2->forward(y);
  if (bn2) y = bn2->forward(y);
  y = y + (shortcut ? shortcut->forward(x) : x);
  return relu2->forward(y);
}

InvertedResidualImpl::InvertedResidualImpl(InvertedResidualOptions options_)
    : options(std::move(options_)) {
  reset();
}

void InvertedResidualImpl::reset() {
  TORCH_CHECK(options.stride() == 1 || options.stride() == 2,
              "InvertedResidual: stride must be 1 or 2, got ", options.stride());
  TORCH_CHECK(options.expand_ratio() >= 1, "InvertedResidual: expand_ratio must be >= 1, got ",
              options.expand_ratio());
  const bool bn = options.batch_norm();
  const int64_t in = options.in_channels();
  const int64_t hidden = hidden_channels();
  const int64_t out = options.out_channels();
  nn::Sequential layers;
  // With expansion 1 the depthwise conv reads the input directly (MobileNetV2, Table 2, row 2).
  if (options.expand_ratio() != 1) {
    layers->push_back(nn::Conv2d(nn::Conv2dOptions(in, hidden, 1).bias(!bn)));
    if (bn) layers->push_back(nn::BatchNorm2d(hidden));
    layers->push_back(nn::ReLU6());
  }
  layers->push_back(nn::Conv2d(nn::Conv2dOptions(hidden, hidden, 3)
                                   .stride(options.stride())
                                   .padding(1)
                                   .groups(hidden)
                                   .bias(!bn)));
  if (bn) layers->push_back(nn::BatchNorm2d(hidden));
  layers->push_back(nn::ReLU6());
  // The projection is linear: a ReLU on the narrow bottleneck would destroy information.
  layers->push_back(nn::Conv2d(nn::Conv2dOptions(hidden, out, 1).bias(!bn)));
  if (bn) layers->push_back(nn::BatchNorm2d(out));
  body = register_module("body", layers);
}

at::Tensor InvertedResidualImpl::forward(const at::Tensor& x) {
  at::Tensor y = body->forward(x);
  return uses_residual() ? x + y : y;
}

}  // namespace neuroflux
