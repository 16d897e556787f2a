// An API server in memory: the three seams' fakes over one store, the source announcing what
// it holds when started, as an informer's first LIST does. Header-only.
#pragma once

#include "tests/support/fake_event_recorder.h"
#include "tests/support/fake_object_source.h"
#include "tests/support/fake_status_writer.h"

namespace hotplug::testing {

struct FakeApi {
  FakeObjectSource objects{/*announce_on_start=*/true};
  FakeStatusWriter status{objects};
  FakeEventRecorder events;
};

}  // namespace hotplug::testing
