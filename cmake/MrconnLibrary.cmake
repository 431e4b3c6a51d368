# Builds the mrconn staticlib with cargo and wraps it so that only its C API
# is global: mrconn_add_library(<target> HIREDIS_INCLUDE <dir> HOST_INCLUDE <dirs>
#   [HOST_DEFINES <defs>] [UV_INCLUDE <dir>] [TARGET_DIR <dir>] [PROFILE release|debug]
#   [RUSTFLAGS <flags>] [CFLAGS <flags>]) defines an IMPORTED static library <target>.
#
# Used by the standalone build (CMakeLists.txt) and inside RediSearch
# (cmake/redisearch.cmake): the same sources, the same steps.

get_filename_component(MRCONN_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set(MRCONN_ROOT "${MRCONN_ROOT}" CACHE INTERNAL "")
find_program(MRCONN_CARGO cargo HINTS "$ENV{HOME}/.cargo/bin" REQUIRED)

function(mrconn_add_library target)
  cmake_parse_arguments(A "" "HIREDIS_INCLUDE;UV_INCLUDE;TARGET_DIR;PROFILE;RUSTFLAGS;CFLAGS"
                        "HOST_INCLUDE;HOST_DEFINES" ${ARGN})
  if(NOT A_PROFILE)
    set(A_PROFILE release)
  endif()
  if(NOT A_TARGET_DIR)
    set(A_TARGET_DIR "${CMAKE_CURRENT_BINARY_DIR}/${target}-cargo")
  endif()
  string(REPLACE ";" ":" host_include "${A_HOST_INCLUDE}")
  string(REPLACE ";" " " host_defines "${A_HOST_DEFINES}")
  set(profile_flag --release)
  set(profile_dir release)
  if(A_PROFILE STREQUAL "debug")
    set(profile_flag "")
    set(profile_dir debug)
  endif()
  set(raw "${A_TARGET_DIR}/${profile_dir}/libmrconn.a")
  set(out_dir "${CMAKE_CURRENT_BINARY_DIR}/${target}")
  set(wrapped "${out_dir}/libmrconn_c.a")
  set(env "MRCONN_HIREDIS_INCLUDE=${A_HIREDIS_INCLUDE}" "MRCONN_HOST_INCLUDE=${host_include}"
          "MRCONN_HOST_DEFINES=${host_defines}" "MRCONN_UV_INCLUDE=${A_UV_INCLUDE}")
  # Only when given: otherwise the caller's environment and .cargo config hold.
  if(A_RUSTFLAGS)
    list(APPEND env "RUSTFLAGS=${A_RUSTFLAGS}")
  endif()
  if(A_CFLAGS)
    list(APPEND env "CFLAGS=${A_CFLAGS}")
  endif()
  # Cargo runs on every build and decides what is stale itself: build.rs
  # tracks the host headers it compiled against, which CMake does not know.
  # The wrapping step skips itself when the archive is fresh.
  add_custom_target(${target}_build
    COMMAND ${CMAKE_COMMAND} -E env ${env}
            ${MRCONN_CARGO} build --quiet --lib ${profile_flag} -p mrconn
            --manifest-path "${MRCONN_ROOT}/Cargo.toml" --target-dir "${A_TARGET_DIR}"
    COMMAND "${MRCONN_ROOT}/cmake/wrap_staticlib.sh" "${raw}" "${MRCONN_ROOT}/cmake/exports.txt" "${out_dir}"
    BYPRODUCTS "${wrapped}"
    COMMENT "cargo: mrconn (${target}), wrapped to export only its C API"
    VERBATIM)
  add_library(${target} STATIC IMPORTED GLOBAL)
  set_target_properties(${target} PROPERTIES IMPORTED_LOCATION "${wrapped}")
  add_dependencies(${target} ${target}_build)
endfunction()
