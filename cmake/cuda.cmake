# Decides what of qtune's CUDA code is built. QTUNE_WITH_CUDA (QTUNE_CUDA=AUTO|ON|OFF): the CUDA kernels
# linked into qtune, which needs a LibTorch with CUDA. QTUNE_NVCC_FOUND: nvcc exists, so the kernels are at
# least compiled (a build check on machines without a CUDA LibTorch or a GPU).
# Depends on: the Torch package found by the top-level CMakeLists.
include(CheckLanguage)
set(QTUNE_WITH_CUDA OFF)
set(_torch_has_cuda OFF)
if(CAFFE2_USE_CUDA OR TORCH_CUDA_LIBRARIES)
  set(_torch_has_cuda ON)
endif()
if(QTUNE_CUDA STREQUAL "ON")
  if(NOT _torch_has_cuda)
    message(FATAL_ERROR "QTUNE_CUDA=ON but this LibTorch (${Torch_DIR}) was built without CUDA. "
                        "Point CMAKE_PREFIX_PATH at a CUDA LibTorch (e.g. python3 -c 'import torch; print(torch.utils.cmake_prefix_path)') or use -DQTUNE_CUDA=OFF.")
  endif()
  set(QTUNE_WITH_CUDA ON)
elseif(QTUNE_CUDA STREQUAL "AUTO")
  set(QTUNE_WITH_CUDA ${_torch_has_cuda})
elseif(NOT QTUNE_CUDA STREQUAL "OFF")
  message(FATAL_ERROR "QTUNE_CUDA must be AUTO, ON or OFF (got '${QTUNE_CUDA}')")
endif()

set(QTUNE_CUDA_ARCHITECTURES "80;90" CACHE STRING "GPU architectures of the CUDA kernels (A100: 80, H100/H200: 90)")
if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
set(QTUNE_NVCC_FOUND OFF)
if(NOT QTUNE_CUDA STREQUAL "OFF")
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)
    set(QTUNE_NVCC_FOUND ON)
  endif()
endif()
if(QTUNE_WITH_CUDA AND NOT QTUNE_NVCC_FOUND)
  message(FATAL_ERROR "LibTorch has CUDA but no nvcc was found: set CUDACXX or -DQTUNE_CUDA=OFF")
endif()

# NCCL for the gradient sums of data-parallel GPU ranks: c10d's NCCL group is inside a CUDA LibTorch; its
# header needs nccl.h (the CUDA toolkit's, or the nvidia-nccl package next to a pip PyTorch).
set(QTUNE_WITH_NCCL OFF)
if(QTUNE_WITH_CUDA)
  find_path(QTUNE_NCCL_INCLUDE_DIR nccl.h HINTS ENV NCCL_INCLUDE_DIR "${Torch_DIR}/../../../../nvidia/nccl/include" /usr/local/cuda/include)
  if(QTUNE_NCCL_INCLUDE_DIR)
    set(QTUNE_WITH_NCCL ON)
  endif()
endif()
message(STATUS "qtune: LibTorch ${Torch_VERSION} from ${Torch_DIR}; CUDA kernels compiled: ${QTUNE_NVCC_FOUND}, linked: ${QTUNE_WITH_CUDA}; NCCL: ${QTUNE_WITH_NCCL}")
