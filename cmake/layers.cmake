# The layers, lowest first, and which headers under src/ each one's code may include: its own
# layer's and those of the layers below it, never a sibling's or a higher one's
# (docs/ARCHITECTURE.md). CMake enforces it: src/ is on no target's include path; each target
# gets a directory of links to the layer directories it may see
# (build/layer_headers/<layer>/{core,kernels,...} -> src/...), so an include from a layer it may
# not see fails to compile. tests/layering_test.py checks the public headers (include/qkv), which
# every target sees, the same way.
set(QKV_LAYERS core kernels chat formats tokenizers cuda model runtime explain train serve)
set(QKV_LAYER_RANK_core 0)
set(QKV_LAYER_RANK_kernels 1)
set(QKV_LAYER_RANK_chat 1)
set(QKV_LAYER_RANK_formats 2)
set(QKV_LAYER_RANK_tokenizers 2)
set(QKV_LAYER_RANK_cuda 2)
set(QKV_LAYER_RANK_model 3)
set(QKV_LAYER_RANK_runtime 4)
set(QKV_LAYER_RANK_explain 5)
set(QKV_LAYER_RANK_train 6)
# The server sits beside train: it needs the runtime, explain and chat, and nothing needs it.
set(QKV_LAYER_RANK_serve 6)
# apps, the tests of apps, and anything above train see every layer.
set(QKV_LAYER_RANK_apps 7)

# qkv_layer_headers(TARGET LAYER): TARGET's code is in LAYER (one of QKV_LAYERS, or apps).
function(qkv_layer_headers target layer)
  if(NOT DEFINED QKV_LAYER_RANK_${layer})
    message(FATAL_ERROR "qkv_layer_headers(${target} ${layer}): unknown layer (cmake/layers.cmake)")
  endif()
  set(dir ${PROJECT_BINARY_DIR}/layer_headers/${layer})
  foreach(l IN LISTS QKV_LAYERS)
    if(l STREQUAL layer OR QKV_LAYER_RANK_${l} LESS QKV_LAYER_RANK_${layer})
      if(NOT IS_SYMLINK ${dir}/${l})
        file(MAKE_DIRECTORY ${dir})
        file(CREATE_LINK ${PROJECT_SOURCE_DIR}/src/${l} ${dir}/${l} SYMBOLIC)
      endif()
    endif()
  endforeach()
  target_include_directories(${target} PRIVATE ${dir})
endfunction()
