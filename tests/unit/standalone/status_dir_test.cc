// The status folder: atomic replacement (a reader sees the old or the new file, never a mix,
// and no temp file is left), objects read back as written, error files, safe names.
#include "controller/standalone/status_dir.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "crd/codec.h"
#include "tests/unit/standalone/test_util.h"

namespace hotplug::controller::standalone {
namespace {

using testing::TempDir;

size_t CountEntries(const std::string& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

// A held descriptor of a temp folder, as the status folder holds its own.
struct HeldDir {
  HeldDir() : fd(open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {}
  TempDir dir;
  UniqueFd fd;
};

crd::ElasticVM Vm(const std::string& name, const std::string& ns = "default") {
  crd::ElasticVM vm;
  vm.metadata.name = name;
  vm.metadata.namespace_ = ns;
  vm.metadata.uid = "0b5c6c84-1f1e-4c2b-9d38-3c7f2f4d0c11";
  vm.metadata.generation = 3;
  vm.status.observed_generation = 3;
  return vm;
}

TEST(WriteFileAtomicallyTest, ReplacesTheWholeFileAndLeavesNoTempFile) {
  HeldDir held;
  std::string error;
  ASSERT_TRUE(
      WriteFileAtomically(held.fd.get(), "s.yaml", "old content that is longer\n", 0600, &error));
  ASSERT_TRUE(WriteFileAtomically(held.fd.get(), "s.yaml", "new\n", 0600, &error)) << error;
  EXPECT_EQ(held.dir.Read("s.yaml"), "new\n");
  EXPECT_EQ(CountEntries(held.dir.path()), 1u);
  struct stat info {};
  ASSERT_EQ(stat(held.dir.File("s.yaml").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
}

TEST(WriteFileAtomicallyTest, FailsWithAClearErrorAndKeepsTheOldFile) {
  HeldDir held;
  std::string error;
  ASSERT_TRUE(WriteFileAtomically(held.fd.get(), "s.yaml", "old", 0600, &error));
  std::filesystem::create_directory(held.dir.File("dir.yaml"));
  EXPECT_FALSE(WriteFileAtomically(held.fd.get(), "dir.yaml", "x", 0600, &error));
  EXPECT_NE(error.find("dir.yaml"), std::string::npos) << error;
  EXPECT_EQ(held.dir.Read("s.yaml"), "old");
  EXPECT_EQ(CountEntries(held.dir.path()), 2u);  // s.yaml, dir.yaml: the temp file is gone
}

TEST(WriteFileAtomicallyTest, ReplacesASymlinkInsteadOfWritingThroughIt) {
  HeldDir held;
  TempDir elsewhere;
  elsewhere.Write("victim", "theirs");
  ASSERT_EQ(symlink(elsewhere.File("victim").c_str(), held.dir.File("s.yaml").c_str()), 0);
  std::string error;
  ASSERT_TRUE(WriteFileAtomically(held.fd.get(), "s.yaml", "ours", 0600, &error)) << error;
  EXPECT_EQ(elsewhere.Read("victim"), "theirs");
  EXPECT_EQ(held.dir.Read("s.yaml"), "ours");
}

TEST(WriteFileAtomicallyTest, AConcurrentReaderSeesOneVersionOrTheOtherNeverAMix) {
  HeldDir held;
  const std::string a(256 * 1024, 'a'), b(256 * 1024, 'b');
  std::string error;
  ASSERT_TRUE(WriteFileAtomically(held.fd.get(), "s", a, 0600, &error));
  std::atomic<bool> done{false};
  std::atomic<int> torn{0}, reads{0};
  std::thread reader([&] {
    while (!done.load()) {
      std::string text = held.dir.Read("s");
      reads++;
      if (text != a && text != b) torn++;
    }
  });
  // At least 50 writes, and on until the reader has read 20 times while they go on (on a
  // loaded machine it may not be scheduled during the first 50), bounded by a deadline.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (int i = 0; i < 50 || (reads.load() < 20 && std::chrono::steady_clock::now() < deadline);
       ++i) {
    ASSERT_TRUE(WriteFileAtomically(held.fd.get(), "s", i % 2 ? a : b, 0600, &error)) << error;
  }
  done = true;
  reader.join();
  EXPECT_GE(reads.load(), 20);
  EXPECT_EQ(torn.load(), 0);
}

TEST(ReadRegularFileTest, ReadsOnlyRegularFilesWithinTheSizeLimitAndNeverBlocks) {
  HeldDir held;
  TempDir elsewhere;
  held.dir.Write("ok.yaml", "hello");
  held.dir.Write("big.yaml", std::string(2000, 'x'));
  ASSERT_EQ(mkfifo(held.dir.File("fifo.yaml").c_str(), 0600), 0);
  ASSERT_EQ(symlink("/dev/zero", held.dir.File("zero.yaml").c_str()), 0);
  elsewhere.Write("secret", "s3cret");
  ASSERT_EQ(symlink(elsewhere.File("secret").c_str(), held.dir.File("out.yaml").c_str()), 0);
  std::filesystem::create_directory(held.dir.File("sub"));
  held.dir.Write("sub/in.yaml", "inside");
  ASSERT_EQ(symlink("sub/in.yaml", held.dir.File("in.yaml").c_str()), 0);
  const std::string dotdot =
      "../" + std::filesystem::path(held.dir.path()).filename().string() + "/ok.yaml";
  ASSERT_EQ(symlink(dotdot.c_str(), held.dir.File("dotdot.yaml").c_str()), 0);

  struct Case {
    const char* name;
    Follow follow;
    ReadStatus want;
    const char* text;
  };
  const Case cases[] = {
      {"ok.yaml", Follow::kNever, ReadStatus::kOk, "hello"},
      {"missing.yaml", Follow::kNever, ReadStatus::kMissing, ""},
      {"big.yaml", Follow::kNever, ReadStatus::kTooLarge, ""},
      {"fifo.yaml", Follow::kBeneath, ReadStatus::kNotRegular, ""},
      {"zero.yaml", Follow::kBeneath, ReadStatus::kOutside, ""},
      {"zero.yaml", Follow::kNever, ReadStatus::kOutside, ""},
      {"out.yaml", Follow::kBeneath, ReadStatus::kOutside, ""},
      {"in.yaml", Follow::kBeneath, ReadStatus::kOk, "inside"},
      {"in.yaml", Follow::kNever, ReadStatus::kOutside, ""},
      {"dotdot.yaml", Follow::kBeneath, ReadStatus::kOutside, ""},
  };
  for (const auto& c : cases) {
    ReadResult read = ReadRegularFile(held.fd.get(), c.name, c.follow, 1000);
    EXPECT_EQ(read.status, c.want) << c.name << ": " << read.error;
    EXPECT_EQ(read.text, c.text) << c.name;
    if (!read.ok()) {
      EXPECT_FALSE(read.error.empty()) << c.name;
    }
  }
}

TEST(FitFileNameTest, ShortNamesStayLongOnesAreHashedApart) {
  EXPECT_EQ(FitFileName("default_web-01", ".yaml"), "default_web-01.yaml");
  const std::string a = "default_" + std::string(240, 'a');
  const std::string b = "default_" + std::string(239, 'a') + "b";
  const std::string fa = FitFileName(a, ".yaml"), fb = FitFileName(b, ".yaml");
  EXPECT_LE(fa.size(), kMaxFileNameBytes);
  EXPECT_NE(fa, fb);
  EXPECT_EQ(fa, FitFileName(a, ".yaml"));  // stable
  EXPECT_EQ(fa.substr(fa.size() - 5), ".yaml");
}

TEST(StatusDirTest, OpenMakesAPrivateFolderAndRemovesTempFilesOfACrash) {
  TempDir dir;
  std::string error;
  {
    StatusDir status(dir.path());
    ASSERT_TRUE(status.Open(&error)) << error;
  }
  struct stat info {};
  ASSERT_EQ(stat(dir.File(".status").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700u);
  dir.Write(".status/.tmp.default_x.yaml.AbCdEf", "half");
  dir.Write(".status/default_x.yaml", "kept");
  StatusDir status(dir.path());
  ASSERT_TRUE(status.Open(&error)) << error;
  EXPECT_FALSE(dir.Exists(".status/.tmp.default_x.yaml.AbCdEf"));
  EXPECT_TRUE(dir.Exists(".status/default_x.yaml"));
}

TEST(StatusDirTest, ASecondOwnerOfTheFolderIsRefused) {
  TempDir dir;
  StatusDir first(dir.path());
  std::string error;
  ASSERT_TRUE(first.Open(&error)) << error;
  StatusDir second(dir.path());
  bool locked = false;
  EXPECT_FALSE(second.Open(&error, &locked));
  EXPECT_TRUE(locked);
  EXPECT_NE(error.find("another process already owns"), std::string::npos) << error;
}

TEST(StatusDirTest, AStatusFolderThatIsASymlinkIsRefusedAndNothingWrittenThere) {
  TempDir dir, elsewhere;
  elsewhere.Write(".tmp.theirs", "theirs");
  ASSERT_EQ(symlink(elsewhere.path().c_str(), dir.File(".status").c_str()), 0);
  StatusDir status(dir.path());
  std::string error;
  EXPECT_FALSE(status.Open(&error));
  EXPECT_NE(error.find("is not a folder"), std::string::npos) << error;
  EXPECT_TRUE(elsewhere.Exists(".tmp.theirs"));
  EXPECT_EQ(CountEntries(elsewhere.path()), 1u);
}

TEST(StatusDirTest, ObjectsReadBackAsWritten) {
  TempDir dir;
  StatusDir status(dir.path());
  std::string error;
  ASSERT_TRUE(status.Open(&error));
  crd::ElasticVM vm = Vm("web-01", "prod");
  vm.metadata.generation = 7;
  vm.metadata.creation_timestamp = "2027-01-15T07:00:00Z";
  vm.spec.cpu.vcpus = 4;
  vm.spec_error = "spec.memory.size: expected a quantity";
  vm.status.observed_generation = 7;
  vm.status.conditions.push_back(
      {"Ready", "False", "InvalidSpec", "bad", "2027-01-15T08:00:00Z", 7});
  vm.status.failures.push_back({"vcpu", 3, "plug", "HypervisorError", "x", "2027-01-15T08:00:01Z"});
  crd::VcpuStatus& vcpus = vm.status.vcpus.emplace();
  vcpus.desired = 4;
  vcpus.current = 3;
  vcpus.maximum = 8;
  vcpus.enabled = vcpus.online = "0-2";
  vcpus.qemu = 2;
  vcpus.pending = "3";
  ASSERT_TRUE(status.WriteObject(vm, &error)) << error;
  EXPECT_TRUE(dir.Exists(".status/prod_web-01.yaml"));
  struct stat info {};
  ASSERT_EQ(stat(dir.File(".status/prod_web-01.yaml").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);

  auto objects = status.LoadObjects();
  ASSERT_EQ(objects.size(), 1u);
  const crd::ElasticVM& back = objects.at("prod/web-01");
  EXPECT_EQ(back.metadata.uid, vm.metadata.uid);
  EXPECT_EQ(back.metadata.generation, 7);
  EXPECT_EQ(back.metadata.creation_timestamp, vm.metadata.creation_timestamp);
  EXPECT_EQ(back.spec.cpu.vcpus, 4);
  EXPECT_EQ(back.spec_error, vm.spec_error);
  EXPECT_EQ(back.status, vm.status);
  auto one = status.LoadObject("prod", "web-01");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->metadata.uid, vm.metadata.uid);
}

TEST(StatusDirTest, EveryValidNameGetsAStatusFileThatReadsBack) {
  TempDir dir;
  StatusDir status(dir.path());
  std::string error;
  ASSERT_TRUE(status.Open(&error));
  std::string longest = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                        std::string(63, 'c') + "." + std::string(61, 'd');
  ASSERT_TRUE(IsValidName(longest));
  crd::ElasticVM vm = Vm(longest, std::string(63, 'n'));
  ASSERT_TRUE(status.WriteObject(vm, &error)) << error;
  auto objects = status.LoadObjects();
  ASSERT_EQ(objects.count(vm.Key()), 1u);
  EXPECT_EQ(objects.at(vm.Key()).metadata.uid, vm.metadata.uid);
}

TEST(StatusDirTest, LabelKeysThatLookLikeOtherTypesReadBack) {
  TempDir dir;
  StatusDir status(dir.path());
  std::string error;
  ASSERT_TRUE(status.Open(&error));
  crd::ElasticVM vm = Vm("web-01");
  for (const char* key : {"null", "~", "1e3", "true", "yes", "<<", "0x10", "", "a: b", "#x"}) {
    vm.metadata.labels[key] = "v";
  }
  ASSERT_TRUE(status.WriteObject(vm, &error)) << error;
  auto back = status.LoadObject("default", "web-01");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->metadata.labels, vm.metadata.labels);
}

TEST(StatusDirTest, AStatusTooLargeToReadBackLeavesTheUserMetadataOut) {
  TempDir dir;
  StatusDir status(dir.path());
  std::string error;
  ASSERT_TRUE(status.Open(&error));
  crd::ElasticVM vm = Vm("web-01");
  vm.metadata.annotations["note"] = std::string(2'200'000, '"');  // 4.4 MB double-quoted
  ASSERT_TRUE(status.WriteObject(vm, &error)) << error;
  auto back = status.LoadObject("default", "web-01");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->metadata.uid, vm.metadata.uid);
  EXPECT_EQ(back->metadata.generation, vm.metadata.generation);
  EXPECT_EQ(back->metadata.annotations.count("note"), 0u);
  EXPECT_EQ(back->metadata.annotations.count(kMetadataOmittedAnnotation), 1u);
}

TEST(StatusDirTest, AStatusFolderRemovedAtRunTimeIsMadeAgainPrivate) {
  TempDir dir;
  StatusDir status(dir.path());
  std::string error;
  ASSERT_TRUE(status.Open(&error));
  const uint64_t generation = status.generation();
  std::filesystem::remove_all(dir.File(".status"));
  EXPECT_TRUE(status.WriteObject(Vm("web-01"), &error)) << error;
  EXPECT_TRUE(dir.Exists(".status/default_web-01.yaml"));
  EXPECT_GT(status.generation(), generation);
  struct stat info {};
  ASSERT_EQ(stat(dir.File(".status").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700u);
}

TEST(StatusDirTest, UnreadableMisnamedOrSpecialStatusFilesAreSkipped) {
  TempDir dir;
  StatusDir status(dir.path());
  std::string error;
  ASSERT_TRUE(status.Open(&error));
  dir.Write(".status/default_a.yaml", "{{{ not yaml");
  ASSERT_TRUE(status.WriteObject(Vm("b"), &error));
  std::filesystem::rename(dir.File(".status/default_b.yaml"), dir.File(".status/default_c.yaml"));
  ASSERT_EQ(mkfifo(dir.File(".status/default_fifo.yaml").c_str(), 0600), 0);
  ASSERT_EQ(symlink("/dev/zero", dir.File(".status/default_zero.yaml").c_str()), 0);
  { std::ofstream big(dir.File(".status/default_big.yaml")); }
  std::filesystem::resize_file(dir.File(".status/default_big.yaml"), 1ull << 30);  // sparse
  EXPECT_TRUE(status.LoadObjects().empty());
}

TEST(StatusDirTest, RefusesToWriteAnObjectWhoseNameIsNotSafe) {
  TempDir dir;
  StatusDir status(dir.path());
  std::string error;
  ASSERT_TRUE(status.Open(&error));
  EXPECT_FALSE(status.WriteObject(Vm("../escape"), &error));
  EXPECT_NE(error.find("invalid name"), std::string::npos) << error;
}

TEST(StatusDirTest, FileErrorsAreWrittenListedAndRemoved) {
  TempDir dir;
  StatusDir status(dir.path());
  std::string error;
  ASSERT_TRUE(status.Open(&error));
  ASSERT_TRUE(status.WriteFileErrors("bad.yaml", {"document 1: \"quoted\": x", "second"},
                                     "2027-01-15T08:00:00Z", &error))
      << error;
  std::string text = dir.Read(".status/_file_bad.yaml.yaml");
  EXPECT_NE(text.find("file: \"bad.yaml\""), std::string::npos) << text;
  EXPECT_NE(text.find("second"), std::string::npos) << text;
  EXPECT_EQ(status.ErrorFileNames(), std::vector<std::string>{"_file_bad.yaml.yaml"});
  EXPECT_TRUE(status.LoadObjects().empty());  // error files are not objects

  ASSERT_TRUE(status.RemoveFileErrors("bad.yaml", &error));
  ASSERT_TRUE(status.RemoveFileErrors("bad.yaml", &error));  // idempotent
  EXPECT_TRUE(status.ErrorFileNames().empty());
}

TEST(StatusDirTest, AnInputFileNameThatIsNotUtf8GetsAUtf8ErrorFile) {
  TempDir dir;
  StatusDir status(dir.path());
  std::string error;
  ASSERT_TRUE(status.Open(&error));
  const std::string name = "caf\xe9-" + std::string(250, 'x') + ".yaml";
  ASSERT_TRUE(status.WriteFileErrors(name, {"the file name is not UTF-8"}, "t", &error)) << error;
  auto names = status.ErrorFileNames();
  ASSERT_EQ(names.size(), 1u);
  EXPECT_LE(names[0].size(), kMaxFileNameBytes);
  EXPECT_TRUE(crd::IsValidUtf8(dir.Read(".status/" + names[0])));
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
