# Stress through a real mount. In the ThreadSanitizer build the daemon under test is the
# TSan-built foldfs (label "tsan"); in the normal build it runs with the integration suite.
if(NOT TARGET foldfs_itest_harness)
  include(${CMAKE_SOURCE_DIR}/tests/integration/harness.cmake)
endif()
add_executable(foldfs_mount_stress_test ${CMAKE_CURRENT_LIST_DIR}/mount_stress_test.cc)
target_link_libraries(foldfs_mount_stress_test PRIVATE foldfs_itest_harness GTest::gtest_main)
if(FOLDFS_SANITIZE STREQUAL "thread")
  foldfs_discover_tests(foldfs_mount_stress_test LABELS tsan stress TIMEOUT 600)
else()
  foldfs_discover_tests(foldfs_mount_stress_test LABELS integration stress TIMEOUT 600)
endif()
