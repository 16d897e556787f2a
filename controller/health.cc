#include "controller/health.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "controller/bind_address.h"

namespace hotplug::controller {

HealthServer::~HealthServer() { Stop(); }

// Reads back the port (and address) the listening socket got.
void HealthServer::RecordBoundAddress() {
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &length);
  char text[INET6_ADDRSTRLEN] = {0};
  if (bound.ss_family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&bound);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
    port_ = ntohs(v4->sin_port);
    bound_address_ = std::string(text) + ":" + std::to_string(port_);
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&bound);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
    port_ = ntohs(v6->sin6_port);
    bound_address_ = "[" + std::string(text) + "]:" + std::to_string(port_);
  }
}

bool HealthServer::Start(const std::string& address, std::string* error) {
  const std::optional<BindAddress> parsed = ParseBindAddress(address);
  if (!parsed) {
    *error = "bad address \"" + address + "\" (want " + kBindAddressForms + ")";
    return false;
  }
  const std::string& host = parsed->host;
  const std::string port = std::to_string(parsed->port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) {
    *error = "cannot resolve \"" + address + "\": " + gai_strerror(rc);
    return false;
  }
  std::string last_error = "no address";
  for (addrinfo* ai = found; ai; ai = ai->ai_next) {
    // ":port" means every interface: prefer IPv4's 0.0.0.0, which getaddrinfo lists first
    // on most systems; take whatever binds.
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 16) == 0) {
      listen_fd_ = fd;
      break;
    }
    last_error = std::strerror(errno);
    close(fd);
  }
  freeaddrinfo(found);
  if (listen_fd_ < 0) {
    *error = "cannot listen on " + address + ": " + last_error;
    return false;
  }
  RecordBoundAddress();
  if (pipe2(wake_fds_, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + std::strerror(errno);
    close(listen_fd_);
    listen_fd_ = -1;
    return false;
  }
  thread_ = std::thread([this] { Serve(); });
  return true;
}

void HealthServer::Stop() {
  if (thread_.joinable()) {
    char byte = 1;
    (void)!write(wake_fds_[1], &byte, 1);
    thread_.join();
  }
  for (int* fd : {&listen_fd_, &wake_fds_[0], &wake_fds_[1]}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

void HealthServer::Serve() {
  pthread_setname_np(pthread_self(), "health");
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fds_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (fds[0].revents & POLLIN) {
      int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      Answer(client);
      close(client);
    }
  }
}

void HealthServer::Answer(int client) {
  // Read the request head (bounded in size and time: a probe sends a few hundred bytes).
  std::string request;
  char buf[1024];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192) {
    pollfd fd{client, POLLIN, 0};
    if (poll(&fd, 1, 2000) <= 0) return;
    ssize_t n = read(client, buf, sizeof(buf));
    if (n <= 0) return;
    request.append(buf, static_cast<size_t>(n));
  }
  std::string line = request.substr(0, request.find("\r\n"));
  int code = 404;
  std::string body = "not found\n";
  bool head = line.rfind("HEAD ", 0) == 0;
  if (line.rfind("GET ", 0) == 0 || head) {
    std::string target = line.substr(line.find(' ') + 1);
    target = target.substr(0, target.find(' '));
    std::string path = target.substr(0, target.find('?'));
    if (path == "/healthz" || path == "/livez") {
      code = 200;
      body = "ok\n";
    } else if (path == "/readyz") {
      bool ready = ready_ ? ready_() : true;
      code = ready ? 200 : 503;
      body = ready ? "ok\n" : "cache not synced\n";
    }
  } else {
    code = 405;
    body = "method not allowed\n";
  }
  const char* status = code == 200   ? "OK"
                       : code == 503 ? "Service Unavailable"
                       : code == 405 ? "Method Not Allowed"
                                     : "Not Found";
  std::string response = "HTTP/1.1 " + std::to_string(code) + " " + status +
                         "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
                         (head ? "" : body);
  size_t sent = 0;
  while (sent < response.size()) {
    ssize_t n = send(client, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
}

}  // namespace hotplug::controller
