// Writes an ElasticVM's status through the /status subresource, with the resourceVersion it
// was computed from (optimistic concurrency). On 409 Conflict it reads the object again and
// retries a bounded number of times; a status already equal to what it would write is left
// alone.
#pragma once

#include <string>

#include "controller/kube/client.h"
#include "controller/kube/informer.h"
#include "controller/source.h"

namespace hotplug::controller::kube {

class KubeStatusWriter final : public StatusWriter {
 public:
  // `cache` (may be null) is told about each successful write so the next pass sees it.
  KubeStatusWriter(Client& client, Informer* cache, int max_conflict_retries = 5)
      : client_(client), cache_(cache), max_conflict_retries_(max_conflict_retries) {}

  bool WriteStatus(const crd::ElasticVM& object, const crd::ElasticVMStatus& status,
                   std::string* error) override;

 private:
  Client& client_;
  Informer* cache_;
  const int max_conflict_retries_;
};

}  // namespace hotplug::controller::kube
