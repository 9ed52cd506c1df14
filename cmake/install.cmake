# Installs the public headers, the static libraries of every layer and a CMake package, so that a
# program can use find_package(qkv) and link qkv::qkv (examples/generate does; the install_example
# CTest checks it). The libraries are static, so their private dependencies (nlohmann_json, PCRE2,
# ICU, CUDA) are still needed when linking; qkvConfig.cmake finds them with find_dependency.
include(CMakePackageConfigHelpers)
set(QKV_INSTALL_TARGETS qkv_core qkv_kernels)
foreach(t qkv_chat qkv_formats qkv_tokenizers qkv_cuda qkv_distributed qkv_model qkv_runtime qkv_explain qkv_train qkv_serve)
  if(TARGET ${t})
    list(APPEND QKV_INSTALL_TARGETS ${t})
  endif()
endforeach()
add_library(qkv_all INTERFACE)
target_link_libraries(qkv_all INTERFACE ${QKV_INSTALL_TARGETS})
# The public headers use C++20 (std::span).
target_compile_features(qkv_all INTERFACE cxx_std_20)
set_target_properties(qkv_all PROPERTIES EXPORT_NAME qkv)
add_library(qkv::qkv ALIAS qkv_all)
foreach(t ${QKV_INSTALL_TARGETS})
  string(REGEX REPLACE "^qkv_" "" short ${t})
  set_target_properties(${t} PROPERTIES EXPORT_NAME ${short})
endforeach()
install(TARGETS qkv_all ${QKV_INSTALL_TARGETS} EXPORT qkvTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/qkv DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT qkvTargets NAMESPACE qkv:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qkv)

# Which dependencies the config must find, from the layers that are built.
set(QKV_NEEDS_JSON 0)
set(QKV_NEEDS_TOKENIZER_DEPS 0)
set(QKV_NEEDS_CUDA 0)
# The model layer links the distributed layer (context parallelism), which links MPI when built
# with it.
set(QKV_NEEDS_MPI 0)
if(QKV_HAVE_MPI)
  set(QKV_NEEDS_MPI 1)
endif()
if(TARGET qkv_formats)
  set(QKV_NEEDS_JSON 1)
endif()
if(TARGET qkv_tokenizers)
  set(QKV_NEEDS_TOKENIZER_DEPS 1)
endif()
if(TARGET qkv_cuda)
  set(QKV_NEEDS_CUDA 1)
endif()
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/qkvConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/qkvConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qkv)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/qkvConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/qkvConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/qkvConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qkv)
