# Issue 4: the kernel-coherence contract through a real mount (label "integration").
add_executable(foldfs_cache_coherence_test ${CMAKE_CURRENT_LIST_DIR}/cache_coherence_test.cc)
target_link_libraries(foldfs_cache_coherence_test PRIVATE foldfs_itest_harness GTest::gtest_main)
foldfs_discover_tests(foldfs_cache_coherence_test LABELS integration TIMEOUT 600)

add_executable(foldfs_handles_test ${CMAKE_CURRENT_LIST_DIR}/handles_test.cc)
target_link_libraries(foldfs_handles_test PRIVATE foldfs_itest_harness GTest::gtest_main)
foldfs_discover_tests(foldfs_handles_test LABELS integration TIMEOUT 300)

add_executable(foldfs_outside_changes_test ${CMAKE_CURRENT_LIST_DIR}/outside_changes_test.cc)
target_link_libraries(foldfs_outside_changes_test PRIVATE foldfs_itest_harness GTest::gtest_main)
foldfs_discover_tests(foldfs_outside_changes_test LABELS integration TIMEOUT 300)
