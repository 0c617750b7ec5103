# With no OpenCL platform installed (simulated: the ICD loader pointed at an empty vendor
# directory), xcat must still work: the OpenCL device count is 0 with an OK status, the default
# context falls back to the CPU backend, and asking for OpenCL explicitly fails with a clear
# BACKEND_UNAVAILABLE. Run as: cmake -DXCAT_INFO=<path to xcat-info> -P no_opencl_platform.cmake
set(ENV{OCL_ICD_VENDORS} "${CMAKE_CURRENT_BINARY_DIR}/no-such-vendors-dir")
set(ENV{OPENCL_VENDOR_PATH} "${CMAKE_CURRENT_BINARY_DIR}/no-such-vendors-dir")
unset(ENV{OCL_ICD_FILENAMES}) # ICDs listed here are loaded in addition to the vendor directory
unset(ENV{XCAT_BACKEND})
execute_process(COMMAND "${XCAT_INFO}" --json OUTPUT_VARIABLE auto RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "xcat-info failed (${rc}) without an OpenCL platform:\n${auto}")
endif()
# Some ICD loaders (e.g. in GPU containers) load their drivers whatever these variables say;
# there the situation cannot be simulated, and the test reports itself skipped.
string(FIND "${auto}" [["device_count": 0]] none_at)
if(none_at EQUAL -1)
  message(STATUS "skipped: this OpenCL ICD loader still finds a platform with an empty vendor "
                 "directory, so no-platform cannot be simulated here")
  return()
endif()
foreach(expect [["backend": "cpu"]] [["device_count": 0]])
  string(FIND "${auto}" "${expect}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "expected ${expect} in xcat-info --json without OpenCL:\n${auto}")
  endif()
endforeach()
set(ENV{XCAT_BACKEND} opencl)
execute_process(COMMAND "${XCAT_INFO}" OUTPUT_VARIABLE forced RESULT_VARIABLE rc)
string(FIND "${forced}" "no OpenCL platform or device is installed" at)
if(at EQUAL -1)
  message(FATAL_ERROR "XCAT_BACKEND=opencl without a platform should say so:\n${forced}")
endif()
message(STATUS "no OpenCL platform: CPU fallback and a clear BACKEND_UNAVAILABLE, as expected")
