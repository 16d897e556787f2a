// metav1.Condition rules: one condition per type, lastTransitionTime moves only when the
// status flips, observedGeneration records the generation the condition was computed for.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "crd/elasticvm.h"

namespace hotplug::reconciler {

// Sets (or adds) the condition `type`. Returns true when its status changed.
bool SetCondition(std::vector<crd::Condition>& conditions, const std::string& type, bool status,
                  const std::string& reason, const std::string& message, int64_t generation,
                  std::chrono::system_clock::time_point now);

// True when the condition is present with status "True".
bool IsConditionTrue(const std::vector<crd::Condition>& conditions, const std::string& type);

}  // namespace hotplug::reconciler
