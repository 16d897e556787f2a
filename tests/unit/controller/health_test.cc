// The health server: binds exactly the address given, reports its port, answers probes.
#include "controller/health.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace hotplug::controller {
namespace {

// A TCP connection to 127.0.0.1:port (-1 when refused), reads timing out after `timeout_s`.
int Connect(int port, int timeout_s = 5) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  timeval timeout{timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// A raw HTTP GET; returns the status line.
std::string Probe(int port, const std::string& path, int timeout_s = 5) {
  int fd = Connect(port, timeout_s);
  if (fd < 0) return "connect failed";
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  (void)!write(fd, request.data(), request.size());
  std::string response;
  char buf[512];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, static_cast<size_t>(n));
  close(fd);
  return response.substr(0, response.find("\r\n"));
}

TEST(HealthServerTest, ServesHealthzAndReadyzOnThePortItGot) {
  std::atomic<bool> synced{false};
  HealthServer server([&] { return synced.load(); });
  std::string error;
  ASSERT_TRUE(server.Start("127.0.0.1:0", &error)) << error;
  ASSERT_GT(server.port(), 0);
  EXPECT_EQ(server.bound_address(), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(Probe(server.port(), "/healthz"), "HTTP/1.1 200 OK");
  EXPECT_EQ(Probe(server.port(), "/readyz"), "HTTP/1.1 503 Service Unavailable");
  synced = true;
  EXPECT_EQ(Probe(server.port(), "/readyz"), "HTTP/1.1 200 OK");
  EXPECT_EQ(Probe(server.port(), "/nope"), "HTTP/1.1 404 Not Found");
  server.Stop();
  EXPECT_EQ(Probe(server.port(), "/healthz"), "connect failed");
}

TEST(HealthServerTest, RefusesBadOrTakenAddresses) {
  HealthServer first(nullptr);
  std::string error;
  ASSERT_TRUE(first.Start("127.0.0.1:0", &error)) << error;
  HealthServer second(nullptr);
  EXPECT_FALSE(second.Start("127.0.0.1:" + std::to_string(first.port()), &error));
  EXPECT_NE(error.find("cannot listen"), std::string::npos) << error;
  for (const char* bad : {"8081", "host:", "[::1", "1.2.3.4:99999", ""}) {
    HealthServer server(nullptr);
    EXPECT_FALSE(server.Start(bad, &error)) << bad;
  }
}

TEST(HealthServerTest, SlowAndIdleClientsDoNotStopAProbe) {
  HealthServer server([] { return true; });
  std::string error;
  ASSERT_TRUE(server.Start("127.0.0.1:0", &error)) << error;
  // 50 connections that never send a byte, and one that sends its request a byte at a time.
  std::vector<int> idle;
  for (int i = 0; i < 50; ++i) idle.push_back(Connect(server.port()));
  std::atomic<bool> done{false};
  std::thread slow([&] {
    int fd = Connect(server.port());
    const std::string request = "GET /healthz HTTP/1.1\r\nHost: slow\r\n\r\n";
    for (size_t i = 0; i < request.size() && !done.load(); ++i) {
      (void)!write(fd, &request[i], 1);
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the attack's pace
    }
    close(fd);
  });
  // Every probe answers at once (kubelet's default timeout is 1 s).
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(Probe(server.port(), i % 2 ? "/readyz" : "/healthz", /*timeout_s=*/1),
              "HTTP/1.1 200 OK");
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  }
  done = true;
  slow.join();
  for (int fd : idle) close(fd);
}

}  // namespace
}  // namespace hotplug::controller
