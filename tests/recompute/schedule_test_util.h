// Schedule trees written the way the tests read them: store(2), checkpoint(0, 3, {...}).
#pragma once

#include <utility>
#include <vector>

#include "neuroflux/recompute/checkpoint_schedule.h"

namespace neuroflux::test {

inline ScheduleNode store(int64_t stage) { return ScheduleNode::store(stage); }
inline ScheduleNode checkpoint(int64_t first, int64_t last, std::vector<ScheduleNode> inner) {
  return ScheduleNode::checkpoint(first, last, std::move(inner));
}

}  // namespace neuroflux::test
