// How to reach the Kubernetes API: from a kubeconfig file (--kubeconfig, $KUBECONFIG,
// ~/.kube/config) or from inside a pod (the service-account token and CA). The result is
// plain data; controller/kube/client.cc turns it into HTTP settings.
#pragma once

#include <ctime>
#include <mutex>
#include <string>

#include "common/thread_annotations.h"

namespace hotplug::controller::kube {

inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

struct Config {
  std::string server;  // "https://10.0.0.1:443", "http://127.0.0.1:8001"
  // PEM text. Empty ca_pem: the system's roots.
  std::string ca_pem;
  std::string client_cert_pem;
  std::string client_key_pem;
  // A bearer token given inline, or a file read (and re-read when it changes) per request.
  std::string token;
  std::string token_file;
  bool insecure_skip_tls_verify = false;
  // The context's namespace (kubeconfig) or the pod's namespace (in-cluster); may be empty.
  std::string default_namespace;
  // Where this came from, for a log line: "in-cluster" or "kubeconfig <path> context <name>".
  std::string origin;
};

// Parses a kubeconfig document (YAML text). Relative file paths are taken relative to
// `base_dir`. Uses current-context. Unsupported auth (exec, auth-provider) is an error that
// says so. Returns false and sets `error` on failure.
bool ParseKubeconfig(const std::string& yaml_text, const std::string& base_dir, Config* out,
                     std::string* error);

// Reads the kubeconfig file at `path`.
bool LoadKubeconfigFile(const std::string& path, Config* out, std::string* error);

// In-cluster: KUBERNETES_SERVICE_HOST/PORT, the token file and the CA under `sa_dir`.
bool LoadInCluster(Config* out, std::string* error, const std::string& sa_dir = kServiceAccountDir);

// controller-runtime's order: the --kubeconfig flag if given, else $KUBECONFIG (the first
// file of the list that exists), else in-cluster when KUBERNETES_SERVICE_HOST is set, else
// ~/.kube/config.
bool LoadConfig(const std::string& kubeconfig_flag, Config* out, std::string* error);

// Standard base64 (padding optional, whitespace ignored). False on bad input.
bool DecodeBase64(const std::string& text, std::string* out);

// The bearer token to send now: the inline token, or the token file's content, re-read
// when the file's modification time or size changes (projected tokens rotate). Thread-safe.
class TokenSource {
 public:
  explicit TokenSource(const Config& config) : token_(config.token), file_(config.token_file) {}
  std::string Token();

 private:
  Mutex mu_;
  std::string token_ GUARDED_BY(mu_);
  const std::string file_;
  std::timespec file_mtime_ GUARDED_BY(mu_){};
  long long file_size_ GUARDED_BY(mu_) = -1;
};

}  // namespace hotplug::controller::kube
