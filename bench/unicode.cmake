# Benchmarks of src/unicode (included by bench/CMakeLists.txt). Figures in docs/unicode.md.
find_package(ICU REQUIRED COMPONENTS uc i18n)
add_executable(fold_bench ${CMAKE_CURRENT_SOURCE_DIR}/fold_bench.cc)
target_link_libraries(fold_bench PRIVATE foldfs_unicode benchmark::benchmark ICU::uc ICU::i18n)
