//! TLS for a fresh connection, from the Redis config: certificate, key, CA,
//! and the key's passphrase, with peer verification on.
//!
//! Which connections use TLS depends on the RediSearch line (CONTRACT §4):
//! master asks the endpoint (`isTls`) and treats missing files as an error;
//! v8.8.0 asks `tls-cluster`/`tls-port` and falls back to plain TCP when a
//! file setting is missing. build.rs tells which from the host's headers.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::host::{ConfigString, Gil, Level, MREndpoint, hlog};
use crate::sys::errstr;
use crate::sys::glue::{mrconn_ssl_ctx_options, mrconn_ssl_filetype_pem, mrconn_ssl_verify_peer};
use crate::sys::hiredis::{
    REDIS_OK, REDIS_SSL_CTX_CA_CERT_LOAD_FAILED, REDIS_SSL_CTX_CLIENT_CERT_LOAD_FAILED,
    REDIS_SSL_CTX_CREATE_FAILED, REDIS_SSL_CTX_PRIVATE_KEY_LOAD_FAILED, redisContext,
    redisInitiateSSL, redisSSLContextGetError,
};
use crate::sys::openssl::{
    SSL_CTX, SSL_CTX_free, SSL_CTX_load_verify_locations, SSL_CTX_new,
    SSL_CTX_set_default_passwd_cb, SSL_CTX_set_default_passwd_cb_userdata, SSL_CTX_set_options,
    SSL_CTX_set_verify, SSL_CTX_use_PrivateKey_file, SSL_CTX_use_certificate_chain_file, SSL_free,
    SSL_new, TLS_client_method,
};

/// `redisSSLContextError` codes, for the log line. Taken from the bindgen'd
/// hiredis header, not written by hand: the enum has members between these
/// (CERT_KEY_REQUIRED, CLIENT_DEFAULT_CERT_FAILED), and hand-numbered codes
/// made `redisSSLContextGetError` print the message of a different failure
/// (an unreadable key was logged as "Failed to load client certificate").
const CTX_CREATE_FAILED: u32 = REDIS_SSL_CTX_CREATE_FAILED;
const CA_CERT_LOAD_FAILED: u32 = REDIS_SSL_CTX_CA_CERT_LOAD_FAILED;
const CLIENT_CERT_LOAD_FAILED: u32 = REDIS_SSL_CTX_CLIENT_CERT_LOAD_FAILED;
const PRIVATE_KEY_LOAD_FAILED: u32 = REDIS_SSL_CTX_PRIVATE_KEY_LOAD_FAILED;

struct Files {
    key: ConfigString,
    cert: ConfigString,
    ca: ConfigString,
    pass: Option<ConfigString>,
}

/// The TLS files, or `None` when one of key, certificate or CA is unset.
fn read_files(gil: &Gil) -> Option<Files> {
    Some(Files {
        key: gil.config_value(c"tls-key-file")?,
        cert: gil.config_value(c"tls-cert-file")?,
        ca: gil.config_value(c"tls-ca-cert-file")?,
        pass: gil.config_value(c"tls-key-file-pass"),
    })
}

/// What the configuration asks of this connection: `Ok(None)` for plain TCP.
#[cfg(mrconn_endpoint_tls)]
fn wanted(ep: &MREndpoint) -> Result<Option<Files>, ()> {
    if !ep.is_tls() {
        return Ok(None);
    }
    let gil = Gil::lock();
    read_files(&gil).map(Some).ok_or(())
}

/// What the configuration asks of this connection: `Ok(None)` for plain TCP.
#[cfg(not(mrconn_endpoint_tls))]
fn wanted(_ep: &MREndpoint) -> Result<Option<Files>, ()> {
    let gil = Gil::lock();
    if !gil.config_bool(c"tls-cluster", false) && gil.config_numeric(c"tls-port", 0) == 0 {
        return Ok(None);
    }
    Ok(read_files(&gil))
}

/// When the missing TLS files were last reported.
static MISSING_FILES_LOGGED: Throttle = Throttle::new(Duration::from_secs(60));

/// Lets an event through at most once per period, across threads.
struct Throttle {
    period: Duration,
    last: Mutex<Option<Instant>>,
}

impl Throttle {
    const fn new(period: Duration) -> Throttle {
        Throttle {
            period,
            last: Mutex::new(None),
        }
    }

    /// Whether an event at `now` goes through (and then counts as the last).
    fn due(&self, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        mrconn_core::throttle::due(&mut last, now, self.period)
    }
}

/// Starts TLS on `link`, a connection to `ep` just connected, when the
/// configuration asks for it. `Err` sends the connection back to
/// `Reconnecting`; why is logged through `warn` (conn.c's lines, which the
/// connection sums per node), or, for missing files, once a minute with
/// `tag`.
pub fn initiate(
    link: &mut redisContext,
    ep: &MREndpoint,
    tag: &dyn fmt::Display,
    warn: &dyn Fn(fmt::Arguments<'_>),
) -> Result<(), ()> {
    let files = match wanted(ep) {
        Ok(None) => return Ok(()),
        Ok(Some(files)) => files,
        Err(()) => {
            // conn.c fails here silently, every 250 ms per connection; the
            // files are one Redis setting, so once a minute says it all.
            if MISSING_FILES_LOGGED.due(Instant::now()) {
                hlog!(
                    Level::Warning,
                    "{} Error on ssl context creation: tls-cert-file, tls-key-file and tls-ca-cert-file must all be set (reported once a minute)",
                    tag
                );
            }
            return Err(());
        }
    };
    let ctx = match context(&files) {
        Ok(ctx) => ctx,
        Err(code) => {
            // SAFETY: hiredis maps any code to a static string.
            let text = unsafe { redisSSLContextGetError(code) };
            // SAFETY: as above: NUL-terminated and static.
            let why = unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned();
            warn(format_args!("Error on ssl context creation: {why}"));
            return Err(());
        }
    };
    drop(files);
    // SAFETY: `ctx` is a valid context.
    let ssl = unsafe { SSL_new(ctx.as_ptr()) };
    // SAFETY: the SSL object, if any, holds its own reference to `ctx`.
    unsafe { SSL_CTX_free(ctx.as_ptr()) };
    if ssl.is_null() {
        warn(format_args!("Error creating SSL object"));
        return Err(());
    }
    // SAFETY: hiredis takes `ssl` on success.
    let rc = unsafe { redisInitiateSSL(link, ssl.cast()) };
    if rc != REDIS_OK as c_int {
        let why = if link.err != 0 {
            errstr(link)
        } else {
            "Unknown error".to_owned()
        };
        warn(format_args!("Error on tls auth, {why}."));
        // SAFETY: hiredis did not take `ssl`.
        unsafe { SSL_free(ssl) };
        return Err(());
    }
    Ok(())
}

/// Frees an `SSL_CTX` unless disarmed.
struct CtxGuard(NonNull<SSL_CTX>);

impl Drop for CtxGuard {
    fn drop(&mut self) {
        // SAFETY: the guard owns one reference.
        unsafe { SSL_CTX_free(self.0.as_ptr()) };
    }
}

/// A client context for `files`, or the `redisSSLContextError` code.
fn context(files: &Files) -> Result<NonNull<SSL_CTX>, u32> {
    // SAFETY: a plain OpenSSL call returning a static method table.
    let method = unsafe { TLS_client_method() };
    // SAFETY: `method` is valid.
    let ctx = unsafe { SSL_CTX_new(method) };
    let guard = CtxGuard(NonNull::new(ctx).ok_or(CTX_CREATE_FAILED)?);
    let pass: Option<&[u8]> = files.pass.as_ref().map(ConfigString::bytes);
    // SAFETY: `ctx` is valid.
    unsafe { SSL_CTX_set_options(ctx, mrconn_ssl_ctx_options) };
    // SAFETY: as above.
    unsafe { SSL_CTX_set_verify(ctx, mrconn_ssl_verify_peer, None) };
    // Always set the callback: without one OpenSSL prompts on stdin for an
    // encrypted key.
    // SAFETY: as above.
    unsafe { SSL_CTX_set_default_passwd_cb(ctx, Some(passphrase)) };
    // SAFETY: `pass` outlives every use: the callback runs only inside
    // SSL_CTX_use_PrivateKey_file below, and the pointer is cleared after it.
    unsafe { SSL_CTX_set_default_passwd_cb_userdata(ctx, ptr::from_ref(&pass).cast_mut().cast()) };
    // SAFETY: `ctx` is valid; the paths are NUL-terminated config strings.
    let ok = unsafe { SSL_CTX_load_verify_locations(ctx, files.ca.as_ptr(), ptr::null()) } == 1;
    if !ok {
        return Err(CA_CERT_LOAD_FAILED);
    }
    // SAFETY: as above.
    if unsafe { SSL_CTX_use_certificate_chain_file(ctx, files.cert.as_ptr()) } != 1 {
        return Err(CLIENT_CERT_LOAD_FAILED);
    }
    // SAFETY: as above.
    let key_ok =
        unsafe { SSL_CTX_use_PrivateKey_file(ctx, files.key.as_ptr(), mrconn_ssl_filetype_pem) }
            == 1;
    // SAFETY: `ctx` is valid; clears the pointer to the local `pass`.
    unsafe { SSL_CTX_set_default_passwd_cb_userdata(ctx, ptr::null_mut()) };
    if !key_ok {
        return Err(PRIVATE_KEY_LOAD_FAILED);
    }
    let ctx = guard.0;
    std::mem::forget(guard);
    Ok(ctx)
}

/// OpenSSL's passphrase callback; `u` points at an `Option<&[u8]>`.
unsafe extern "C" fn passphrase(
    buf: *mut c_char,
    size: c_int,
    _rwflag: c_int,
    u: *mut c_void,
) -> c_int {
    if u.is_null() {
        return -1;
    }
    // SAFETY: `context` set `u` to its live `Option<&[u8]>`.
    let Some(pass) = (unsafe { *u.cast::<Option<&[u8]>>() }) else {
        return -1;
    };
    if pass.len() > usize::try_from(size).unwrap_or(0) {
        return -1;
    }
    // SAFETY: OpenSSL gives `size` writable bytes at `buf`; we write at most that.
    unsafe { ptr::copy_nonoverlapping(pass.as_ptr(), buf.cast::<u8>(), pass.len()) };
    pass.len() as c_int
}
