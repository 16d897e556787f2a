# hotplug-operator's metrics, dashboard and alerts checked by a real Prometheus
# (tests/integration/prometheus_test.py), and the chart's copies of the alerts and the
# dashboard checked against deploy/monitoring/. Meant to be pulled in by
# tests/integration/CMakeLists.txt with include(${CMAKE_CURRENT_LIST_DIR}/prometheus.cmake).
# Registered even when prometheus/promtool are missing: the test then fails and says so.
find_package(Python3 COMPONENTS Interpreter REQUIRED)
find_program(HOTPLUG_PROMETHEUS prometheus)
find_program(HOTPLUG_PROMTOOL promtool)
find_program(HOTPLUG_GO go)

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

# The chart renders the same PrometheusRule spec as deploy/monitoring/ and ships the same
# dashboard: tests/chart's renderer (built by its chart_renderer fixture) does the rendering.
if(HOTPLUG_GO AND EXISTS ${PROJECT_SOURCE_DIR}/tests/chart/render.go)
  add_test(NAME prometheus_chart_rules
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/prometheus_test.py
                   --chart-only --render ${CMAKE_BINARY_DIR}/tests/chart/chart-render)
  set_tests_properties(prometheus_chart_rules PROPERTIES FIXTURES_REQUIRED chart_renderer
                                                         LABELS unit TIMEOUT 60)
endif()
