// plan.json loading (neuroflux.plan: a plan saved by `neuroflux plan --save`, maybe edited by
// hand). Input: the file's text. The trainer turns every nlohmann::json exception of
// Plan::from_json into a ConfigError naming the file, so those are the intended errors here too.
// Promise for a plan that loads: it reads back as itself, prints, and is one the trainer can
// follow: blocks that cover units 0 .. heads - 1 in order, positive batch sizes and epochs, a
// positive finite rate, known unit modes, heads that can be built and the classifier last.
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "fuzz_support.h"
#include "neuroflux/plan/plan.h"

namespace {

bool followable(const neuroflux::Plan& plan) {
  if (plan.blocks.empty()) return false;
  int64_t next = 0;
  for (const auto& b : plan.blocks) {
    if (b.first_unit != next || b.last_unit < b.first_unit) return false;
    if (b.batch_size < 1 || b.epochs < 1 || b.cache_batch_size < 1) return false;
    if (!std::isfinite(b.lr) || b.lr <= 0) return false;
    for (const auto& m : b.unit_modes)
      if (m != "plain" && m != "recompute" && m != "row_centric" && m != "im2col") return false;
    next = b.last_unit + 1;
  }
  if (next != static_cast<int64_t>(plan.heads.size())) return false;
  // The last unit's head is the network's own classifier (its pool and width are not used); every
  // other head is built from its spec.
  for (size_t i = 0; i + 1 < plan.heads.size(); ++i) {
    const auto& h = plan.heads[i];
    if (h.classifier || h.pool < 1 || h.width < 1) return false;
  }
  return plan.heads.back().classifier;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::optional<neuroflux::Plan> plan;
  try {
    plan = neuroflux::Plan::from_json(nlohmann::json::parse(text));
  } catch (const nlohmann::json::exception&) {
    return 0;  // the trainer's ConfigError "/neuroflux/plan: FILE is not a plan (...)"
  } catch (const neuroflux::Error&) {
    return 0;
  } catch (const std::exception& e) {
    neuroflux::fuzz::escaped(e);
  }
  try {
    const nlohmann::json out = plan->to_json();
    NF_FUZZ_REQUIRE(neuroflux::Plan::from_json(nlohmann::json::parse(out.dump())).to_json() == out,
                    out.dump());
    NF_FUZZ_REQUIRE(!plan->table().empty(), out.dump());
    NF_FUZZ_REQUIRE(followable(*plan), out.dump());
  } catch (const std::exception& e) {
    neuroflux::fuzz::escaped(e);
  }
  return 0;
}
