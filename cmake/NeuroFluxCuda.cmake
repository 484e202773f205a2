# Decides what the CUDA sources are used for.
#   NEUROFLUX_WITH_CUDA      LibTorch has CUDA and the .cu implementations go into the library.
#   NEUROFLUX_CUDA_CHECK     nvcc exists but LibTorch is CPU-only: every .cu file is compiled into
#                            a static library of kernels (no LibTorch dependency) as a compile check.
set(NEUROFLUX_WITH_CUDA OFF)
set(NEUROFLUX_CUDA_CHECK OFF)
string(TOUPPER "${NEUROFLUX_CUDA}" _nf_cuda)
if(NOT _nf_cuda MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "NEUROFLUX_CUDA must be AUTO, ON or OFF, got '${NEUROFLUX_CUDA}'")
endif()

set(_nf_torch_has_cuda OFF)
if(TORCH_CUDA_LIBRARIES OR TARGET torch_cuda OR TARGET c10_cuda)
  set(_nf_torch_has_cuda ON)
endif()

if(NOT _nf_cuda STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    set(CMAKE_CUDA_STANDARD 17)
    if(_nf_torch_has_cuda)
      set(NEUROFLUX_WITH_CUDA ON)
    else()
      set(NEUROFLUX_CUDA_CHECK ON)
    endif()
  elseif(_nf_cuda STREQUAL "ON")
    message(FATAL_ERROR "NEUROFLUX_CUDA=ON but no CUDA compiler (nvcc) was found")
  endif()
endif()
if(_nf_cuda STREQUAL "ON" AND NOT _nf_torch_has_cuda)
  message(FATAL_ERROR "NEUROFLUX_CUDA=ON needs a CUDA-enabled LibTorch; this one is CPU-only. "
                      "Point CMAKE_PREFIX_PATH at an official CUDA LibTorch distribution.")
endif()
message(STATUS "NeuroFlux CUDA: mode=${_nf_cuda} libtorch_cuda=${_nf_torch_has_cuda} "
               "implementations=${NEUROFLUX_WITH_CUDA} compile_check=${NEUROFLUX_CUDA_CHECK}")
