# The layers of src/ (docs/design.md "Layers"): each may include only itself and the layers below
# it. A layer's include path is a directory of links to exactly those (build/layers/<layer>), so an
# include that reaches up (names including fs/, backing including names/) does not build.
set(FOLDFS_LAYER_base base)
set(FOLDFS_LAYER_unicode unicode)
set(FOLDFS_LAYER_names base unicode names)
set(FOLDFS_LAYER_backing base backing)
set(FOLDFS_LAYER_fs base unicode names backing fs)
set(FOLDFS_LAYER_fuse base unicode names backing fs fuse)
set(FOLDFS_LAYER_cli base unicode names backing fs fuse cli)

# The include root of `layer`, made on first use.
function(foldfs_layer_root layer out)
  if(NOT DEFINED FOLDFS_LAYER_${layer})
    message(FATAL_ERROR "foldfs_layer_root: no layer '${layer}'")
  endif()
  set(root ${CMAKE_BINARY_DIR}/layers/${layer})
  file(MAKE_DIRECTORY ${root})
  foreach(part IN LISTS FOLDFS_LAYER_${layer})
    if(NOT EXISTS ${root}/${part})
      file(CREATE_LINK ${CMAKE_SOURCE_DIR}/src/${part} ${root}/${part} SYMBOLIC)
    endif()
  endforeach()
  set(${out} ${root} PARENT_SCOPE)
endfunction()

# `target` is part of `layer`: it and what links it include from that layer's root.
function(foldfs_layer target layer)
  foldfs_layer_root(${layer} root)
  target_include_directories(${target} PUBLIC ${root})
endfunction()
