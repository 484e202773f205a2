// Uses the installed headers and library: parses a size, reads the memory meter, builds a model.
#include <neuroflux/memory/memory_meter.h>
#include <neuroflux/models/model_zoo.h>
#include <neuroflux/util/size_format.h>

#include <cstdio>

int main() {
  const auto budget = neuroflux::parse_size("64MiB");
  neuroflux::ModelConfig model;
  model.name = "simplecnn";
  model.width = 0.25;
  auto chain = neuroflux::build_model(model, {1, 28, 28}, 10);
  const auto& meter = neuroflux::MemoryMeter::cpu();
  std::printf("budget %lld, units %lld, params %lld, live %lld\n",
              static_cast<long long>(*budget), static_cast<long long>(chain->size()),
              static_cast<long long>(chain->parameter_count()),
              static_cast<long long>(meter.current()));
  return chain->size() == 4 && *budget == (64LL << 20) ? 0 : 1;
}
