# Issue 13 §3-4: foldfs exported over NFS by NFS-Ganesha (FSAL_VFS), checked with a small NFSv4
# client built on libnfs that keeps raw file handles (foldfs_nfs_probe; bench/nfs.sh uses it
# too). Labels "integration;nfs". scripts/setup.sh installs NFS-Ganesha and libnfs-dev.
pkg_check_modules(LIBNFS REQUIRED IMPORTED_TARGET libnfs)  # libnfs-dev (scripts/setup.sh)
add_executable(foldfs_nfs_probe ${CMAKE_CURRENT_LIST_DIR}/nfs_probe.cc)
target_link_libraries(foldfs_nfs_probe PRIVATE PkgConfig::LIBNFS)
set(FOLDFS_NFS_PROBE_PATH "$<TARGET_FILE:foldfs_nfs_probe>")

add_executable(foldfs_nfs_test ${CMAKE_CURRENT_LIST_DIR}/nfs_test.cc)
target_link_libraries(foldfs_nfs_test PRIVATE foldfs_itest_harness GTest::gtest_main)
target_compile_definitions(foldfs_nfs_test PRIVATE FOLDFS_NFS_PROBE="${FOLDFS_NFS_PROBE_PATH}")
add_dependencies(foldfs_nfs_test foldfs_nfs_probe)
foldfs_discover_tests(foldfs_nfs_test LABELS "integration;nfs" TIMEOUT 300)
