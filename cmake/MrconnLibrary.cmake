# Builds the mrconn staticlib with cargo and wraps it so that only its C API
# is global: mrconn_add_library(<target> HIREDIS_INCLUDE <dir> HOST_INCLUDE <dirs>
#   [HOST_DEFINES <defs>] [UV_INCLUDE <dir>] [TARGET_DIR <dir>] [PROFILE release|debug]
#   [RUSTFLAGS <flags>] [CFLAGS <flags>] [RUST_TARGET <triple>] [TOOLCHAIN <rustup name>]
#   [MANIFEST <Cargo.toml> PACKAGE <name> EXPORTS <list>]) defines an IMPORTED static
# library <target>. RUST_TARGET keeps RUSTFLAGS off build scripts and proc
# macros (instrumentation flags); TOOLCHAIN picks a rustup toolchain (nightly
# for -Zsanitizer); MANIFEST/PACKAGE/EXPORTS build another crate the same way
# (the sanitizer's test fixture).
#
# Used by the standalone build (CMakeLists.txt) and inside RediSearch
# (cmake/redisearch.cmake): the same sources, the same steps.

get_filename_component(MRCONN_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set(MRCONN_ROOT "${MRCONN_ROOT}" CACHE INTERNAL "")
find_program(MRCONN_CARGO cargo HINTS "$ENV{HOME}/.cargo/bin" REQUIRED)

function(mrconn_add_library target)
  cmake_parse_arguments(A ""
    "HIREDIS_INCLUDE;UV_INCLUDE;TARGET_DIR;PROFILE;RUSTFLAGS;CFLAGS;RUST_TARGET;TOOLCHAIN;MANIFEST;PACKAGE;EXPORTS"
    "HOST_INCLUDE;HOST_DEFINES" ${ARGN})
  if(NOT A_MANIFEST)
    set(A_MANIFEST "${MRCONN_ROOT}/Cargo.toml")
    set(A_PACKAGE mrconn)
    set(A_EXPORTS "${MRCONN_ROOT}/cmake/exports.txt")
  endif()
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
  set(target_flag "")
  if(A_RUST_TARGET)
    set(target_flag --target ${A_RUST_TARGET})
    set(profile_dir "${A_RUST_TARGET}/${profile_dir}")
  endif()
  string(REPLACE "-" "_" lib_name "${A_PACKAGE}")
  set(raw "${A_TARGET_DIR}/${profile_dir}/lib${lib_name}.a")
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
  if(A_TOOLCHAIN)
    list(APPEND env "RUSTUP_TOOLCHAIN=${A_TOOLCHAIN}")
  endif()
  # Cargo runs on every build and decides what is stale itself: build.rs
  # tracks the host headers it compiled against, which CMake does not know.
  # The wrapping step skips itself when the archive is fresh.
  # MAKEFLAGS/MFLAGS unset: make passes no jobserver to custom commands, and
  # newer rustc warns about the dangling one these variables name.
  add_custom_target(${target}_build
    COMMAND ${CMAKE_COMMAND} -E env --unset=MAKEFLAGS --unset=MFLAGS ${env}
            ${MRCONN_CARGO} build --quiet --lib ${profile_flag} -p ${A_PACKAGE} ${target_flag}
            --manifest-path "${A_MANIFEST}" --target-dir "${A_TARGET_DIR}"
    COMMAND "${MRCONN_ROOT}/cmake/wrap_staticlib.sh" "${raw}" "${A_EXPORTS}" "${out_dir}"
    BYPRODUCTS "${wrapped}"
    COMMENT "cargo: ${A_PACKAGE} (${target}), wrapped to export only its C API"
    VERBATIM)
  add_library(${target} STATIC IMPORTED GLOBAL)
  set_target_properties(${target} PROPERTIES IMPORTED_LOCATION "${wrapped}")
  add_dependencies(${target} ${target}_build)
endfunction()
