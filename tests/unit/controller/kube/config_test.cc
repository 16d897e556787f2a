// Kubeconfig and in-cluster configuration: what is read, from where, and what is refused.
#include "controller/kube/config.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

namespace hotplug::controller::kube {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/kubeconfig-test-XXXXXX";
    path_ = mkdtemp(pattern);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& text) const {
    std::string file = path_ + "/" + name;
    std::ofstream(file) << text;
    return file;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

constexpr const char* kKubeconfig = R"(apiVersion: v1
kind: Config
current-context: second
clusters:
- name: one
  cluster: {server: "https://one.example:6443"}
- name: two
  cluster:
    server: https://two.example:6443/
    certificate-authority-data: Q0EgUEVN
users:
- name: alice
  user:
    token: secret-token
- name: bob
  user:
    client-certificate: certs/bob.crt
    client-key-data: S0VZ
contexts:
- name: first
  context: {cluster: one, user: alice}
- name: second
  context: {cluster: two, user: bob, namespace: vms}
)";

TEST(KubeconfigTest, UsesTheCurrentContextWithDataAndRelativeFiles) {
  TempDir dir;
  fs::create_directories(dir.path() + "/certs");
  dir.Write("certs/bob.crt", "CERT PEM");
  Config config;
  std::string error;
  ASSERT_TRUE(ParseKubeconfig(kKubeconfig, dir.path(), &config, &error)) << error;
  EXPECT_EQ(config.server, "https://two.example:6443");
  EXPECT_EQ(config.ca_pem, "CA PEM");
  EXPECT_EQ(config.client_cert_pem, "CERT PEM");
  EXPECT_EQ(config.client_key_pem, "KEY");
  EXPECT_EQ(config.default_namespace, "vms");
  EXPECT_TRUE(config.token.empty());
  EXPECT_FALSE(config.insecure_skip_tls_verify);
}

TEST(KubeconfigTest, BearerTokenAndInsecureSkipVerify) {
  std::string text = R"(current-context: c
clusters: [{name: k, cluster: {server: "https://k:443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
)";
  Config config;
  std::string error;
  ASSERT_TRUE(ParseKubeconfig(text, "", &config, &error)) << error;
  EXPECT_EQ(config.token, "abc");
  EXPECT_TRUE(config.insecure_skip_tls_verify);
}

TEST(KubeconfigTest, RefusesWhatItCannotHonour) {
  struct Case {
    std::string text;
    const char* mentions;
  };
  for (const Case& c : {
           Case{"clusters: []", "current-context"},
           Case{"current-context: x\ncontexts: []", "context \"x\" not found"},
           Case{"current-context: c\ncontexts: [{name: c, context: {cluster: k}}]",
                "cluster \"k\" not found"},
           Case{"current-context: c\nclusters: [{name: k, cluster: {server: s}}]\n"
                "users: [{name: u, user: {exec: {command: aws}}}]\n"
                "contexts: [{name: c, context: {cluster: k, user: u}}]",
                "exec"},
           Case{"current-context: c\nclusters: [{name: k, cluster: {server: s}}]\n"
                "users: [{name: u, user: {client-certificate-data: QQ==}}]\n"
                "contexts: [{name: c, context: {cluster: k, user: u}}]",
                "without a key"},
           Case{"{{{", "not valid YAML"},
       }) {
    Config config;
    std::string error;
    EXPECT_FALSE(ParseKubeconfig(c.text, "", &config, &error)) << c.text;
    EXPECT_NE(error.find(c.mentions), std::string::npos) << error;
  }
}

TEST(InClusterTest, ReadsServiceAccountFilesAndEnvironment) {
  TempDir dir;
  dir.Write("token", "tok-1\n");
  dir.Write("ca.crt", "CA");
  dir.Write("namespace", "hotplug-system");
  setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  Config config;
  std::string error;
  ASSERT_TRUE(LoadInCluster(&config, &error, dir.path())) << error;
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  EXPECT_EQ(config.server, "https://10.0.0.1:443");
  EXPECT_EQ(config.ca_pem, "CA");
  EXPECT_EQ(config.default_namespace, "hotplug-system");
  TokenSource tokens(config);
  EXPECT_EQ(tokens.Token(), "tok-1");
  // A rotated token is picked up on the next request.
  dir.Write("token", "tok-2-longer\n");
  EXPECT_EQ(tokens.Token(), "tok-2-longer");
}

TEST(InClusterTest, OutsideAPodSaysSo) {
  unsetenv("KUBERNETES_SERVICE_HOST");
  Config config;
  std::string error;
  EXPECT_FALSE(LoadInCluster(&config, &error, "/nonexistent"));
  EXPECT_NE(error.find("KUBERNETES_SERVICE_HOST"), std::string::npos);
}

TEST(Base64Test, DecodesStandardAndUrlAlphabets) {
  std::string out;
  ASSERT_TRUE(DecodeBase64("aGVsbG8gd29ybGQ=", &out));
  EXPECT_EQ(out, "hello world");
  ASSERT_TRUE(DecodeBase64("aGVs\nbG8", &out));
  EXPECT_EQ(out, "hello");
  EXPECT_FALSE(DecodeBase64("a*b", &out));
}

}  // namespace
}  // namespace hotplug::controller::kube
