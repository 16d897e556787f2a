// controller/kube/packed_object.h: the informer cache's packed form gives back exactly the
// object it was given, in a fraction of the memory.
#include "controller/kube/packed_object.h"

#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "controller/kube/watch_event.h"
#include "crd/codec.h"

namespace hotplug::controller::kube {
namespace {

crd::ElasticVM Converged(int index) {
  auto decoded = crd::DecodeJsonText(R"x({
    "apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
    "metadata": {"name": "vm-)x" + std::to_string(index) + R"x(", "namespace": "default",
                 "uid": "2f1c0d5e-8a6b-4c3d-9e2f-)x" + std::to_string(100000000000 + index) + R"x(",
                 "resourceVersion": ")x" + std::to_string(4711 + index) + R"x(",
                 "generation": 3, "labels": {"hotplug.dev/node": "node-17"},
                 "annotations": {"hotplug.dev/note": "kept"}},
    "spec": {"nodeName": "node-17", "cpu": {"vcpus": 4, "guestOnline": "agent"},
             "memory": {"size": "3Gi", "method": "dimm", "allowShrink": true},
             "persist": false, "suspend": false},
    "status": {"observedGeneration": 3,
               "vcpus": {"desired": 4, "current": 4, "maximum": 8, "enabled": "0-3",
                         "online": "0-3", "pending": ""},
               "memory": {"desired": "3Gi", "current": "3Gi", "maximum": "8Gi",
                          "method": "dimm"},
               "conditions": [
                 {"type": "VCPUsSynced", "status": "True", "reason": "Synced",
                  "message": "4 vCPUs enabled (0-3)",
                  "lastTransitionTime": "2026-11-25T12:00:01Z", "observedGeneration": 3},
                 {"type": "Ready", "status": "True", "reason": "Synced",
                  "message": "every desired resource matches the domain",
                  "lastTransitionTime": "2026-11-25T12:00:01Z", "observedGeneration": 3}],
               "failures": [
                 {"resource": "vcpu", "id": 5, "operation": "plug", "reason": "HypervisorError",
                  "message": "internal error: unable to execute QEMU command 'device_add'",
                  "time": "2026-11-25T11:59:00Z"}]}})x");
  EXPECT_TRUE(decoded.ok()) << decoded.error;
  return *decoded.object;
}

std::string Json(const crd::ElasticVM& object) { return crd::EncodeJson(object).dump(); }

TEST(PackedObjectTest, UnpackGivesBackWhatWasPacked) {
  crd::ElasticVM object = Converged(7);
  PackedObject packed = PackedObject::Pack(object);
  std::optional<crd::ElasticVM> back = packed.Unpack();
  ASSERT_TRUE(back);
  EXPECT_EQ(Json(*back), Json(object));
  EXPECT_FALSE(back->spec_error);
  EXPECT_EQ(back->status, object.status);
  EXPECT_EQ(packed.resource_version(), "4718");
}

TEST(PackedObjectTest, AnInvalidSpecKeepsItsError) {
  auto decoded = crd::DecodeJsonText(R"({"apiVersion": "hotplug.dev/v1alpha1",
      "kind": "ElasticVM", "metadata": {"name": "bad", "namespace": "default"},
      "spec": {"cpu": {"vcpus": "four", "guestOnline": "agent"}}})");
  ASSERT_TRUE(decoded.ok());
  ASSERT_TRUE(decoded.object->spec_error);
  std::optional<crd::ElasticVM> back = PackedObject::Pack(*decoded.object).Unpack();
  ASSERT_TRUE(back);
  EXPECT_EQ(back->spec_error, decoded.object->spec_error);
  EXPECT_EQ(back->spec.cpu.guest_online, crd::GuestOnline::kAgent);
  EXPECT_EQ(Json(*back), Json(*decoded.object));

  crd::ElasticVM empty_error = Converged(1);
  empty_error.spec_error = "";
  back = PackedObject::Pack(empty_error).Unpack();
  ASSERT_TRUE(back);
  EXPECT_EQ(back->spec_error, std::optional<std::string>(""));
}

TEST(PackedObjectTest, ATypicalObjectTakesAFractionOfItsJson) {
  crd::ElasticVM object = Converged(123456);
  size_t text = Json(object).size();
  size_t packed = PackedObject::Pack(object).packed_bytes();
  EXPECT_LT(packed * 4, text) << packed << " packed bytes of " << text << " bytes of JSON";
}

TEST(PackedObjectTest, AnObjectAsServedDecodesAsTheInformerTrimsIt) {
  for (const char* spec : {R"({"cpu": {"vcpus": 3}, "nodeName": "n"})",
                           R"({"cpu": {"vcpus": "four"}})"}) {
    nlohmann::json item = nlohmann::json::parse(R"({"apiVersion": "hotplug.dev/v1alpha1",
        "kind": "ElasticVM",
        "metadata": {"name": "web", "namespace": "vms", "uid": "u-1", "resourceVersion": "77",
                     "generation": 2, "creationTimestamp": "2026-11-25T12:00:00Z",
                     "labels": {"app": "web", "hotplug.dev/node": "n"},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                                     "hotplug.dev/note": "kept"},
                     "managedFields": [{"manager": "kubectl", "operation": "Update"}]},
        "spec": )" + std::string(spec) + R"(,
        "status": {"observedGeneration": 2,
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Synced",
                                   "message": "m", "lastTransitionTime": "2026-11-25T12:00:01Z",
                                   "observedGeneration": 2}]}})");
    crd::DecodeResult decoded = crd::DecodeJson(item);
    ASSERT_TRUE(decoded.ok()) << decoded.error;
    crd::ElasticVM want = *decoded.object;
    TrimForCache(want);
    want.metadata.creation_timestamp.clear();

    PackedObject packed = PackedObject::PackServed(item);
    EXPECT_EQ(packed.resource_version(), "77");
    std::optional<crd::ElasticVM> back = packed.Unpack();
    ASSERT_TRUE(back);
    EXPECT_EQ(Json(*back), Json(want)) << spec;
    EXPECT_EQ(back->spec_error, want.spec_error) << spec;
    EXPECT_EQ(back->metadata.labels, (std::map<std::string, std::string>{
                                         {"hotplug.dev/node", "n"}}));
  }
}

TEST(PackedObjectTest, AListParsedThroughTheFilterPacksAsTheWholeItems) {
  // As the informer reads a LIST: the filter skips what PackServed drops, so each item packs
  // to the same bytes as when it was parsed whole.
  const std::string item = R"({"apiVersion": "hotplug.dev/v1alpha1", "kind": "ElasticVM",
      "metadata": {"name": "web", "namespace": "vms", "uid": "u-1", "resourceVersion": "77",
                   "generation": 2, "creationTimestamp": "2026-11-25T12:00:00Z",
                   "labels": {"app": "web", "hotplug.dev/node": "n"},
                   "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                                       "{\"spec\": {\"labels\": 1}}",
                                   "hotplug.dev/note": "kept"},
                   "ownerReferences": [{"kind": "X", "name": "o", "uid": "u-0"}],
                   "managedFields": [{"manager": "kubectl", "operation": "Update",
                                      "fieldsV1": {"f:metadata": {"f:labels": {}}}}]},
      "spec": {"cpu": {"vcpus": 3}, "nodeName": "n", "domain": "annotations"},
      "status": {"observedGeneration": 2}})";
  const std::string list = R"({"kind": "ElasticVMList", "metadata": {"resourceVersion": "9"},
      "items": [)" + item + "," + item + "]}";
  std::vector<nlohmann::json> filtered;
  bool in_items = false;
  ServedFieldFilter filter;
  nlohmann::json rest = nlohmann::json::parse(list, [&](int depth, nlohmann::json::parse_event_t event,
                                  nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && in_items && depth > 2) {
      return filter.Keep(depth - 2, parsed.get_ref<const std::string&>());
    }
    if (depth == 1 && event == nlohmann::json::parse_event_t::key) in_items = parsed == "items";
    if (depth == 2 && in_items && event == nlohmann::json::parse_event_t::object_end) {
      filtered.push_back(parsed);
      return false;
    }
    return true;
  });
  ASSERT_EQ(filtered.size(), 2u);
  EXPECT_EQ(rest["metadata"]["resourceVersion"], "9");  // the list's own fields are kept
  nlohmann::json whole = nlohmann::json::parse(item);
  std::optional<crd::ElasticVM> want = PackedObject::PackServed(whole).Unpack();
  ASSERT_TRUE(want);
  for (nlohmann::json& got : filtered) {
    EXPECT_FALSE(got["metadata"].contains("managedFields")) << got.dump();
    EXPECT_EQ(got["metadata"]["labels"], nlohmann::json({{"hotplug.dev/node", "n"}}));
    EXPECT_EQ(got["metadata"]["ownerReferences"], whole["metadata"]["ownerReferences"]);
    std::optional<crd::ElasticVM> back = PackedObject::PackServed(got).Unpack();
    ASSERT_TRUE(back);
    EXPECT_EQ(Json(*back), Json(*want));
    EXPECT_EQ(back->metadata.annotations,
              (std::map<std::string, std::string>{{"hotplug.dev/note", "kept"}}));
  }
}

TEST(PackedObjectTest, LargeObjectsAndOtherThreadsRoundTrip) {
  crd::ElasticVM big = Converged(2);
  for (int i = 0; i < 200; ++i) {
    big.status.failures.push_back({"vcpu", i, "unplug", "Timeout",
                                   "vcpu unplug request timed out " + std::string(i, 'z'),
                                   "2026-11-25T11:59:00Z"});
  }
  std::string want = Json(big);
  PackedObject packed = PackedObject::Pack(big);
  std::thread other([&] {
    std::optional<crd::ElasticVM> back = packed.Unpack();
    ASSERT_TRUE(back);
    EXPECT_EQ(Json(*back), want);
  });
  other.join();
  EXPECT_EQ(Json(*PackedObject::Pack(big).Unpack()), want);
}

}  // namespace
}  // namespace hotplug::controller::kube
