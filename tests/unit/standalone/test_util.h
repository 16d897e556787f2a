// Shared set-up for the standalone tests: a temp folder that is removed afterwards, files
// written the ways editors write them, and a poll-with-deadline helper.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

namespace hotplug::controller::standalone::testing {

// One ElasticVM document.
inline std::string VmYaml(const std::string& name, int vcpus, const std::string& ns = "",
                          const std::string& extra_metadata = "") {
  std::string text =
      "apiVersion: hotplug.dev/v1alpha1\nkind: ElasticVM\nmetadata:\n  name: " + name + "\n";
  if (!ns.empty()) text += "  namespace: " + ns + "\n";
  text += extra_metadata;
  text += "spec:\n  cpu:\n    vcpus: " + std::to_string(vcpus) + "\n";
  return text;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "standalone-test.XXXXXX");
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

  // In place: open, truncate, write, close (IN_CLOSE_WRITE).
  void Write(const std::string& name, const std::string& text) const {
    std::ofstream out(File(name), std::ios::binary | std::ios::trunc);
    out << text;
  }
  // The way vim and most tools save: a temp file next to it, then rename over it.
  void Replace(const std::string& name, const std::string& text) const {
    std::string temp = File("." + name + ".swp");
    {
      std::ofstream out(temp, std::ios::binary | std::ios::trunc);
      out << text;
    }
    std::filesystem::rename(temp, File(name));
  }
  void Remove(const std::string& name) const { std::filesystem::remove(File(name)); }
  bool Exists(const std::string& name) const { return std::filesystem::exists(File(name)); }
  std::string Read(const std::string& name) const {
    std::ifstream in(File(name), std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  std::string path_;
};

// Polls `condition` until it holds or `timeout` passes; true when it held.
inline bool WaitFor(const std::function<bool()>& condition,
                    std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace hotplug::controller::standalone::testing
