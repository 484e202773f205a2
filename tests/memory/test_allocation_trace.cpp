// AllocationTrace: what was live at the peak, by the operator that allocated it, against the
// meter's own count of the same allocations.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <stdexcept>

#include "neuroflux/memory/allocation_trace.h"
#include "neuroflux/memory/memory_meter.h"

using namespace neuroflux;

namespace {

const OperatorBytes* find_op(const AllocationsAtPeak& peak, const std::string& part) {
  for (const auto& o : peak.by_operator)
    if (o.op.find(part) != std::string::npos) return &o;
  return nullptr;
}

int64_t sum_of(const AllocationsAtPeak& peak) {
  int64_t bytes = 0;
  for (const auto& o : peak.by_operator) bytes += o.bytes;
  return bytes;
}

}  // namespace

TEST_CASE("a trace names the operators live at the peak, not those freed before it",
          "[memory][unit]") {
  MemoryMeter& meter = MemoryMeter::cpu();
  const at::Tensor a = torch::randn({64, 64});
  const at::Tensor b = torch::randn({64, 64});
  const int64_t before = meter.current();
  meter.reset_peak();
  AllocationsAtPeak peak;
  {
    AllocationTrace trace;
    {
      at::Tensor scratch = torch::empty({100000});  // 400,000 B, freed before the peak
    }
    at::Tensor product = at::mm(a, b);             // 16,384 B
    at::Tensor rectified = at::relu(product);      // 16,384 B
    at::Tensor sum = at::add(product, rectified);  // 16,384 B: the peak
    product.reset();
    at::Tensor small = at::empty({10});
    peak = trace.at_peak();
  }
  // The scratch tensor's 400,000 B were the highest point of live bytes, so that is the peak.
  CHECK(peak.before_bytes == before);
  CHECK(peak.traced_bytes == 400000);
  REQUIRE(peak.by_operator.size() == 1);
  CHECK(peak.by_operator[0].op == "aten::empty");
  CHECK(meter.peak() - before == peak.traced_bytes);
}

TEST_CASE("a trace's peak splits by operator and adds up to the meter's peak", "[memory][unit]") {
  MemoryMeter& meter = MemoryMeter::cpu();
  const at::Tensor a = torch::randn({64, 64});
  const at::Tensor b = torch::randn({64, 64});
  const int64_t before = meter.current();
  meter.reset_peak();
  AllocationsAtPeak peak;
  {
    AllocationTrace trace;
    at::Tensor product = at::mm(a, b);
    at::Tensor rectified = at::relu(product);
    at::Tensor sum = at::add(product, rectified);
    product.reset();
    rectified.reset();
    at::Tensor small = at::empty({10});
    peak = trace.at_peak();
  }
  CHECK(peak.before_bytes == before);
  CHECK(peak.traced_bytes == 3 * 16384);
  CHECK(sum_of(peak) == peak.traced_bytes);
  CHECK(meter.peak() - before == peak.traced_bytes);
  for (const char* op : {"aten::mm", "aten::relu", "aten::add"}) {
    INFO(op);
    const OperatorBytes* o = find_op(peak, op);
    REQUIRE(o != nullptr);
    CHECK(o->bytes == 16384);
    CHECK(o->allocations == 1);
  }
  // Freed after the peak, so not in it; the 40 B allocated after it neither.
  CHECK(find_op(peak, "aten::empty") == nullptr);
}

TEST_CASE("a traced backward names its autograd nodes", "[memory][unit]") {
  const at::Tensor w = torch::randn({32, 32}).requires_grad_();
  const at::Tensor x = torch::randn({16, 32});
  AllocationsAtPeak peak;
  {
    AllocationTrace trace;
    at::Tensor loss = at::mm(x, w).relu().sum();
    loss.backward();
    peak = trace.at_peak();
  }
  bool backward_seen = false;
  for (const auto& o : peak.by_operator)
    if (o.op.find("Backward") != std::string::npos) backward_seen = true;
  CHECK(backward_seen);
  CHECK(sum_of(peak) == peak.traced_bytes);
}

TEST_CASE("one trace at a time, and none after it ends", "[memory][unit]") {
  {
    AllocationTrace trace;
    CHECK_THROWS_AS(AllocationTrace(), std::logic_error);
  }
  AllocationTrace again;  // the first one's end let it go
  CHECK(again.at_peak().by_operator.empty());
}

TEST_CASE("an operator stack is labelled by its outer and its innermost working operator",
          "[memory][unit]") {
  CHECK(AllocationTrace::label_of({}) == AllocationTrace::kNoOperator);
  CHECK(AllocationTrace::label_of({"aten::conv2d", "aten::convolution", "aten::mkldnn_convolution",
                                   "aten::empty"}) == "aten::conv2d > aten::mkldnn_convolution");
  CHECK(AllocationTrace::label_of({"aten::zeros", "aten::empty"}) == "aten::zeros");
  CHECK(AllocationTrace::label_of({"aten::mm"}) == "aten::mm");
}
