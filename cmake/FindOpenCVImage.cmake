# Finds the three OpenCV libraries revkit uses (core, imgproc, imgcodecs) from Debian's per-module -dev packages,
# which ship no OpenCVConfig.cmake (only the heavy libopencv-dev does). Defines the target OpenCVImage::OpenCVImage.
find_path(OpenCVImage_INCLUDE_DIR opencv2/core.hpp PATH_SUFFIXES opencv4)
foreach(module core imgproc imgcodecs)
  find_library(OpenCVImage_${module}_LIBRARY opencv_${module})
  list(APPEND OpenCVImage_LIBRARIES ${OpenCVImage_${module}_LIBRARY})
endforeach()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(OpenCVImage REQUIRED_VARS OpenCVImage_INCLUDE_DIR OpenCVImage_core_LIBRARY
                                  OpenCVImage_imgproc_LIBRARY OpenCVImage_imgcodecs_LIBRARY)
if(OpenCVImage_FOUND AND NOT TARGET OpenCVImage::OpenCVImage)
  add_library(OpenCVImage::OpenCVImage INTERFACE IMPORTED)
  set_target_properties(OpenCVImage::OpenCVImage PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES ${OpenCVImage_INCLUDE_DIR}
    INTERFACE_LINK_LIBRARIES "${OpenCVImage_LIBRARIES}")
endif()
