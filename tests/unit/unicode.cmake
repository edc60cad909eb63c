# Unit tests of src/unicode (included by tests/unit/CMakeLists.txt).
find_package(ICU REQUIRED COMPONENTS uc i18n)

# NormalizationTest.txt ships compressed in Debian's unicode-data; decompress it at build time.
if(EXISTS ${FOLDFS_UCD_DIR}/NormalizationTest.txt)
  set(FOLDFS_NORMALIZATION_TEST ${FOLDFS_UCD_DIR}/NormalizationTest.txt)
  add_custom_target(foldfs_unicode_test_data)
else()
  find_program(BZIP2 bzip2 REQUIRED)
  set(FOLDFS_NORMALIZATION_TEST ${CMAKE_CURRENT_BINARY_DIR}/NormalizationTest.txt)
  add_custom_command(
    OUTPUT ${FOLDFS_NORMALIZATION_TEST}
    COMMAND sh -c "${BZIP2} -dc '${FOLDFS_UCD_DIR}/NormalizationTest.txt.bz2' > '${FOLDFS_NORMALIZATION_TEST}.tmp' && mv '${FOLDFS_NORMALIZATION_TEST}.tmp' '${FOLDFS_NORMALIZATION_TEST}'"
    DEPENDS ${FOLDFS_UCD_DIR}/NormalizationTest.txt.bz2
    COMMENT "Decompressing NormalizationTest.txt"
    VERBATIM)
  add_custom_target(foldfs_unicode_test_data DEPENDS ${FOLDFS_NORMALIZATION_TEST})
endif()

add_executable(foldfs_unicode_tests
  ${CMAKE_CURRENT_SOURCE_DIR}/unicode_casefolding_test.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/unicode_fold_test.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/unicode_hash_test.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/unicode_normalization_test.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/unicode_property_test.cc)
add_dependencies(foldfs_unicode_tests foldfs_unicode_test_data)
target_link_libraries(foldfs_unicode_tests PRIVATE foldfs_unicode GTest::gtest_main ICU::uc ICU::i18n)
target_compile_definitions(foldfs_unicode_tests PRIVATE
  FOLDFS_UCD_DIR="${FOLDFS_UCD_DIR}"
  FOLDFS_NORMALIZATION_TEST="${FOLDFS_NORMALIZATION_TEST}")
foldfs_discover_tests(foldfs_unicode_tests LABELS unit unicode TIMEOUT 300)

# Differential test against the kernel's own fs/unicode code (see src/unicode/oracle).
if(FOLDFS_KERNEL_ORACLE)
  add_executable(foldfs_unicode_oracle_tests ${CMAKE_CURRENT_SOURCE_DIR}/unicode_oracle_test.cc)
  target_link_libraries(foldfs_unicode_oracle_tests PRIVATE
    foldfs_unicode foldfs_kernel_utf8 GTest::gtest_main)
  foldfs_discover_tests(foldfs_unicode_oracle_tests LABELS unit unicode oracle TIMEOUT 600)
endif()
