// Watch-stream lines as the API server sends them, and lines it should never send.
#include "controller/kube/watch_event.h"

#include <gtest/gtest.h>

namespace hotplug::controller::kube {
namespace {

constexpr const char* kObject =
    R"({"apiVersion":"hotplug.dev/v1alpha1","kind":"ElasticVM",)"
    R"("metadata":{"name":"web-01","namespace":"default","uid":"u-1","resourceVersion":"42",)"
    R"("generation":3},"spec":{"cpu":{"vcpus":4}}})";

std::string Line(const std::string& type, const std::string& object) {
  return R"({"type":")" + type + R"(","object":)" + object + "}";
}

TEST(WatchEventTest, AddedModifiedDeletedCarryTheDecodedObject) {
  for (auto [name, type] : {std::pair{"ADDED", WatchEvent::Type::kAdded},
                            std::pair{"MODIFIED", WatchEvent::Type::kModified},
                            std::pair{"DELETED", WatchEvent::Type::kDeleted}}) {
    ParsedWatchLine parsed = ParseWatchLine(Line(name, kObject));
    ASSERT_TRUE(parsed.event) << parsed.error;
    EXPECT_EQ(parsed.event->type, type);
    EXPECT_STREQ(WatchEventTypeName(parsed.event->type), name);
    EXPECT_EQ(parsed.event->resource_version, "42");
    ASSERT_TRUE(parsed.event->object);
    EXPECT_EQ(parsed.event->object->Key(), "default/web-01");
    EXPECT_EQ(parsed.event->object->spec.cpu.vcpus, 4);
  }
}

TEST(WatchEventTest, BookmarkAndErrorEvents) {
  ParsedWatchLine bookmark = ParseWatchLine(
      Line("BOOKMARK", R"({"kind":"ElasticVM","metadata":{"resourceVersion":"977"}})"));
  ASSERT_TRUE(bookmark.event);
  EXPECT_EQ(bookmark.event->type, WatchEvent::Type::kBookmark);
  EXPECT_EQ(bookmark.event->resource_version, "977");
  EXPECT_FALSE(bookmark.event->object);

  ParsedWatchLine gone = ParseWatchLine(Line(
      "ERROR", R"x({"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old )x"
               R"x(resource version: 1 (977)","reason":"Expired","code":410})x"));
  ASSERT_TRUE(gone.event);
  EXPECT_EQ(gone.event->type, WatchEvent::Type::kError);
  EXPECT_EQ(gone.event->code, 410);
  EXPECT_EQ(gone.event->reason, "Expired");
  EXPECT_EQ(gone.event->message, "too old resource version: 1 (977)");
}

TEST(WatchEventTest, AnObjectThatCannotBeDecodedIsReportedNotThrown) {
  ParsedWatchLine parsed =
      ParseWatchLine(Line("ADDED", R"({"metadata":{"name":7,"resourceVersion":"5"}})"));
  ASSERT_TRUE(parsed.event);
  EXPECT_FALSE(parsed.event->object);
  EXPECT_NE(parsed.event->decode_error, "");
  EXPECT_EQ(parsed.event->resource_version, "5");  // the stream still moves on
}

TEST(WatchEventTest, WrongTypesInTheEnvelopeNeverThrow) {
  // Each of these threw nlohmann::json::type_error from the informer before (value() on a
  // mistyped field): the watch broke and reconnected forever on the same event.
  ParsedWatchLine code = ParseWatchLine(Line("ERROR", R"({"code":"410","reason":5})"));
  ASSERT_TRUE(code.event);
  EXPECT_EQ(code.event->code, 0);
  EXPECT_EQ(code.event->reason, "");
  ParsedWatchLine rv =
      ParseWatchLine(Line("BOOKMARK", R"({"metadata":{"resourceVersion":977}})"));
  ASSERT_TRUE(rv.event);
  EXPECT_EQ(rv.event->resource_version, "");
  ParsedWatchLine odd = ParseWatchLine(Line("SURPRISE", kObject));
  ASSERT_TRUE(odd.event);
  EXPECT_EQ(odd.event->type, WatchEvent::Type::kUnknown);
  EXPECT_STREQ(WatchEventTypeName(odd.event->type), "UNKNOWN");
  EXPECT_FALSE(odd.event->object);
}

TEST(WatchEventTest, LinesThatAreNotWatchEventsAreErrors) {
  for (const char* line :
       {"", "{", "null", "[]", "42", R"("ADDED")", R"({"object":{}})", R"({"type":1,"object":{}})",
        R"({"type":"ADDED"})", R"({"type":"ADDED","object":[]})",
        R"({"type":"ADDED","object":{"metadata":{"generation":1e999}}})",
        "{\"type\":\"ADDED\",\"object\":{}}\xff"}) {
    ParsedWatchLine parsed = ParseWatchLine(line);
    EXPECT_FALSE(parsed.event) << line;
    EXPECT_NE(parsed.error, "") << line;
  }
}

TEST(WatchEventTest, TheCacheKeepsOnlyWhatTheOperatorReads) {
  ParsedWatchLine parsed = ParseWatchLine(Line(
      "ADDED",
      R"({"metadata":{"name":"web-01","namespace":"default","resourceVersion":"7",)"
      R"("labels":{"app":"web","hotplug.dev/node":"host-a"},)"
      R"("annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}",)"
      R"("hotplug.dev/note":"kept"}},"spec":{"cpu":{"vcpus":2}}})"));
  ASSERT_TRUE(parsed.event && parsed.event->object) << parsed.error;
  crd::ElasticVM object = *parsed.event->object;
  EXPECT_EQ(object.metadata.labels.size(), 2u);
  TrimForCache(object);
  EXPECT_EQ(object.metadata.labels, (std::map<std::string, std::string>{{"hotplug.dev/node",
                                                                         "host-a"}}));
  EXPECT_EQ(object.metadata.annotations,
            (std::map<std::string, std::string>{{"hotplug.dev/note", "kept"}}));
  EXPECT_EQ(object.TargetNode(), "host-a");  // what the node filter reads survives
  EXPECT_EQ(object.spec.cpu.vcpus, 2);
}

}  // namespace
}  // namespace hotplug::controller::kube
