#The integration - test harness : a static library shared by every tests / integration/*_test.cc.
# FOLDFS_BINARY is the foldfs binary the tests mount (overridable at run time by $FOLDFS_BINARY).
if(TARGET foldfs)
  set(FOLDFS_ITEST_BINARY "$<TARGET_FILE:foldfs>")
else()
  set(FOLDFS_ITEST_BINARY "${CMAKE_BINARY_DIR}/foldfs")
endif()

add_library(foldfs_itest_harness STATIC ${CMAKE_CURRENT_LIST_DIR}/harness.cc)
target_include_directories(foldfs_itest_harness PUBLIC ${CMAKE_CURRENT_LIST_DIR})
# foldfs_backing: the harness forges FUSE handles the way foldfs derives node ids.
target_link_libraries(foldfs_itest_harness PUBLIC GTest::gtest Threads::Threads foldfs_backing
                                                   foldfs_test_support)
target_compile_definitions(foldfs_itest_harness PUBLIC FOLDFS_BINARY="${FOLDFS_ITEST_BINARY}")
if(TARGET foldfs)
  add_dependencies(foldfs_itest_harness foldfs)
endif()
