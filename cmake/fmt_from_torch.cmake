# qtune::fmt: the fmt inside LibTorch (12.x), header-only. LibTorch's -isystem include folder holds these
# headers, so any target that sees LibTorch would pick them over a system fmt anyway; one version for every
# target (core and data too, which see nothing else of LibTorch: a folder with just a link to fmt/).
find_path(QTUNE_TORCH_FMT_DIR fmt/format.h PATHS ${TORCH_INCLUDE_DIRS} NO_DEFAULT_PATH)
if(NOT QTUNE_TORCH_FMT_DIR)
  message(FATAL_ERROR "no fmt/format.h under LibTorch's include folders (${TORCH_INCLUDE_DIRS})")
endif()
set(_qtune_fmt_dir ${CMAKE_BINARY_DIR}/fmt_from_torch)
file(MAKE_DIRECTORY ${_qtune_fmt_dir})
file(CREATE_LINK ${QTUNE_TORCH_FMT_DIR}/fmt ${_qtune_fmt_dir}/fmt SYMBOLIC)
add_library(qtune_fmt INTERFACE)
target_include_directories(qtune_fmt SYSTEM INTERFACE ${_qtune_fmt_dir})
target_compile_definitions(qtune_fmt INTERFACE FMT_HEADER_ONLY)
add_library(qtune::fmt ALIAS qtune_fmt)
