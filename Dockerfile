# hotplug-operator image: built on Debian bookworm with Debian's own libraries, so the
# runtime stage needs only their runtime packages.
#
#   docker build -t hotplug-operator:0.1.0 .
#
# tests/docker/runtime_libs_test.sh checks, from the built binary's ldd, that the runtime
# stage below installs every shared library it loads.

# ---- build: compilers, cmake and the -dev packages of what CMakeLists.txt finds
FROM debian:bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      g++ cmake ninja-build pkg-config \
      libvirt-dev libxml2-dev libyaml-cpp-dev libcpprest-dev libssl-dev prometheus-cpp-dev \
      libcivetweb-dev nlohmann-json3-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Only the operator: no tests, benchmarks or sanitizers in an image, and not
# hotplug-operator-testing (the fake backend, tests/support/) either.
# The binary is found by name, wherever controller/CMakeLists.txt puts it.
RUN cmake -S . -B /build -G Ninja \
      -DCMAKE_BUILD_TYPE=Release \
      -DHOTPLUG_BUILD_TESTS=OFF -DHOTPLUG_BUILD_BENCH=OFF \
 && cmake --build /build --target hotplug-operator \
 && install -D -m 0755 "$(find /build -type f -name hotplug-operator -perm -u+x -print -quit)" \
      /out/hotplug-operator \
 && strip /out/hotplug-operator

# ---- runtime: the shared libraries and nothing to build with
FROM debian:bookworm-slim AS runtime
# libvirt0 carries libvirt.so and libvirt-qemu.so; prometheus-cpp is two libraries (core,
# pull); civetweb serves the health probes and /metrics; ca-certificates verifies the API
# server and qemu+tls:// peers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libvirt0 libcpprest2.10 libyaml-cpp0.7 libprometheus-cpp-core1.0 \
      libprometheus-cpp-pull1.0 libcivetweb1 libxml2 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A non-root user by default. Who may use the libvirt socket is the trade-off:
#  - libvirtd's read-write socket is root-owned (0770 root:libvirt on Debian, polkit for
#    anyone but root), so the per-node agent is run with runAsUser: 0 by the DaemonSet,
#    with every capability dropped and a read-only root filesystem;
#  - or the host gives the socket a group (unix_sock_group, unix_sock_rw_perms "0770",
#    auth_unix_rw "none") and the agent keeps this user with that group as a
#    supplemental group (chart value libvirt.socketGroup): no root anywhere, but every
#    member of that host group can drive libvirt;
#  - the central Deployment talks qemu+tls:// over the network and always runs as this user.
RUN groupadd --system --gid 65532 hotplug \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin hotplug
COPY --from=build /out/hotplug-operator /usr/local/bin/hotplug-operator
USER 65532:65532
# /metrics and /healthz + /readyz (--metrics-bind-address, --health-probe-bind-address).
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/hotplug-operator"]
