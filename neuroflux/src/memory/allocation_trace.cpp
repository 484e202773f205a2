#include "neuroflux/memory/allocation_trace.h"

#include <ATen/record_function.h>

#include <algorithm>
#include <array>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

#include "memory/cpu_tracking_allocator.h"

namespace neuroflux {

namespace {

/// The operators running on this thread, outermost first, while a trace's callback is installed.
thread_local std::vector<std::string> t_operator_stack;

std::unique_ptr<at::ObserverContext> enter_operator(const at::RecordFunction& fn) {
  t_operator_stack.emplace_back(fn.name());
  return nullptr;
}

void leave_operator(const at::RecordFunction&, at::ObserverContext*) {
  if (!t_operator_stack.empty()) t_operator_stack.pop_back();
}

/// Operators that only allocate or fill what their caller asked for.
bool is_plain_allocation(std::string_view op) {
  static constexpr std::array<std::string_view, 12> kPlain = {
      "aten::empty",     "aten::empty_like",        "aten::empty_strided",
      "aten::new_empty", "aten::new_empty_strided", "aten::resize_",
      "aten::zeros",     "aten::zeros_like",        "aten::zero_",
      "aten::fill_",     "aten::ones_like",         "aten::full"};
  return std::find(kPlain.begin(), kPlain.end(), op) != kPlain.end();
}

}  // namespace

struct AllocationTrace::State final : detail::AllocationObserver {
  struct Live {
    int64_t bytes;
    size_t label;
  };

  void allocated(const void* data, int64_t bytes) override {
    const std::string label = label_of(t_operator_stack);
    std::lock_guard<std::mutex> lock(mutex);
    auto [it, added] = label_index.try_emplace(label, labels.size());
    if (added) {
      labels.push_back(label);
      label_bytes.push_back(0);
      label_count.push_back(0);
    }
    const size_t index = it->second;
    live[data] = Live{bytes, index};
    label_bytes[index] += bytes;
    label_count[index] += 1;
    traced += bytes;
    if (before + traced > peak_total) {
      peak_total = before + traced;
      peak_before = before;
      peak_label_bytes = label_bytes;
      peak_label_count = label_count;
    }
  }

  void released(const void* data, int64_t bytes) override {
    std::lock_guard<std::mutex> lock(mutex);
    const auto it = live.find(data);
    if (it == live.end()) {
      before -= bytes;  // allocated before the trace began
      return;
    }
    label_bytes[it->second.label] -= it->second.bytes;
    label_count[it->second.label] -= 1;
    traced -= it->second.bytes;
    live.erase(it);
  }

  std::mutex mutex;
  std::unordered_map<const void*, Live> live;
  std::unordered_map<std::string, size_t> label_index;
  std::vector<std::string> labels;
  std::vector<int64_t> label_bytes, label_count;
  int64_t before = 0, traced = 0;
  int64_t peak_total = 0, peak_before = 0;
  std::vector<int64_t> peak_label_bytes, peak_label_count;
};

namespace {
std::mutex g_trace_mutex;
bool g_trace_alive = false;
}  // namespace

AllocationTrace::AllocationTrace() : state_(std::make_unique<State>()) {
  {
    std::lock_guard<std::mutex> lock(g_trace_mutex);
    if (g_trace_alive) throw std::logic_error("AllocationTrace: another trace is alive");
    g_trace_alive = true;
  }
  auto& allocator = detail::CpuTrackingAllocator::install();
  state_->before = allocator.current();
  state_->peak_total = state_->before;
  state_->peak_before = state_->before;
  t_operator_stack.clear();
  // A global callback: autograd and intra-op workers run operators on other threads too.
  callback_ = at::addGlobalCallback(
      at::RecordFunctionCallback(&enter_operator, &leave_operator).needsInputs(false));
  detail::CpuTrackingAllocator::set_observer(state_.get());
}

AllocationTrace::~AllocationTrace() {
  detail::CpuTrackingAllocator::set_observer(nullptr);
  at::removeCallback(callback_);
  t_operator_stack.clear();
  std::lock_guard<std::mutex> lock(g_trace_mutex);
  g_trace_alive = false;
}

AllocationsAtPeak AllocationTrace::at_peak() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  AllocationsAtPeak result;
  result.before_bytes = state_->peak_before;
  result.traced_bytes = state_->peak_total - state_->peak_before;
  for (size_t i = 0; i < state_->peak_label_bytes.size(); ++i)
    if (state_->peak_label_count[i] > 0)
      result.by_operator.push_back(
          {state_->labels[i], state_->peak_label_bytes[i], state_->peak_label_count[i]});
  std::sort(result.by_operator.begin(), result.by_operator.end(),
            [](const OperatorBytes& a, const OperatorBytes& b) {
              return a.bytes != b.bytes ? a.bytes > b.bytes : a.op < b.op;
            });
  return result;
}

std::string AllocationTrace::label_of(const std::vector<std::string>& stack) {
  if (stack.empty()) return kNoOperator;
  const std::string& outer = stack.front();
  for (auto it = stack.rbegin(); it != stack.rend(); ++it) {
    if (is_plain_allocation(*it)) continue;
    return *it == outer ? outer : outer + " > " + *it;
  }
  return outer;
}

}  // namespace neuroflux
