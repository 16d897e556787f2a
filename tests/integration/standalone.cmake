# Standalone mode end to end: the built binary with --standalone DIR --hypervisor=fake, edited
# through its folder (tests/integration/standalone_test.py). Meant to be pulled in by
# tests/integration/CMakeLists.txt with include(${CMAKE_CURRENT_LIST_DIR}/standalone.cmake).
find_package(Python3 COMPONENTS Interpreter REQUIRED)
add_test(NAME integration.standalone
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/standalone_test.py
                 $<TARGET_FILE:hotplug-operator-testing>)
set_tests_properties(integration.standalone PROPERTIES LABELS integration TIMEOUT 120)
