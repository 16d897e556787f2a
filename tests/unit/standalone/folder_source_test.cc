// The folder source's rules, each as a test: every document of every YAML file, bad input
// reported without stopping the rest, duplicates, removal, generation, edits seen within a
// second (in place, write-then-rename, created by link), and a restart that loses nothing.
// Waits poll the source with a deadline; nothing sleeps to synchronise.
#include "controller/standalone/folder_source.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <set>

#include "controller/standalone/file_status_writer.h"
#include "controller/standalone/standalone.h"
#include "controller/standalone/status_dir.h"
#include "reconciler/clock.h"
#include "tests/unit/standalone/test_util.h"

namespace hotplug::controller::standalone {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;
using testing::VmYaml;
using testing::WaitFor;

constexpr auto kEditSeenWithin = 1s;

class FolderSourceTest : public ::testing::Test {
 protected:
  ~FolderSourceTest() override { StopSource(); }

  void StartSource() {
    std::string error;
    mode_ =
        MakeStandalone(dir_.path(), {.source = {}, .events_file = true, .clock = &clock_}, &error);
    ASSERT_TRUE(mode_) << error;
    mode_->source().Start([this](const std::string& key) {
      std::lock_guard lock(mu_);
      notified_.insert(key);
    });
    ASSERT_TRUE(WaitFor([&] { return mode_->source().HasSynced(); }));
  }
  void StopSource() {
    if (mode_) mode_->source().Stop();
    mode_.reset();
  }
  ObjectSource& source() { return mode_->source(); }

  std::optional<crd::ElasticVM> Get(const std::string& key) { return source().Get(key); }
  std::optional<int64_t> Vcpus(const std::string& key) {
    auto object = Get(key);
    if (!object) return std::nullopt;
    return object->spec.cpu.vcpus;
  }
  bool Notified(const std::string& key) {
    std::lock_guard lock(mu_);
    return notified_.count(key) > 0;
  }
  void ClearNotified() {
    std::lock_guard lock(mu_);
    notified_.clear();
  }
  // Stores a status the way the controller does after a pass.
  void WriteStatus(const std::string& key, const std::string& reason) {
    auto object = Get(key);
    ASSERT_TRUE(object);
    crd::ElasticVMStatus status;
    status.observed_generation = object->metadata.generation;
    status.conditions.push_back(
        {"Ready", "True", reason, "all good", "2027-01-15T08:00:00Z", object->metadata.generation});
    status.failures.push_back(
        {"vcpu", 3, "plug", "HypervisorError", "boom", "2027-01-15T07:59:00Z"});
    std::string error;
    ASSERT_TRUE(mode_->status_writer().WriteStatus(*object, status, &error)) << error;
  }

  TempDir dir_;
  reconciler::FakeClock clock_;
  std::unique_ptr<StandaloneMode> mode_;
  std::mutex mu_;
  std::set<std::string> notified_;  // guarded by mu_
};

TEST_F(FolderSourceTest, ReadsEveryDocumentOfEveryYamlFileAndNothingElse) {
  dir_.Write("a.yaml", VmYaml("web-01", 2) + "---\n" + VmYaml("web-02", 3, "prod"));
  dir_.Write("b.yml", "---\n" + VmYaml("db-01", 4) + "---\n");
  dir_.Write("notes.txt", VmYaml("ignored-txt", 1));
  dir_.Write(".hidden.yaml", VmYaml("ignored-hidden", 1));
  StartSource();

  std::vector<std::string> keys = source().Keys();
  EXPECT_EQ(keys, (std::vector<std::string>{"default/db-01", "default/web-01", "prod/web-02"}));
  EXPECT_EQ(Vcpus("default/web-01"), 2);
  EXPECT_EQ(Vcpus("prod/web-02"), 3);
  EXPECT_EQ(Vcpus("default/db-01"), 4);
  EXPECT_TRUE(Notified("default/web-01") && Notified("prod/web-02") && Notified("default/db-01"));
  auto object = Get("default/web-01");
  EXPECT_EQ(object->metadata.generation, 1);
  EXPECT_FALSE(object->metadata.uid.empty());
  EXPECT_FALSE(object->metadata.creation_timestamp.empty());
  EXPECT_FALSE(object->spec_error);
}

TEST_F(FolderSourceTest, MalformedFileIsReportedAndTheOthersStillLoad) {
  dir_.Write("bad.yaml", "metadata: {name: [unclosed\n");
  dir_.Write("good.yaml", VmYaml("web-01", 2));
  StartSource();

  EXPECT_EQ(source().Keys(), std::vector<std::string>{"default/web-01"});
  ASSERT_TRUE(dir_.Exists(".status/_file_bad.yaml.yaml"));
  std::string report = dir_.Read(".status/_file_bad.yaml.yaml");
  EXPECT_NE(report.find("not valid YAML"), std::string::npos) << report;
  EXPECT_NE(report.find("InvalidSpec"), std::string::npos) << report;
  EXPECT_FALSE(dir_.Exists(".status/_file_good.yaml.yaml"));
}

TEST_F(FolderSourceTest, BadSpecKeepsTheObjectWithItsSpecError) {
  dir_.Write("vm.yaml",
             "apiVersion: hotplug.dev/v1alpha1\nkind: ElasticVM\nmetadata:\n  name: web-01\n"
             "spec:\n  cpu:\n    vcpus: four\n");
  StartSource();

  auto object = Get("default/web-01");
  ASSERT_TRUE(object);
  ASSERT_TRUE(object->spec_error);
  EXPECT_NE(object->spec_error->find("spec.cpu.vcpus"), std::string::npos) << *object->spec_error;
}

TEST_F(FolderSourceTest, DocumentsWithoutAUsableNameAreReportedPerFile) {
  struct Case {
    std::string document;
    std::string expected_error;
  };
  const std::vector<Case> cases = {
      {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n", "apiVersion: expected"},
      {"kind: ConfigMap\nmetadata: {name: cm}\n", "kind: expected \\\"ElasticVM\\\""},
      {"apiVersion: hotplug.dev/v1alpha1\nkind: ElasticVM\nspec: {}\n", "metadata: required"},
      {VmYaml("Web_01", 1), "not a valid name"},
      {VmYaml("../../etc/x", 1), "not a valid name"},
      {VmYaml("web-01", 1, "Prod!"), "not a valid namespace"},
      {"- just\n- a list\n", "expected an object"},
  };
  std::string text = VmYaml("fine", 1);
  for (const auto& c : cases) text += "---\n" + c.document;
  dir_.Write("mixed.yaml", text);
  StartSource();

  EXPECT_EQ(source().Keys(), std::vector<std::string>{"default/fine"});
  std::string report = dir_.Read(".status/_file_mixed.yaml.yaml");
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string document = "document " + std::to_string(i + 2) + ": ";
    size_t at = report.find(document);
    ASSERT_NE(at, std::string::npos) << document << " missing in\n" << report;
    EXPECT_NE(report.find(cases[i].expected_error, at), std::string::npos)
        << cases[i].expected_error << " missing in\n"
        << report;
  }
}

TEST_F(FolderSourceTest, LaterDuplicateIsRejectedAndTheFirstKept) {
  dir_.Write("a.yaml", VmYaml("web-01", 2));
  dir_.Write("b.yaml", VmYaml("web-01", 5) + "---\n" + VmYaml("other", 1));
  dir_.Write("c.yaml", VmYaml("twice", 1) + "---\n" + VmYaml("twice", 2));
  StartSource();

  EXPECT_EQ(Vcpus("default/web-01"), 2);
  EXPECT_EQ(Vcpus("default/other"), 1);
  EXPECT_EQ(Vcpus("default/twice"), 1);
  std::string report_b = dir_.Read(".status/_file_b.yaml.yaml");
  EXPECT_NE(report_b.find("document 1: default/web-01 is already defined in a.yaml"),
            std::string::npos)
      << report_b;
  std::string report_c = dir_.Read(".status/_file_c.yaml.yaml");
  EXPECT_NE(report_c.find("document 2: default/twice is already defined in c.yaml (document 1)"),
            std::string::npos)
      << report_c;
  EXPECT_FALSE(dir_.Exists(".status/_file_a.yaml.yaml"));
}

TEST_F(FolderSourceTest, ObjectStaysWithItsFileWhenAnEarlierFileRepeatsIt) {
  dir_.Write("m.yaml", VmYaml("web-01", 2));
  StartSource();
  dir_.Write("0.yaml", VmYaml("web-01", 7));
  ASSERT_TRUE(WaitFor([&] { return dir_.Exists(".status/_file_0.yaml.yaml"); }));
  EXPECT_EQ(Vcpus("default/web-01"), 2);

  // Once the owner lets go, the other definition takes over as a spec change.
  dir_.Remove("m.yaml");
  ASSERT_TRUE(WaitFor([&] { return Vcpus("default/web-01") == 7; }));
  EXPECT_EQ(Get("default/web-01")->metadata.generation, 2);
  EXPECT_TRUE(WaitFor([&] { return !dir_.Exists(".status/_file_0.yaml.yaml"); }));
}

TEST_F(FolderSourceTest, RenameIntoPlaceIsSeenWithinOneSecondAndBumpsTheGeneration) {
  dir_.Write("vm.yaml", VmYaml("web-01", 2));
  StartSource();
  const std::string uid = Get("default/web-01")->metadata.uid;
  ClearNotified();

  dir_.Replace("vm.yaml", VmYaml("web-01", 3));
  EXPECT_TRUE(WaitFor([&] { return Vcpus("default/web-01") == 3; }, kEditSeenWithin));
  EXPECT_TRUE(WaitFor([&] { return Notified("default/web-01"); }));
  auto object = Get("default/web-01");
  EXPECT_EQ(object->metadata.generation, 2);
  EXPECT_EQ(object->metadata.uid, uid);
}

TEST_F(FolderSourceTest, InPlaceWriteIsSeenWithinOneSecond) {
  dir_.Write("vm.yaml", VmYaml("web-01", 2));
  StartSource();
  dir_.Write("vm.yaml", VmYaml("web-01", 4));
  EXPECT_TRUE(WaitFor([&] { return Vcpus("default/web-01") == 4; }, kEditSeenWithin));
}

TEST_F(FolderSourceTest, NewFileMovedInOrLinkedInIsSeenWithinOneSecond) {
  StartSource();
  dir_.Replace("moved.yaml", VmYaml("moved", 1));
  EXPECT_TRUE(WaitFor([&] { return Get("default/moved").has_value(); }, kEditSeenWithin));

  // A hard link creates the name without any write: only IN_CREATE announces it.
  std::string outside = dir_.File(".outside");
  dir_.Write(".outside", VmYaml("linked", 1));
  ASSERT_EQ(link(outside.c_str(), dir_.File("linked.yaml").c_str()), 0);
  EXPECT_TRUE(WaitFor([&] { return Get("default/linked").has_value(); }, kEditSeenWithin));
}

TEST_F(FolderSourceTest, GenerationFollowsTheSpecOnly) {
  dir_.Write("vm.yaml", VmYaml("web-01", 2));
  StartSource();
  auto rescans = mode_->folder_source().rescans();

  dir_.Replace("vm.yaml", "# a comment\n" + VmYaml("web-01", 2));
  ASSERT_TRUE(WaitFor([&] { return mode_->folder_source().rescans() > rescans; }));
  EXPECT_EQ(Get("default/web-01")->metadata.generation, 1);

  dir_.Replace("vm.yaml", VmYaml("web-01", 2, "", "  labels: {team: a}\n"));
  ASSERT_TRUE(WaitFor([&] { return Get("default/web-01")->metadata.labels.count("team"); }));
  EXPECT_EQ(Get("default/web-01")->metadata.generation, 1);

  dir_.Replace("vm.yaml", VmYaml("web-01", 3, "", "  labels: {team: a}\n"));
  ASSERT_TRUE(WaitFor([&] { return Vcpus("default/web-01") == 3; }));
  EXPECT_EQ(Get("default/web-01")->metadata.generation, 2);
}

TEST_F(FolderSourceTest, RemovedFileStopsItsObjectsAndMarksTheirStatus) {
  dir_.Write("a.yaml", VmYaml("web-01", 2) + "---\n" + VmYaml("web-02", 2));
  dir_.Write("b.yaml", VmYaml("db-01", 2));
  StartSource();
  WriteStatus("default/web-01", "Synced");
  ClearNotified();

  dir_.Remove("a.yaml");
  ASSERT_TRUE(
      WaitFor([&] { return !Get("default/web-01") && !Get("default/web-02"); }, kEditSeenWithin));
  EXPECT_TRUE(WaitFor([&] { return Notified("default/web-01") && Notified("default/web-02"); }));
  EXPECT_TRUE(Get("default/db-01"));
  std::string status = dir_.Read(".status/default_web-01.yaml");
  EXPECT_NE(status.find("hotplug.dev/removed"), std::string::npos) << status;
  EXPECT_NE(status.find("Synced"), std::string::npos) << status;  // the last status stays
  EXPECT_FALSE(dir_.Exists(".status/default_web-02.yaml"));       // never had a status
}

TEST_F(FolderSourceTest, RemovedDocumentStopsOnlyItsObject) {
  dir_.Write("a.yaml", VmYaml("web-01", 2) + "---\n" + VmYaml("web-02", 2));
  StartSource();
  dir_.Replace("a.yaml", VmYaml("web-02", 2));
  ASSERT_TRUE(WaitFor([&] { return !Get("default/web-01"); }, kEditSeenWithin));
  EXPECT_EQ(Get("default/web-02")->metadata.generation, 1);
}

TEST_F(FolderSourceTest, StatusOfARemovedObjectIsNotWritten) {
  dir_.Write("a.yaml", VmYaml("web-01", 2));
  StartSource();
  auto object = *Get("default/web-01");
  dir_.Remove("a.yaml");
  ASSERT_TRUE(WaitFor([&] { return !Get("default/web-01"); }));

  crd::ElasticVMStatus status;
  status.observed_generation = 1;
  std::string error;
  EXPECT_TRUE(mode_->status_writer().WriteStatus(object, status, &error)) << error;
  EXPECT_FALSE(dir_.Exists(".status/default_web-01.yaml"));
}

TEST_F(FolderSourceTest, ReturningObjectResumesItsStatusAndDropsTheRemovedMark) {
  dir_.Write("a.yaml", VmYaml("web-01", 2));
  StartSource();
  WriteStatus("default/web-01", "Synced");
  const std::string uid = Get("default/web-01")->metadata.uid;
  dir_.Remove("a.yaml");
  ASSERT_TRUE(WaitFor([&] { return !Get("default/web-01"); }));

  dir_.Replace("a.yaml", VmYaml("web-01", 2));
  ASSERT_TRUE(WaitFor([&] { return Get("default/web-01").has_value(); }, kEditSeenWithin));
  auto object = Get("default/web-01");
  EXPECT_EQ(object->metadata.uid, uid);
  EXPECT_EQ(object->metadata.generation, 1);
  ASSERT_EQ(object->status.conditions.size(), 1u);
  EXPECT_EQ(object->status.conditions[0].last_transition_time, "2027-01-15T08:00:00Z");
  EXPECT_TRUE(WaitFor([&] {
    return dir_.Read(".status/default_web-01.yaml").find("hotplug.dev/removed") ==
           std::string::npos;
  }));
}

TEST_F(FolderSourceTest, FileThatStopsParsingKeepsItsObjectsWithASpecErrorUntilFixed) {
  dir_.Write("vm.yaml", VmYaml("web-01", 2));
  StartSource();
  dir_.Replace("vm.yaml", "metadata: {name: [unclosed\n");
  ASSERT_TRUE(
      WaitFor([&] { return Get("default/web-01")->spec_error.has_value(); }, kEditSeenWithin));
  auto object = Get("default/web-01");
  EXPECT_NE(object->spec_error->find("vm.yaml cannot be read any more"), std::string::npos)
      << *object->spec_error;
  EXPECT_EQ(object->spec.cpu.vcpus, 2);  // as last read
  EXPECT_EQ(object->metadata.generation, 2);
  EXPECT_TRUE(WaitFor([&] { return dir_.Exists(".status/_file_vm.yaml.yaml"); }));

  dir_.Replace("vm.yaml", VmYaml("web-01", 3));
  ASSERT_TRUE(WaitFor([&] { return Vcpus("default/web-01") == 3; }, kEditSeenWithin));
  EXPECT_FALSE(Get("default/web-01")->spec_error);
  EXPECT_EQ(Get("default/web-01")->metadata.generation, 3);
  EXPECT_TRUE(WaitFor([&] { return !dir_.Exists(".status/_file_vm.yaml.yaml"); }));
}

TEST_F(FolderSourceTest, SyntaxErrorMidFileAppliesWhatComesBeforeAndKeepsTheRestStale) {
  dir_.Write("vms.yaml",
             VmYaml("one", 1) + "---\n" + VmYaml("two", 2) + "---\n" + VmYaml("three", 3));
  StartSource();
  dir_.Replace("vms.yaml",
               VmYaml("one", 4) + "---\nmetadata: {name: [unclosed\n---\n" + VmYaml("three", 5));
  ASSERT_TRUE(WaitFor([&] { return Vcpus("default/one") == 4; }, kEditSeenWithin));
  EXPECT_FALSE(Get("default/one")->spec_error);
  for (const char* key : {"default/two", "default/three"}) {
    ASSERT_TRUE(WaitFor([&] { return Get(key) && Get(key)->spec_error.has_value(); })) << key;
    EXPECT_NE(Get(key)->spec_error->find("cannot be read any more"), std::string::npos);
  }
  EXPECT_EQ(Vcpus("default/three"), 3);  // as last read: what follows the error is unknown
  EXPECT_TRUE(WaitFor([&] {
    return dir_.Read(".status/_file_vms.yaml.yaml").find("not valid YAML") != std::string::npos;
  }));
}

TEST_F(FolderSourceTest, DuplicateKeyMidFileAppliesWhatComesBeforeAndKeepsTheRestStale) {
  dir_.Write("vms.yaml",
             VmYaml("one", 1) + "---\n" + VmYaml("two", 2) + "---\n" + VmYaml("three", 3));
  StartSource();
  // The duplicate key stops the parse inside document 2, as a syntax error does: what
  // follows it cannot be read, so "three" is kept as last read, not treated as removed.
  dir_.Replace("vms.yaml", VmYaml("one", 4) + "---\n" + VmYaml("two", 5, "", "  name: two\n") +
                               "---\n" + VmYaml("three", 6));
  ASSERT_TRUE(WaitFor([&] { return Vcpus("default/one") == 4; }, kEditSeenWithin));
  EXPECT_FALSE(Get("default/one")->spec_error);
  for (const char* key : {"default/two", "default/three"}) {
    ASSERT_TRUE(WaitFor([&] { return Get(key) && Get(key)->spec_error.has_value(); }))
        << key << (Get(key) ? " has no spec error" : " was dropped as if removed");
    EXPECT_NE(Get(key)->spec_error->find("cannot be read any more"), std::string::npos)
        << *Get(key)->spec_error;
  }
  EXPECT_EQ(Vcpus("default/two"), 2);
  EXPECT_EQ(Vcpus("default/three"), 3);
  EXPECT_TRUE(WaitFor([&] {
    return dir_.Read(".status/_file_vms.yaml.yaml").find("duplicate key") != std::string::npos;
  }));
}

TEST_F(FolderSourceTest, StatusWriteReachesTheFileAndTheCache) {
  dir_.Write("vm.yaml", VmYaml("web-01", 2, "prod"));
  StartSource();
  WriteStatus("prod/web-01", "Synced");

  auto object = Get("prod/web-01");
  ASSERT_EQ(object->status.conditions.size(), 1u);
  EXPECT_EQ(object->status.conditions[0].reason, "Synced");
  std::string text = dir_.Read(".status/prod_web-01.yaml");
  EXPECT_NE(text.find("reason: Synced"), std::string::npos) << text;
  EXPECT_NE(text.find("hotplug.dev/source-file: vm.yaml"), std::string::npos) << text;
}

TEST_F(FolderSourceTest, RestartKeepsGenerationUidAndStatus) {
  dir_.Write("vm.yaml", VmYaml("web-01", 2));
  StartSource();
  dir_.Replace("vm.yaml", VmYaml("web-01", 3));
  ASSERT_TRUE(WaitFor([&] { return Vcpus("default/web-01") == 3; }));
  WriteStatus("default/web-01", "Synced");
  const crd::ElasticVM before = *Get("default/web-01");
  StopSource();

  StartSource();
  auto after = Get("default/web-01");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->metadata.generation, 2);
  EXPECT_EQ(after->metadata.uid, before.metadata.uid);
  EXPECT_EQ(after->metadata.creation_timestamp, before.metadata.creation_timestamp);
  EXPECT_EQ(after->status, before.status);  // conditions' lastTransitionTime and failures
}

TEST_F(FolderSourceTest, SpecChangedWhileStoppedBumpsTheGenerationAtStart) {
  dir_.Write("vm.yaml", VmYaml("web-01", 2));
  StartSource();
  WriteStatus("default/web-01", "Synced");
  StopSource();

  dir_.Write("vm.yaml", VmYaml("web-01", 4));
  StartSource();
  auto object = Get("default/web-01");
  EXPECT_EQ(object->metadata.generation, 2);
  EXPECT_EQ(object->status.observed_generation, 1);
}

TEST_F(FolderSourceTest, ObjectGoneWhileStoppedIsMarkedRemovedAtStart) {
  dir_.Write("vm.yaml", VmYaml("web-01", 2));
  StartSource();
  WriteStatus("default/web-01", "Synced");
  StopSource();

  dir_.Remove("vm.yaml");
  StartSource();
  EXPECT_TRUE(source().Keys().empty());
  EXPECT_NE(dir_.Read(".status/default_web-01.yaml").find("hotplug.dev/removed"),
            std::string::npos);
}

TEST_F(FolderSourceTest, FixedFileLosesItsErrorFile) {
  dir_.Write("vm.yaml", "kind: Nope\nmetadata: {name: x}\n");
  StartSource();
  ASSERT_TRUE(dir_.Exists(".status/_file_vm.yaml.yaml"));
  dir_.Replace("vm.yaml", VmYaml("web-01", 2));
  EXPECT_TRUE(WaitFor([&] { return !dir_.Exists(".status/_file_vm.yaml.yaml"); }, kEditSeenWithin));
  EXPECT_TRUE(Get("default/web-01"));
}

TEST_F(FolderSourceTest, ASecondSourceOnTheSameFolderIsRefused) {
  StartSource();
  std::string error;
  EXPECT_FALSE(MakeStandalone(dir_.path(), &error));
  EXPECT_NE(error.find("another process already owns"), std::string::npos) << error;
}

TEST_F(FolderSourceTest, TheOperatorsOwnAnnotationsInAFileAreIgnoredAndReported) {
  dir_.Write("vm.yaml", VmYaml("web-01", 2, "",
                               "  annotations:\n    hotplug.dev/removed: mine\n    note: kept\n"));
  StartSource();
  auto object = Get("default/web-01");
  ASSERT_TRUE(object);
  EXPECT_EQ(object->metadata.annotations.count("hotplug.dev/removed"), 0u);
  EXPECT_EQ(object->metadata.annotations.at("note"), "kept");
  std::string report = dir_.Read(".status/_file_vm.yaml.yaml");
  EXPECT_NE(report.find("operator's own annotation"), std::string::npos) << report;
}

TEST_F(FolderSourceTest, TheOwnerOfADuplicatedObjectSurvivesARestart) {
  dir_.Write("b.yaml", VmYaml("web-01", 2));
  StartSource();
  dir_.Write("a.yaml", VmYaml("web-01", 7));
  ASSERT_TRUE(WaitFor([&] { return dir_.Exists(".status/_file_a.yaml.yaml"); }));
  WriteStatus("default/web-01", "Synced");
  StopSource();

  StartSource();  // a.yaml comes first in name order; b.yaml owned the object
  EXPECT_EQ(Vcpus("default/web-01"), 2);
  EXPECT_EQ(Get("default/web-01")->metadata.generation, 1);
  EXPECT_NE(dir_.Read(".status/_file_a.yaml.yaml").find("already defined in b.yaml"),
            std::string::npos);
}

TEST_F(FolderSourceTest, FilesThatAreNotRegularOrLeadOutOfTheFolderAreReportedNotRead) {
  TempDir elsewhere;
  elsewhere.Write("secret", "kind: s3cret-value\n");
  ASSERT_EQ(symlink(elsewhere.File("secret").c_str(), dir_.File("secret.yaml").c_str()), 0);
  ASSERT_EQ(mkfifo(dir_.File("fifo.yaml").c_str(), 0600), 0);
  dir_.Write("good.yaml", VmYaml("web-01", 2));
  StartSource();
  EXPECT_EQ(source().Keys(), std::vector<std::string>{"default/web-01"});
  std::string secret = dir_.Read(".status/_file_secret.yaml.yaml");
  EXPECT_NE(secret.find("leads out of the folder"), std::string::npos) << secret;
  EXPECT_EQ(secret.find("s3cret-value"), std::string::npos) << secret;
  EXPECT_NE(dir_.Read(".status/_file_fifo.yaml.yaml").find("not a regular file"),
            std::string::npos);
}

TEST_F(FolderSourceTest, AFileNameThatIsNotUtf8IsReported) {
  dir_.Write("caf\xe9.yaml", VmYaml("web-01", 2));
  StartSource();
  EXPECT_TRUE(source().Keys().empty());
  bool reported = false;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.File(".status"))) {
    std::string name = entry.path().filename().string();
    if (name.rfind("_file_", 0) == 0) {
      reported = dir_.Read(".status/" + name).find("not UTF-8") != std::string::npos;
    }
  }
  EXPECT_TRUE(reported);
}

TEST_F(FolderSourceTest, ARemovedStatusFolderIsMadeAgainWithEveryStatusFile) {
  dir_.Write("a.yaml", VmYaml("web-01", 2) + "---\n" + VmYaml("web-02", 3));
  dir_.Write("bad.yaml", "kind: Nope\nmetadata: {name: x}\n");
  StartSource();
  WriteStatus("default/web-01", "Synced");
  WriteStatus("default/web-02", "Synced");
  std::filesystem::remove_all(dir_.File(".status"));
  EXPECT_TRUE(WaitFor([&] {
    return dir_.Exists(".status/default_web-01.yaml") &&
           dir_.Exists(".status/default_web-02.yaml") && dir_.Exists(".status/_file_bad.yaml.yaml");
  }));
}

TEST_F(FolderSourceTest, RemovedObjectsAreNotKeptInMemoryButReadBackWhenTheyReturn) {
  dir_.Write("a.yaml", VmYaml("web-01", 2));
  StartSource();
  WriteStatus("default/web-01", "Synced");
  const std::string uid = Get("default/web-01")->metadata.uid;
  dir_.Remove("a.yaml");
  ASSERT_TRUE(WaitFor([&] { return !Get("default/web-01"); }));
  // What a returning object resumes from is its status file, not memory.
  std::string text = dir_.Read(".status/default_web-01.yaml");
  ASSERT_NE(text.find(uid), std::string::npos);
  dir_.Write("a.yaml", VmYaml("web-01", 2));
  ASSERT_TRUE(WaitFor([&] { return Get("default/web-01").has_value(); }, kEditSeenWithin));
  EXPECT_EQ(Get("default/web-01")->metadata.uid, uid);
  ASSERT_TRUE(WaitFor([&] {
    return dir_.Read(".status/default_web-01.yaml").find("hotplug.dev/removed") ==
           std::string::npos;
  }));

  dir_.Remove("a.yaml");
  ASSERT_TRUE(WaitFor([&] { return !Get("default/web-01"); }));
  ASSERT_TRUE(WaitFor([&] {
    return dir_.Read(".status/default_web-01.yaml").find("hotplug.dev/removed") !=
           std::string::npos;
  }));
  dir_.Remove(".status/default_web-01.yaml");
  dir_.Write("a.yaml", VmYaml("web-01", 2));
  ASSERT_TRUE(WaitFor([&] { return Get("default/web-01").has_value(); }, kEditSeenWithin));
  EXPECT_NE(Get("default/web-01")->metadata.uid, uid);  // nothing left: a new object
}

TEST_F(FolderSourceTest, MissingFolderIsAClearError) {
  std::string error;
  EXPECT_FALSE(MakeStandalone(dir_.File("nope"), &error));
  EXPECT_NE(error.find("nope: not a folder"), std::string::npos) << error;
  dir_.Write("file.yaml", "");
  EXPECT_FALSE(MakeStandalone(dir_.File("file.yaml"), &error));
  EXPECT_NE(error.find("not a folder"), std::string::npos) << error;
}

}  // namespace
}  // namespace hotplug::controller::standalone
