# Scale-out on the real kube-apiserver: two agents and the central node assigner
# (tests/integration/node_scope_test.py).
add_test(NAME integration.node_scope
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/node_scope_test.py
                 $<TARGET_FILE:hotplug-operator-testing>)
set_tests_properties(integration.node_scope PROPERTIES
                     LABELS integration
                     TIMEOUT 300
                     SKIP_RETURN_CODE 77
                     RESOURCE_LOCK hotplug_operator_integration)
