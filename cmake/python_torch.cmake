# Finds LibTorch inside the torch wheel of qtune's Python environment (scripts/setup.sh makes it): QTUNE_PYTHON,
# by default the one scripts/python_env.sh names ($QTUNE_VENV, else ~/.cache/qtune/venv), else python3 on PATH.
# Its torch.utils.cmake_prefix_path goes to CMAKE_PREFIX_PATH, then finds Torch; the tests run their Python
# references with QTUNE_PYTHON.
if(DEFINED ENV{QTUNE_VENV})
  set(_qtune_default_python "$ENV{QTUNE_VENV}/bin/python")
elseif(DEFINED ENV{XDG_CACHE_HOME})
  set(_qtune_default_python "$ENV{XDG_CACHE_HOME}/qtune/venv/bin/python")
else()
  set(_qtune_default_python "$ENV{HOME}/.cache/qtune/venv/bin/python")
endif()
if(NOT EXISTS "${_qtune_default_python}")
  find_program(QTUNE_PATH_PYTHON3 NAMES python3)  # its own variable: a set one would stop find_program
  set(_qtune_default_python "${QTUNE_PATH_PYTHON3}")
endif()
set(QTUNE_PYTHON "${_qtune_default_python}" CACHE FILEPATH "Python whose torch provides LibTorch (scripts/setup.sh)")

execute_process(COMMAND "${QTUNE_PYTHON}" -c "import torch; print(torch.utils.cmake_prefix_path, end='')"
                OUTPUT_VARIABLE _qtune_torch_prefix RESULT_VARIABLE _qtune_torch_rc ERROR_QUIET)
if(_qtune_torch_rc EQUAL 0)
  list(APPEND CMAKE_PREFIX_PATH "${_qtune_torch_prefix}")
endif()
# No GPU to detect here: compile the kernels and LibTorch's CUDA flags for A100 (8.0) and H100/H200 (9.0).
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(ENV{TORCH_CUDA_ARCH_LIST} "8.0;9.0")
endif()
find_package(Torch)
if(NOT Torch_FOUND)
  message(FATAL_ERROR "No LibTorch: ${QTUNE_PYTHON} cannot import torch. Run scripts/setup.sh (it installs torch==2.11.0 "
                      "into a virtual environment), or pass -DQTUNE_PYTHON=/path/to/python with torch, or -DTorch_DIR=...")
endif()
