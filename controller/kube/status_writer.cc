#include "controller/kube/status_writer.h"

#include <nlohmann/json.hpp>

#include "controller/log.h"
#include "crd/codec.h"

namespace hotplug::controller::kube {

bool KubeStatusWriter::WriteStatus(const crd::ElasticVM& object,
                                   const crd::ElasticVMStatus& status, std::string* error) {
  crd::ElasticVM target = object;
  for (int attempt = 0;; ++attempt) {
    std::string based_on_rv = target.metadata.resource_version;
    target.status = status;
    std::string path =
        ElasticVMPath(target.metadata.namespace_, target.metadata.name) + "/status";
    ApiResult result = client_.Put(path, crd::EncodeJson(target).dump());
    if (result.ok()) {
      if (cache_) {
        crd::DecodeResult updated = crd::DecodeJsonText(result.body);
        if (updated.ok()) cache_->Observed(*updated.object, based_on_rv);
      }
      return true;
    }
    if (result.not_found()) {
      // Deleted meanwhile: there is nothing left to report on.
      log::Info("status not written: the object is gone", {{"object", object.Key()}});
      return true;
    }
    if (!result.conflict() || attempt >= max_conflict_retries_) {
      *error = "writing status of " + object.Key() + ": " + result.error;
      if (result.conflict()) *error += " (gave up after " + std::to_string(attempt + 1) + " tries)";
      return false;
    }
    // Someone else wrote first: read the object again and write on top of its version.
    ApiResult fresh = client_.Get(ElasticVMPath(target.metadata.namespace_, target.metadata.name));
    if (fresh.not_found()) return true;
    if (!fresh.ok()) {
      *error = "re-reading " + object.Key() + " after a conflict: " + fresh.error;
      return false;
    }
    crd::DecodeResult decoded = crd::DecodeJsonText(fresh.body);
    if (!decoded.ok()) {
      *error = "re-reading " + object.Key() + " after a conflict: " + decoded.error;
      return false;
    }
    if (decoded.object->status == status) return true;  // already what we would write
    target = std::move(*decoded.object);
    log::Debug("status write conflict; retrying on the fresh version",
               {{"object", object.Key()}, {"resourceVersion", target.metadata.resource_version}});
  }
}

}  // namespace hotplug::controller::kube
