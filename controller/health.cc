#include "controller/health.h"

#include <civetweb.h>

#include <cstring>
#include <string_view>
#include <vector>

#include "controller/bind_address.h"
#include "controller/http_serving.h"
#include "controller/log.h"

namespace hotplug::controller {
namespace {

// civetweb's own complaints (a bad request, a timed-out client) are a client's doing: debug.
int LogCivetMessage(const mg_connection*, const char* message) {
  log::Debug("health server", {{"message", message ? message : ""}});
  return 1;
}

struct Answer {
  int code;
  const char* reason;
  const char* body;
};

}  // namespace

HealthServer::~HealthServer() { Stop(); }

bool HealthServer::Start(const std::string& address, std::string* error) {
  const std::optional<std::string> listening = CivetListeningPort(address);
  if (!listening) {
    *error = "bad address \"" + address + "\" (want " + kBindAddressForms + ")";
    return false;
  }
  const std::vector<std::string> options = CivetOptions(*listening);
  std::vector<const char*> pointers;
  for (const auto& option : options) pointers.push_back(option.c_str());
  pointers.push_back(nullptr);
  mg_callbacks callbacks{};
  callbacks.log_message = LogCivetMessage;
  mg_init_library(0);
  server_ = mg_start(&callbacks, this, pointers.data());
  if (server_ == nullptr) {
    *error = "cannot listen on " + address + " (taken, or not an address of this host)";
    return false;
  }
  mg_set_request_handler(server_, "/", Handle, this);
  mg_server_port bound{};
  if (mg_get_server_ports(server_, 1, &bound) < 1) {
    Stop();
    *error = "cannot tell the port bound for " + address;
    return false;
  }
  port_ = bound.port;
  const std::string host = listening->substr(0, listening->rfind(':'));
  bound_address_ = host + ":" + std::to_string(port_);
  return true;
}

void HealthServer::Stop() {
  if (server_ == nullptr) return;
  mg_stop(server_);  // waits for the workers
  server_ = nullptr;
}

int HealthServer::Handle(mg_connection* connection, void* data) {
  auto* self = static_cast<HealthServer*>(data);
  const mg_request_info* request = mg_get_request_info(connection);
  const std::string_view method = request->request_method ? request->request_method : "";
  const std::string_view path = request->local_uri ? request->local_uri : "";
  const bool head = method == "HEAD";
  Answer answer{404, "Not Found", "not found\n"};
  if (method != "GET" && !head) {
    answer = {405, "Method Not Allowed", "method not allowed\n"};
  } else if (path == "/healthz" || path == "/livez") {
    answer = {200, "OK", "ok\n"};
  } else if (path == "/readyz") {
    const bool ready = self->ready_ ? self->ready_() : true;
    answer = ready ? Answer{200, "OK", "ok\n"}
                   : Answer{503, "Service Unavailable", "cache not synced\n"};
  }
  mg_printf(connection,
            "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "
            "%zu\r\nConnection: close\r\n\r\n%s",
            answer.code, answer.reason, std::strlen(answer.body), head ? "" : answer.body);
  return answer.code;
}

}  // namespace hotplug::controller
