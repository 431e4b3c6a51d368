# mrconn inside RediSearch's own CMake build, with no edit to RediSearch:
#
#   cmake -S <RediSearch> -B <build> \
#         -DCMAKE_PROJECT_redisearch_INCLUDE=<mrconn>/cmake/redisearch.cmake [...]
#
# CMake runs this file right after RediSearch's `project(redisearch)`; it
# defers its work to the end of the top-level CMakeLists.txt, when RediSearch's
# targets exist, and then:
#  1. drops src/coord/rmr/conn.c from the `rmr` object library;
#  2. builds libmrconn with cargo (release, target dir in the build tree),
#     its hiredis bindings generated from RediSearch's deps/hiredis headers and
#     its C glue compiled with rmr's include paths, definitions and C flags;
#  3. links it into `redisearch-coord` (PUBLIC), i.e. after that archive on
#     every link line: the module and the coordinator C++ tests;
#  4. compiles cmake/abi_check.c against RediSearch's real rmr/conn.h as part
#     of redisearch-coord: ABI drift breaks the build.
# Whether MREndpoint has `isTls` (master) or not (v8.8.0) is read from
# RediSearch's own endpoint.h by build.rs, never set by hand.
#
# Variables: MRCONN_CARGO_PROFILE (release|debug, default release).
include_guard(GLOBAL)
include(${CMAKE_CURRENT_LIST_DIR}/MrconnLibrary.cmake)

set(MRCONN_CARGO_PROFILE release CACHE STRING "Cargo profile of the mrconn library (release|debug)")

function(mrconn_redisearch_hook)
  set(rs "${CMAKE_SOURCE_DIR}")
  foreach(t rmr redisearch-coord)
    if(NOT TARGET ${t})
      message(FATAL_ERROR "mrconn: RediSearch target '${t}' not found; this RediSearch layout is not supported")
    endif()
  endforeach()

  get_target_property(srcs rmr SOURCES)
  set(kept "")
  set(dropped FALSE)
  foreach(s IN LISTS srcs)
    if(s MATCHES "(^|/)conn\\.c$")
      set(dropped TRUE)
    else()
      list(APPEND kept "${s}")
    endif()
  endforeach()
  if(NOT dropped)
    message(FATAL_ERROR "mrconn: src/coord/rmr/conn.c is not among rmr's sources")
  endif()
  set_property(TARGET rmr PROPERTY SOURCES ${kept})

  get_target_property(includes rmr INCLUDE_DIRECTORIES)
  get_target_property(defines rmr COMPILE_DEFINITIONS)
  if(NOT defines)
    set(defines "")
  endif()
  mrconn_add_library(mrconn_rs
    HIREDIS_INCLUDE "${rs}/deps"
    UV_INCLUDE "${rs}/deps/libuv/include"
    HOST_INCLUDE ${includes}
    HOST_DEFINES ${defines}
    CFLAGS "${CMAKE_C_FLAGS} -funsigned-char -fcommon -O3 -Werror=implicit-function-declaration"
    TARGET_DIR "${CMAKE_BINARY_DIR}/mrconn-cargo"
    PROFILE ${MRCONN_CARGO_PROFILE})
  target_link_libraries(redisearch-coord PUBLIC mrconn_rs)

  add_library(mrconn_abi_check OBJECT "${MRCONN_ROOT}/cmake/abi_check.c")
  target_include_directories(mrconn_abi_check PRIVATE ${includes})
  target_compile_definitions(mrconn_abi_check PRIVATE ${defines} MRCONN_CONN_HEADER="rmr/conn.h")
  target_compile_options(mrconn_abi_check PRIVATE -Werror=incompatible-pointer-types)
  add_dependencies(mrconn_abi_check rmr)
  add_dependencies(redisearch-coord mrconn_abi_check)
  message(STATUS "mrconn: conn.c replaced by ${MRCONN_ROOT} (cargo profile ${MRCONN_CARGO_PROFILE})")
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL mrconn_redisearch_hook)
