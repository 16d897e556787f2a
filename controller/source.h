// Where ElasticVMs come from and where their status goes: the Kubernetes API
// (controller/kube/) or a folder of YAML files (controller/standalone/). The controller's
// work loop (controller/controller.h) sees only these interfaces.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "crd/elasticvm.h"
#include "reconciler/reconciler.h"

namespace hotplug::controller {

// Delivers objects into a cache and says which key changed.
//
// Threading contract: HasSynced, Get and Keys may be called from several threads at once
// (the workers, the resync thread, the health probe, hypervisor events), also while the
// source's own thread updates the cache. Start and Stop are called once each, from one
// thread, never at the same time as each other. The ChangeHandler runs on the source's own
// thread, one call at a time, and may call Get and Keys.
class ObjectSource {
 public:
  // Called from the source's own thread with "namespace/name" whenever that object was
  // added, changed or deleted (the handler looks the key up to tell which).
  using ChangeHandler = std::function<void(const std::string& key)>;

  virtual ~ObjectSource() = default;
  // Starts the source's thread(s); returns at once.
  virtual void Start(ChangeHandler on_change) = 0;
  // Stops and joins the threads. Idempotent.
  virtual void Stop() = 0;
  // True once the first full list is in the cache (readiness).
  virtual bool HasSynced() const = 0;
  // The cached object, or nullopt when it was deleted / never existed.
  virtual std::optional<crd::ElasticVM> Get(const std::string& key) const = 0;
  // Every cached key (for periodic resync and hypervisor events).
  virtual std::vector<std::string> Keys() const = 0;
};

// Writes an object's status (Kubernetes: the /status subresource; standalone: a file).
// WriteStatus may be called from several workers at once, never twice at once for one key.
class StatusWriter {
 public:
  virtual ~StatusWriter() = default;
  // Returns false and sets `error` when the write failed after the writer's own retries.
  virtual bool WriteStatus(const crd::ElasticVM& object, const crd::ElasticVMStatus& status,
                           std::string* error) = 0;
};

// Records an Event about an object (Kubernetes Events; standalone: a log line).
// Record may be called from several workers at once.
class EventRecorder {
 public:
  virtual ~EventRecorder() = default;
  virtual void Record(const crd::ElasticVM& object, const reconciler::Event& event) = 0;
};

}  // namespace hotplug::controller
