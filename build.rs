//! Builds what the library needs from C, against the headers of the build it
//! goes into (standalone: the test host and the pinned hiredis; inside
//! RediSearch: RediSearch's own headers and `deps/hiredis`):
//!
//! - Rust bindings for hiredis, libuv and OpenSSL, by bindgen, one allowlist
//!   per header; a listed name the header lacks fails the build.
//! - `src/glue/glue.c`: the few static-inline helpers Rust cannot call, plus a
//!   generated list of `_Static_assert`s that pin every layout in
//!   `src/host/types.rs` and every host declaration in `src/host.rs` to the
//!   host's headers.
//! - `src/glue/send.c`: the hot-path send, against the hiredis headers.
//! - The `mrconn_endpoint_tls` cfg, set when the host's `MREndpoint` has the
//!   `isTls` field (RediSearch master) and unset otherwise (v8.8.0).
//!
//! Inputs (environment, all optional):
//! - `MRCONN_HIREDIS_INCLUDE`: directory holding `hiredis/async.h`
//!   (default: `.deps/hiredis-3.3.0/vendor`, where `scripts/setup.sh` puts it).
//! - `MRCONN_HOST_INCLUDE`: `:`-separated include directories of the host's
//!   headers (default: `c_tests/host/include`).
//! - `MRCONN_HOST_DEFINES`: space-separated `NAME` or `NAME=VALUE` definitions
//!   the host compiles with.
//! - `MRCONN_UV_INCLUDE`: directory holding `uv.h`, when not a system one.
//! - `MRCONN_SEND_PATH`: `hiredis` sends through `redisAsyncFormattedCommand`
//!   instead of `src/glue/send.c`'s own append (default `mrconn`).

#[path = "src/host/types.rs"]
#[expect(
    unexpected_cfgs,
    non_snake_case,
    reason = "RediSearch's C field names; build.rs computes the layouts that hold with and without `isTls`"
)]
mod types;

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

struct Headers {
    hiredis: PathBuf,
    host: Vec<PathBuf>,
    uv: Option<PathBuf>,
    defines: Vec<(String, Option<String>)>,
}

impl Headers {
    fn from_env(root: &Path) -> Headers {
        for var in [
            "MRCONN_HIREDIS_INCLUDE",
            "MRCONN_HOST_INCLUDE",
            "MRCONN_HOST_DEFINES",
            "MRCONN_UV_INCLUDE",
        ] {
            println!("cargo::rerun-if-env-changed={var}");
        }
        // Unset and empty mean the same: CMake passes every variable.
        let var = |name: &str| env::var_os(name).filter(|v| !v.is_empty());
        let hiredis = var("MRCONN_HIREDIS_INCLUDE")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".deps/hiredis-3.3.0/vendor"));
        if !hiredis.join("hiredis/async.h").is_file() {
            panic!(
                "hiredis headers not found: {} has no hiredis/async.h. Run scripts/setup.sh, \
                 or set MRCONN_HIREDIS_INCLUDE to the directory that holds hiredis/.",
                hiredis.display()
            );
        }
        let host = match var("MRCONN_HOST_INCLUDE") {
            Some(v) => env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
            None => vec![root.join("c_tests/host/include")],
        };
        let defines = env::var("MRCONN_HOST_DEFINES")
            .unwrap_or_default()
            .split_whitespace()
            .map(|d| match d.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (d.to_owned(), None),
            })
            .collect();
        Headers {
            hiredis,
            host,
            uv: var("MRCONN_UV_INCLUDE").map(PathBuf::from),
            defines,
        }
    }

    fn include_dirs(&self) -> impl Iterator<Item = &PathBuf> {
        self.host
            .iter()
            .chain([&self.hiredis])
            .chain(self.uv.iter())
    }

    fn cc(&self) -> cc::Build {
        let mut b = cc::Build::new();
        b.std("c11")
            .warnings(true)
            .extra_warnings(true)
            .flag("-Werror")
            .flag("-fvisibility=hidden");
        // The host's and hiredis's headers are not ours: -isystem keeps
        // -Wall -Wextra -Werror on mrconn's own C (glue.c and the generated
        // checks) without failing on their warnings (RediSearch's headers
        // have unused parameters in static inline functions).
        for d in self.include_dirs() {
            b.flag("-isystem").flag(d.as_os_str());
        }
        for (k, v) in &self.defines {
            b.define(k, v.as_deref());
        }
        b
    }

    fn clang_args(&self) -> Vec<String> {
        let mut args: Vec<String> = self
            .include_dirs()
            .map(|d| format!("-I{}", d.display()))
            .collect();
        args.extend(self.defines.iter().map(|(k, v)| match v {
            Some(v) => format!("-D{k}={v}"),
            None => format!("-D{k}"),
        }));
        args
    }
}

/// Generates bindings for `header`, keeping only `names`; fails the build
/// when the header does not define one of them.
/// `recursive` also emits the types the listed items use; without it they
/// must come from another binding of the same module.
fn bind(h: &Headers, out: &Path, file: &str, headers: &[&str], recursive: bool, names: &[&str]) {
    let mut b = bindgen::Builder::default()
        .header_contents(
            "wrapper.h",
            &headers
                .iter()
                .map(|h| format!("#include <{h}>\n"))
                .collect::<String>(),
        )
        .clang_args(h.clang_args())
        .use_core()
        .generate_comments(false)
        .layout_tests(true)
        .derive_default(true)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .allowlist_recursively(recursive)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for n in names {
        b = b.allowlist_item(n);
    }
    let code = b
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on {headers:?}: {e}"))
        .to_string();
    let defines = |name: &str| {
        ["struct", "fn", "type", "const", "static mut", "union"]
            .iter()
            .any(|kind| {
                let decl = format!("pub {kind} {name}");
                code.match_indices(&decl).any(|(at, _)| {
                    let next = code[at + decl.len()..].chars().next();
                    !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
            })
    };
    let missing: Vec<&&str> = names.iter().filter(|n| !defines(n)).collect();
    if !missing.is_empty() {
        panic!(
            "{headers:?} do not define {missing:?}: the headers this build compiles against are not the expected ones"
        );
    }
    fs::write(out.join(file), code).expect("write bindings");
}

/// Whether the host's `MREndpoint` has `isTls`, asked of the C compiler.
fn endpoint_has_tls(h: &Headers, out: &Path) -> bool {
    let compiles = |field: &str| {
        let probe = out.join(format!("probe_endpoint_{field}.c"));
        fs::write(
            &probe,
            format!("#include <stddef.h>\n#include \"rmr/endpoint.h\"\nsize_t mrconn_probe = offsetof(MREndpoint, {field});\n"),
        )
        .expect("write probe");
        // A failure is an answer, not something to print.
        h.cc()
            .cargo_metadata(false)
            .cargo_warnings(false)
            .file(&probe)
            .try_compile(&format!("mrconn_probe_{field}"))
            .is_ok()
    };
    // The control: when even `port` fails, the headers are unusable, and
    // "no isTls" would be a wrong answer, not v8.8.0.
    if !compiles("port") {
        panic!(
            "cannot compile against the host's rmr/endpoint.h (include dirs {:?}); see MRCONN_HOST_INCLUDE",
            h.host
        );
    }
    compiles("isTls")
}

/// Asks cargo to re-run this script when any header that `glue.c` (and so
/// the probes and bindings) read changes: a switch of RediSearch tree, or a
/// header edit, must redo the TLS probe and the layout checks.
fn track_headers(h: &Headers, depfile: &Path) {
    let Ok(deps) = fs::read_to_string(depfile) else {
        return;
    };
    let roots: Vec<&PathBuf> = h.include_dirs().collect();
    for dep in deps.replace("\\\n", " ").split_whitespace().skip(1) {
        let path = Path::new(dep);
        if roots.iter().any(|r| path.starts_with(r)) {
            println!("cargo::rerun-if-changed={dep}");
        }
    }
}

/// Whether `MRCONN_SEND_PATH=hiredis` asks for hiredis's own
/// `redisAsyncFormattedCommand` instead of `src/glue/send.c`'s plain-command
/// path (for comparison).
fn send_via_hiredis() -> bool {
    println!("cargo::rerun-if-env-changed=MRCONN_SEND_PATH");
    match env::var("MRCONN_SEND_PATH").unwrap_or_default().as_str() {
        "" | "mrconn" => false,
        "hiredis" => true,
        other => panic!("MRCONN_SEND_PATH={other}: expected `mrconn` (default) or `hiredis`"),
    }
}

/// FNV-1a 64 of `bytes`: a content fingerprint (not a defence against
/// forgery), the same on every toolchain.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The hiredis version `hiredis.h` declares, for messages.
fn hiredis_version(dir: &Path) -> String {
    let text = fs::read_to_string(dir.join("hiredis.h")).unwrap_or_default();
    let part = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("#define HIREDIS_{name} ")))
            .map_or("?".to_owned(), |v| v.trim().to_owned())
    };
    format!("{}.{}.{}", part("MAJOR"), part("MINOR"), part("PATCH"))
}

/// Checks the hiredis files mrconn mirrors against `src/glue/hiredis_verified.txt`:
/// panics on an unknown `async.c` (src/pending.rs relies on it); with
/// `send_path`, returns whether `async_private.h` and `alloc.h` are known,
/// i.e. whether `src/glue/send.c`'s own path may be built.
fn hiredis_verified(root: &Path, include: &Path, send_path: bool) -> bool {
    let list = root.join("src/glue/hiredis_verified.txt");
    println!("cargo::rerun-if-changed={}", list.display());
    let list = fs::read_to_string(&list).expect("read src/glue/hiredis_verified.txt");
    let dir = include.join("hiredis");
    let version = hiredis_version(&dir);
    let known = |file: &str| -> bool {
        let path = dir.join(file);
        println!("cargo::rerun-if-changed={}", path.display());
        let Ok(bytes) = fs::read(&path) else {
            return false;
        };
        let hash = format!("{:016x}", fnv1a64(&bytes));
        list.lines()
            .filter(|l| !l.starts_with('#'))
            .any(|l| l.split_whitespace().take(2).eq([file, hash.as_str()]))
    };
    if !known("async.c") {
        panic!(
            "hiredis {version} in {}: its async.c is not one mrconn was verified against \
             (src/glue/hiredis_verified.txt; verified: hiredis 1.3.0 to 1.5.0). src/pending.rs \
             takes callback records off ac->replies and relies on async.c unlinking a record \
             before running its callback and on REDIS_IN_CALLBACK deferring a free; \
             src/glue/send.c mirrors __redisAsyncCommand. Re-check both against this async.c, \
             then add its line to src/glue/hiredis_verified.txt.",
            dir.display()
        );
    }
    let mut send_known = send_path;
    for file in ["async_private.h", "alloc.h"]
        .into_iter()
        .filter(|_| send_path)
    {
        if !known(file) {
            println!(
                "cargo::warning=hiredis {version}: {} is not one mrconn's send path was verified \
                 against (src/glue/hiredis_verified.txt); sending through hiredis's own \
                 redisAsyncFormattedCommand instead",
                dir.join(file).display()
            );
            send_known = false;
        }
    }
    send_known
}

/// One `_Static_assert` per size and field offset of `src/host/types.rs`.
fn layout_checks(has_tls: bool) -> String {
    let mut s = String::from("/* Generated by build.rs from src/host/types.rs. */\n");
    for (ty, size, fields) in types::layouts() {
        let _ = writeln!(
            s,
            "_Static_assert(sizeof({ty}) == {size}, \"size of {ty} differs from src/host/types.rs\");"
        );
        for (field, off) in fields {
            let _ = writeln!(
                s,
                "_Static_assert(offsetof({ty}, {field}) == {off}, \"offset of {ty}.{field} differs from src/host/types.rs\");"
            );
        }
    }
    if has_tls {
        // repr(C) puts the bool right after `port`.
        s.push_str(
            "_Static_assert(offsetof(MREndpoint, isTls) == offsetof(MREndpoint, port) + sizeof(int), \
             \"offset of MREndpoint.isTls differs from src/host/types.rs\");\n",
        );
    }
    s
}

fn main() {
    let root =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo::rerun-if-changed=src/glue");
    println!("cargo::rerun-if-changed=src/host/types.rs");
    println!("cargo::rustc-check-cfg=cfg(mrconn_endpoint_tls)");
    let h = Headers::from_env(&root);

    let has_tls = endpoint_has_tls(&h, &out);
    fs::write(out.join("mrconn_layout_checks.h"), layout_checks(has_tls))
        .expect("write layout checks");
    let mut glue = h.cc();
    if has_tls {
        println!("cargo::rustc-cfg=mrconn_endpoint_tls");
        glue.define("MRCONN_ENDPOINT_HAS_TLS", None);
    }
    let depfile = out.join("glue.d");
    glue.include(&out)
        .flag("-MD")
        .flag("-MF")
        .flag(depfile.to_str().expect("OUT_DIR is UTF-8"))
        .file(root.join("src/glue/glue.c"))
        .compile("mrconn_glue");
    track_headers(&h, &depfile);
    let mut send = h.cc();
    if !hiredis_verified(&root, &h.hiredis, !send_via_hiredis()) {
        send.define("MRCONN_SEND_VIA_HIREDIS", None);
    }
    let depfile = out.join("send.d");
    send.flag("-MD")
        .flag("-MF")
        .flag(depfile.to_str().expect("OUT_DIR is UTF-8"))
        .file(root.join("src/glue/send.c"))
        .compile("mrconn_send");
    track_headers(&h, &depfile);

    bind(
        &h,
        &out,
        "hiredis.rs",
        &["hiredis/async.h"],
        true,
        &[
            "redisAsyncContext",
            "redisContext",
            "redisReply",
            "redisOptions",
            "redisCallback",
            "redisCallbackList",
            "redisCallbackFn",
            "redisAsyncConnectWithOptions",
            "redisAsyncSetConnectCallback",
            "redisAsyncSetDisconnectCallback",
            "redisAsyncCommandArgv",
            "redisAsyncFree",
            "redisAsyncHandleRead",
            "redisAsyncHandleWrite",
            "redisAsyncHandleTimeout",
            "redisFormatSdsCommandArgv",
            "sdsfree",
            "REDIS_OK",
            "REDIS_ERR",
            "REDIS_OPT_NOAUTOFREEREPLIES",
            "REDIS_CONN_TCP",
            "REDIS_DISCONNECTING",
            "REDIS_IN_CALLBACK",
            "REDIS_SUBSCRIBED",
            "REDIS_NO_AUTO_FREE_REPLIES",
        ],
    );
    bind(
        &h,
        &out,
        "hiredis_ssl.rs",
        &["hiredis/hiredis.h", "hiredis/hiredis_ssl.h"],
        false,
        &[
            "redisInitiateSSL",
            "redisSSLContextGetError",
            "redisSSLContextError",
        ],
    );
    bind(
        &h,
        &out,
        "uv.rs",
        &["uv.h"],
        true,
        &[
            "uv_loop_t",
            "uv_handle_t",
            "uv_poll_t",
            "uv_timer_t",
            "uv_idle_t",
            "uv_idle_init",
            "uv_idle_start",
            "uv_idle_stop",
            "uv_poll_init",
            "uv_poll_start",
            "uv_poll_stop",
            "uv_timer_init",
            "uv_timer_start",
            "uv_timer_stop",
            "uv_close",
            "uv_update_time",
            "uv_poll_event",
            "UV_READABLE",
            "UV_WRITABLE",
        ],
    );
    bind(
        &h,
        &out,
        "openssl.rs",
        &["openssl/ssl.h"],
        true,
        &[
            "SSL_CTX_new",
            "TLS_client_method",
            "SSL_CTX_set_options",
            "SSL_CTX_set_verify",
            "SSL_CTX_set_default_passwd_cb",
            "SSL_CTX_set_default_passwd_cb_userdata",
            "SSL_CTX_load_verify_locations",
            "SSL_CTX_use_certificate_chain_file",
            "SSL_CTX_use_PrivateKey_file",
            "SSL_CTX_free",
            "SSL_new",
            "SSL_free",
        ],
    );
}
