//! The C ABI: the eleven functions of RediSearch's `conn.h`, and the drain
//! controls beyond it. Each function checks and converts its arguments, then
//! hands over to the module that does the work. Bad input is logged and gets
//! a defined result.
//!
//! Panics abort (`panic = "abort"`, as RediSearch's own Rust code, which
//! cannot unwind into C either): a panic here is a bug, and unwinding out of
//! a half-done operation would leave connections neither in a pool nor
//! draining. The first `MRConnManager_Init` installs a hook that logs the
//! panic through `RedisModule_Log` before the abort.

#![expect(non_snake_case, non_camel_case_types, reason = "the C names of conn.h")]

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr::{self, NonNull};
use std::sync::Once;

use mrconn_core::{DrainStats, Pick};

use crate::conn::MRConn;
use crate::host::{Level, MRCommand, MREndpoint, RedisModuleCtx, Reply, dict, hlog};
use crate::manager::{self, MRConnManager};
use crate::sys::hiredis::{REDIS_ERR, REDIS_OK, redisCallbackFn};
use crate::sys::uv::uv_loop_t;
use crate::{drain, reentry, resize};

/// The state of a connection (`conn.h`).
#[expect(dead_code, reason = "C sees it through the generated header only")]
#[expect(clippy::enum_variant_names, reason = "the C names of conn.h")]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MRConnState {
    /// TCP (and TLS) handshake in flight.
    MRConn_Connecting = 0,
    /// Back-off before retrying the connect.
    MRConn_Reconnecting = 1,
    /// `AUTH` in flight.
    MRConn_Authenticating = 2,
    /// Back-off before retrying a rejected `AUTH`.
    MRConn_ReAuth = 3,
    /// Connected, authenticated and active.
    MRConn_Connected = 4,
    /// Being freed.
    MRConn_Freeing = 5,
}

/// The RESP version of a connection; the value is `HELLO`'s argument (`conn.h`).
#[expect(dead_code, reason = "C sees it through the generated header only")]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MRConnProtocol {
    /// Not chosen yet.
    MRConn_Protocol_Undetermined = 0,
    /// RESP2.
    MRConn_Protocol_RESP2 = 2,
    /// RESP3.
    MRConn_Protocol_RESP3 = 3,
}

/// Drain statistics of one manager, for operators and tests.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct MRConnDrainStats {
    /// Connections draining now.
    pub draining: u64,
    /// Drains that delivered every pending reply, then closed.
    pub graceful: u64,
    /// Drains closed by their deadline or by shutdown.
    pub forced: u64,
    /// Drains ended by a broken link.
    pub broken: u64,
    /// Draining connections taken back by `Expand` or `Add`.
    pub reclaimed: u64,
    /// Callbacks of draining connections that got no reply from their shard:
    /// an error reply when the drain was forced, NULL when the link broke.
    pub failedCallbacks: u64,
    /// Connections still to open, to sort (idle or draining) or to close on
    /// the loop, a slice per iteration, after a resize or topology change.
    pub queued: u64,
}

impl From<DrainStats> for MRConnDrainStats {
    fn from(s: DrainStats) -> Self {
        MRConnDrainStats {
            draining: s.draining,
            graceful: s.graceful,
            forced: s.forced,
            broken: s.broken,
            reclaimed: s.reclaimed,
            failedCallbacks: s.failed_callbacks,
            queued: 0,
        }
    }
}

/// Pools are capped at this size (with a warning): a typo in a size must not
/// open millions of sockets.
const MAX_POOL_SIZE: u32 = 4096;

/// `MRConnManager_SetDrainTimeout(MRCONN_DRAIN_TIMEOUT_DEFAULT)` restores the
/// default drain deadline, derived from RediSearch's query timeout and
/// timeout policy.
pub const MRCONN_DRAIN_TIMEOUT_DEFAULT: u32 = 0xFFFF_FFFF;
const _: () = assert!(MRCONN_DRAIN_TIMEOUT_DEFAULT == drain::TIMEOUT_DEFAULT);

/// Logs a panic through the host before the abort that follows it.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            hlog!(Level::Warning, "mrconn: internal error, aborting: {info}");
        }));
    });
}

/// The live manager behind `mgr` for the call `name`, or a logged `None`.
///
/// # Safety
/// 1. `mgr` is NULL or points to a valid `MRConnManager`, used by nobody else
///    for the call's duration.
#[inline(always)]
unsafe fn live<'a>(name: &'static str, mgr: Option<NonNull<MRConnManager>>) -> Option<Entered<'a>> {
    reentry::check(name);
    let Some(mgr) = mgr else {
        log_not_live(name, false);
        return None;
    };
    // SAFETY: 1.
    let mgr = unsafe { &mut *mgr.as_ptr() };
    if mgr.map().is_none() {
        log_not_live(name, true);
        return None;
    }
    Some(Entered {
        mgr,
        _frame: reentry::Borrow::manager(name),
    })
}

/// A manager in use by an export: no user callback runs meanwhile (checked
/// by the re-entrancy guard in debug builds).
struct Entered<'a> {
    mgr: &'a mut MRConnManager,
    _frame: reentry::Borrow,
}

impl std::ops::Deref for Entered<'_> {
    type Target = MRConnManager;
    fn deref(&self) -> &MRConnManager {
        self.mgr
    }
}

impl std::ops::DerefMut for Entered<'_> {
    fn deref_mut(&mut self) -> &mut MRConnManager {
        self.mgr
    }
}

/// Out of line, so that the exports' hot paths carry none of it.
#[cold]
#[inline(never)]
fn log_not_live(name: &str, non_null: bool) {
    if non_null {
        hlog!(
            Level::Warning,
            "{name}: connection manager not initialised or already shut down"
        );
    } else {
        hlog!(Level::Warning, "{name}: NULL connection manager");
    }
}

/// A warning of a refused call, out of line: the hot paths carry none of it.
#[cold]
#[inline(never)]
fn log_refused(msg: &str) {
    crate::host::log(Level::Warning, msg);
}

/// The node id, or a logged `None`.
///
/// # Safety
/// `id` is NULL or a NUL-terminated string.
unsafe fn node_id<'a>(name: &str, id: *const c_char) -> Option<&'a CStr> {
    if id.is_null() {
        hlog!(Level::Warning, "{name}: NULL node id");
        return None;
    }
    // SAFETY: caller's guarantee.
    Some(unsafe { CStr::from_ptr(id) })
}

/// Makes `mgr` an empty manager of `nodeConns` connections per node.
///
/// # Safety
/// 1. `mgr` is NULL or points to writable memory for an `MRConnManager`.
/// 2. The host's allocator and dict functions are ready.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MRConnManager_Init(mgr: Option<NonNull<MRConnManager>>, nodeConns: c_int) {
    install_panic_hook();
    reentry::check("MRConnManager_Init");
    let Some(mgr) = mgr else {
        hlog!(
            Level::Warning,
            "MRConnManager_Init: NULL connection manager"
        );
        return;
    };
    let size = nodeConns.clamp(0, MAX_POOL_SIZE as c_int);
    if size != nodeConns {
        hlog!(
            Level::Warning,
            "MRConnManager_Init: pool size {nodeConns} out of 0..={MAX_POOL_SIZE}, using {size}"
        );
    }
    // SAFETY: 1.; memory the caller hands over, maybe uninitialised.
    unsafe { mgr.write(MRConnManager::new(size)) };
}

/// Replies to `ctx` with the states gathered in `stateDict`: a map from
/// `"host:port"` to an array of state strings.
///
/// # Safety
/// 1. `stateDict` is NULL or a dict filled by `MRConnManager_FillStateDict`.
/// 2. `ctx` is NULL or a context the host can reply to.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MRConnManager_ReplyState(
    stateDict: Option<NonNull<dict>>,
    ctx: Option<NonNull<RedisModuleCtx>>,
) {
    reentry::check("MRConnManager_ReplyState");
    let Some(ctx) = ctx else {
        hlog!(
            Level::Warning,
            "MRConnManager_ReplyState: NULL reply context"
        );
        return;
    };
    // SAFETY: 2.
    let reply = unsafe { Reply::new(ctx) };
    match stateDict {
        // SAFETY: 1.
        Some(states) => unsafe { manager::reply_state(states, &reply) },
        None => {
            hlog!(
                Level::Warning,
                "MRConnManager_ReplyState: NULL state dict, replying with an empty map"
            );
            reply.map(0);
        }
    }
}

/// Adds the states of every pool of `mgr` to `stateDict`.
///
/// # Safety
/// 1. `mgr` is NULL or an initialised manager, used on its loop thread.
/// 2. `stateDict` is NULL or a dict with C-string keys it copies, whose
///    values are NULL or host arrays of C strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MRConnManager_FillStateDict(
    mgr: Option<NonNull<MRConnManager>>,
    stateDict: Option<NonNull<dict>>,
) {
    // SAFETY: 1.
    let Some(mut mgr) = (unsafe { live("MRConnManager_FillStateDict", mgr) }) else {
        return;
    };
    let Some(states) = stateDict else {
        hlog!(
            Level::Warning,
            "MRConnManager_FillStateDict: NULL state dict"
        );
        return;
    };
    // SAFETY: 2.
    unsafe { mgr.fill_state_dict(states) };
}

/// A connected connection of node `id`: the first with no reply pending from
/// the round-robin cursor, else the least busy of a few (round-robin with
/// `MRCONN_PICK=round_robin`); NULL if the node has no pool or none of its
/// connections is connected.
///
/// # Safety
/// 1. `mgr` is NULL or an initialised manager, used on its loop thread.
/// 2. `id` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MRConn_Get(
    mgr: Option<NonNull<MRConnManager>>,
    id: *const c_char,
) -> *mut MRConn {
    // SAFETY: 1.
    let Some(mut mgr) = (unsafe { live("MRConn_Get", mgr) }) else {
        return ptr::null_mut();
    };
    // The query path: no strlen of the id, the dict hashes it anyway.
    let Some(id) = NonNull::new(id.cast_mut()) else {
        log_refused("MRConn_Get: NULL node id");
        return ptr::null_mut();
    };
    let Some(mut pools) = mgr.pools() else {
        return ptr::null_mut();
    };
    // SAFETY: 2.: `id` is NUL-terminated.
    let Some(pool) = (unsafe { pools.find_raw(id) }) else {
        return ptr::null_mut();
    };
    pool.pick_by(
        Pick::configured(),
        |c| c.is_ready_in_pool(),
        |c| c.pending_upto_two(),
    )
    .map_or(ptr::null_mut(), |c| c.as_ptr())
}

/// The state string of the first connection of node `id` (`Connecting`
/// before it is opened); NULL if the node has no pool, or one of size 0.
///
/// # Safety
/// 1. `mgr` is NULL or an initialised manager, used on its loop thread.
/// 2. `id` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MRConnManager_GetNodeState(
    mgr: Option<NonNull<MRConnManager>>,
    id: *const c_char,
) -> *const c_char {
    // SAFETY: 1.
    let Some(mut mgr) = (unsafe { live("MRConnManager_GetNodeState", mgr) }) else {
        return ptr::null();
    };
    // The query path: no strlen of the id, the dict hashes it anyway.
    let Some(id) = NonNull::new(id.cast_mut()) else {
        hlog!(Level::Warning, "MRConnManager_GetNodeState: NULL node id");
        return ptr::null();
    };
    let Some(mut pools) = mgr.pools() else {
        return ptr::null();
    };
    // SAFETY: 2.: `id` is NUL-terminated.
    let pool = unsafe { pools.find_raw(id) };
    let state = pool.and_then(|p| p.state());
    state.map_or(ptr::null(), |s| s.as_cstr().as_ptr())
}

/// Sends `cmd` on `c`; `fn_` later gets exactly once the reply, an error
/// reply if mrconn closes the connection first (drain deadline, Shutdown),
/// or NULL if its link breaks. `REDIS_ERR` when `c` is not connected or
/// draining, or the command cannot be formatted.
///
/// # Safety
/// 1. `c` is NULL or a connection returned by `MRConn_Get` on this loop
///    thread since the loop last ran.
/// 2. `cmd` is NULL or a valid command: `strs`/`lens` hold `num` arguments,
///    and `cmd->cmd` is NULL or the sds an earlier `MRConn_SendCommand`
///    stored there (RediSearch sets it nowhere else). It is queued as is,
///    unchecked: this is the fan-out hot path.
/// 3. `fn_`, if set, may be called once with `privdata`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MRConn_SendCommand(
    c: Option<NonNull<MRConn>>,
    cmd: Option<NonNull<MRCommand>>,
    fn_: redisCallbackFn,
    privdata: *mut c_void,
) -> c_int {
    reentry::check("MRConn_SendCommand");
    let (Some(c), Some(cmd)) = (c, cmd) else {
        log_refused("MRConn_SendCommand: NULL connection or command");
        return REDIS_ERR;
    };
    // SAFETY: 1.: a live connection, on its loop thread.
    let conn = unsafe { c.as_ref() };
    // SAFETY: 2.; a distinct object, used by us alone for the call.
    let cmd = unsafe { &mut *cmd.as_ptr() };
    // SAFETY: 2. and 3.
    unsafe { conn.send(cmd, fn_, privdata) }
}

/// Makes `id`'s pool one of `nodeConns` connections to `ep` (the loop opens
/// them, a slice per iteration; until then they show as `Connecting`); false
/// when it already has one to an equal endpoint. An older pool to another
/// endpoint drains away.
///
/// # Safety
/// 1. `m` is NULL or an initialised manager, used on its loop thread.
/// 2. `loop_` is NULL or the live loop of that thread.
/// 3. `id` is NULL or a NUL-terminated string; `ep` is NULL or a valid
///    endpoint. Both stay the caller's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MRConnManager_Add(
    m: Option<NonNull<MRConnManager>>,
    loop_: Option<NonNull<uv_loop_t>>,
    id: *const c_char,
    ep: Option<NonNull<MREndpoint>>,
) -> bool {
    // SAFETY: 1.
    let Some(mut mgr) = (unsafe { live("MRConnManager_Add", m) }) else {
        return false;
    };
    // SAFETY: 3.
    let Some(id) = (unsafe { node_id("MRConnManager_Add", id) }) else {
        return false;
    };
    let (Some(loop_), Some(ep)) = (loop_, ep) else {
        hlog!(
            Level::Warning,
            "MRConnManager_Add: NULL loop or endpoint for node {}",
            id.to_string_lossy()
        );
        return false;
    };
    // SAFETY: 3.
    let ep = unsafe { ep.as_ref() };
    if ep.host_ptr().is_null() {
        hlog!(
            Level::Warning,
            "MRConnManager_Add: endpoint of node {} has no host",
            id.to_string_lossy()
        );
        return false;
    }
    // SAFETY: 1., 2. and 3.
    unsafe { resize::add(&mut mgr, loop_, id, ep) }
}

/// Removes `id`'s pool, draining its busy connections: `REDIS_OK` if it had
/// one, else `REDIS_ERR`.
///
/// # Safety
/// 1. `m` is NULL or an initialised manager, used on its loop thread.
/// 2. `id` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MRConnManager_Disconnect(
    m: Option<NonNull<MRConnManager>>,
    id: *const c_char,
) -> c_int {
    // SAFETY: 1.
    let Some(mut mgr) = (unsafe { live("MRConnManager_Disconnect", m) }) else {
        return REDIS_ERR;
    };
    // SAFETY: 2.
    let Some(id) = (unsafe { node_id("MRConnManager_Disconnect", id) }) else {
        return REDIS_ERR;
    };
    // An unknown node is no fault (conn.c is silent too): the return code says it.
    if resize::disconnect(&mut mgr, id) {
        REDIS_OK as c_int
    } else {
        REDIS_ERR
    }
}

/// Shrinks every pool to `num` connections; the surplus drains (see
/// `MRConnManager_SetDrainTimeout`). Needs `0 < num < nodeConns`; anything
/// else is logged and ignored.
///
/// # Safety
/// 1. `m` is NULL or an initialised manager, used on its loop thread (or on
///    the thread that owns it before its loop runs).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MRConnManager_Shrink(m: Option<NonNull<MRConnManager>>, num: u32) {
    // SAFETY: 1.
    let Some(mut mgr) = (unsafe { live("MRConnManager_Shrink", m) }) else {
        return;
    };
    let current = mgr.node_conns();
    if num == 0 || num >= current {
        hlog!(
            Level::Warning,
            "MRConnManager_Shrink: cannot shrink from {current} to {num} connections, ignored"
        );
        return;
    }
    resize::shrink(&mut mgr, num);
}

/// Grows every pool to `num` connections (the loop opens them, a slice per
/// iteration), taking back draining ones first. Needs `nodeConns < num`; anything else is logged and ignored. A size
/// above 4096 is clamped to 4096, with a warning (as in `Init`).
///
/// # Safety
/// 1. `m` is NULL or an initialised manager, used on its loop thread.
/// 2. `loop_` is NULL or the live loop of that thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MRConnManager_Expand(
    m: Option<NonNull<MRConnManager>>,
    num: u32,
    loop_: Option<NonNull<uv_loop_t>>,
) {
    // SAFETY: 1.
    let Some(mut mgr) = (unsafe { live("MRConnManager_Expand", m) }) else {
        return;
    };
    let current = mgr.node_conns();
    let Some(loop_) = loop_ else {
        hlog!(Level::Warning, "MRConnManager_Expand: NULL loop, ignored");
        return;
    };
    let size = num.min(MAX_POOL_SIZE);
    if size <= current {
        hlog!(
            Level::Warning,
            "MRConnManager_Expand: cannot expand from {current} to {num} connections (at most {MAX_POOL_SIZE}), ignored"
        );
        return;
    }
    if size != num {
        hlog!(
            Level::Warning,
            "MRConnManager_Expand: pool size {num} out of 0..={MAX_POOL_SIZE}, using {size}"
        );
    }
    // SAFETY: 1. and 2.
    unsafe { resize::expand(&mut mgr, size, loop_) };
}

/// Closes every connection now and releases the map. Every callback still
/// pending, on pool and draining connections alike, gets an error reply
/// ("ERR connection to host:port closed: connection manager shut down").
/// Every libuv handle of the library is closing when this returns; their
/// memory goes on the loop's next iteration.
///
/// # Safety
/// 1. `mgr` is NULL or a manager, used on its loop thread (or, if the loop
///    never ran, the thread that owns it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MRConnManager_Shutdown(mgr: Option<NonNull<MRConnManager>>) {
    reentry::check("MRConnManager_Shutdown");
    let Some(mgr) = mgr else {
        hlog!(
            Level::Warning,
            "MRConnManager_Shutdown: NULL connection manager"
        );
        return;
    };
    // The manager lets go of its map first, with no reference to it held
    // after: the callbacks failed below may call back with `mgr`, and
    // must find it shut down rather than a dict being released.
    // SAFETY: 1.
    match unsafe { MRConnManager::take_map(mgr) } {
        // SAFETY: just taken; the manager holds it no more.
        Some(map) => unsafe { resize::shutdown(map) },
        None => hlog!(
            Level::Warning,
            "MRConnManager_Shutdown: connection manager not initialised or already shut down"
        ),
    }
}

/// Sets the deadline of drains that start from now on, in milliseconds. At
/// the deadline a draining connection is closed by force and each of its
/// pending callbacks gets an error reply ("ERR connection to host:port
/// closed: drain deadline of N ms reached"). 0 means no deadline (drains
/// wait as long as their work takes, as conn.c does).
/// `MRCONN_DRAIN_TIMEOUT_DEFAULT` restores the default, which never cuts work
/// RediSearch itself waits for: `max(5000, search-timeout + 1000)` ms when
/// RediSearch enforces its query timeout (`search-on-timeout` `fail` or
/// `return-strict`); none with the `return` policy (RediSearch's default,
/// which waits for every shard) or a timeout of 0.
/// Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn MRConnManager_SetDrainTimeout(timeoutMS: u32) {
    reentry::check("MRConnManager_SetDrainTimeout");
    drain::set_timeout_ms(timeoutMS);
}

/// The deadline a drain starting now would use, in milliseconds; 0: none.
#[unsafe(no_mangle)]
pub extern "C" fn MRConnManager_GetDrainTimeout() -> u32 {
    reentry::check("MRConnManager_GetDrainTimeout");
    drain::deadline_ms().unwrap_or(0)
}

/// Fills `out` with `mgr`'s drain statistics: `REDIS_OK`, or `REDIS_ERR` on
/// bad input.
///
/// # Safety
/// 1. `mgr` is NULL or an initialised manager, used on its loop thread.
/// 2. `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MRConnManager_GetDrainStats(
    mgr: Option<NonNull<MRConnManager>>,
    out: Option<NonNull<MRConnDrainStats>>,
) -> c_int {
    // SAFETY: 1.
    let Some(mut mgr) = (unsafe { live("MRConnManager_GetDrainStats", mgr) }) else {
        return REDIS_ERR;
    };
    let Some(out) = out else {
        hlog!(Level::Warning, "MRConnManager_GetDrainStats: NULL output");
        return REDIS_ERR;
    };
    let Some(mut parts) = mgr.parts() else {
        return REDIS_ERR;
    };
    let mut to_open = 0;
    parts
        .pools
        .for_each(|_, pool| to_open += pool.to_open() as u64);
    let stats = MRConnDrainStats {
        queued: parts.state.backlog.queued() + parts.state.drains.parked() + to_open,
        ..parts.state.drains.stats().into()
    };
    // SAFETY: 2.
    unsafe { out.write(stats) };
    REDIS_OK as c_int
}
