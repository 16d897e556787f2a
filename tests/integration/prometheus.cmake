# hotplug-operator's metrics, dashboard and alerts checked by a real Prometheus
# (tests/integration/prometheus_test.py); that the chart ships the same ones is tests/chart's
# check, by helm. Pulled in by tests/integration/CMakeLists.txt with include(${CMAKE_CURRENT_LIST_DIR}/prometheus.cmake).
# Registered even when prometheus/promtool are missing: the test then fails and says so.
find_package(Python3 COMPONENTS Interpreter REQUIRED)
find_program(HOTPLUG_PROMETHEUS prometheus)
find_program(HOTPLUG_PROMTOOL promtool)

set(prometheus_args --operator $<TARGET_FILE:hotplug-operator-testing>)
if(HOTPLUG_PROMETHEUS)
  list(APPEND prometheus_args --prometheus ${HOTPLUG_PROMETHEUS})
endif()
if(HOTPLUG_PROMTOOL)
  list(APPEND prometheus_args --promtool ${HOTPLUG_PROMTOOL})
endif()
add_test(NAME integration.prometheus
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/prometheus_test.py
                 ${prometheus_args})
set_tests_properties(integration.prometheus PROPERTIES LABELS integration TIMEOUT 300)
