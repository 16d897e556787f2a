#include "controller/kube/config.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace hotplug::controller::kube {
namespace {

bool ReadFile(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path;
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  return true;
}

std::string Resolve(const std::string& path, const std::string& base_dir) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return (std::filesystem::path(base_dir) / path).string();
}

std::string Trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

// Finds the entry named `name` in a kubeconfig list (clusters, users, contexts) and
// returns its inner map (`cluster`, `user`, `context`).
// A missing entry (or one with no inner map) gives an invalid node: test with IsMap().
YAML::Node FindNamed(const YAML::Node& list, const std::string& name, const char* inner) {
  if (!list || !list.IsSequence()) return YAML::Node(YAML::NodeType::Undefined);
  for (const auto& entry : list) {
    if (entry.IsMap() && entry["name"] && entry["name"].as<std::string>() == name && entry[inner] &&
        entry[inner].IsMap()) {
      return entry[inner];
    }
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

std::string Str(const YAML::Node& node, const char* key) {
  if (!node || !node.IsMap() || !node[key] || node[key].IsNull()) return "";
  return node[key].as<std::string>();
}

// Loads `<key>-data` (base64) or `<key>` (a file) into `out`.
bool LoadPem(const YAML::Node& node, const std::string& key, const std::string& base_dir,
             std::string* out, std::string* error) {
  std::string data = Str(node, (key + "-data").c_str());
  if (!data.empty()) {
    if (!DecodeBase64(data, out)) {
      *error = key + "-data is not valid base64";
      return false;
    }
    return true;
  }
  std::string file = Str(node, key.c_str());
  if (file.empty()) return true;
  return ReadFile(Resolve(file, base_dir), out, error);
}

}  // namespace

bool DecodeBase64(const std::string& text, std::string* out) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  out->clear();
  unsigned buffer = 0;
  int bits = 0;
  for (char c : text) {
    if (c == '=' || c == '\n' || c == '\r' || c == ' ' || c == '\t') continue;
    int v = value(c);
    if (v < 0) return false;
    buffer = (buffer << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return true;
}

namespace {

// The credentials of user `user_name` ("" = none) into `config`.
bool ReadUser(const YAML::Node& doc, const std::string& user_name, const std::string& base_dir,
              Config* config, std::string* error) {
  if (user_name.empty()) return true;
  YAML::Node user = FindNamed(doc["users"], user_name, "user");
  if (!user.IsMap()) {
    *error = "kubeconfig: user \"" + user_name + "\" not found";
    return false;
  }
  if (user["exec"] || user["auth-provider"]) {
    *error = "kubeconfig: user \"" + user_name +
             "\" uses exec/auth-provider credentials, which this client does not support; "
             "use a token or a client certificate";
    return false;
  }
  config->token = Str(user, "token");
  std::string token_file = Str(user, "tokenFile");
  if (!token_file.empty()) config->token_file = Resolve(token_file, base_dir);
  if (!LoadPem(user, "client-certificate", base_dir, &config->client_cert_pem, error) ||
      !LoadPem(user, "client-key", base_dir, &config->client_key_pem, error)) {
    return false;
  }
  if (config->client_cert_pem.empty() != config->client_key_pem.empty()) {
    *error = "kubeconfig: user \"" + user_name +
             "\" has a client certificate without a key or a key without a certificate";
    return false;
  }
  if (!Str(user, "username").empty()) {
    *error = "kubeconfig: basic auth (username/password) is not supported";
    return false;
  }
  return true;
}

}  // namespace

bool ParseKubeconfig(const std::string& yaml_text, const std::string& base_dir, Config* out,
                     std::string* error) {
  try {
    YAML::Node doc = YAML::Load(yaml_text);
    std::string context_name = Str(doc, "current-context");
    if (context_name.empty()) {
      *error = "kubeconfig has no current-context";
      return false;
    }
    YAML::Node context = FindNamed(doc["contexts"], context_name, "context");
    if (!context.IsMap()) {
      *error = "kubeconfig: context \"" + context_name + "\" not found";
      return false;
    }
    std::string cluster_name = Str(context, "cluster");
    YAML::Node cluster = FindNamed(doc["clusters"], cluster_name, "cluster");
    if (!cluster.IsMap()) {
      *error = "kubeconfig: cluster \"" + cluster_name + "\" not found";
      return false;
    }
    Config config;
    config.server = Str(cluster, "server");
    if (config.server.empty()) {
      *error = "kubeconfig: cluster \"" + cluster_name + "\" has no server";
      return false;
    }
    while (!config.server.empty() && config.server.back() == '/') config.server.pop_back();
    config.insecure_skip_tls_verify = Str(cluster, "insecure-skip-tls-verify") == "true";
    if (!LoadPem(cluster, "certificate-authority", base_dir, &config.ca_pem, error)) return false;
    config.default_namespace = Str(context, "namespace");

    if (!ReadUser(doc, Str(context, "user"), base_dir, &config, error)) return false;
    config.origin = "context " + context_name;
    *out = std::move(config);
    return true;
  } catch (const YAML::Exception& e) {
    *error = std::string("kubeconfig is not valid YAML: ") + e.what();
    return false;
  }
}

bool LoadKubeconfigFile(const std::string& path, Config* out, std::string* error) {
  std::string text;
  if (!ReadFile(path, &text, error)) return false;
  std::string base_dir = std::filesystem::path(path).parent_path().string();
  if (!ParseKubeconfig(text, base_dir, out, error)) {
    *error = path + ": " + *error;
    return false;
  }
  out->origin = "kubeconfig " + path + " " + out->origin;
  return true;
}

bool LoadInCluster(Config* out, std::string* error, const std::string& sa_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port) {
    *error = "not in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set";
    return false;
  }
  Config config;
  std::string host_text = host;
  if (host_text.find(':') != std::string::npos) host_text = "[" + host_text + "]";  // IPv6
  config.server = "https://" + host_text + ":" + port;
  config.token_file = sa_dir + "/token";
  std::string probe;
  if (!ReadFile(config.token_file, &probe, error)) return false;
  if (!ReadFile(sa_dir + "/ca.crt", &config.ca_pem, error)) return false;
  std::string ns;
  std::string ignored;
  if (ReadFile(sa_dir + "/namespace", &ns, &ignored)) config.default_namespace = Trim(ns);
  config.origin = "in-cluster";
  *out = std::move(config);
  return true;
}

bool LoadConfig(const std::string& kubeconfig_flag, Config* out, std::string* error) {
  if (!kubeconfig_flag.empty()) return LoadKubeconfigFile(kubeconfig_flag, out, error);
  if (const char* env = std::getenv("KUBECONFIG"); env && *env) {
    std::stringstream list(env);
    std::string path;
    while (std::getline(list, path, ':')) {
      if (!path.empty() && std::filesystem::exists(path)) {
        return LoadKubeconfigFile(path, out, error);
      }
    }
    *error = "none of the files in $KUBECONFIG exists: " + std::string(env);
    return false;
  }
  if (const char* host = std::getenv("KUBERNETES_SERVICE_HOST"); host && *host) {
    return LoadInCluster(out, error);
  }
  if (const char* home = std::getenv("HOME"); home && *home) {
    std::string path = std::string(home) + "/.kube/config";
    if (std::filesystem::exists(path)) return LoadKubeconfigFile(path, out, error);
  }
  *error =
      "no Kubernetes configuration: pass --kubeconfig, set $KUBECONFIG, run in a pod, or "
      "create ~/.kube/config";
  return false;
}

std::string TokenSource::Token() {
  MutexLock lock(mu_);
  if (file_.empty()) return token_;
  struct stat st {};
  if (stat(file_.c_str(), &st) != 0) return token_;  // keep the last good token
  if (st.st_mtim.tv_sec != file_mtime_.tv_sec || st.st_mtim.tv_nsec != file_mtime_.tv_nsec ||
      static_cast<long long>(st.st_size) != file_size_) {
    std::string text, error;
    if (ReadFile(file_, &text, &error)) {
      token_ = Trim(text);
      file_mtime_ = st.st_mtim;
      file_size_ = static_cast<long long>(st.st_size);
    }
  }
  return token_;
}

}  // namespace hotplug::controller::kube
