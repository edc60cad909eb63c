# Filesystem benchmarks (issue 5), included by bench/CMakeLists.txt.
#   fsbench      the workload driver bench/run.sh runs against native, foldfs and bindfs
#   index_bench  Google Benchmark micro-benchmark of the name index (src/names/dir_index.h)
# `ctest -L bench` runs `bench/run.sh --quick` (tiny sizes, a few seconds, output in a temp
# dir): it proves that the whole benchmark still works. Needs root, /dev/fuse and bindfs.
add_executable(fsbench ${CMAKE_CURRENT_LIST_DIR}/workloads/fsbench.cc)
target_link_libraries(fsbench PRIVATE foldfs_unicode)

if(NOT TARGET index_bench)
  add_executable(index_bench ${CMAKE_CURRENT_LIST_DIR}/index_bench.cc)
  target_link_libraries(index_bench PRIVATE foldfs_names benchmark::benchmark)
endif()

add_test(NAME bench_quick
         COMMAND ${CMAKE_CURRENT_LIST_DIR}/run.sh --quick --bin-dir ${CMAKE_BINARY_DIR})
set_tests_properties(bench_quick PROPERTIES LABELS bench TIMEOUT 300 RUN_SERIAL TRUE)

# Copy-up of a large file against cp (issue 16): build/bench/copy_up_bench, see its header.
add_executable(copy_up_bench ${CMAKE_CURRENT_LIST_DIR}/copy_up_bench.cc)
target_link_libraries(copy_up_bench PRIVATE foldfs_backing benchmark::benchmark)
