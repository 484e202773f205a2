#include "neuroflux/models/unit_groups.h"

#include <c10/util/Exception.h>

#include "neuroflux/models/sequential_stage.h"

namespace neuroflux {

std::vector<int64_t> module_sizes(int64_t module_units, UnitChainImpl& chain) {
  TORCH_CHECK(module_units >= 0, "module_units must be >= 0 (0 = one module per stage)");
  if (module_units == 1) return std::vector<int64_t>(static_cast<size_t>(chain.size()), 1);
  const int64_t n = chain.size();
  std::vector<int64_t> sizes;
  if (module_units > 0) {
    for (int64_t start = 0; start < n; start += module_units)
      sizes.push_back(std::min(module_units, n - start));
    return sizes;
  }
  auto spatial = [&](int64_t i) {
    const auto& shape = chain.output_shape(i);
    return std::make_pair(shape[1], shape[2]);
  };
  for (int64_t i = 0; i < n; ++i) {
    if (i > 0 && spatial(i) == spatial(i - 1))
      ++sizes.back();
    else
      sizes.push_back(1);
  }
  return sizes;
}

UnitChain group_units(UnitChain chain, const std::vector<int64_t>& sizes) {
  std::vector<torch::nn::Sequential> modules;
  int64_t next = 0;
  for (int64_t size : sizes) {
    TORCH_CHECK(size >= 1, "group_units: a module needs at least one unit");
    torch::nn::Sequential module;
    for (int64_t i = next; i < next + size; ++i) module->push_back(as_stage(chain->unit(i)));
    modules.push_back(module);
    next += size;
  }
  TORCH_CHECK(next == chain->size(), "group_units: the modules cover ", next, " units of ",
              chain->size());
  UnitChain grouped(std::move(modules), chain->classifier(), chain->input_shape(),
                    chain->num_classes(), chain->name());
  grouped->set_module_sizes(sizes);
  return grouped;
}

int64_t effective_module_units(const Config& config) {
  return config.method == "backprop" ? 1 : config.neuroflux.module_units;
}

UnitChain apply_module_units(UnitChain chain, const Config& config) {
  int64_t module_units = effective_module_units(config);
  if (module_units == kAutoModules) {
    if (config.method == "neuroflux") return chain;
    module_units = kStageModules;
  }
  if (module_units == 1) return chain;
  return group_units(chain, module_sizes(module_units, *chain));
}

std::vector<int64_t> split_module(std::vector<int64_t> sizes, size_t index) {
  TORCH_CHECK(index < sizes.size() && sizes[index] > 1, "split_module: module ", index,
              " has no two units to split");
  const int64_t second = sizes[index] / 2;
  sizes[index] -= second;
  sizes.insert(sizes.begin() + static_cast<std::ptrdiff_t>(index) + 1, second);
  return sizes;
}

}  // namespace neuroflux
