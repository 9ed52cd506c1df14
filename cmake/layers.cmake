# The layers, lowest first, and which headers under src/ each one's code may include: its own
# layer's and those of the layers below it, never a sibling's or a higher one's
# (docs/ARCHITECTURE.md). CMake enforces it: src/ is on no target's include path; each target
# gets a directory of links to the layer directories it may see
# (build/layer_headers/<layer>/{core,kernels,...} -> src/...), so an include from a layer it may
# not see fails to compile. The public headers (include/qkv) have layers too (QKV_PUBLIC_<layer>
# below: the layer that implements each): a layer's target sees include/ only through links to
# the public headers of its own and lower layers (build/layer_headers/<layer>/qkv/*.h), so
# qkv/session.h in the model layer fails to compile as well. Targets in no layer (apps/qkv, the
# Python module) see all of include/ and no src/. tests/layering_test.py checks the same rules by
# reading the includes, to name a violation even where a target is not built (CUDA).
set(QKV_LAYERS core kernels chat formats tokenizers cuda distributed model runtime explain train serve)
set(QKV_LAYER_RANK_core 0)
set(QKV_LAYER_RANK_kernels 1)
set(QKV_LAYER_RANK_chat 1)
set(QKV_LAYER_RANK_formats 2)
set(QKV_LAYER_RANK_tokenizers 2)
set(QKV_LAYER_RANK_cuda 2)
# Sequence parallelism over MPI: above the kernels it drives, below the model that uses it.
set(QKV_LAYER_RANK_distributed 2)
set(QKV_LAYER_RANK_model 3)
set(QKV_LAYER_RANK_runtime 4)
set(QKV_LAYER_RANK_explain 5)
set(QKV_LAYER_RANK_train 6)
# The server sits beside train: it needs the runtime, explain and chat, and nothing needs it.
set(QKV_LAYER_RANK_serve 6)
# The tests of apps, and the tests and benchmarks that span layers, see every layer.
set(QKV_LAYER_RANK_apps 7)

# The public headers of each layer (include/qkv/NAME): the layer that implements them, or, for
# plain data types, the lowest layer whose interface uses them. Every public header is in one list.
set(QKV_PUBLIC_core dtype.h error.h file_io.h threads.h tokenizer_spec.h)
set(QKV_PUBLIC_kernels attention.h)
set(QKV_PUBLIC_chat chat.h)
set(QKV_PUBLIC_formats model_file.h quantize.h)
set(QKV_PUBLIC_tokenizers tokenizer.h)
set(QKV_PUBLIC_cuda attention_cuda.h)
set(QKV_PUBLIC_distributed distributed.h)
set(QKV_PUBLIC_model convert.h model.h observer.h)
set(QKV_PUBLIC_runtime session.h)
set(QKV_PUBLIC_explain explain.h)
set(QKV_PUBLIC_train train.h trainer.h)
set(QKV_PUBLIC_serve server.h)
file(GLOB qkv_public_headers RELATIVE ${PROJECT_SOURCE_DIR}/include/qkv CONFIGURE_DEPENDS
     ${PROJECT_SOURCE_DIR}/include/qkv/*.h)
foreach(h IN LISTS qkv_public_headers)
  set(found 0)
  foreach(l IN LISTS QKV_LAYERS)
    if(h IN_LIST QKV_PUBLIC_${l})
      set(found 1)
    endif()
  endforeach()
  if(NOT found)
    message(FATAL_ERROR "include/qkv/${h} has no layer: add it to a QKV_PUBLIC_<layer> list in "
                        "cmake/layers.cmake")
  endif()
endforeach()

# qkv_layer_headers(TARGET LAYER): TARGET's code is in LAYER (one of QKV_LAYERS, or apps).
function(qkv_layer_headers target layer)
  if(NOT DEFINED QKV_LAYER_RANK_${layer})
    message(FATAL_ERROR "qkv_layer_headers(${target} ${layer}): unknown layer (cmake/layers.cmake)")
  endif()
  set(dir ${PROJECT_BINARY_DIR}/layer_headers/${layer})
  # Made afresh at each configure, so that a header moved to another layer loses its old link.
  get_property(made GLOBAL PROPERTY QKV_LAYER_HEADERS_MADE)
  if(NOT layer IN_LIST made)
    file(REMOVE_RECURSE ${dir})
    set_property(GLOBAL APPEND PROPERTY QKV_LAYER_HEADERS_MADE ${layer})
  endif()
  foreach(l IN LISTS QKV_LAYERS)
    if(l STREQUAL layer OR QKV_LAYER_RANK_${l} LESS QKV_LAYER_RANK_${layer})
      if(NOT IS_SYMLINK ${dir}/${l})
        file(MAKE_DIRECTORY ${dir})
        file(CREATE_LINK ${PROJECT_SOURCE_DIR}/src/${l} ${dir}/${l} SYMBOLIC)
      endif()
      foreach(h IN LISTS QKV_PUBLIC_${l})
        if(NOT IS_SYMLINK ${dir}/qkv/${h})
          file(MAKE_DIRECTORY ${dir}/qkv)
          file(CREATE_LINK ${PROJECT_SOURCE_DIR}/include/qkv/${h} ${dir}/qkv/${h} SYMBOLIC)
        endif()
      endforeach()
    endif()
  endforeach()
  # qkv_core's usage requirement adds all of include/ only to targets without this property.
  set_property(TARGET ${target} PROPERTY QKV_LAYER ${layer})
  target_include_directories(${target} PRIVATE ${dir})
endfunction()
