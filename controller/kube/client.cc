// The one translation unit that includes cpprestsdk (it costs ~5 s of compile time).
#include "controller/kube/client.h"

#include <cpprest/http_client.h>
#include <cpprest/rawptrstream.h>
#include <pplx/threadpool.h>

#include <atomic>
#include <istream>
#include <nlohmann/json.hpp>
#include <optional>
#include <streambuf>

namespace hotplug::controller::kube {
namespace {

namespace http = web::http;
namespace client = web::http::client;

std::atomic<bool> g_pool_initialised{false};

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

client::http_client_config MakeHttpConfig(const Config& config, std::chrono::seconds timeout) {
  client::http_client_config http_config;
  http_config.set_timeout(timeout);
  http_config.set_validate_certificates(!config.insecure_skip_tls_verify);
  std::string ca = config.ca_pem;
  std::string cert = config.client_cert_pem;
  std::string key = config.client_key_pem;
  if (!ca.empty() || !cert.empty()) {
    http_config.set_ssl_context_callback([ca, cert, key](boost::asio::ssl::context& context) {
      if (!ca.empty()) context.add_certificate_authority(boost::asio::buffer(ca));
      if (!cert.empty()) {
        context.use_certificate_chain(boost::asio::buffer(cert));
        context.use_private_key(boost::asio::buffer(key), boost::asio::ssl::context::pem);
      }
    });
  }
  return http_config;
}

// A response body as a std::streambuf, read from the connection as the parser asks for it.
// A transport failure ends the stream (the reader sees a cut-off document) and is kept.
class ResponseBuffer final : public std::streambuf {
 public:
  explicit ResponseBuffer(concurrency::streams::istream stream) : stream_(std::move(stream)) {}
  size_t bytes() const { return bytes_; }
  const std::string& error() const { return error_; }

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    if (!error_.empty()) return traits_type::eof();
    size_t got = 0;
    try {
      concurrency::streams::rawptr_buffer<uint8_t> target(reinterpret_cast<uint8_t*>(buffer_),
                                                          sizeof(buffer_), std::ios::out);
      got = stream_.read(target, sizeof(buffer_)).get();
    } catch (const std::exception& e) {
      error_ = e.what();
      return traits_type::eof();
    }
    if (got == 0) return traits_type::eof();
    bytes_ += got;
    setg(buffer_, buffer_, buffer_ + got);
    return traits_type::to_int_type(*gptr());
  }

 private:
  concurrency::streams::istream stream_;
  size_t bytes_ = 0;
  std::string error_;
  char buffer_[64 * 1024];
};

}  // namespace

void InitHttpThreadPool(size_t threads) {
  bool expected = false;
  if (g_pool_initialised.compare_exchange_strong(expected, true)) {
    crossplat::threadpool::initialize_with_threads(threads);
  }
}

void FillError(ApiResult* result) {
  if (result->ok()) return;
  if (result->http_status == 0) return;  // the transport error is already in `error`
  try {
    auto status = nlohmann::json::parse(result->body);
    if (status.is_object() && status.value("kind", "") == "Status") {
      result->reason = status.value("reason", "");
      std::string message = status.value("message", "");
      result->error = (result->reason.empty() ? "HTTP " + std::to_string(result->http_status)
                                              : result->reason) +
                      ": " + message;
      return;
    }
  } catch (const nlohmann::json::exception&) {
  }
  std::string body = result->body.substr(0, 200);
  result->error = "HTTP " + std::to_string(result->http_status) + (body.empty() ? "" : ": ") + body;
}

// ---------------------------------------------------------------------------------------

struct StreamCancel::Impl {
  pplx::cancellation_token_source source;
  std::atomic<bool> cancelled{false};
};

StreamCancel::StreamCancel() : impl_(std::make_unique<Impl>()) {}
StreamCancel::~StreamCancel() = default;
void StreamCancel::Cancel() {
  impl_->cancelled = true;
  impl_->source.cancel();
}
bool StreamCancel::cancelled() const { return impl_->cancelled.load(); }

// ---------------------------------------------------------------------------------------

struct Client::Impl {
  Impl(const Config& config, std::chrono::seconds timeout)
      : http(utility::conversions::to_string_t(config.server), MakeHttpConfig(config, timeout)),
        tokens(config) {}
  // A request with the headers every call carries (the token is read afresh each time).
  http::http_request Request(const char* verb, const std::string& path,
                             const std::string& user_agent) {
    http::http_request request(verb);
    request.set_request_uri(path);
    request.headers().add("Accept", "application/json");
    request.headers().add("User-Agent", user_agent);
    std::string token = tokens.Token();
    if (!token.empty()) request.headers().add("Authorization", "Bearer " + token);
    return request;
  }
  client::http_client http;  // thread-safe for concurrent requests
  TokenSource tokens;
};

Client::Client(Config config, Options options)
    : config_(std::move(config)),
      options_(std::move(options)),
      impl_(std::make_unique<Impl>(config_, options_.request_timeout)) {}

Client::~Client() = default;

ApiResult Client::Send(const char* verb, const std::string& path, const std::string* body,
                       const std::string& content_type) {
  auto start = std::chrono::steady_clock::now();
  ApiResult result;
  try {
    http::http_request request = impl_->Request(verb, path, options_.user_agent);
    if (body) request.set_body(*body, content_type);
    http::http_response response = impl_->http.request(request).get();
    result.http_status = response.status_code();
    result.body = response.extract_utf8string(true).get();
  } catch (const std::exception& e) {
    result.http_status = 0;
    result.error = std::string("request ") + verb + " " + path + " failed: " + e.what();
  }
  FillError(&result);
  (options_.metrics ? options_.metrics : &no_metrics_)
      ->Request(verb, result.http_status, SecondsSince(start));
  return result;
}

ApiResult Client::Get(const std::string& path) { return Send("GET", path, nullptr, ""); }

ApiResult Client::GetStreamed(const std::string& path,
                              const std::function<bool(std::istream& body)>& read,
                              size_t* body_bytes, std::chrono::seconds idle_timeout,
                              const StreamCancel* cancel) {
  auto start = std::chrono::steady_clock::now();
  ApiResult result;
  if (body_bytes) *body_bytes = 0;
  try {
    // Another timeout than the client's takes a client of its own (as a watch does).
    std::optional<client::http_client> own;
    if (idle_timeout.count() > 0 && idle_timeout != options_.request_timeout) {
      own.emplace(utility::conversions::to_string_t(config_.server),
                  MakeHttpConfig(config_, idle_timeout));
    }
    client::http_client& http = own ? *own : impl_->http;
    http::http_request request = impl_->Request("GET", path, options_.user_agent);
    // The token closes the connection, which ends a wait for the status line or the body.
    http::http_response response =
        (cancel ? http.request(request, cancel->impl()->source.get_token()) : http.request(request))
            .get();
    result.http_status = response.status_code();
    if (result.ok()) {
      ResponseBuffer buffer(response.body());
      std::istream body(&buffer);
      bool read_ok = read(body);
      if (body_bytes) *body_bytes = buffer.bytes();
      if (!buffer.error().empty()) {
        result.http_status = 0;
        result.error = "request GET " + path + " failed while reading: " + buffer.error();
      } else if (!read_ok) {
        result.http_status = 0;
        result.error = "request GET " + path + ": the answer could not be read";
      }
    } else {
      result.body = response.extract_utf8string(true).get();
    }
  } catch (const std::exception& e) {
    result.http_status = 0;
    result.error = std::string("request GET ") + path + " failed: " + e.what();
  }
  if (!result.ok() && cancel && cancel->cancelled()) {
    result.http_status = 0;
    result.error = "request GET " + path + " cancelled";
  }
  FillError(&result);
  (options_.metrics ? options_.metrics : &no_metrics_)
      ->Request("GET", result.http_status, SecondsSince(start));
  return result;
}
ApiResult Client::Post(const std::string& path, const std::string& json_body) {
  return Send("POST", path, &json_body, "application/json");
}
ApiResult Client::Put(const std::string& path, const std::string& json_body) {
  return Send("PUT", path, &json_body, "application/json");
}
ApiResult Client::Patch(const std::string& path, const std::string& body,
                        const std::string& patch_type) {
  return Send("PATCH", path, &body, patch_type);
}
ApiResult Client::Delete(const std::string& path) { return Send("DELETE", path, nullptr, ""); }

WatchEnd Client::Watch(const std::string& path,
                       const std::function<bool(std::string_view)>& on_line,
                       const StreamCancel& cancel, std::chrono::seconds idle_timeout) {
  WatchEnd end;
  auto start = std::chrono::steady_clock::now();
  try {
    // A client of its own: its idle timeout must outlast the watch's timeoutSeconds.
    client::http_client http(utility::conversions::to_string_t(config_.server),
                             MakeHttpConfig(config_, idle_timeout));
    http::http_request request = impl_->Request("GET", path, options_.user_agent);
    auto token_source = cancel.impl()->source.get_token();
    http::http_response response = http.request(request, token_source).get();
    end.result.http_status = response.status_code();
    (options_.metrics ? options_.metrics : &no_metrics_)
        ->Request("WATCH", end.result.http_status, SecondsSince(start));
    if (response.status_code() != http::status_codes::OK) {
      end.kind = WatchEnd::Kind::kHttpError;
      end.result.body = response.extract_utf8string(true).get();
      FillError(&end.result);
      return end;
    }
    auto stream = response.body();
    while (!cancel.cancelled()) {
      concurrency::streams::container_buffer<std::string> line;  // fresh buffer per line
      size_t read = stream.read_line(line).get();
      if (read == 0 && stream.is_eof()) {
        end.kind = WatchEnd::Kind::kClosed;
        return end;
      }
      if (line.collection().empty()) continue;
      if (!on_line(line.collection())) {
        end.kind = WatchEnd::Kind::kClosed;
        return end;
      }
    }
    end.kind = WatchEnd::Kind::kCancelled;
  } catch (const pplx::task_canceled&) {
    end.kind = WatchEnd::Kind::kCancelled;
  } catch (const std::exception& e) {
    end.kind = cancel.cancelled() ? WatchEnd::Kind::kCancelled : WatchEnd::Kind::kBroken;
    end.result.error = std::string("watch ") + path + ": " + e.what();
  }
  return end;
}

// ---------------------------------------------------------------------------------------

std::string QueryEscape(std::string_view value) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string ElasticVMsPath(const std::string& ns) {
  std::string base = "/apis/hotplug.dev/v1alpha1";
  return ns.empty() ? base + "/elasticvms" : base + "/namespaces/" + ns + "/elasticvms";
}
std::string ElasticVMPath(const std::string& ns, const std::string& name) {
  return ElasticVMsPath(ns) + "/" + name;
}
std::string EventsPath(const std::string& ns) { return "/api/v1/namespaces/" + ns + "/events"; }
std::string LeasesPath(const std::string& ns) {
  return "/apis/coordination.k8s.io/v1/namespaces/" + ns + "/leases";
}
std::string LeasePath(const std::string& ns, const std::string& name) {
  return LeasesPath(ns) + "/" + name;
}

}  // namespace hotplug::controller::kube
