# The CRD's production-VM-shape fields (sockets, pinning, guest OS, NUMA) on a real
# kube-apiserver with the real kubectl (tests/integration/crd_shapes_test.py). Pulled in by
# tests/integration/CMakeLists.txt.
find_package(Python3 COMPONENTS Interpreter REQUIRED)
add_test(NAME integration.crd_shapes
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/crd_shapes_test.py)
set_tests_properties(integration.crd_shapes PROPERTIES LABELS integration TIMEOUT 120
                     SKIP_RETURN_CODE 77)
