// The status folder: atomic replacement (a reader sees the old or the new file, never a mix,
// and no temp file is left), objects read back as written, error files, safe names.
#include "controller/standalone/status_dir.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "tests/unit/standalone/test_util.h"

namespace hotplug::controller::standalone {
namespace {

using testing::TempDir;

size_t CountEntries(const std::string& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

TEST(WriteFileAtomicallyTest, ReplacesTheWholeFileAndLeavesNoTempFile) {
  TempDir dir;
  std::string error;
  ASSERT_TRUE(WriteFileAtomically(dir.File("s.yaml"), "old content that is longer\n", &error));
  ASSERT_TRUE(WriteFileAtomically(dir.File("s.yaml"), "new\n", &error)) << error;
  EXPECT_EQ(dir.Read("s.yaml"), "new\n");
  EXPECT_EQ(CountEntries(dir.path()), 1u);
  struct stat info {};
  ASSERT_EQ(stat(dir.File("s.yaml").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0644u);
}

TEST(WriteFileAtomicallyTest, FailsWithAClearErrorAndKeepsTheOldFile) {
  TempDir dir;
  std::string error;
  EXPECT_FALSE(WriteFileAtomically(dir.File("missing/s.yaml"), "x", &error));
  EXPECT_NE(error.find("missing"), std::string::npos) << error;

  ASSERT_TRUE(WriteFileAtomically(dir.File("s.yaml"), "old", &error));
  std::filesystem::create_directory(dir.File("dir.yaml"));
  EXPECT_FALSE(WriteFileAtomically(dir.File("dir.yaml"), "x", &error));
  EXPECT_EQ(dir.Read("s.yaml"), "old");
  EXPECT_EQ(CountEntries(dir.path()), 2u);  // s.yaml, dir.yaml: the temp file is gone
}

TEST(WriteFileAtomicallyTest, AConcurrentReaderSeesOneVersionOrTheOtherNeverAMix) {
  TempDir dir;
  const std::string a(256 * 1024, 'a'), b(256 * 1024, 'b');
  std::string error;
  ASSERT_TRUE(WriteFileAtomically(dir.File("s"), a, &error));
  std::atomic<bool> done{false};
  std::atomic<int> torn{0}, reads{0};
  std::thread reader([&] {
    while (!done.load()) {
      std::string text = dir.Read("s");
      reads++;
      if (text != a && text != b) torn++;
    }
  });
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(WriteFileAtomically(dir.File("s"), i % 2 ? a : b, &error)) << error;
  }
  done = true;
  reader.join();
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(torn.load(), 0);
}

TEST(StatusDirTest, CreateMakesTheFolderAndRemovesTempFilesOfACrash) {
  TempDir dir;
  StatusDir status(dir.path());
  std::string error;
  ASSERT_TRUE(status.Create(&error)) << error;
  dir.Write(".status/.tmp.default_x.yaml.AbCdEf", "half");
  dir.Write(".status/default_x.yaml", "kept");
  ASSERT_TRUE(status.Create(&error)) << error;
  EXPECT_FALSE(dir.Exists(".status/.tmp.default_x.yaml.AbCdEf"));
  EXPECT_TRUE(dir.Exists(".status/default_x.yaml"));
}

TEST(StatusDirTest, ObjectsReadBackAsWritten) {
  TempDir dir;
  StatusDir status(dir.path());
  std::string error;
  ASSERT_TRUE(status.Create(&error));
  crd::ElasticVM vm;
  vm.metadata.name = "web-01";
  vm.metadata.namespace_ = "prod";
  vm.metadata.uid = "0b5c6c84-1f1e-4c2b-9d38-3c7f2f4d0c11";
  vm.metadata.generation = 7;
  vm.metadata.creation_timestamp = "2027-01-15T07:00:00Z";
  vm.spec.cpu.vcpus = 4;
  vm.spec_error = "spec.memory.size: expected a quantity";
  vm.status.observed_generation = 7;
  vm.status.conditions.push_back(
      {"Ready", "False", "InvalidSpec", "bad", "2027-01-15T08:00:00Z", 7});
  vm.status.failures.push_back({"vcpu", 3, "plug", "HypervisorError", "x", "2027-01-15T08:00:01Z"});
  vm.status.vcpus = crd::VcpuStatus{4, 3, 8, "0-2", "0-2", 2, "3"};
  ASSERT_TRUE(status.WriteObject(vm, &error)) << error;
  EXPECT_TRUE(dir.Exists(".status/prod_web-01.yaml"));

  auto objects = status.LoadObjects();
  ASSERT_EQ(objects.size(), 1u);
  const crd::ElasticVM& back = objects.at("prod/web-01");
  EXPECT_EQ(back.metadata.uid, vm.metadata.uid);
  EXPECT_EQ(back.metadata.generation, 7);
  EXPECT_EQ(back.metadata.creation_timestamp, vm.metadata.creation_timestamp);
  EXPECT_EQ(back.spec.cpu.vcpus, 4);
  EXPECT_EQ(back.spec_error, vm.spec_error);
  EXPECT_EQ(back.status, vm.status);
}

TEST(StatusDirTest, AStatusFolderRemovedAtRunTimeIsMadeAgain) {
  TempDir dir;
  StatusDir status(dir.path());
  std::string error;
  ASSERT_TRUE(status.Create(&error));
  std::filesystem::remove_all(dir.File(".status"));
  crd::ElasticVM vm;
  vm.metadata.name = "web-01";
  vm.metadata.namespace_ = "default";
  EXPECT_TRUE(status.WriteObject(vm, &error)) << error;
  EXPECT_TRUE(dir.Exists(".status/default_web-01.yaml"));
}

TEST(StatusDirTest, UnreadableOrMisnamedStatusFilesAreSkipped) {
  TempDir dir;
  StatusDir status(dir.path());
  std::string error;
  ASSERT_TRUE(status.Create(&error));
  dir.Write(".status/default_a.yaml", "{{{ not yaml");
  crd::ElasticVM vm;
  vm.metadata.name = "b";
  vm.metadata.namespace_ = "default";
  ASSERT_TRUE(status.WriteObject(vm, &error));
  std::filesystem::rename(dir.File(".status/default_b.yaml"), dir.File(".status/default_c.yaml"));
  EXPECT_TRUE(status.LoadObjects().empty());
}

TEST(StatusDirTest, RefusesToWriteAnObjectWhoseNameIsNotSafe) {
  TempDir dir;
  StatusDir status(dir.path());
  std::string error;
  ASSERT_TRUE(status.Create(&error));
  crd::ElasticVM vm;
  vm.metadata.name = "../escape";
  vm.metadata.namespace_ = "default";
  EXPECT_FALSE(status.WriteObject(vm, &error));
  EXPECT_NE(error.find("invalid name"), std::string::npos) << error;
}

TEST(StatusDirTest, FileErrorsAreWrittenListedAndRemoved) {
  TempDir dir;
  StatusDir status(dir.path());
  std::string error;
  ASSERT_TRUE(status.Create(&error));
  ASSERT_TRUE(status.WriteFileErrors("bad.yaml", {"document 1: \"quoted\": x", "second"},
                                     "2027-01-15T08:00:00Z", &error))
      << error;
  std::string text = dir.Read(".status/_file_bad.yaml.yaml");
  EXPECT_NE(text.find("file: \"bad.yaml\""), std::string::npos) << text;
  EXPECT_NE(text.find("second"), std::string::npos) << text;
  EXPECT_EQ(status.FilesWithErrors(), std::vector<std::string>{"bad.yaml"});
  EXPECT_TRUE(status.LoadObjects().empty());  // error files are not objects

  ASSERT_TRUE(status.RemoveFileErrors("bad.yaml", &error));
  ASSERT_TRUE(status.RemoveFileErrors("bad.yaml", &error));  // idempotent
  EXPECT_TRUE(status.FilesWithErrors().empty());
}

TEST(NameTest, OnlyKubernetesNamesBecomeFileNames) {
  struct Case {
    std::string text;
    bool name, ns;
  };
  const std::vector<Case> cases = {
      {"web-01", true, true},
      {"a", true, true},
      {"web.example.com", true, false},
      {"", false, false},
      {"-web", false, false},
      {"web-", false, false},
      {"Web", false, false},
      {"web_01", false, false},
      {"a/b", false, false},
      {"..", false, false},
      {"a..b", false, false},
      {std::string(63, 'a'), true, true},
      {std::string(64, 'a'), true, false},
      {std::string(254, 'a'), false, false},
      {"web 01", false, false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(IsValidName(c.text), c.name) << "name \"" << c.text << "\"";
    EXPECT_EQ(IsValidNamespace(c.text), c.ns) << "namespace \"" << c.text << "\"";
  }
}

}  // namespace
}  // namespace hotplug::controller::standalone
