// model.activations = "bitmap": the zoo's conv-stack units rewritten so that every post-ReLU
// tensor kept for the backward pass is stored as a 1-bit mask plus its non-zero values
// (BitmapReLU keeps only the mask, PackedConv2d and PackedMaxPool2d keep their input packed).
// Forward results and gradients stay bit-identical to the dense layers'.
#include <torch/torch.h>

#include "models/zoo_builders.h"
#include "neuroflux/models/bitmap_layers.h"
#include "neuroflux/ops/bitmap.h"
#include "neuroflux/util/errors.h"

namespace neuroflux {
namespace zoo {

namespace nn = torch::nn;

void use_bitmap_activations(std::vector<nn::Sequential>& units, const std::string& model) {
  for (size_t u = 0; u < units.size(); ++u) {
    nn::Sequential& unit = units[u];
    nn::Sequential rewritten;
    const auto names = unit->named_children().keys();
    // A unit's input is the previous unit's output, a ReLU (+ pool) result, except for the first
    // unit, which sees the images.
    bool input_is_post_relu = u > 0;
    for (size_t k = 0; k < unit->size(); ++k) {
      const std::shared_ptr<nn::Module> layer = unit->ptr(k);
      const std::string name = names.at(k);
      if (auto* conv = dynamic_cast<nn::Conv2dImpl*>(layer.get())) {
        if (input_is_post_relu) {
          ops::PackedConv2d packed(ops::conv2d_options_of(*conv));
          torch::NoGradGuard no_grad;
          packed->weight.copy_(conv->weight);
          if (conv->bias.defined()) packed->bias.copy_(conv->bias);
          rewritten->push_back(std::string(name), packed);
        } else {
          rewritten->push_back(name, *(unit->begin() + static_cast<long>(k)));
        }
        input_is_post_relu = false;
      } else if (auto* relu = dynamic_cast<nn::ReLUImpl*>(layer.get())) {
        TORCH_CHECK(!relu->options.inplace(), "bitmap activations: in-place ReLU in unit ", u);
        rewritten->push_back(std::string(name), ops::BitmapReLU());
        input_is_post_relu = true;
      } else if (auto* pool = dynamic_cast<nn::MaxPool2dImpl*>(layer.get())) {
        rewritten->push_back(std::string(name), ops::PackedMaxPool2d(pool->options));
        // The max of non-negative values is non-negative: still a sparse post-ReLU map.
      } else if (dynamic_cast<nn::BatchNorm2dImpl*>(layer.get()) != nullptr) {
        rewritten->push_back(name, *(unit->begin() + static_cast<long>(k)));
        input_is_post_relu = false;
      } else {
        throw ConfigError("/model/activations: \"bitmap\" works on units made of Conv2d, "
                          "BatchNorm2d, ReLU and MaxPool2d (vgg11/16/19, simplecnn); " + model +
                          " unit " + std::to_string(u) + " holds a " + layer->name());
      }
    }
    unit = rewritten;
  }
}

}  // namespace zoo
}  // namespace neuroflux
