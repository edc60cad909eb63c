# Issue 3 ("foldfs mount") integration suite: every test goes through a real FUSE mount of the
# foldfs binary. Needs root and /dev/fuse. One ctest test per gtest case, label "integration".
foreach(theme cli casefold flags collisions posix transport passthrough)
  set(_t foldfs_mount_${theme}_test)
  add_executable(${_t} ${CMAKE_CURRENT_LIST_DIR}/mount_${theme}_test.cc)
  target_link_libraries(${_t} PRIVATE foldfs_itest_harness GTest::gtest_main)
  if(TARGET foldfs)
    add_dependencies(${_t} foldfs)
  endif()
  foldfs_discover_tests(${_t} LABELS integration TIMEOUT 300)
endforeach()
