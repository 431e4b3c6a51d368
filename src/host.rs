//! Everything the library takes from its host, RediSearch (CONTRACT §6), and
//! nothing else: the C declarations, the types they use, and thin wrappers
//! that turn them into Rust calls. No other module declares a host symbol.
//!
//! Each declaration's type is checked against the host's real header by the C
//! compiler (`src/glue/glue.c`), and each layout by build.rs.

#[expect(
    non_snake_case,
    dead_code,
    reason = "RediSearch's C names; the library reads only some fields, and layouts() serves build.rs"
)]
mod types;

use std::ffi::{CStr, CString, c_char, c_int, c_long, c_void};
use std::ptr::{self, NonNull};

pub use types::{MRCommand, MREndpoint, SearchClusterConfig, dict, dictEntry, dictType};

impl MREndpoint {
    /// The host string, for hiredis's connect options.
    pub fn host_ptr(&self) -> *const c_char {
        self.host
    }

    /// Whether it asks for TLS (master's endpoints).
    #[cfg(mrconn_endpoint_tls)]
    pub fn is_tls(&self) -> bool {
        self.isTls
    }
}

impl MRCommand {
    /// The formatted command, an sds; NULL before it is formatted.
    #[inline(always)]
    pub fn sds(&self) -> *mut c_char {
        self.cmd
    }

    /// Where the formatted command is stored.
    pub fn sds_slot(&mut self) -> &mut *mut c_char {
        &mut self.cmd
    }

    /// The RESP version it asks for (0: any).
    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    /// Its arguments: how many, their strings and their lengths.
    pub fn args(&self) -> (u32, *mut *mut c_char, *mut usize) {
        (self.num, self.strs, self.lens)
    }
}

impl dict {
    /// The dict's `privdata`.
    pub fn privdata(&self) -> *mut c_void {
        self.privdata
    }

    /// The dict's type.
    pub fn dict_type(&self) -> *mut dictType {
        self.type_
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        (self.ht[0].used + self.ht[1].used) as usize
    }
}

impl dictEntry {
    /// The key.
    pub fn key(&self) -> *mut c_void {
        self.key
    }

    /// The value, as its `void *val` member.
    pub fn val(&self) -> *mut c_void {
        self.v
    }

    /// Sets the value, as `dictSetVal` without a duplicator.
    ///
    /// # Safety
    /// 1. `v` is a value of the entry's dict (its value destructor frees it).
    pub unsafe fn set_val(&mut self, v: *mut c_void) {
        self.v = v;
    }
}

/// An endpoint of the library's own: a copy made by `MREndpoint_Copy`, so
/// its strings are NUL-terminated or NULL, freed with it.
pub struct Endpoint(MREndpoint);

impl Endpoint {
    /// A copy of `ep`.
    ///
    /// # Safety
    /// 1. `ep` is a valid endpoint: its strings NUL-terminated or NULL.
    pub unsafe fn copy(ep: &MREndpoint) -> Endpoint {
        let mut copy = MREndpoint {
            host: ptr::null_mut(),
            port: 0,
            #[cfg(mrconn_endpoint_tls)]
            isTls: false,
            unixSock: ptr::null_mut(),
            password: ptr::null_mut(),
        };
        // SAFETY: 1.; the copy's strings are ours, freed in Drop.
        unsafe { MREndpoint_Copy(&mut copy, ep) };
        Endpoint(copy)
    }

    /// The C struct, for hiredis and the host.
    pub fn raw(&self) -> &MREndpoint {
        &self.0
    }

    /// The host, for log lines.
    pub fn host_str(&self) -> std::borrow::Cow<'_, str> {
        match self.host() {
            Some(host) => host.to_string_lossy(),
            None => "(null)".into(),
        }
    }

    /// The host.
    pub fn host(&self) -> Option<&CStr> {
        // SAFETY: a copy's strings are NUL-terminated or NULL, and live as
        // long as it does.
        NonNull::new(self.0.host).map(|h| unsafe { CStr::from_ptr(h.as_ptr()) })
    }

    /// The port.
    pub fn port(&self) -> c_int {
        self.0.port
    }

    /// Whether it equals `other`, without copying it first.
    ///
    /// # Safety
    /// 1. `other` is a valid endpoint: its strings NUL-terminated or NULL.
    pub unsafe fn equals(&self, other: &MREndpoint) -> bool {
        // SAFETY: 1.; ours is a valid copy.
        unsafe { MREndpoint_Equal(&self.0, other) }
    }

    /// The password, if any.
    pub fn password(&self) -> Option<&CStr> {
        // SAFETY: as in `host`.
        NonNull::new(self.0.password).map(|p| unsafe { CStr::from_ptr(p.as_ptr()) })
    }
}

impl Clone for Endpoint {
    fn clone(&self) -> Endpoint {
        // SAFETY: a copy is a valid endpoint.
        unsafe { Endpoint::copy(&self.0) }
    }
}

impl PartialEq for Endpoint {
    fn eq(&self, other: &Endpoint) -> bool {
        // SAFETY: both are valid endpoints.
        unsafe { MREndpoint_Equal(&self.0, &other.0) }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // SAFETY: made by MREndpoint_Copy and freed once, here.
        unsafe { MREndpoint_Free(&mut self.0) };
    }
}

/// `RedisModuleCtx`, opaque.
#[repr(C)]
pub struct RedisModuleCtx {
    _opaque: [u8; 0],
}

/// `RedisModuleString`, opaque.
#[repr(C)]
pub struct RedisModuleString {
    _opaque: [u8; 0],
}

type LogFn =
    unsafe extern "C" fn(ctx: *mut RedisModuleCtx, level: *const c_char, fmt: *const c_char, ...);

unsafe extern "C" {
    pub static mut RedisModule_Alloc: Option<unsafe extern "C" fn(bytes: usize) -> *mut c_void>;
    pub static mut RedisModule_Calloc:
        Option<unsafe extern "C" fn(n: usize, size: usize) -> *mut c_void>;
    pub static mut RedisModule_Realloc:
        Option<unsafe extern "C" fn(ptr: *mut c_void, bytes: usize) -> *mut c_void>;
    pub static mut RedisModule_Free: Option<unsafe extern "C" fn(ptr: *mut c_void)>;
    pub static mut RedisModule_Strdup:
        Option<unsafe extern "C" fn(s: *const c_char) -> *mut c_char>;
    static mut RedisModule_Log: Option<LogFn>;
    static mut RedisModule_ReplyWithMap:
        Option<unsafe extern "C" fn(ctx: *mut RedisModuleCtx, len: c_long) -> c_int>;
    static mut RedisModule_ReplyWithArray:
        Option<unsafe extern "C" fn(ctx: *mut RedisModuleCtx, len: c_long) -> c_int>;
    static mut RedisModule_ReplyWithCString:
        Option<unsafe extern "C" fn(ctx: *mut RedisModuleCtx, s: *const c_char) -> c_int>;
    static mut RedisModule_ThreadSafeContextLock:
        Option<unsafe extern "C" fn(ctx: *mut RedisModuleCtx)>;
    static mut RedisModule_ThreadSafeContextUnlock:
        Option<unsafe extern "C" fn(ctx: *mut RedisModuleCtx)>;
    static mut RedisModule_GetInternalSecret:
        Option<unsafe extern "C" fn(ctx: *mut RedisModuleCtx, len: *mut usize) -> *const c_char>;
    static mut RedisModule_StringPtrLen:
        Option<unsafe extern "C" fn(s: *const RedisModuleString, len: *mut usize) -> *const c_char>;
    static mut RedisModule_FreeString:
        Option<unsafe extern "C" fn(ctx: *mut RedisModuleCtx, s: *mut RedisModuleString)>;
    static mut RSDummyContext: *mut RedisModuleCtx;
    /// Written by RediSearch when its config changes (hence `mut`).
    static mut clusterConfig: SearchClusterConfig;

    pub fn RS_dictCreate(type_: *mut dictType, privdata: *mut c_void) -> *mut dict;
    pub fn RS_dictFind(d: *mut dict, key: *const c_void) -> *mut dictEntry;
    pub fn RS_dictReplace(d: *mut dict, key: *mut c_void, val: *mut c_void) -> c_int;
    pub fn RS_dictDelete(d: *mut dict, key: *const c_void) -> c_int;
    pub fn RS_dictRelease(d: *mut dict);
    pub fn RS_dictGetIterator(d: *mut dict) -> *mut c_void;
    pub fn RS_dictNext(it: *mut c_void) -> *mut dictEntry;
    pub fn RS_dictReleaseIterator(it: *mut c_void);
    pub fn RS_dictAddOrFind(d: *mut dict, key: *mut c_void) -> *mut dictEntry;
    pub fn stringsHashFunction(key: *const c_void) -> u64;
    pub fn stringsKeyDup(privdata: *mut c_void, key: *const c_void) -> *mut c_void;
    pub fn stringsKeyCompare(privdata: *mut c_void, k1: *const c_void, k2: *const c_void) -> c_int;
    pub fn stringsKeyDestructor(privdata: *mut c_void, key: *mut c_void);

    pub fn array_new_sz(elem_sz: u16, remain_cap: u16, len: u32) -> *mut c_void;
    pub fn array_ensure_append_n_func(
        arr: *mut c_void,
        src: *mut c_void,
        n: u16,
        elem_sz: u16,
    ) -> *mut c_void;
    pub fn array_len_func(arr: *mut c_void) -> u32;

    fn MREndpoint_Copy(dst: *mut MREndpoint, src: *const MREndpoint);
    fn MREndpoint_Free(ep: *mut MREndpoint);
    fn MREndpoint_Equal(a: *const MREndpoint, b: *const MREndpoint) -> bool;

    pub fn MRReply_Type(reply: *const c_void) -> c_int;
    pub fn MRReply_String(reply: *const c_void, len: *mut usize) -> *const c_char;
    pub fn MRReply_Free(reply: *mut c_void);
    fn MRReply_CreateError(msg: *const c_char, len: usize) -> *mut c_void;

    pub safe fn IsEnterprise() -> bool;
    fn getRedisConfigValue(ctx: *mut RedisModuleCtx, name: *const c_char)
    -> *mut RedisModuleString;
    #[cfg(not(mrconn_endpoint_tls))]
    fn getRedisConfigBool(ctx: *mut RedisModuleCtx, name: *const c_char, default: bool) -> bool;
    #[cfg(not(mrconn_endpoint_tls))]
    fn getRedisConfigNumeric(ctx: *mut RedisModuleCtx, name: *const c_char, default: i64) -> i64;
}

/// The levels of `RedisModule_Log` that conn.c uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// State switches.
    Debug,
    /// Resizes and drains.
    Notice,
    /// Failures.
    Warning,
}

impl Level {
    fn as_cstr(self) -> &'static CStr {
        match self {
            Level::Debug => c"debug",
            Level::Notice => c"notice",
            Level::Warning => c"warning",
        }
    }
}

/// Logs `msg` through `RedisModule_Log` on `RSDummyContext`. A message
/// holding a NUL byte is cut there.
pub fn log(level: Level, msg: &str) {
    // SAFETY: a plain read of a pointer-sized global the host initialises
    // before loading any code of ours (CONTRACT §6).
    let log = unsafe { RedisModule_Log };
    let Some(log) = log else { return };
    let text = CString::new(msg).unwrap_or_else(|e| {
        let end = e.nul_position();
        CString::new(&msg.as_bytes()[..end]).unwrap_or_default()
    });
    // SAFETY: as above.
    let ctx = unsafe { RSDummyContext };
    // SAFETY: `log` is the host's logger; "%s" consumes exactly the one
    // NUL-terminated string passed, which outlives the call.
    unsafe { log(ctx, level.as_cstr().as_ptr(), c"%s".as_ptr(), text.as_ptr()) };
}

/// Logs a formatted message: `hlog!(Level::Notice, "x {}", y)`.
macro_rules! hlog {
    ($level:expr, $($arg:tt)*) => {
        $crate::host::log($level, &format!($($arg)*))
    };
}
pub(crate) use hlog;

/// The configured connect timeout, `None` when it is {0, 0}.
pub fn connect_timeout() -> Option<types::timeval> {
    // SAFETY: a host global that lives for the whole process, read by
    // value as conn.c reads it (RediSearch changes it under the GIL, and a
    // torn read can only yield an old or new timeout).
    let config = &raw const clusterConfig;
    // SAFETY: as above.
    let tv = unsafe { (*config).connectTimeout };
    (tv.tv_sec != 0 || tv.tv_usec != 0).then_some(tv)
}

/// Holds the host's global lock (the GIL) while alive.
pub struct Gil(*mut RedisModuleCtx);

impl Gil {
    /// Takes the lock.
    pub fn lock() -> Gil {
        // SAFETY: plain reads of host globals set at module load.
        let ctx = unsafe { RSDummyContext };
        // SAFETY: as above.
        if let Some(lock) = unsafe { RedisModule_ThreadSafeContextLock } {
            // SAFETY: the host's lock function on the host's own context.
            unsafe { lock(ctx) };
        }
        Gil(ctx)
    }

    /// The internal secret of the cluster, copied (it is binary-safe).
    pub fn internal_secret(&self) -> Secret {
        // SAFETY: plain read of a host global set at module load.
        let Some(get) = (unsafe { RedisModule_GetInternalSecret }) else {
            return Secret(Vec::new());
        };
        let mut len = 0usize;
        // SAFETY: the lock is held (self exists); `len` is a valid out pointer.
        let p = unsafe { get(self.0, &mut len) };
        if p.is_null() {
            return Secret(Vec::new());
        }
        // SAFETY: the host returns `len` readable bytes at `p`, valid while
        // the lock is held, and we copy them before it is released.
        Secret(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }.to_vec())
    }

    /// A Redis config value, as an owned string; `None` when unset.
    pub fn config_value(&self, name: &CStr) -> Option<ConfigString> {
        // SAFETY: the lock is held; `name` is NUL-terminated.
        let s = unsafe { getRedisConfigValue(self.0, name.as_ptr()) };
        NonNull::new(s).map(|s| ConfigString { ctx: self.0, s })
    }

    /// A boolean Redis config value (v8.8.0's TLS switch).
    #[cfg(not(mrconn_endpoint_tls))]
    pub fn config_bool(&self, name: &CStr, default: bool) -> bool {
        // SAFETY: the lock is held; `name` is NUL-terminated.
        unsafe { getRedisConfigBool(self.0, name.as_ptr(), default) }
    }

    /// A numeric Redis config value (v8.8.0's TLS switch).
    #[cfg(not(mrconn_endpoint_tls))]
    pub fn config_numeric(&self, name: &CStr, default: i64) -> i64 {
        // SAFETY: the lock is held; `name` is NUL-terminated.
        unsafe { getRedisConfigNumeric(self.0, name.as_ptr(), default) }
    }
}

impl Drop for Gil {
    fn drop(&mut self) {
        // SAFETY: plain read of a host global set at module load.
        if let Some(unlock) = unsafe { RedisModule_ThreadSafeContextUnlock } {
            // SAFETY: we took this lock in `Gil::lock`.
            unsafe { unlock(self.0) };
        }
    }
}

/// A copy of the internal secret, wiped when dropped.
pub struct Secret(Vec<u8>);

impl std::ops::Deref for Secret {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        for b in &mut self.0 {
            // SAFETY: `b` is a valid, exclusive byte; volatile so the wipe
            // is not optimised away before the free.
            unsafe { ptr::write_volatile(b, 0) };
        }
    }
}

/// A `RedisModuleString` returned by the host, freed on drop.
pub struct ConfigString {
    ctx: *mut RedisModuleCtx,
    s: NonNull<RedisModuleString>,
}

impl ConfigString {
    /// The value as a C string (Redis keeps these NUL-terminated).
    pub fn as_ptr(&self) -> *const c_char {
        // SAFETY: plain read of a host global set at module load.
        let Some(ptr_len) = (unsafe { RedisModule_StringPtrLen }) else {
            return std::ptr::null();
        };
        // SAFETY: `s` is a live string from the host; a NULL length pointer is allowed.
        unsafe { ptr_len(self.s.as_ptr(), std::ptr::null_mut()) }
    }

    /// The value's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: plain read of a host global set at module load.
        let Some(ptr_len) = (unsafe { RedisModule_StringPtrLen }) else {
            return &[];
        };
        let mut len = 0usize;
        // SAFETY: `s` is a live string from the host; `len` is a valid out pointer.
        let p = unsafe { ptr_len(self.s.as_ptr(), &mut len) };
        if p.is_null() {
            return &[];
        }
        // SAFETY: the host guarantees `len` bytes at `p` while `s` lives,
        // and the slice borrows `self`.
        unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }
    }
}

impl Drop for ConfigString {
    fn drop(&mut self) {
        // SAFETY: plain read of a host global set at module load.
        if let Some(free) = unsafe { RedisModule_FreeString } {
            // SAFETY: we own `s`, returned by `getRedisConfigValue`.
            unsafe { free(self.ctx, self.s.as_ptr()) };
        }
    }
}

/// Replies to the client of a reply context, for `MRConnManager_ReplyState`.
pub struct Reply(NonNull<RedisModuleCtx>);

impl Reply {
    /// Replies through `ctx`.
    ///
    /// # Safety
    /// 1. `ctx` is a context the host can reply to, for as long as the
    ///    `Reply` lives.
    pub unsafe fn new(ctx: NonNull<RedisModuleCtx>) -> Reply {
        Reply(ctx)
    }

    /// Starts a map of `len` pairs.
    pub fn map(&self, len: usize) {
        // SAFETY: plain read of a host global set at module load.
        if let Some(f) = unsafe { RedisModule_ReplyWithMap } {
            // SAFETY: `self.0` is a reply context (`new`'s contract 1.).
            unsafe { f(self.0.as_ptr(), len as c_long) };
        }
    }

    /// Starts an array of `len` elements.
    pub fn array(&self, len: usize) {
        // SAFETY: plain read of a host global set at module load.
        if let Some(f) = unsafe { RedisModule_ReplyWithArray } {
            // SAFETY: `self.0` is a reply context (`new`'s contract 1.).
            unsafe { f(self.0.as_ptr(), len as c_long) };
        }
    }

    /// Adds a string.
    pub fn cstring(&self, s: &CStr) {
        // SAFETY: plain read of a host global set at module load.
        if let Some(f) = unsafe { RedisModule_ReplyWithCString } {
            // SAFETY: `self.0` is a reply context (`new`'s contract 1.); a
            // CStr is NUL-terminated.
            unsafe { f(self.0.as_ptr(), s.as_ptr()) };
        }
    }
}

/// A new `REDIS_REPLY_ERROR` reply of `text` (not empty), for a callback to
/// own and free with `MRReply_Free`.
pub fn error_reply(text: &str) -> *mut c_void {
    debug_assert!(!text.is_empty(), "MRReply_CreateError asserts a length");
    // SAFETY: `text` is `len` readable bytes; the host copies them.
    unsafe { MRReply_CreateError(text.as_ptr().cast(), text.len()) }
}

/// An allocator-owned copy of `s`, for memory RediSearch frees.
pub fn strdup(s: &CStr) -> *mut c_char {
    // SAFETY: plain read of a host global set at module load.
    match unsafe { RedisModule_Strdup } {
        // SAFETY: `s` is NUL-terminated.
        Some(dup) => unsafe { dup(s.as_ptr()) },
        None => std::ptr::null_mut(),
    }
}
