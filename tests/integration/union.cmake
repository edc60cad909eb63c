# Issue 16 (a union of trees): the merge rules and the upper tree's format checked against the
# kernel's overlayfs. Needs root (overlayfs, trusted.* attributes, whiteouts).
add_executable(foldfs_union_overlayfs_test ${CMAKE_CURRENT_LIST_DIR}/union_overlayfs_test.cc)
target_link_libraries(foldfs_union_overlayfs_test PRIVATE foldfs_itest_harness foldfs_fs
                                                          GTest::gtest_main)
foldfs_discover_tests(foldfs_union_overlayfs_test LABELS integration TIMEOUT 300)

# Copy-up on each kind of backing filesystem (in scripts/test.sh's matrix).
add_executable(foldfs_union_copy_up_test ${CMAKE_CURRENT_LIST_DIR}/union_copy_up_test.cc)
target_link_libraries(foldfs_union_copy_up_test PRIVATE foldfs_itest_harness GTest::gtest_main)
foldfs_discover_tests(foldfs_union_copy_up_test LABELS integration TIMEOUT 300)

# The read-only union mount through real mounts (in scripts/test.sh's matrix).
add_executable(foldfs_mount_union_test ${CMAKE_CURRENT_LIST_DIR}/mount_union_test.cc)
target_link_libraries(foldfs_mount_union_test PRIVATE foldfs_itest_harness foldfs_fs
                                                      GTest::gtest_main)
foldfs_discover_tests(foldfs_mount_union_test LABELS integration TIMEOUT 300)

# The writable union against kernel overlayfs: the same random changes through both.
add_executable(foldfs_union_writes_test ${CMAKE_CURRENT_LIST_DIR}/union_writes_test.cc)
target_link_libraries(foldfs_union_writes_test PRIVATE foldfs_itest_harness foldfs_fs
                                                       GTest::gtest_main)
foldfs_discover_tests(foldfs_union_writes_test LABELS integration TIMEOUT 600)
