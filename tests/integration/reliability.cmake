# Issue 6 reliability suite through real mounts: permissions with several users, confinement,
# faults of the backing filesystem, daemon crashes and restarts, load (stress-ng, a model-checked
# random-operation generator and its soak). Labels "integration" and "reliability"; needs root,
# /dev/fuse, loop devices, stress-ng. Durations: FOLDFS_RACE_SECONDS, FOLDFS_CRASH_ROUNDS,
# FOLDFS_STRESSNG_SECONDS, FOLDFS_MODEL_OPS, FOLDFS_SOAK_SECONDS (docs/testing.md).
add_library(foldfs_reliability_util STATIC ${CMAKE_CURRENT_LIST_DIR}/reliability_util.cc)
target_link_libraries(foldfs_reliability_util PUBLIC foldfs_itest_harness)
foreach(section permissions confinement swaps faults crash load model)
  set(_t foldfs_reliability_${section}_test)
  add_executable(${_t} ${CMAKE_CURRENT_LIST_DIR}/reliability_${section}_test.cc)
  target_link_libraries(${_t} PRIVATE foldfs_reliability_util GTest::gtest_main)
  if(TARGET foldfs)
    add_dependencies(${_t} foldfs)
  endif()
  foldfs_discover_tests(${_t} LABELS "integration;reliability" TIMEOUT 300)
endforeach()
