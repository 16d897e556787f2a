#include "reconciler/conditions.h"

#include <algorithm>
#include <ctime>

#include "reconciler/clock.h"

namespace hotplug::reconciler {

std::string FormatRfc3339(std::chrono::system_clock::time_point time) {
  std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool SetCondition(std::vector<crd::Condition>& conditions, const std::string& type, bool status,
                  const std::string& reason, const std::string& message, int64_t generation,
                  std::chrono::system_clock::time_point now) {
  const std::string status_text = status ? "True" : "False";
  auto it = std::find_if(conditions.begin(), conditions.end(),
                         [&](const crd::Condition& c) { return c.type == type; });
  if (it == conditions.end()) {
    conditions.push_back({type, status_text, reason, message, FormatRfc3339(now), generation});
    return true;
  }
  bool flipped = it->status != status_text;
  if (flipped || it->last_transition_time.empty()) it->last_transition_time = FormatRfc3339(now);
  it->status = status_text;
  it->reason = reason;
  it->message = message;
  it->observed_generation = generation;
  return flipped;
}

bool IsConditionTrue(const std::vector<crd::Condition>& conditions, const std::string& type) {
  return std::any_of(conditions.begin(), conditions.end(), [&](const crd::Condition& c) {
    return c.type == type && c.status == "True";
  });
}

}  // namespace hotplug::reconciler
