// The module side of the row-centric executor: what layers it accepts (and the words it refuses
// the rest with), and RowCentricStack, the nn::Module over a Sequential.
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/pooling.h>

#include <ostream>

#include "neuroflux/rowcentric/row_centric.h"

namespace neuroflux::rowcentric {
namespace {

namespace nn = torch::nn;

std::string layer_name(const std::string& where, const std::string& child) {
  return where.empty() ? child : where + "." + child;
}

std::vector<int64_t> vec2(at::IntArrayRef a) { return {a[0], a[1]}; }

RowLayer conv_layer(const nn::Conv2dImpl& conv, const std::string& name) {
  const auto& o = conv.options;
  TORCH_CHECK(c10::get_if<torch::enumtype::kZeros>(&o.padding_mode()) != nullptr, name,
              ": row-centric execution pads with zeros at the map's edges only; padding_mode "
              "reflect / replicate / circular is not supported");
  TORCH_CHECK(!o.transposed(), name, ": transposed convolution is not supported row-centric");
  RowLayer l{RowLayer::Kind::kConv};
  l.weight = conv.weight;
  l.bias = conv.bias;
  l.kernel = vec2(*o.kernel_size());
  l.stride = vec2(*o.stride());
  l.dilation = vec2(*o.dilation());
  l.groups = o.groups();
  if (const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding())) {
    l.padding = vec2(**pad);
  } else if (c10::get_if<torch::enumtype::kValid>(&o.padding())) {
    l.padding = {0, 0};
  } else {  // kSame: symmetric only when the total padding is even
    for (int i = 0; i < 2; ++i) {
      const int64_t total = l.dilation[i] * (l.kernel[i] - 1);
      TORCH_CHECK(total % 2 == 0, name, ": padding='same' with an even kernel needs asymmetric "
                  "padding, which row-centric execution does not support");
      l.padding[i] = total / 2;
    }
  }
  l.name = name;
  return l;
}

}  // namespace

std::string to_string(RowScheme scheme) {
  return scheme == RowScheme::kOverlap ? "overlap" : "two_phase";
}

void append_row_layers(std::vector<RowLayer>& layers, const nn::Sequential& modules,
                       const std::string& where) {
  TORCH_CHECK(modules, "row-centric stack ", where, ": the Sequential is null");
  const auto children = modules->named_children();
  for (const auto& item : children) {
    const std::string name = layer_name(where, item.key());
    nn::Module* m = item.value().get();
    if (auto* conv = dynamic_cast<nn::Conv2dImpl*>(m)) {
      layers.push_back(conv_layer(*conv, name));
    } else if (dynamic_cast<nn::ReLUImpl*>(m) != nullptr) {
      RowLayer l{RowLayer::Kind::kReLU};
      l.name = name;
      layers.push_back(l);
    } else if (auto* pool = dynamic_cast<nn::MaxPool2dImpl*>(m)) {
      const auto& o = pool->options;
      RowLayer l{RowLayer::Kind::kMaxPool};
      l.kernel = vec2(*o.kernel_size());
      l.stride = vec2(*o.stride());
      l.padding = vec2(*o.padding());
      l.dilation = vec2(*o.dilation());
      l.ceil_mode = o.ceil_mode();
      l.name = name;
      layers.push_back(l);
    } else if (auto* avg = dynamic_cast<nn::AvgPool2dImpl*>(m)) {
      const auto& o = avg->options;
      RowLayer l{RowLayer::Kind::kAvgPool};
      l.kernel = vec2(*o.kernel_size());
      l.stride = vec2(*o.stride());
      l.padding = vec2(*o.padding());
      l.ceil_mode = o.ceil_mode();
      l.count_include_pad = o.count_include_pad();
      l.divisor_override = o.divisor_override();
      // A band pads its edge rows explicitly, which counts them in the average: exact only when
      // ATen counts them too (count_include_pad, no ceil_mode window hanging past the padding).
      TORCH_CHECK(!l.ceil_mode, name, ": AvgPool2d with ceil_mode is not supported row-centric");
      TORCH_CHECK(l.count_include_pad || l.padding[0] == 0, name,
                  ": AvgPool2d with H padding and count_include_pad=false is not supported "
                  "row-centric");
      l.name = name;
      layers.push_back(l);
    } else if (dynamic_cast<nn::BatchNorm2dImpl*>(m) != nullptr) {
      TORCH_CHECK(false, name, ": BatchNorm2d needs statistics over the whole map in training "
                  "mode, which one band does not see; row-centric execution refuses it (build "
                  "the model without batch norm)");
    } else {
      TORCH_CHECK(false, name, ": a ", m->name(), " cannot run row-centric; a stack holds only "
                  "Conv2d, ReLU, MaxPool2d and AvgPool2d");
    }
  }
}

std::vector<RowLayer> row_layers_of(const nn::Sequential& modules, const std::string& where) {
  std::vector<RowLayer> layers;
  append_row_layers(layers, modules, where);
  return layers;
}

bool is_row_stack(const nn::Sequential& modules) {
  if (!modules || modules->is_empty()) return false;
  try {
    row_layers_of(modules, "");
    return true;
  } catch (const c10::Error&) {
    return false;
  }
}

RowCentricStackImpl::RowCentricStackImpl(nn::Sequential layers_, RowCentricOptions options_)
    : layers(std::move(layers_)), options(options_) {
  layers = register_module("layers", layers);
  row_layers_of(layers, "RowCentricStack");  // refuse unsupported layers at construction
}

std::shared_ptr<nn::Module> RowCentricStackImpl::clone(
    const c10::optional<c10::Device>& device) const {
  auto copy = std::make_shared<RowCentricStackImpl>(
      std::dynamic_pointer_cast<nn::SequentialImpl>(layers->clone(device)), options);
  copy->train(is_training());
  return copy;
}

at::Tensor RowCentricStackImpl::forward(const at::Tensor& x) {
  return row_centric_forward(x, row_layers_of(layers, "RowCentricStack"), options);
}

void RowCentricStackImpl::pretty_print(std::ostream& stream) const {
  stream << "neuroflux::rowcentric::RowCentricStack(stripes="
         << (options.stripes == 0 ? std::string("auto") : std::to_string(options.stripes))
         << ", scheme=" << to_string(options.scheme) << ")";
}

}  // namespace neuroflux::rowcentric
