// A small Kubernetes REST client: JSON requests with a bearer token or a client
// certificate, over HTTP or HTTPS with the cluster's CA, and streamed watches read line by
// line as they arrive. The only file that includes cpprestsdk is client.cc; callers see
// strings. Failures come back as values that carry the API's Status reason and message.
#pragma once

#include <chrono>
#include <functional>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "controller/kube/config.h"

namespace hotplug::controller::kube {

// Caps cpprestsdk's shared thread pool (it starts ~40 threads otherwise). Call once, before
// the first Client is made; later calls do nothing.
void InitHttpThreadPool(size_t threads);

// The answer to one request.
struct ApiResult {
  int http_status = 0;  // 0: no answer (connection refused, timeout, TLS failure)
  std::string body;
  // Empty on success. Otherwise "<Reason>: <message>" from the API's Status object, or
  // the transport error.
  std::string error;
  // The Status reason ("Conflict", "NotFound", "Expired") or "" when there was none.
  std::string reason;
  bool ok() const { return http_status >= 200 && http_status < 300; }
  bool conflict() const { return http_status == 409; }
  bool not_found() const { return http_status == 404; }
  bool gone() const { return http_status == 410; }
};

// Filled from a non-2xx answer (or a transport failure).
void FillError(ApiResult* result);

// Reports each request (verb, HTTP code or 0, seconds); the metrics engineer plugs
// rest_client_requests_total / latency in here. Called from the requesting thread.
class ClientMetrics {
 public:
  virtual ~ClientMetrics() = default;
  virtual void Request(std::string_view verb, int http_status, double seconds) {
    (void)verb, (void)http_status, (void)seconds;
  }
};

// Cancels a watch or a streamed GET from another thread: the read in flight (the wait for
// the status line included) returns within milliseconds.
class StreamCancel {
 public:
  StreamCancel();
  ~StreamCancel();
  void Cancel();
  bool cancelled() const;
  struct Impl;
  Impl* impl() const { return impl_.get(); }

 private:
  std::unique_ptr<Impl> impl_;
};

// How a watch ended.
struct WatchEnd {
  enum class Kind {
    kClosed,     // the server ended the stream cleanly (or the handler asked to stop)
    kBroken,     // the connection dropped mid-stream or could not be made
    kHttpError,  // the server answered with a non-200 status (see result)
    kCancelled,  // StreamCancel::Cancel
  };
  Kind kind = Kind::kClosed;
  ApiResult result;  // http_status / error for kHttpError and kBroken
};

class Client {
 public:
  struct Options {
    // An idle timeout per request (cpprestsdk's timeout is an idle timeout).
    std::chrono::seconds request_timeout{30};
    std::string user_agent = "hotplug-operator";
    ClientMetrics* metrics = nullptr;  // not owned
  };
  Client(Config config, Options options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // `path` is the URL path and query ("/api/v1/namespaces/ns/events?limit=1").
  ApiResult Get(const std::string& path);
  // A GET whose 2xx body is handed to `read` as it arrives (a LIST answered whole is tens
  // of MB: parsed while it comes, never held). `read` returns false when the body is not
  // what it expected, which fails the result like a dropped connection does (status 0).
  // Another status reads the body into the result as Get does, without calling `read`.
  // `body_bytes` (may be null) counts what `read` was given. `idle_timeout` (0: the client's
  // request_timeout) bounds each wait for the answer, its status line included: kube-apiserver
  // sends nothing of a LIST answered from its watch cache until it has encoded all of it,
  // which takes more than a write's timeout at 100,000 objects. `cancel` (may be null) ends
  // the request from another thread: the result is status 0 with the error "cancelled".
  ApiResult GetStreamed(const std::string& path,
                        const std::function<bool(std::istream& body)>& read,
                        size_t* body_bytes = nullptr,
                        std::chrono::seconds idle_timeout = std::chrono::seconds(0),
                        const StreamCancel* cancel = nullptr);
  ApiResult Post(const std::string& path, const std::string& json_body);
  ApiResult Put(const std::string& path, const std::string& json_body);
  // `patch_type`: "application/merge-patch+json" or "application/strategic-merge-patch+json".
  ApiResult Patch(const std::string& path, const std::string& body,
                  const std::string& patch_type = "application/merge-patch+json");
  ApiResult Delete(const std::string& path);

  // Opens a watch at `path` (which carries ?watch=1&...) and calls `on_line` with each line
  // of the chunked body as soon as it arrives; a false return ends the watch (kClosed).
  // `idle_timeout` must exceed the watch's timeoutSeconds. Blocks until the stream ends.
  WatchEnd Watch(const std::string& path, const std::function<bool(std::string_view)>& on_line,
                 const StreamCancel& cancel, std::chrono::seconds idle_timeout);

 private:
  struct Impl;
  ApiResult Send(const char* verb, const std::string& path, const std::string* body,
                 const std::string& content_type);
  Config config_;
  Options options_;
  std::unique_ptr<Impl> impl_;
  ClientMetrics no_metrics_;
};

// Paths of the resources the operator uses. An empty namespace means "all namespaces"
// for collections.
std::string ElasticVMsPath(const std::string& ns);
std::string ElasticVMPath(const std::string& ns, const std::string& name);
std::string EventsPath(const std::string& ns);
std::string LeasePath(const std::string& ns, const std::string& name);
std::string LeasesPath(const std::string& ns);
// Percent-encodes a query value.
std::string QueryEscape(std::string_view value);

}  // namespace hotplug::controller::kube
