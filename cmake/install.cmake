# Installs the public headers and libraries with a CMake package config, so that an embedding
# program can use find_package(qkv) and link qkv::qkv.
include(CMakePackageConfigHelpers)
set(QKV_INSTALL_TARGETS qkv_core qkv_kernels)
foreach(t qkv_formats qkv_tokenizers qkv_cuda qkv_model qkv_runtime qkv_explain)
  if(TARGET ${t})
    list(APPEND QKV_INSTALL_TARGETS ${t})
  endif()
endforeach()
add_library(qkv_all INTERFACE)
target_link_libraries(qkv_all INTERFACE ${QKV_INSTALL_TARGETS})
set_target_properties(qkv_all PROPERTIES EXPORT_NAME qkv)
install(TARGETS qkv_all ${QKV_INSTALL_TARGETS} EXPORT qkvTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/qkv DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT qkvTargets NAMESPACE qkv:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qkv)
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/qkvConfig.cmake.in
  "@PACKAGE_INIT@\ninclude(CMakeFindDependencyMacro)\nfind_dependency(OpenMP)\nfind_dependency(Threads)\ninclude(\${CMAKE_CURRENT_LIST_DIR}/qkvTargets.cmake)\n")
configure_package_config_file(${CMAKE_CURRENT_BINARY_DIR}/qkvConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/qkvConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qkv)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/qkvConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/qkvConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/qkvConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qkv)
