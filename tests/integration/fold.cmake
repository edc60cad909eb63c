# `foldfs fold` through the built binary (included by tests/integration/CMakeLists.txt).
if(TARGET foldfs)
  add_test(NAME foldfs_fold_cli
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/fold_cli_test.sh $<TARGET_FILE:foldfs>)
  set_tests_properties(foldfs_fold_cli PROPERTIES LABELS "integration;unicode" TIMEOUT 60)
endif()
