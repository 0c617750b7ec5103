# Locate OpenBLAS and its cblas.h. xcat calls sgemm from inside its own OpenMP worker threads,
# so it prefers the OpenMP build of OpenBLAS (which runs single-threaded inside an active
# parallel region) or the serial build; the pthreads build works but may oversubscribe cores.
# Sets XCAT_BLAS_LIBRARY, XCAT_BLAS_INCLUDE_DIR, XCAT_BLAS_FLAVOUR.
set(_xcat_blas_multiarch "${CMAKE_LIBRARY_ARCHITECTURE}")
foreach(flavour openmp serial pthread)
  find_library(XCAT_BLAS_LIBRARY_${flavour} NAMES openblas
    PATHS /usr/lib/${_xcat_blas_multiarch}/openblas-${flavour} NO_DEFAULT_PATH)
  find_path(XCAT_BLAS_INCLUDE_${flavour} NAMES cblas.h
    PATHS /usr/include/${_xcat_blas_multiarch}/openblas-${flavour} NO_DEFAULT_PATH)
  if(XCAT_BLAS_LIBRARY_${flavour} AND XCAT_BLAS_INCLUDE_${flavour})
    set(XCAT_BLAS_LIBRARY ${XCAT_BLAS_LIBRARY_${flavour}})
    set(XCAT_BLAS_INCLUDE_DIR ${XCAT_BLAS_INCLUDE_${flavour}})
    set(XCAT_BLAS_FLAVOUR "OpenBLAS ${flavour}")
    break()
  endif()
endforeach()
if(NOT XCAT_BLAS_LIBRARY)
  find_library(XCAT_BLAS_LIBRARY NAMES openblas)
  find_path(XCAT_BLAS_INCLUDE_DIR NAMES cblas.h PATH_SUFFIXES openblas)
  set(XCAT_BLAS_FLAVOUR "OpenBLAS (generic)")
endif()
if(NOT XCAT_BLAS_LIBRARY OR NOT XCAT_BLAS_INCLUDE_DIR)
  message(FATAL_ERROR "OpenBLAS not found: run tools/install-deps.sh (Debian: libopenblas-openmp-dev)")
endif()
if(NOT XCAT_BLAS_FLAVOUR MATCHES "openmp|serial")
  message(STATUS "xcat: ${XCAT_BLAS_FLAVOUR}: if it is OpenBLAS's pthreads build, xcat holds it "
    "to one thread during its own parallel passes (the OpenMP build is preferred)")
endif()
