#include "neuroflux/recompute/checkpoint_schedule.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>
#include <tuple>

namespace neuroflux {

using nlohmann::json;

namespace {

constexpr double kInfeasible = std::numeric_limits<double>::infinity();

// The rotor recurrence on a discretised memory. Every byte count is rounded *up* to whole slots,
// so a schedule the DP accepts also fits in bytes.
class ChainDp {
 public:
  ChainDp(const ChainCosts& costs, int64_t budget, bool offload, int slots)
      : costs_(costs), n_(costs.size()), offload_(offload) {
    slot_bytes_ = std::max<int64_t>(1, (budget + slots - 1) / slots);
    capacity_ = budget / slot_bytes_;
    for (const StageCost& s : costs.stages) {
      x_.push_back(up(s.input_bytes));
      saved_.push_back(up(s.saved_bytes));
      fwd_.push_back(up(s.forward_transient));
      bwd_.push_back(up(s.backward_transient));
    }
    x_.push_back(up(costs.stages.back().output_bytes));
    inner_.assign(static_cast<size_t>((n_ + 1) * (n_ + 1) * (capacity_ + 1)), Entry{});
  }

  int64_t capacity() const { return capacity_; }

  double top(int64_t s, int64_t m, bool offloaded_input, int64_t reserve) {
    if (s == n_) return 0;
    if (m < 0) return kInfeasible;
    const auto key = std::make_tuple(s, m, offloaded_input, reserve);
    if (auto it = top_memo_.find(key); it != top_memo_.end()) return it->second.cost;
    TopEntry best;
    if (!offloaded_input) {
      const int64_t need = std::max(saved_[s] + fwd_[s],
                                    saved_[s] + delta(s + 1, n_) + bwd_[s] + reserve);
      if (m >= need) {
        const double rest = top(s + 1, m - saved_[s], false, 0);
        best = {f(s) + b(s) + rest, 0, false};
      }
    }
    const int64_t input_back = offloaded_input ? x_[s] : 0;
    // Checkpoints never include the last stage (the classifier and the loss).
    for (int64_t end = s + 1; end <= n_ - 1; ++end) {
      if (no_grad_forward_need(s, end) + input_back > m) break;
      const int64_t back_reserve = reserve + input_back;
      const double recompute = inner(s, end, m - x_[end] - back_reserve);
      if (recompute == kInfeasible) continue;
      const double forward = forward_seconds(s, end);
      const int64_t next_reserve = input_back;
      const double keep = top(end, m - x_[end], false, next_reserve);
      if (forward + recompute + keep < best.cost) best = {forward + recompute + keep, end, false};
      if (offload_ && end < n_ - 1 && transfer_hideable(costs_, end)) {
        const double off = top(end, m, true, next_reserve);
        if (forward + recompute + off < best.cost) best = {forward + recompute + off, end, true};
      }
    }
    top_memo_[key] = best;
    return best.cost;
  }

  double inner(int64_t s, int64_t t, int64_t m) {
    if (s == t) return 0;
    if (m < 0) return kInfeasible;
    Entry& e = entry(s, t, m);
    if (e.solved) return e.cost;
    Entry best;
    const int64_t need = std::max(saved_[s] + fwd_[s], saved_[s] + delta(s + 1, t) + bwd_[s]);
    if (m >= need) {
      const double rest = inner(s + 1, t, m - saved_[s]);
      if (rest != kInfeasible) best.cost = f(s) + b(s) + rest;
    }
    for (int64_t end = s + 1; end < t; ++end) {
      if (no_grad_forward_need(s, end) > m) break;
      const double rest = inner(end, t, m - x_[end]);
      if (rest == kInfeasible) continue;
      const double recompute = inner(s, end, m - x_[end]);
      if (recompute == kInfeasible) continue;
      const double total = forward_seconds(s, end) + rest + recompute;
      if (total < best.cost) {
        best.cost = total;
        best.end = end;
      }
    }
    best.solved = true;
    e = best;
    return e.cost;
  }

  std::vector<ScheduleNode> top_nodes(int64_t s, int64_t m, bool offloaded_input,
                                      int64_t reserve) {
    std::vector<ScheduleNode> nodes;
    while (s < n_) {
      top(s, m, offloaded_input, reserve);
      const TopEntry e = top_memo_.at(std::make_tuple(s, m, offloaded_input, reserve));
      if (e.end == 0) {
        nodes.push_back(ScheduleNode::store(s));
        m -= saved_[s];
        offloaded_input = false;
        reserve = 0;
        ++s;
        continue;
      }
      const int64_t input_back = offloaded_input ? x_[s] : 0;
      nodes.push_back(ScheduleNode::checkpoint(s, e.end,
                                      inner_nodes(s, e.end, m - x_[e.end] - reserve - input_back),
                                      offloaded_input));
      if (!e.offload_next) m -= x_[e.end];
      reserve = input_back;
      offloaded_input = e.offload_next;
      s = e.end;
    }
    return nodes;
  }

  std::vector<ScheduleNode> inner_nodes(int64_t s, int64_t t, int64_t m) {
    std::vector<ScheduleNode> nodes;
    while (s < t) {
      inner(s, t, m);
      const Entry& e = entry(s, t, m);
      if (e.end == 0) {
        nodes.push_back(ScheduleNode::store(s));
        m -= saved_[s];
        ++s;
      } else {
        nodes.push_back(ScheduleNode::checkpoint(s, e.end, inner_nodes(s, e.end, m - x_[e.end]), false));
        m -= x_[e.end];
        s = e.end;
      }
    }
    return nodes;
  }

 private:
  struct Entry {
    double cost = kInfeasible;
    int64_t end = 0;    // 0: store stage s; otherwise checkpoint [s, end)
    bool solved = false;
  };
  struct TopEntry {
    double cost = kInfeasible;
    int64_t end = 0;
    bool offload_next = false;
  };

  int64_t up(int64_t bytes) const { return (std::max<int64_t>(bytes, 0) + slot_bytes_ - 1) / slot_bytes_; }
  double f(int64_t s) const { return costs_.stages[s].forward_seconds; }
  double b(int64_t s) const { return costs_.stages[s].backward_seconds; }
  // The gradient of stage s's output is live during its backward, except at the end of the
  // range, where the caller holds it.
  int64_t delta(int64_t next, int64_t t) const { return next < t ? x_[next] : 0; }
  double forward_seconds(int64_t s, int64_t end) const {
    double sum = 0;
    for (int64_t k = s; k < end; ++k) sum += f(k);
    return sum;
  }
  // A forward without recording keeps one stage's input and output alive at a time; a
  // recording forward's footprint bounds the stage's own work from above.
  int64_t no_grad_forward_need(int64_t s, int64_t end) const {
    int64_t need = 0;
    for (int64_t k = s; k < end; ++k)
      need = std::max(need, (k > s ? x_[k] : 0) + saved_[k] + fwd_[k]);
    return need;
  }
  Entry& entry(int64_t s, int64_t t, int64_t m) {
    return inner_[static_cast<size_t>((s * (n_ + 1) + t) * (capacity_ + 1) + m)];
  }

  const ChainCosts& costs_;
  int64_t n_;
  bool offload_;
  int64_t slot_bytes_ = 1, capacity_ = 0;
  std::vector<int64_t> x_, saved_, fwd_, bwd_;
  std::vector<Entry> inner_;
  std::map<std::tuple<int64_t, int64_t, bool, int64_t>, TopEntry> top_memo_;
};

// Walks a schedule's execution under the cost model (the same accounting as the DP, in bytes).
class Simulator {
 public:
  explicit Simulator(const ChainCosts& costs) : costs_(costs) {}

  SchedulePrediction run(const std::vector<ScheduleNode>& nodes) {
    forward(nodes, /*top=*/true);
    backward(nodes, costs_.size(), /*top=*/true);
    return result_;
  }

 private:
  int64_t x(int64_t stage) const {
    return stage < costs_.size() ? costs_.stages[stage].input_bytes
                                 : costs_.stages.back().output_bytes;
  }
  void touch(int64_t bytes) { result_.activation_peak = std::max(result_.activation_peak, bytes); }

  void forward(const std::vector<ScheduleNode>& nodes, bool top) {
    for (size_t i = 0; i < nodes.size(); ++i) {
      const ScheduleNode& node = nodes[i];
      const int64_t input_back = node.offload_input ? x(node.first) : 0;
      if (node.kind == ScheduleNode::Kind::Store) {
        const StageCost& c = costs_.stages[node.first];
        touch(live_ + c.saved_bytes + c.forward_transient);
        live_ += c.saved_bytes;
        result_.seconds += c.forward_seconds;
        continue;
      }
      for (int64_t k = node.first; k < node.last; ++k) {
        const StageCost& c = costs_.stages[k];
        touch(live_ + input_back + (k > node.first ? x(k) : 0) + c.saved_bytes +
              c.forward_transient);
        result_.seconds += c.forward_seconds;
      }
      if (node.offload_input) result_.offloaded_bytes += x(node.first);
      const bool next_offloaded = top && i + 1 < nodes.size() && nodes[i + 1].offload_input;
      if (!next_offloaded) live_ += x(node.last);
    }
  }

  void backward(const std::vector<ScheduleNode>& nodes, int64_t t, bool top) {
    for (size_t j = nodes.size(); j-- > 0;) {
      const ScheduleNode& node = nodes[j];
      // The previous top-level node's offloaded input is prefetched while this one runs back.
      const int64_t reserve = top && j > 0 && nodes[j - 1].offload_input ? x(nodes[j - 1].first) : 0;
      if (node.kind == ScheduleNode::Kind::Store) {
        const StageCost& c = costs_.stages[node.first];
        const int64_t delta = node.last < t ? x(node.last) : 0;
        touch(live_ + delta + c.backward_transient + reserve);
        live_ -= c.saved_bytes;
        result_.seconds += c.backward_seconds;
        continue;
      }
      // The kept output's bytes now stand for its gradient; the input comes back if offloaded.
      const int64_t input_back = node.offload_input ? x(node.first) : 0;
      live_ += reserve + input_back;
      forward(node.inner, false);
      backward(node.inner, node.last, false);
      live_ -= reserve + input_back + x(node.last);
    }
  }

  const ChainCosts& costs_;
  int64_t live_ = 0;
  SchedulePrediction result_;
};

void check_costs(const ChainCosts& costs) {
  if (costs.stages.size() < 2)
    throw std::invalid_argument("a checkpoint schedule needs at least one unit and a classifier");
}

CheckpointSchedule finish(std::string strategy, std::vector<ScheduleNode> nodes,
                          const ChainCosts& costs) {
  CheckpointSchedule schedule;
  schedule.strategy = std::move(strategy);
  schedule.nodes = std::move(nodes);
  const SchedulePrediction p = predict(schedule, costs);
  schedule.predicted_seconds = p.seconds;
  schedule.predicted_activation_peak = p.activation_peak;
  schedule.offloaded_bytes = p.offloaded_bytes;
  return schedule;
}

void describe_nodes(const std::vector<ScheduleNode>& nodes, std::ostringstream& out) {
  for (const ScheduleNode& node : nodes) {
    if (out.tellp() > 0) out << ' ';
    if (node.kind == ScheduleNode::Kind::Store) {
      out << node.first;
      continue;
    }
    out << (node.offload_input ? "o" : "c") << '[' << node.first << '-' << node.last - 1 << ']';
  }
}

json node_to_json(const ScheduleNode& node) {
  json j = {{"kind", node.kind == ScheduleNode::Kind::Store ? "store" : "checkpoint"},
            {"stages", {node.first, node.last}}};
  if (node.kind == ScheduleNode::Kind::Checkpoint) {
    j["offload_input"] = node.offload_input;
    j["inner"] = json::array();
    for (const ScheduleNode& inner : node.inner) j["inner"].push_back(node_to_json(inner));
  }
  return j;
}

ScheduleNode node_from_json(const json& j) {
  ScheduleNode node;
  node.kind = j.at("kind").get<std::string>() == "store" ? ScheduleNode::Kind::Store
                                                         : ScheduleNode::Kind::Checkpoint;
  node.first = j.at("stages").at(0);
  node.last = j.at("stages").at(1);
  if (node.kind == ScheduleNode::Kind::Checkpoint) {
    node.offload_input = j.value("offload_input", false);
    for (const json& inner : j.at("inner")) node.inner.push_back(node_from_json(inner));
  }
  return node;
}

int64_t count_recomputed(const std::vector<ScheduleNode>& nodes) {
  int64_t count = 0;
  for (const ScheduleNode& node : nodes)
    if (node.kind == ScheduleNode::Kind::Checkpoint)
      count += (node.last - node.first) + count_recomputed(node.inner);
  return count;
}

}  // namespace

ScheduleNode ScheduleNode::store(int64_t stage) {
  ScheduleNode node;
  node.kind = Kind::Store;
  node.first = stage;
  node.last = stage + 1;
  return node;
}

ScheduleNode ScheduleNode::checkpoint(int64_t first, int64_t last, std::vector<ScheduleNode> inner,
                                      bool offload_input) {
  ScheduleNode node;
  node.kind = Kind::Checkpoint;
  node.first = first;
  node.last = last;
  node.inner = std::move(inner);
  node.offload_input = offload_input;
  return node;
}

bool transfer_hideable(const ChainCosts& costs, int64_t stage) {
  if (costs.copy_bytes_per_second <= 0 || stage <= 0 || stage >= costs.size()) return false;
  const double copy_seconds =
      static_cast<double>(costs.stages[stage].input_bytes) / costs.copy_bytes_per_second;
  return copy_seconds <= costs.stages[stage].forward_seconds &&
         copy_seconds <= costs.stages[stage].backward_seconds;
}

CheckpointSchedule store_all_schedule(const ChainCosts& costs) {
  check_costs(costs);
  std::vector<ScheduleNode> nodes;
  for (int64_t s = 0; s < costs.size(); ++s) nodes.push_back(ScheduleNode::store(s));
  return finish("none", std::move(nodes), costs);
}

CheckpointSchedule sqrt_schedule(const ChainCosts& costs) {
  check_costs(costs);
  const int64_t units = costs.size() - 1;
  const int64_t length =
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(units)))));
  std::vector<ScheduleNode> nodes;
  int64_t s = 0;
  // Like torch.utils.checkpoint.checkpoint_sequential, the last segment is stored: its backward
  // follows its forward at once, so re-running it would buy nothing.
  for (; s + length < units; s += length) {
    std::vector<ScheduleNode> inner;
    for (int64_t k = s; k < s + length; ++k) inner.push_back(ScheduleNode::store(k));
    nodes.push_back(ScheduleNode::checkpoint(s, s + length, std::move(inner), false));
  }
  for (; s < costs.size(); ++s) nodes.push_back(ScheduleNode::store(s));
  return finish("checkpoint_sqrt", std::move(nodes), costs);
}

std::optional<CheckpointSchedule> optimal_schedule(const ChainCosts& costs,
                                                   int64_t activation_budget, bool offload,
                                                   int slots) {
  check_costs(costs);
  if (activation_budget <= 0) return std::nullopt;
  ChainDp dp(costs, activation_budget, offload, std::max(1, slots));
  if (dp.top(0, dp.capacity(), false, 0) == kInfeasible) return std::nullopt;
  return finish(offload ? "offload" : "checkpoint", dp.top_nodes(0, dp.capacity(), false, 0),
                costs);
}

CheckpointSchedule least_memory_schedule(const ChainCosts& costs, bool offload) {
  CheckpointSchedule best = store_all_schedule(costs);
  int64_t lo = 0, hi = best.predicted_activation_peak;   // lo fails, hi fits
  while (hi - lo > std::max<int64_t>(1, hi / 200)) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (auto s = optimal_schedule(costs, mid, offload)) {
      hi = std::min(mid, s->predicted_activation_peak);
      best = std::move(*s);
    } else {
      lo = mid;
    }
  }
  return best;
}

SchedulePrediction predict(const CheckpointSchedule& schedule, const ChainCosts& costs) {
  return Simulator(costs).run(schedule.nodes);
}

std::string CheckpointSchedule::describe() const {
  std::ostringstream out;
  describe_nodes(nodes, out);
  return out.str();
}

int64_t CheckpointSchedule::recomputed_stages() const { return count_recomputed(nodes); }

json CheckpointSchedule::to_json() const {
  json j = {{"strategy", strategy},
            {"predicted_seconds", predicted_seconds},
            {"predicted_activation_peak", predicted_activation_peak},
            {"offloaded_bytes", offloaded_bytes},
            {"describe", describe()},
            {"nodes", json::array()}};
  for (const ScheduleNode& node : nodes) j["nodes"].push_back(node_to_json(node));
  return j;
}

CheckpointSchedule CheckpointSchedule::from_json(const json& j) {
  CheckpointSchedule s;
  s.strategy = j.at("strategy");
  s.predicted_seconds = j.at("predicted_seconds");
  s.predicted_activation_peak = j.at("predicted_activation_peak");
  s.offloaded_bytes = j.value("offloaded_bytes", int64_t{0});
  for (const json& node : j.at("nodes")) s.nodes.push_back(node_from_json(node));
  return s;
}

}  // namespace neuroflux
