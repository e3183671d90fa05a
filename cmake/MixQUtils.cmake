#===- MixQUtils.cmake - helpers shared by the MixQ subdirectories --------===#

# add_mixq_unittest(NAME src...): a GoogleTest binary in unittests/bin, run by
# lit (test/Unit) under check-mixq. NAME must end in "Tests". Link further
# libraries with target_link_libraries(NAME PRIVATE ...).
function(add_mixq_unittest name)
  if(NOT name MATCHES "Tests$")
    message(FATAL_ERROR "unit test binary '${name}' must end in 'Tests'")
  endif()
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE GTest::gtest_main GTest::gtest
                        Threads::Threads)
  target_compile_definitions(${name} PRIVATE
    MIXQ_DATA_DIR="${MIXQ_DATA_DIR}"
    MIXQ_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    MIXQ_BINARY_DIR="${PROJECT_BINARY_DIR}")
  set_target_properties(${name} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/unittests/bin)
  set_property(GLOBAL APPEND PROPERTY MIXQ_TEST_DEPENDS ${name})
endfunction()

# add_mixq_tool(NAME src...): a command-line tool in bin/, built by check-mixq
# and found by lit tests.
function(add_mixq_tool name)
  add_executable(${name} ${ARGN})
  set_target_properties(${name} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bin)
  target_compile_definitions(${name} PRIVATE
    MIXQ_DATA_DIR="${MIXQ_DATA_DIR}")
  set_property(GLOBAL APPEND PROPERTY MIXQ_TEST_DEPENDS ${name})
  set_property(GLOBAL APPEND PROPERTY MIXQ_TOOL_NAMES ${name})
endfunction()

# add_mixq_subdirectories(a b c): add each subdirectory that has a CMakeLists.
# MIXQ_SKIP_DIRS (a list of source-relative paths such as "unittests/Import")
# leaves some out, e.g. to build one part while another is being edited.
set(MIXQ_SKIP_DIRS "" CACHE STRING "source-relative directories not to build")
function(add_mixq_subdirectories)
  foreach(d ${ARGN})
    file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/${d})
    if(rel IN_LIST MIXQ_SKIP_DIRS)
      message(STATUS "MixQ: skipping ${rel} (MIXQ_SKIP_DIRS)")
    elseif(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${d}/CMakeLists.txt)
      add_subdirectory(${d})
    endif()
  endforeach()
endfunction()
