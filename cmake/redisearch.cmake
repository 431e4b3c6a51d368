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

  # conn.c is compiled wherever a coordinator target globs it: `rmr` always,
  # and at v8.8.0 also `coordinator-core`, whose recursive *.c glob in
  # src/coord picks up rmr/ too (master filters rmr/ out of it). Drop it from
  # every target of src/coord and src/coord/rmr.
  get_target_property(rmr_dir rmr SOURCE_DIR)
  get_property(coord_targets DIRECTORY "${rs}/src/coord" PROPERTY BUILDSYSTEM_TARGETS)
  get_property(rmr_targets DIRECTORY "${rmr_dir}" PROPERTY BUILDSYSTEM_TARGETS)
  set(dropped_from "")
  foreach(t IN LISTS rmr_targets coord_targets)
    get_target_property(srcs ${t} SOURCES)
    if(NOT srcs)
      continue()
    endif()
    set(kept "")
    set(dropped FALSE)
    foreach(s IN LISTS srcs)
      if(s MATCHES "(^|/)rmr/conn\\.c$" OR (t STREQUAL "rmr" AND s STREQUAL "conn.c"))
        set(dropped TRUE)
      else()
        list(APPEND kept "${s}")
      endif()
    endforeach()
    if(dropped)
      set_property(TARGET ${t} PROPERTY SOURCES ${kept})
      list(APPEND dropped_from ${t})
    endif()
  endforeach()
  if(NOT "rmr" IN_LIST dropped_from)
    message(FATAL_ERROR "mrconn: src/coord/rmr/conn.c is not among rmr's sources")
  endif()

  # rmr's include paths are a target property; its definitions
  # (REDISMODULE_SDK_RLEC, _GNU_SOURCE, REDIS_MODULE_TARGET, set with
  # add_compile_definitions in src/coord) are a property of its directory.
  get_target_property(includes rmr INCLUDE_DIRECTORIES)
  get_target_property(target_defines rmr COMPILE_DEFINITIONS)
  get_property(dir_defines DIRECTORY "${rmr_dir}" PROPERTY COMPILE_DEFINITIONS)
  set(defines "")
  foreach(d IN LISTS target_defines dir_defines)
    if(d AND NOT d MATCHES "NOTFOUND$" AND NOT d MATCHES "\\$<")
      list(APPEND defines "${d}")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES defines)
  mrconn_add_library(mrconn_rs
    HIREDIS_INCLUDE "${rs}/deps"
    UV_INCLUDE "${rs}/deps/libuv/include"
    HOST_INCLUDE ${includes}
    HOST_DEFINES ${defines}
    CFLAGS "${CMAKE_C_FLAGS} -funsigned-char -fcommon -O3 -Werror=implicit-function-declaration"
    TARGET_DIR "${CMAKE_BINARY_DIR}/mrconn-cargo"
    PROFILE ${MRCONN_CARGO_PROFILE})
  target_link_libraries(redisearch-coord PUBLIC mrconn_rs)
  # glue.c includes the same headers as rmr, so it needs what rmr waits for
  # (uv_a; on master cheadergen_generate, which writes Rust-generated headers).
  get_target_property(rmr_deps rmr MANUALLY_ADDED_DEPENDENCIES)
  if(rmr_deps)
    add_dependencies(mrconn_rs_build ${rmr_deps})
  endif()

  add_library(mrconn_abi_check OBJECT "${MRCONN_ROOT}/cmake/abi_check.c")
  target_include_directories(mrconn_abi_check PRIVATE ${includes})
  target_compile_definitions(mrconn_abi_check PRIVATE ${defines} MRCONN_CONN_HEADER="rmr/conn.h")
  target_compile_options(mrconn_abi_check PRIVATE -Werror=incompatible-pointer-types)
  add_dependencies(mrconn_abi_check rmr)
  add_dependencies(redisearch-coord mrconn_abi_check)
  list(JOIN dropped_from ", " dropped_from)
  message(STATUS "mrconn: conn.c dropped from ${dropped_from}; replaced by ${MRCONN_ROOT} (cargo profile ${MRCONN_CARGO_PROFILE})")
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL mrconn_redisearch_hook)
