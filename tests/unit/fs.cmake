# Unit tests of src/backing, src/names and src/fs: the core without FUSE, on a real backing directory.
add_executable(foldfs_fs_tests
  ${CMAKE_CURRENT_SOURCE_DIR}/copy_up_test.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/fs_core_test.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/fs_fuzz_regressions_test.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/fs_interleaving_test.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/fs_parts_test.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/names_test.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/union_dir_test.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/union_fs_test.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/options_test.cc)
target_link_libraries(foldfs_fs_tests PRIVATE foldfs_fs foldfs_test_support GTest::gtest_main)
foldfs_discover_tests(foldfs_fs_tests LABELS unit tsan TIMEOUT 600)
