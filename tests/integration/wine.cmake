# Issue 14: Wine and Samba, the programs foldfs exists for, through real mounts (labels
# "integration;wine" and "integration;samba"). The programs are required, as every other test
# dependency: scripts/setup.sh installs wine64, mingw-w64, samba and smbclient.
if(NOT TARGET winbench)
  include(${CMAKE_SOURCE_DIR}/bench/wine.cmake)
endif()
if(TARGET winbench AND FOLDFS_WINE AND FOLDFS_WINESERVER)
  add_executable(foldfs_wine_test ${CMAKE_CURRENT_LIST_DIR}/wine_test.cc)
  target_link_libraries(foldfs_wine_test PRIVATE foldfs_itest_harness GTest::gtest_main)
  target_compile_definitions(foldfs_wine_test PRIVATE
    FOLDFS_WINE="${FOLDFS_WINE}" FOLDFS_WINESERVER="${FOLDFS_WINESERVER}"
    FOLDFS_WINBENCH_EXE="${FOLDFS_WINBENCH_EXE}"
    FOLDFS_WINE_PREFIX="${CMAKE_BINARY_DIR}/wine/prefix-test")
  add_dependencies(foldfs_wine_test winbench)
  foldfs_discover_tests(foldfs_wine_test LABELS "integration;wine" TIMEOUT 600)
else()
  message(FATAL_ERROR "Wine or mingw-w64 not found: run scripts/setup.sh (wine64, "
                      "gcc-mingw-w64-x86-64-win32)")
endif()

find_program(FOLDFS_SMBD smbd PATHS /usr/sbin)
find_program(FOLDFS_SMBCLIENT smbclient)
if(FOLDFS_SMBD AND FOLDFS_SMBCLIENT)
  add_executable(foldfs_samba_test ${CMAKE_CURRENT_LIST_DIR}/samba_test.cc)
  target_link_libraries(foldfs_samba_test PRIVATE foldfs_itest_harness GTest::gtest_main)
  target_compile_definitions(foldfs_samba_test PRIVATE
    FOLDFS_SMBD="${FOLDFS_SMBD}" FOLDFS_SMBCLIENT="${FOLDFS_SMBCLIENT}")
  foldfs_discover_tests(foldfs_samba_test LABELS "integration;samba" TIMEOUT 300)
else()
  message(FATAL_ERROR "smbd or smbclient not found: run scripts/setup.sh (samba, smbclient)")
endif()
