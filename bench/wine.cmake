# winbench.exe (bench/wine/winbench.c): a Windows program that bench/wine.sh and the Wine
# integration tests run under Wine. Built with Debian's mingw-w64 cross compiler when it is
# installed (scripts/setup.sh installs it); skipped, with a message, when it is not. Included by
# bench/CMakeLists.txt and tests/integration/wine.cmake; the target is made once.
if(NOT DEFINED FOLDFS_MINGW_CC)
  find_program(FOLDFS_MINGW_CC NAMES x86_64-w64-mingw32-gcc x86_64-w64-mingw32-gcc-win32)
endif()
# Debian's wine64 package installs the loader and wineserver under /usr/lib/wine only.
find_program(FOLDFS_WINE NAMES wine64 wine PATHS /usr/lib/wine NO_DEFAULT_PATH)
find_program(FOLDFS_WINE NAMES wine64 wine)
find_program(FOLDFS_WINESERVER NAMES wineserver PATHS /usr/lib/wine NO_DEFAULT_PATH)
find_program(FOLDFS_WINESERVER NAMES wineserver)

set(FOLDFS_WINBENCH_EXE ${CMAKE_BINARY_DIR}/bench/winbench.exe)
if(FOLDFS_MINGW_CC AND NOT TARGET winbench)
  set(_src ${CMAKE_SOURCE_DIR}/bench/wine/winbench.c)
  add_custom_command(
    OUTPUT ${FOLDFS_WINBENCH_EXE}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/bench
    COMMAND ${FOLDFS_MINGW_CC} -municode -O2 -Wall -Wextra -Werror -o ${FOLDFS_WINBENCH_EXE}
            ${_src}
    DEPENDS ${_src}
    COMMENT "Building winbench.exe (mingw-w64)"
    VERBATIM)
  add_custom_target(winbench ALL DEPENDS ${FOLDFS_WINBENCH_EXE})
elseif(NOT FOLDFS_MINGW_CC)
  get_property(_warned GLOBAL PROPERTY FOLDFS_WINBENCH_WARNED)
  if(NOT _warned)
    set_property(GLOBAL PROPERTY FOLDFS_WINBENCH_WARNED ON)
    message(STATUS "mingw-w64 not found: winbench.exe and the Wine tests are not built "
                 "(scripts/setup.sh installs gcc-mingw-w64-x86-64-win32)")
  endif()
endif()
