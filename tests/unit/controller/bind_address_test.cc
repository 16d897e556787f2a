// Bind addresses as controller-runtime takes them, table-driven; the health and metrics
// servers share this one parser, so they accept and refuse the same.
#include "controller/bind_address.h"

#include <gtest/gtest.h>

namespace hotplug::controller {
namespace {

TEST(BindAddressTest, AcceptsHostPortForms) {
  struct Case {
    const char* text;
    const char* host;
    uint16_t port;
  };
  const Case cases[] = {
      {":8081", "", 8081},
      {"127.0.0.1:0", "127.0.0.1", 0},
      {"0.0.0.0:8080", "0.0.0.0", 8080},
      {"localhost:9090", "localhost", 9090},
      {"[::1]:0", "::1", 0},
      {"[::]:65535", "::", 65535},
  };
  for (const Case& c : cases) {
    auto parsed = ParseBindAddress(c.text);
    ASSERT_TRUE(parsed) << c.text;
    EXPECT_EQ(parsed->host, c.host) << c.text;
    EXPECT_EQ(parsed->port, c.port) << c.text;
  }
}

TEST(BindAddressTest, RefusesWhatNetListenRefuses) {
  for (const char* text :
       {"", "8081", "0", "localhost", "host:", ":", ":http", ":99999", ":-1", ": 80", "::1:80",
        "[::1", "[::1]", "[::1]80", ":99999999999999999999", "1.2.3.4:99999"}) {
    EXPECT_FALSE(ParseBindAddress(text)) << text;
  }
}

}  // namespace
}  // namespace hotplug::controller
