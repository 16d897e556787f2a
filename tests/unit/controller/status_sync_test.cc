// The status sync: a status is written only when it changed; one whose write failed is what
// the next pass starts from (for the same object, not for a new one under the same key).
#include "controller/status_sync.h"

#include <gtest/gtest.h>

#include "tests/support/fake_object_source.h"
#include "tests/support/fake_status_writer.h"

namespace hotplug::controller {
namespace {

using testing::FakeObjectSource;
using testing::FakeStatusWriter;

crd::ElasticVMStatus StatusWithPending(const std::string& pending) {
  crd::ElasticVMStatus status;
  status.vcpus = crd::VcpuStatus{};
  status.vcpus->pending = pending;
  return status;
}

class StatusSyncTest : public ::testing::Test {
 protected:
  StatusSyncTest() {
    crd::ElasticVM object;
    object.metadata.name = "web-01";
    object.metadata.namespace_ = "default";
    source_.Put(object, /*notify=*/false);
  }
  crd::ElasticVM Object() { return *source_.Get(kKey); }

  static constexpr const char* kKey = "default/web-01";
  FakeObjectSource source_;
  FakeStatusWriter writer_{source_};
  ControllerMetrics metrics_;
  StatusSync sync_{source_, writer_, metrics_};
};

TEST_F(StatusSyncTest, AnUnchangedStatusIsNotWritten) {
  const crd::ElasticVM object = Object();
  StatusSync::Writes writes = sync_.Begin(kKey, object);
  EXPECT_EQ(&writes.input(), &object);  // no copy when nothing is left unwritten
  EXPECT_TRUE(writes.Finish(object.status));
  EXPECT_EQ(writer_.attempts(), 0);
  EXPECT_EQ(sync_.writes(), 0);
}

TEST_F(StatusSyncTest, TheNextPassStartsFromTheStatusWhoseWriteFailed) {
  writer_.FailNextWrites(1);
  {
    const crd::ElasticVM object = Object();
    StatusSync::Writes writes = sync_.Begin(kKey, object);
    EXPECT_FALSE(writes.Finish(StatusWithPending("3")));
  }
  EXPECT_EQ(sync_.failures(), 1);
  const crd::ElasticVM object = Object();
  EXPECT_FALSE(object.status.vcpus.has_value());  // the API still has the old one
  StatusSync::Writes writes = sync_.Begin(kKey, object);
  ASSERT_TRUE(writes.input().status.vcpus.has_value());
  EXPECT_EQ(writes.input().status.vcpus->pending, "3");
  EXPECT_TRUE(writes.Finish(StatusWithPending("3")));  // differs from the API's: written
  EXPECT_EQ(Object().status.vcpus->pending, "3");
  // Written now: a third pass starts from the API's status again.
  const crd::ElasticVM after = Object();
  EXPECT_EQ(&sync_.Begin(kKey, after).input(), &after);
}

TEST_F(StatusSyncTest, AnObjectCreatedAgainDoesNotInheritTheOldUnwrittenStatus) {
  writer_.FailNextWrites(1);
  {
    const crd::ElasticVM object = Object();
    EXPECT_FALSE(sync_.Begin(kKey, object).Finish(StatusWithPending("3")));
  }
  crd::ElasticVM recreated = Object();
  recreated.metadata.uid = "uid-new";
  EXPECT_EQ(&sync_.Begin(kKey, recreated).input(), &recreated);
  sync_.Forget(kKey);
  const crd::ElasticVM same = Object();
  EXPECT_EQ(&sync_.Begin(kKey, same).input(), &same);
}

TEST_F(StatusSyncTest, AProgressWriteIsNotWrittenAgainAtTheEnd) {
  const crd::ElasticVM object = Object();
  StatusSync::Writes writes = sync_.Begin(kKey, object);
  writes.Progress(StatusWithPending(""));
  EXPECT_TRUE(writes.Finish(StatusWithPending("")));
  EXPECT_EQ(writer_.attempts(), 1);
}

}  // namespace
}  // namespace hotplug::controller
