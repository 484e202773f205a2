// model.row_centric: which zoo models may run their conv stacks stripe by stripe, and the
// options they run with. VGG's and simplecnn's units are plain Conv2d / ReLU / MaxPool2d stacks,
// which UnitChain runs as one row-centric stack per run of units; ResNet's basic blocks run their
// conv1 - ReLU - conv2 path row-centric inside the block (the residual add needs the whole map).
// With stripes = "auto" the stacks fit their bands into the run's budget: memory.budget, which
// the run sets as the limit of the device's MemoryMeter.
#include <torch/torch.h>

#include <optional>

#include "models/blocks.h"
#include "models/zoo_builders.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/memory/memory_meter.h"

namespace neuroflux {
namespace zoo {
namespace {

/// The bytes a row-centric stack on `device` may use now: the meter's limit less what is live.
int64_t meter_free_bytes(const c10::Device& device) {
  MemoryMeter& meter = MemoryMeter::of(device);
  const std::optional<int64_t> budget = meter.limit();
  TORCH_CHECK(budget.has_value(),
              "row-centric stack: stripes=\"auto\" needs a memory budget (a limit on the memory "
              "meter as memory.budget sets)");
  return *budget - meter.current();
}

}  // namespace

rowcentric::RowCentricOptions use_row_centric(std::vector<torch::nn::Sequential>& units,
                                              const ModelConfig& config) {
  const std::string& name = config.name;
  if (name.rfind("vgg", 0) != 0 && name.rfind("resnet", 0) != 0 && name != "simplecnn") {
    throw ConfigError("/model/row_centric: runs the conv stacks of vgg11/16/19, resnet18/34 and "
                      "simplecnn; " + name + " has none it can run stripe by stripe");
  }
  if (config.batch_norm) {
    throw ConfigError("/model/row_centric: batch norm in training mode needs statistics over "
                      "the whole map, which one stripe does not see, so row-centric execution "
                      "refuses it; set /model/batch_norm to false");
  }
  if (config.activations != "dense") {
    throw ConfigError("/model/row_centric: recomputes every stripe's activations instead of "
                      "saving them, so /model/activations must be \"dense\", got \"" +
                      config.activations + "\"");
  }
  rowcentric::RowCentricOptions options;
  options.stripes = config.row_centric.stripes;
  options.scheme = config.row_centric.scheme == "two_phase" ? rowcentric::RowScheme::kTwoPhase
                                                            : rowcentric::RowScheme::kOverlap;
  options.free_bytes = meter_free_bytes;
  for (auto& unit : units) {
    for (const auto& m : unit->modules(/*include_self=*/false)) {
      if (auto* block = dynamic_cast<BasicBlockImpl*>(m.get())) block->row_centric = options;
    }
  }
  return options;
}

}  // namespace zoo
}  // namespace neuroflux
