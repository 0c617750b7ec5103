# Install rules and package files of xcat (included by the top-level CMakeLists.txt).
#
# Installs:
#   lib:     the targets in XCAT_LIBRARY_TARGETS (libxcat.so* and/or libxcat.a)
#   include: include/*.h
#   cmake:   <libdir>/cmake/xcat/{xcatConfig,xcatConfigVersion,xcatTargets*}.cmake
#            -> find_package(xcat) gives xcat::xcat (shared if installed, else static)
#               and xcat::xcat_static (when the static library is installed)
#   pkgconfig: <libdir>/pkgconfig/xcat.pc  (pkg-config --libs xcat / --static --libs xcat)
#
# Everything is relocatable: `cmake --install <build> --prefix <dir>` and DESTDIR both work
# (xcat.pc is written at install time, with the prefix actually used).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(XCAT_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/xcat"
  CACHE STRING "Where xcatConfig.cmake is installed (relative to the prefix)")
set(XCAT_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig"
  CACHE STRING "Where xcat.pc is installed (relative to the prefix)")
mark_as_advanced(XCAT_INSTALL_CMAKEDIR XCAT_INSTALL_PKGCONFIGDIR)

set(_xcat_have_shared OFF)
set(_xcat_have_static OFF)
if(TARGET xcat AND "xcat" IN_LIST XCAT_LIBRARY_TARGETS)
  set(_xcat_have_shared ON)
  # Keep the OpenBLAS flavour the build found (the OpenMP one, outside the default search
  # path on Debian) in the installed library's RUNPATH, as it is in the build tree. System
  # directories are never added.
  set_target_properties(xcat PROPERTIES INSTALL_RPATH_USE_LINK_PATH TRUE)
endif()
if(TARGET xcat_static AND "xcat_static" IN_LIST XCAT_LIBRARY_TARGETS)
  set(_xcat_have_static ON)
endif()
# Installed tools (tools/CMakeLists.txt installs them to bindir) find the libxcat.so installed
# beside them in any prefix, without LD_LIBRARY_PATH.
foreach(_xcat_tool xcat-info xcat-bench)
  if(TARGET ${_xcat_tool})
    file(RELATIVE_PATH _xcat_bin_to_lib "/prefix/${CMAKE_INSTALL_BINDIR}" "/prefix/${CMAKE_INSTALL_LIBDIR}")
    if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_BINDIR}")
      set(_xcat_bin_to_lib "")
    endif()
    set_target_properties(${_xcat_tool} PROPERTIES INSTALL_RPATH_USE_LINK_PATH TRUE)
    if(_xcat_bin_to_lib AND NOT APPLE)
      set_property(TARGET ${_xcat_tool} APPEND PROPERTY INSTALL_RPATH "$ORIGIN/${_xcat_bin_to_lib}")
    endif()
  endif()
endforeach()
unset(_xcat_tool)
unset(_xcat_bin_to_lib)

# ---- libraries and headers -----------------------------------------------------------------
# The libraries link their dependencies PRIVATE. For the shared library they stay hidden; for
# the static one CMake exports them as $<LINK_ONLY:...> in INTERFACE_LINK_LIBRARIES (the BLAS
# library by absolute path, OpenMP::OpenMP_C, Threads::Threads, m), which xcatConfig.cmake
# satisfies with find_dependency().
install(TARGETS ${XCAT_LIBRARY_TARGETS}
  EXPORT xcatTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.h")

# ---- CMake package -------------------------------------------------------------------------
install(EXPORT xcatTargets
  NAMESPACE xcat::
  FILE xcatTargets.cmake
  DESTINATION ${XCAT_INSTALL_CMAKEDIR})
set(XCAT_CONFIG_HAVE_SHARED ${_xcat_have_shared})
set(XCAT_CONFIG_HAVE_STATIC ${_xcat_have_static})
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/xcatConfig.cmake.in
  ${PROJECT_BINARY_DIR}/xcatConfig.cmake
  INSTALL_DESTINATION ${XCAT_INSTALL_CMAKEDIR})
# SOVERSION is the major version: any release of the same major is ABI-compatible.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/xcatConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/xcatConfig.cmake
  ${PROJECT_BINARY_DIR}/xcatConfigVersion.cmake
  DESTINATION ${XCAT_INSTALL_CMAKEDIR})

# ---- pkg-config ----------------------------------------------------------------------------
# Stage 1 (now): everything but the prefix. Stage 2 (install time): the prefix actually used,
# which `cmake --install --prefix` may change after configuration.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(XCAT_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  set(XCAT_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(XCAT_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(XCAT_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
set(XCAT_PC_PREFIX "@CMAKE_INSTALL_PREFIX@") # left for stage 2
# Libs.private: what a static link of libxcat.a needs.
set(_xcat_pc_private "${XCAT_BLAS_LIBRARY}")
if(OpenMP_C_FLAGS)
  string(REPLACE ";" " " _xcat_omp_flags "${OpenMP_C_FLAGS}")
  string(APPEND _xcat_pc_private " ${_xcat_omp_flags}")
endif()
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  string(APPEND _xcat_pc_private " -lgomp")
endif()
if(XCAT_OPENCL_ENABLED)
  string(APPEND _xcat_pc_private " -lOpenCL")
endif()
string(APPEND _xcat_pc_private " -lpthread -lm")
set(XCAT_PC_LIBS_PRIVATE "${_xcat_pc_private}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/xcat.pc.in ${PROJECT_BINARY_DIR}/xcat.pc.stage @ONLY)
install(CODE "
  configure_file(\"${PROJECT_BINARY_DIR}/xcat.pc.stage\" \"${PROJECT_BINARY_DIR}/xcat.pc\" @ONLY)
")
install(FILES ${PROJECT_BINARY_DIR}/xcat.pc DESTINATION ${XCAT_INSTALL_PKGCONFIGDIR})

unset(_xcat_have_shared)
unset(_xcat_have_static)
unset(_xcat_pc_private)
unset(_xcat_omp_flags)
