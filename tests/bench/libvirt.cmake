# The libvirt SetVcpu benchmark (included from tests/bench/CMakeLists.txt). Needs root and
# libvirtd like the e2e tests; CI smoke-runs it with `--samples 2 --max-vcpus 8`.
add_executable(libvirt_setvcpu_bench ${CMAKE_CURRENT_LIST_DIR}/libvirt_setvcpu_bench.cc)
target_link_libraries(libvirt_setvcpu_bench PRIVATE hotplug_backend_libvirt hotplug_e2e_guest
                                                    PkgConfig::LIBVIRT)
