# The Prometheus metrics (controller/metrics.cc), scraped over HTTP from 127.0.0.1 port 0.
# Included from tests/unit/controller/CMakeLists.txt; `ctest -L unit`.
hotplug_unit_test(controller_metrics_test metrics_test.cc autoscale_metrics_test.cc)
target_link_libraries(controller_metrics_test PRIVATE hotplug_metrics)
