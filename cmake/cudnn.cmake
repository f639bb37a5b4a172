# cudnn.cmake: cuDNN 9, an optional dependency (softmax_attn/cudnn and transformer/layer's
# attn=cudnn).  CHELA_CUDNN: AUTO (default) uses it when found, ON requires it, OFF never looks.
# Where it looks, first hit wins:
#   1. CUDNN_ROOT (cache variable, else the environment variable): <root>/include, <root>/lib...
#   2. the CUDA toolkit's own directories (the toolkit's copy: /usr/local/cuda/include, lib)
#   3. the system's paths, Debian's multiarch ones (/usr/include/x86_64-linux-gnu and
#      /usr/lib/x86_64-linux-gnu, from NVIDIA's cudnn9-cuda-13 packages) included
#   4. pip's nvidia-cudnn-cu13 / -cu12 wheels: <site-packages>/nvidia/cudnn/{include,lib}, found
#      by asking python3 (when there is one) for its purelib and platlib directories: last, so
#      that a virtual environment's copy (PyTorch's) is taken only where nothing else is
# The library is looked for beside the headers first, every name in one directory before the
# next (NAMES_PER_DIR): seen on the GPU machine, the headers of a venv's cuDNN 9.19 had been
# paired with the system's libcudnn.so 9.14.
# Sets CHELA_CUDNN_FOUND, and when found CHELA_CUDNN_INCLUDE_DIR, CHELA_CUDNN_LIBRARY,
# CHELA_CUDNN_LIBRARY_DIR and CHELA_CUDNN_VERSION ("9.14.0").

set(CHELA_CUDNN AUTO CACHE STRING "cuDNN for the fused-attention baseline: AUTO, ON (required) or OFF")
set_property(CACHE CHELA_CUDNN PROPERTY STRINGS AUTO ON OFF)
set(CUDNN_ROOT "$ENV{CUDNN_ROOT}" CACHE PATH "cuDNN's install prefix (include/, lib/); default: the environment's CUDNN_ROOT")
set(CHELA_CUDNN_FOUND OFF)
string(TOUPPER "${CHELA_CUDNN}" _cudnn_mode)
if(NOT _cudnn_mode MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "chela-bench: CHELA_CUDNN=${CHELA_CUDNN}: give AUTO, ON or OFF")
endif()

if(NOT _cudnn_mode STREQUAL "OFF")
  set(_cudnn_roots "")
  if(CUDNN_ROOT)
    list(APPEND _cudnn_roots "${CUDNN_ROOT}")
  endif()
  list(APPEND _cudnn_roots "${CUDAToolkit_LIBRARY_ROOT}" "${CUDAToolkit_TARGET_DIR}")
  set(_cudnn_pip "")
  find_program(CHELA_PYTHON3 python3)
  mark_as_advanced(CHELA_PYTHON3)
  if(CHELA_PYTHON3)
    execute_process(
      COMMAND "${CHELA_PYTHON3}" -c
              "import sysconfig as s; print(s.get_paths()['purelib']); print(s.get_paths()['platlib'])"
      OUTPUT_VARIABLE _py_sites OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _py_rc)
    if(_py_rc EQUAL 0)
      string(REPLACE "\n" ";" _py_sites "${_py_sites}")
      foreach(site IN LISTS _py_sites)
        list(APPEND _cudnn_pip "${site}/nvidia/cudnn")
      endforeach()
    endif()
  endif()
  set(_cudnn_arch_inc "")
  set(_cudnn_arch_lib "")
  if(CMAKE_LIBRARY_ARCHITECTURE)
    set(_cudnn_arch_inc "/usr/include/${CMAKE_LIBRARY_ARCHITECTURE}")
    set(_cudnn_arch_lib "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}")
  endif()

  # The header that names the version, then the library beside it (the same prefix first, so
  # that headers and library come from one install).
  # HINTS come before the system's paths, PATHS after them (CMake's find order).
  find_path(CHELA_CUDNN_INCLUDE_DIR cudnn_version.h HINTS ${_cudnn_roots} PATH_SUFFIXES include
            PATHS ${_cudnn_arch_inc} ${_cudnn_pip})
  set(_cudnn_lib_hints ${_cudnn_roots})
  if(CHELA_CUDNN_INCLUDE_DIR)
    get_filename_component(_cudnn_prefix "${CHELA_CUDNN_INCLUDE_DIR}" DIRECTORY)
    list(PREPEND _cudnn_lib_hints "${_cudnn_prefix}")
  endif()
  # pip's wheels ship libcudnn.so.9 with no unversioned link: ask for that name as well.
  find_library(CHELA_CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 NAMES_PER_DIR
               HINTS ${_cudnn_lib_hints}
               PATH_SUFFIXES lib lib64 lib/x64 "lib/${CMAKE_LIBRARY_ARCHITECTURE}"
               PATHS ${_cudnn_arch_lib} ${_cudnn_pip})
  mark_as_advanced(CHELA_CUDNN_INCLUDE_DIR CHELA_CUDNN_LIBRARY)

  set(_cudnn_why "")
  if(NOT CHELA_CUDNN_INCLUDE_DIR)
    set(_cudnn_why "no cudnn_version.h")
  elseif(NOT CHELA_CUDNN_LIBRARY)
    set(_cudnn_why "headers in ${CHELA_CUDNN_INCLUDE_DIR} but no libcudnn")
  else()
    file(STRINGS "${CHELA_CUDNN_INCLUDE_DIR}/cudnn_version.h" _cudnn_defs
         REGEX "^#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) +[0-9]+")
    foreach(part MAJOR MINOR PATCHLEVEL)
      string(REGEX MATCH "CUDNN_${part} +([0-9]+)" _m "${_cudnn_defs}")
      set(_cudnn_${part} "${CMAKE_MATCH_1}")
    endforeach()
    set(CHELA_CUDNN_VERSION "${_cudnn_MAJOR}.${_cudnn_MINOR}.${_cudnn_PATCHLEVEL}")
    if(NOT _cudnn_MAJOR OR _cudnn_MAJOR LESS 9)
      set(_cudnn_why "${CHELA_CUDNN_INCLUDE_DIR} has cuDNN ${CHELA_CUDNN_VERSION}; the graph API needs 9")
    elseif(NOT EXISTS "${CHELA_CUDNN_INCLUDE_DIR}/cudnn_graph.h")
      set(_cudnn_why "no cudnn_graph.h beside ${CHELA_CUDNN_INCLUDE_DIR}/cudnn_version.h")
    endif()
  endif()

  if(_cudnn_why STREQUAL "")
    set(CHELA_CUDNN_FOUND ON)
    get_filename_component(CHELA_CUDNN_LIBRARY_DIR "${CHELA_CUDNN_LIBRARY}" DIRECTORY)
    message(STATUS "chela-bench: cuDNN ${CHELA_CUDNN_VERSION}: ${CHELA_CUDNN_INCLUDE_DIR}, "
                   "${CHELA_CUDNN_LIBRARY}")
  elseif(_cudnn_mode STREQUAL "ON")
    message(FATAL_ERROR "chela-bench: CHELA_CUDNN=ON but cuDNN 9 was not found (${_cudnn_why}). "
                        "Set CUDNN_ROOT to its prefix (include/, lib/), or install NVIDIA's "
                        "cudnn9-cuda-13 package or pip's nvidia-cudnn-cu13.")
  else()
    message(STATUS "chela-bench: cuDNN 9 not found (${_cudnn_why}): softmax_attn/cudnn is built "
                   "as unavailable and transformer/layer uses flash attention. Set CUDNN_ROOT to "
                   "use one.")
  endif()
else()
  message(STATUS "chela-bench: cuDNN off (CHELA_CUDNN=OFF)")
endif()
