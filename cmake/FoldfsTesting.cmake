# foldfs_discover_tests(<target> LABELS <label>... [TIMEOUT <seconds>])
# Registers every GoogleTest case of <target> with ctest, with labels and a timeout.
# Labels are applied afterwards: CMake 3.25's gtest_discover_tests splits a list-valued LABELS
# property ("unit;tsan") into separate words. The include file runs once the discovered tests
# exist, with their names in <target>_list.
include(GoogleTest)
function(foldfs_discover_tests target)
  cmake_parse_arguments(ARG "" "TIMEOUT" "LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  gtest_discover_tests(${target}
    TEST_LIST ${target}_list
    DISCOVERY_TIMEOUT 120
    PROPERTIES TIMEOUT ${ARG_TIMEOUT})
  set(labels_file ${CMAKE_CURRENT_BINARY_DIR}/${target}_labels.cmake)
  file(WRITE ${labels_file}
    "set_tests_properties(\${${target}_list} PROPERTIES LABELS \"${ARG_LABELS}\")\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${labels_file})
endfunction()
