# The CUDA backend's sources, listed once: src/cuda/CMakeLists.txt builds them into qkv_cuda and
# bench/gpu/CMakeLists.txt (the standalone build for a lent GPU machine) into its program.
set(QKV_CUDA_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/attention_cuda.cpp
  ${CMAKE_CURRENT_LIST_DIR}/flash_fwd_hdim64.cu
  ${CMAKE_CURRENT_LIST_DIR}/flash_fwd_hdim96.cu
  ${CMAKE_CURRENT_LIST_DIR}/flash_fwd_hdim128.cu
  ${CMAKE_CURRENT_LIST_DIR}/flash_fwd_hdim256.cu
  ${CMAKE_CURRENT_LIST_DIR}/flash_fwd_sm90_hdim64.cu
  ${CMAKE_CURRENT_LIST_DIR}/flash_fwd_sm90_hdim128.cu
  ${CMAKE_CURRENT_LIST_DIR}/flash_merge.cu
)
