//! One connection to a shard and its life on hiredis: connect, TLS, `AUTH`,
//! back-off and retry, teardown. The transitions themselves are
//! [`mrconn_core::next_state`]; this module performs what each state means.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::fmt;
use std::ptr::{self, NonNull};
use std::time::Instant;

use mrconn_core::pool::PENDING_CAP;
use mrconn_core::{BatchId, ConnState, Event, next_state, throttle};

use crate::event_loop::{self, Timer};
use crate::host::{self, Gil, Level, MRCommand, MREndpoint, hlog};
use crate::sys::glue::{mrconn_reply_error, mrconn_send_formatted};
use crate::sys::hiredis::{
    REDIS_CONN_TCP, REDIS_ERR, REDIS_OK, REDIS_OPT_NOAUTOFREEREPLIES, redisAsyncCommandArgv,
    redisAsyncConnectWithOptions, redisAsyncContext, redisAsyncFree, redisAsyncSetConnectCallback,
    redisAsyncSetDisconnectCallback, redisCallbackFn, redisContext, redisFormatSdsCommandArgv,
    redisOptions,
};
use crate::sys::uv::{uv_handle_t, uv_loop_t, uv_timer_t};
use crate::{drain, pending, tls};

const RECONNECT_MS: u64 = 250;
const REAUTH_MS: u64 = 1000;
const INTERNAL_AUTH_USER: &[u8] = b"internal connection";
const LINK_WARNING_PERIOD: std::time::Duration = std::time::Duration::from_secs(60);

/// Marks a connection that left its pool and only finishes queued work.
#[derive(Debug, Clone, Copy)]
pub struct Draining {
    /// Its manager's map: the manager's state holds the registry that
    /// tracks it, and the backlog that closes it once drained.
    pub map: NonNull<crate::host::dict>,
    /// Its batch there.
    pub batch: BatchId,
    /// When it started draining.
    pub since: Instant,
    /// Callbacks pending as of the last read.
    pub pending: u64,
    /// Its deadline, if it has one.
    pub deadline_ms: Option<u32>,
    /// Its place in the registry's list of its endpoint, for an O(1) removal.
    pub slot: usize,
}

/// A connection: `MRConn` to C, which only ever holds pointers to it.
pub struct MRConn {
    ac: Option<NonNull<redisAsyncContext>>,
    state: ConnState,
    /// The RESP version last requested with `HELLO` (0: none yet).
    protocol: u8,
    /// Set while draining.
    pub(crate) draining: Option<Box<Draining>>,
    ep: MREndpoint,
    loop_: NonNull<uv_loop_t>,
    /// Back-off while Reconnecting/ReAuth, drain deadline while draining.
    pub(crate) timer: Timer,
    /// When a warning of mrconn's own about the link (conn.c logs none
    /// there) was last logged.
    warned_at: Option<Instant>,
    /// Whether a backlog job holds this connection.
    queued: Queued,
}

/// Who frees a connection that a backlog job holds: its memory goes when
/// both the job and the timer's close callback are done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queued {
    No,
    /// Out of every pool, to sort (see `drain::Leave`) or to close.
    Held,
    /// Torn down while queued: the job frees it.
    Freed,
}

/// Shorthand for the `[ptr host:port State]` prefix of every log line.
pub struct Tag(pub NonNull<MRConn>);

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: a Tag is built from a live connection and used at once.
        let c = unsafe { self.0.as_ref() };
        write!(
            f,
            "[{:p} {}:{} {}]",
            self.0.as_ptr(),
            c.host(),
            c.ep.port,
            c.state.as_str()
        )
    }
}

impl MRConn {
    /// A new connection to `ep` on `loop_`, already connecting.
    ///
    /// # Safety
    /// 1. `ep` is a valid endpoint (its strings NUL-terminated or NULL).
    /// 2. `loop_` is live; this runs on its thread or before it runs.
    pub unsafe fn open(ep: &MREndpoint, loop_: NonNull<uv_loop_t>) -> NonNull<MRConn> {
        let conn = Box::into_raw(Box::new(MRConn {
            ac: None,
            state: ConnState::Connecting,
            protocol: 0,
            draining: None,
            ep: MREndpoint::empty(),
            loop_,
            timer: Timer::new(),
            warned_at: None,
            queued: Queued::No,
        }));
        // SAFETY: `conn` is a fresh, valid allocation.
        let c = unsafe { &mut *conn };
        // SAFETY: 1.; the copy's strings are owned by `c` and freed in `free`.
        unsafe { host::MREndpoint_Copy(&mut c.ep, ep) };
        // SAFETY: the timer lives inside the boxed connection, freed only by
        // its own close callback; 2.
        unsafe { Timer::init(&raw mut c.timer, loop_, conn.cast()) };
        // The pointer from Box::into_raw is the one every user of the
        // connection derives from.
        // SAFETY: Box::into_raw never returns NULL.
        let conn = unsafe { NonNull::new_unchecked(conn) };
        log_switch(conn, ConnState::Connecting);
        start_connect(conn);
        conn
    }

    /// Marks `conn`, out of every pool, as held by a backlog job that sorts
    /// or closes it: it takes no command and never reconnects meanwhile.
    pub fn hold(conn: NonNull<MRConn>) {
        // SAFETY: callers pass live connections, on the loop thread.
        unsafe { (*conn.as_ptr()).queued = Queued::Held };
    }

    /// A backlog job lets go of `conn`: the connection, if the job is to act
    /// on it; `None` if it was torn down meanwhile (and is freed now, or by
    /// its timer's close callback).
    pub fn unqueue(conn: NonNull<MRConn>) -> Option<NonNull<MRConn>> {
        // SAFETY: a queued connection's memory lives until its job lets go.
        let c = unsafe { &mut *conn.as_ptr() };
        match std::mem::replace(&mut c.queued, Queued::No) {
            Queued::Freed => {
                // SAFETY: from Box::into_raw in `new`; its timer has closed
                // and nothing else refers to it.
                drop(unsafe { Box::from_raw(conn.as_ptr()) });
                None
            }
            _ if c.state == ConnState::Freeing => None,
            _ => Some(conn),
        }
    }

    /// Whether a backlog job holding it still has work to do on it.
    pub fn queued_work(conn: NonNull<MRConn>) -> bool {
        // SAFETY: a queued connection's memory lives until its job lets go.
        let c = unsafe { conn.as_ref() };
        c.queued == Queued::Held && c.state != ConnState::Freeing
    }

    /// Its loop.
    pub fn event_loop(&self) -> NonNull<uv_loop_t> {
        self.loop_
    }

    /// Its state.
    #[inline]
    pub fn state(&self) -> ConnState {
        self.state
    }

    /// Whether new commands may go to it: Connected, and not leaving.
    #[inline]
    pub fn is_ready(&self) -> bool {
        self.state == ConnState::Connected && !self.is_leaving()
    }

    /// Whether a pool connection may take new commands: Connected. One in a
    /// pool is never leaving (it leaves its pool before it is marked, and a
    /// drain ends before its connection rejoins one), so `MRConn_Get` reads
    /// its state alone.
    #[inline]
    pub fn is_ready_in_pool(&self) -> bool {
        debug_assert!(!self.is_leaving(), "a pool connection is leaving");
        self.state == ConnState::Connected
    }

    /// How many replies it awaits, up to 2 ([`PENDING_CAP`]): 0, 1, or 2 for
    /// more; two loads, where counting walks hiredis's list. A pool
    /// connection never subscribes, so `ac->replies` holds them all
    /// (CONTRACT §7).
    #[inline]
    pub fn pending_upto_two(&self) -> u32 {
        const { assert!(PENDING_CAP == 2) };
        let Some(ac) = self.ac else { return 0 };
        // SAFETY: the context of a connection is live while it holds it,
        // and read on its loop thread.
        let replies = &unsafe { ac.as_ref() }.replies;
        // An empty list has no tail either; one record is head and tail.
        u32::from(!replies.head.is_null()) + u32::from(replies.head != replies.tail)
    }

    /// Whether it left its pool: draining, or queued to sort or close.
    fn is_leaving(&self) -> bool {
        self.draining.is_some() || self.queued == Queued::Held
    }

    /// Its endpoint.
    pub fn endpoint(&self) -> &MREndpoint {
        &self.ep
    }

    /// The host part of its endpoint, for logs.
    pub fn host(&self) -> std::borrow::Cow<'_, str> {
        self.ep.host_str()
    }

    /// Its port.
    pub fn port(&self) -> c_int {
        self.ep.port
    }

    /// Its hiredis context, while it has one.
    pub fn context(&self) -> Option<NonNull<redisAsyncContext>> {
        self.ac
    }

    /// Queues `cmd` with `callback`: `MRConn_SendCommand`.
    pub fn send(
        &mut self,
        cmd: &mut MRCommand,
        callback: redisCallbackFn,
        privdata: *mut c_void,
    ) -> c_int {
        if !self.is_ready() {
            self.refuse_send();
            return REDIS_ERR;
        }
        if cmd.cmd.is_null() || (cmd.protocol != 0 && cmd.protocol != self.protocol) {
            return self.prepare_and_send(cmd, callback, privdata);
        }
        self.hand_to_hiredis(cmd, callback, privdata)
    }

    /// Hands the formatted `cmd` to hiredis, which copies it.
    #[inline(always)]
    fn hand_to_hiredis(
        &self,
        cmd: &MRCommand,
        callback: redisCallbackFn,
        privdata: *mut c_void,
    ) -> c_int {
        let Some(ac) = self.ac else { return REDIS_ERR };
        // SAFETY: `ac` is this connection's live context; `cmd.cmd` is a
        // valid sds (formatted by this or an earlier send).
        unsafe { mrconn_send_formatted(ac.as_ptr(), callback, privdata, cmd.cmd) }
    }

    // The rest of `send`, out of line: what a preformatted command on the
    // same protocol (RediSearch's fan-out) never needs.

    /// `send` of a command not formatted yet, or on another protocol.
    #[inline(never)]
    fn prepare_and_send(
        &mut self,
        cmd: &mut MRCommand,
        callback: redisCallbackFn,
        privdata: *mut c_void,
    ) -> c_int {
        if cmd.cmd.is_null() && !self.format(cmd) {
            return REDIS_ERR;
        }
        let wanted = cmd.protocol;
        if wanted != 0 && wanted != self.protocol && !self.switch_protocol(wanted) {
            return REDIS_ERR;
        }
        self.hand_to_hiredis(cmd, callback, privdata)
    }

    #[cold]
    #[inline(never)]
    fn refuse_send(&self) {
        let tag = Tag(NonNull::from(self));
        if self.is_leaving() {
            hlog!(
                Level::Warning,
                "{tag} Tried to send command to a draining connection"
            );
        } else {
            hlog!(
                Level::Warning,
                "{tag} Tried to send command to node in state {}",
                self.state.as_str()
            );
        }
    }

    /// Formats `cmd` into `cmd.cmd`; false (logged) when it cannot.
    fn format(&self, cmd: &mut MRCommand) -> bool {
        let tag = Tag(NonNull::from(self));
        if cmd.num == 0 || cmd.strs.is_null() || cmd.lens.is_null() {
            hlog!(
                Level::Warning,
                "{tag} Failed to format command: it has no arguments"
            );
            return false;
        }
        // SAFETY: `strs`/`lens` hold `num` arguments (the caller's
        // MRCommand invariant); hiredis stores a new sds in `cmd.cmd`.
        let rc = unsafe {
            redisFormatSdsCommandArgv(&mut cmd.cmd, cmd.num as c_int, cmd.strs.cast(), cmd.lens)
        };
        if rc < 0 {
            hlog!(Level::Warning, "{tag} Failed to format command");
            return false;
        }
        true
    }

    /// Queues `HELLO <wanted>`; false (logged) when it cannot.
    fn switch_protocol(&mut self, wanted: u8) -> bool {
        let Some(ac) = self.ac else { return false };
        let arg: &[u8] = match wanted {
            2 => b"2",
            3 => b"3",
            _ => {
                hlog!(
                    Level::Warning,
                    "{} Unsupported protocol {wanted} in command",
                    Tag(NonNull::from(&*self))
                );
                return false;
            }
        };
        if command(ac, None, ptr::null_mut(), &[b"HELLO", arg]) != REDIS_OK as c_int {
            return false;
        }
        self.protocol = wanted;
        true
    }

    fn switch(conn: NonNull<MRConn>, event: Event) {
        // Only a release frees a connection with callbacks pending; this
        // text never reaches one.
        MRConn::transition(conn, event, "connection closed");
    }

    /// Moves `conn` on `event`; if that frees it, `why` ends the error reply
    /// of every callback still pending.
    fn transition(conn: NonNull<MRConn>, event: Event, why: &str) {
        // SAFETY: callers pass live connections, on the loop thread.
        let c = unsafe { &mut *conn.as_ptr() };
        if c.state == ConnState::Freeing {
            return;
        }
        let to = next_state(c.state, event, c.is_leaving());
        log_switch(conn, to);
        c.state = to;
        match to {
            ConnState::Reconnecting => {
                c.detach();
                c.timer.start(RECONNECT_MS, on_reconnect_timer);
            }
            ConnState::ReAuth => c.timer.start(REAUTH_MS, on_reauth_timer),
            ConnState::Authenticating => send_auth(conn),
            ConnState::Connecting | ConnState::Connected => {}
            ConnState::Freeing => MRConn::teardown(conn, why),
        }
    }

    /// Frees a connection now in `Freeing`. Upstream asks hiredis to
    /// disconnect, which waits without bound for every pending reply and
    /// leaves the context unowned meanwhile (its libuv handles open past
    /// Shutdown). Here the context goes at once: a drain releases its
    /// connection only once nothing is pending, or when its time is up
    /// (deadline, Shutdown), and then every callback still pending gets an
    /// error reply naming `why`, which RediSearch shows the client. A NULL
    /// reply would read as "shard gone" and silently shrink the result.
    fn teardown(conn: NonNull<MRConn>, why: &str) {
        // SAFETY: callers pass live connections, on the loop thread.
        let c = unsafe { &mut *conn.as_ptr() };
        if c.draining.is_some() {
            // Only a broken link frees a draining connection before its
            // drain ends; end it here, so none outlives its connection.
            drain::on_link_lost(conn);
        }
        // SAFETY: as above; `on_link_lost` holds no reference to it.
        let c = unsafe { &mut *conn.as_ptr() };
        c.protocol = 0;
        let ac = c.ac.take();
        if let Some(ac) = ac {
            // SAFETY: `ac` is this connection's live context.
            let text = (unsafe { pending::callbacks(ac) } > 0)
                .then(|| format!("ERR connection to {}:{} closed: {why}", c.host(), c.port()));
            // User callbacks run in here and may call back with this
            // connection (it refuses them: Freeing), so no reference to it
            // is held across.
            free_context(ac, text.as_deref());
        }
        // SAFETY: the connection lives until its timer's close callback; the
        // borrows above have ended.
        unsafe { &mut *conn.as_ptr() }.free();
    }

    /// Tears the connection down (`Freeing`): its hiredis context is freed
    /// at once, and every callback still pending gets an error reply ending
    /// in `why` ("ERR connection to host:port closed: <why>"), inside this
    /// call.
    pub fn release(conn: NonNull<MRConn>, why: &str) {
        MRConn::transition(conn, Event::Released, why);
    }

    /// Severs the link to a context that failed (the link broke, or never
    /// came up) and frees it: as in hiredis and conn.c, whatever was pending
    /// gets NULL, the shard being gone.
    fn detach(&mut self) {
        self.protocol = 0;
        if let Some(ac) = self.ac.take() {
            free_context(ac, None);
        }
    }

    /// Logs one of mrconn's own warnings about the link, at most once a
    /// minute per connection: conn.c is silent there, and a connection that
    /// keeps failing retries every 250 ms (and one whose TLS handshake is
    /// rejected reaches Connected on every attempt).
    fn warn_link(conn: NonNull<MRConn>, what: fmt::Arguments<'_>) {
        // SAFETY: callers pass live connections, on the loop thread.
        let c = unsafe { &mut *conn.as_ptr() };
        if throttle::due(&mut c.warned_at, Instant::now(), LINK_WARNING_PERIOD) {
            hlog!(Level::Warning, "{} {what}", Tag(conn));
        }
    }

    /// Closes the timer; the memory (and the endpoint with it) goes in the
    /// timer's close callback, or with the backlog job that holds it.
    fn free(&mut self) {
        self.timer.close(on_timer_closed);
    }
}

impl Drop for MRConn {
    /// The endpoint lives as long as the connection: a closing one is still
    /// named in log lines, e.g. when a stale pointer to it is sent to within
    /// the loop pass that closed it (the host's free may not clear it).
    fn drop(&mut self) {
        // SAFETY: `ep` was filled by MREndpoint_Copy in `new` and is freed
        // once, here.
        unsafe { host::MREndpoint_Free(&mut self.ep) };
    }
}

/// Frees a context we no longer own (`data` is cleared first, so our own
/// callbacks ignore it). With `error`, every pending callback first gets an
/// error reply of that text; hiredis then fails nothing. Without, hiredis
/// gives them NULL. From inside one of the context's own callbacks hiredis
/// defers the free until that callback returns.
fn free_context(ac: NonNull<redisAsyncContext>, error: Option<&str>) {
    // SAFETY: callers pass a live context they just took from its connection.
    unsafe { (*ac.as_ptr()).data = ptr::null_mut() };
    if let Some(text) = error {
        // SAFETY: as above; it is freed right below.
        unsafe { pending::fail_all(ac, text) };
    }
    // SAFETY: as above; nothing of ours refers to it any more.
    unsafe { redisAsyncFree(ac.as_ptr()) };
}

/// A hiredis context's error text.
pub fn errstr(c: &redisContext) -> String {
    // SAFETY: `errstr` is a NUL-terminated array (hiredis keeps it so).
    unsafe { CStr::from_ptr(c.errstr.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn log_switch(conn: NonNull<MRConn>, to: ConnState) {
    hlog!(
        Level::Debug,
        "{} Switching state to {}",
        Tag(conn),
        to.as_str()
    );
}

/// The connection behind a hiredis context, if it still has one.
///
/// # Safety
/// `ac` is a live context created by this module.
unsafe fn owner(ac: *const redisAsyncContext) -> Option<NonNull<MRConn>> {
    // SAFETY: caller's guarantee.
    NonNull::new(unsafe { (*ac).data }.cast::<MRConn>())
}

/// Queues a command given as arguments.
fn command(
    ac: NonNull<redisAsyncContext>,
    callback: redisCallbackFn,
    privdata: *mut c_void,
    args: &[&[u8]],
) -> c_int {
    let argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr().cast()).collect();
    let lens: Vec<usize> = args.iter().map(|a| a.len()).collect();
    // SAFETY: `ac` is live; `argv`/`lens` describe `args.len()` buffers that
    // hiredis copies before returning.
    unsafe {
        redisAsyncCommandArgv(
            ac.as_ptr(),
            callback,
            privdata,
            args.len() as c_int,
            argv.as_ptr().cast_mut(),
            lens.as_ptr(),
        )
    }
}

/// Starts an asynchronous connect; `Reconnecting` when it cannot even start.
fn start_connect(conn: NonNull<MRConn>) {
    if connect(conn).is_err() {
        MRConn::switch(conn, Event::ConnectNotStarted);
    }
}

fn connect(conn: NonNull<MRConn>) -> Result<(), ()> {
    // SAFETY: callers pass live connections, on the loop thread.
    let c = unsafe { &mut *conn.as_ptr() };
    debug_assert!(c.ac.is_none());
    let timeout = host::connect_timeout();
    let mut opts = redisOptions {
        type_: REDIS_CONN_TCP as _,
        options: REDIS_OPT_NOAUTOFREEREPLIES as c_int,
        connect_timeout: timeout
            .as_ref()
            .map_or(ptr::null(), |t| ptr::from_ref(t).cast()),
        ..Default::default()
    };
    opts.endpoint.tcp.ip = c.ep.host;
    opts.endpoint.tcp.port = c.ep.port;
    // SAFETY: `opts` is fully initialised and outlives the call; hiredis
    // copies what it keeps.
    let ac = unsafe { redisAsyncConnectWithOptions(&opts) };
    let Some(ac) = NonNull::new(ac) else {
        hlog!(
            Level::Debug,
            "{} Could not allocate async context with the given options",
            Tag(conn)
        );
        return Err(());
    };
    // SAFETY: `ac` is the live context just returned.
    let failed = unsafe { (*ac.as_ptr()).err } != 0;
    if failed {
        // SAFETY: as above.
        let why = errstr(unsafe { &(*ac.as_ptr()).c });
        hlog!(
            Level::Warning,
            "{} Could not connect to node: {why}",
            Tag(conn)
        );
        // SAFETY: `ac` is ours and unused.
        unsafe { redisAsyncFree(ac.as_ptr()) };
        return Err(());
    }
    // SAFETY: `ac` is live with no event library yet; our loop is live.
    let attached = unsafe { event_loop::attach(ac, c.loop_, after_read) }.is_ok()
        // SAFETY: `ac` is live; the callbacks are ours.
        && unsafe { redisAsyncSetConnectCallback(ac.as_ptr(), Some(on_connect)) } == REDIS_OK as c_int
        // SAFETY: as above.
        && unsafe { redisAsyncSetDisconnectCallback(ac.as_ptr(), Some(on_disconnect)) } == REDIS_OK as c_int;
    if !attached {
        hlog!(
            Level::Warning,
            "{} Failed to attach hiredis context to libuv",
            Tag(conn)
        );
        // SAFETY: `ac` is ours and unused.
        unsafe { redisAsyncFree(ac.as_ptr()) };
        return Err(());
    }
    // SAFETY: `ac` is live; `data` is ours to set.
    unsafe { (*ac.as_ptr()).data = conn.as_ptr().cast() };
    c.ac = Some(ac);
    c.protocol = 0;
    Ok(())
}

fn send_auth(conn: NonNull<MRConn>) {
    // SAFETY: callers pass live connections, on the loop thread.
    let c = unsafe { conn.as_ref() };
    let rc = match c.ac {
        None => REDIS_ERR,
        Some(ac) if !host::IsEnterprise() => {
            let gil = Gil::lock();
            let secret = gil.internal_secret();
            let rc = command(
                ac,
                Some(on_auth),
                ptr::null_mut(),
                &[b"AUTH", INTERNAL_AUTH_USER, &secret],
            );
            drop(gil);
            rc
        }
        Some(ac) => {
            let password: &[u8] = if c.ep.password.is_null() {
                b""
            } else {
                // SAFETY: a non-NULL password is a NUL-terminated string owned by `ep`.
                unsafe { CStr::from_ptr(c.ep.password) }.to_bytes()
            };
            command(ac, Some(on_auth), ptr::null_mut(), &[b"AUTH", password])
        }
    };
    if rc != REDIS_OK as c_int {
        MRConn::switch(conn, Event::AuthNotSent);
    }
}

extern "C" fn on_connect(ac: *const redisAsyncContext, status: c_int) {
    // SAFETY: hiredis passes its live context.
    // A context is freed as soon as it is detached, so it always has an owner
    // here; a callback on an ownerless one has nothing to do.
    let Some(conn) = (unsafe { owner(ac) }) else {
        return;
    };
    if status != REDIS_OK as c_int {
        // SAFETY: as above.
        let why = errstr(unsafe { &(*ac).c });
        hlog!(Level::Warning, "{} Error on connect: {why}", Tag(conn));
        MRConn::switch(conn, Event::ConnectFailed);
        return;
    }
    let tls_ok = tls::initiate(conn).is_ok();
    // SAFETY: `conn` is live.
    let has_password = !unsafe { conn.as_ref() }.ep.password.is_null();
    let needs_auth = !host::IsEnterprise() || has_password;
    MRConn::switch(conn, Event::ConnectSucceeded { tls_ok, needs_auth });
}

extern "C" fn on_disconnect(ac: *const redisAsyncContext, status: c_int) {
    // SAFETY: hiredis passes its live context.
    let Some(conn) = (unsafe { owner(ac) }) else {
        return;
    };
    // Beyond upstream, which switches silently: a link that broke with an
    // error (server gone, TLS handshake rejected after the connect callback)
    // gets a warning, at most once a minute. A draining connection reports its
    // broken link in its drain's terms instead.
    // SAFETY: `conn` is live.
    if status != REDIS_OK as c_int && !unsafe { conn.as_ref() }.is_leaving() {
        // SAFETY: as above.
        let why = unsafe { context_error(ac) };
        MRConn::warn_link(conn, format_args!("Disconnected from node: {why}"));
    }
    MRConn::switch(conn, Event::Disconnected);
}

/// The error text of a context, for a log line.
///
/// # Safety
/// `ac` is a live context.
unsafe fn context_error(ac: *const redisAsyncContext) -> String {
    // SAFETY: caller's guarantee.
    let why = errstr(unsafe { &(*ac).c });
    // hiredis leaves "Success" (strerror(0)) when the peer closed the link
    // or a TLS handshake failed after the connect: no reason to give.
    if why.is_empty() || why == "Success" {
        "connection closed".to_owned()
    } else {
        why
    }
}

extern "C" fn on_auth(ac: *mut redisAsyncContext, reply: *mut c_void, _privdata: *mut c_void) {
    // SAFETY: hiredis passes its live context.
    if let Some(conn) = unsafe { owner(ac) } {
        // SAFETY: as above.
        let ctx_err = unsafe { (*ac).err } != 0;
        let event = if reply.is_null() || ctx_err {
            // Beyond upstream, which reconnects silently here: the link broke
            // under AUTH, e.g. the TLS handshake failed (peer verification
            // happens after the connect callback); say why.
            // SAFETY: as above.
            let why = unsafe { context_error(ac) };
            MRConn::warn_link(
                conn,
                format_args!("Lost the link while authenticating: {why}"),
            );
            Event::AuthLost
        } else {
            // SAFETY: a non-NULL reply from hiredis.
            if unsafe { host::MRReply_Type(reply) } == mrconn_reply_error {
                let mut len = 0usize;
                // SAFETY: as above; `len` is a valid out pointer.
                let s = unsafe { host::MRReply_String(reply, &mut len) };
                let text = if s.is_null() {
                    String::new()
                } else {
                    // SAFETY: the reply holds `len` bytes at `s`.
                    String::from_utf8_lossy(unsafe {
                        std::slice::from_raw_parts(s.cast::<u8>(), len)
                    })
                    .into_owned()
                };
                hlog!(Level::Warning, "{} Error authenticating: {text}", Tag(conn));
                Event::AuthRejected
            } else {
                Event::AuthAccepted
            }
        };
        MRConn::switch(conn, event);
    }
    // SAFETY: with REDIS_OPT_NOAUTOFREEREPLIES the reply is ours (NULL is accepted).
    unsafe { host::MRReply_Free(reply) };
}

fn after_read(ac: NonNull<redisAsyncContext>) {
    // SAFETY: called with a live context.
    if let Some(conn) = unsafe { owner(ac.as_ptr()) } {
        // SAFETY: `conn` is live.
        if unsafe { conn.as_ref() }.draining.is_some() {
            drain::on_read(conn, ac);
        }
    }
}

extern "C" fn on_reconnect_timer(timer: *mut uv_timer_t) {
    // SAFETY: our timers carry their connection.
    let conn = unsafe { Timer::owner(timer) }.cast::<MRConn>();
    if let Some(conn) = NonNull::new(conn) {
        start_connect(conn);
    }
}

extern "C" fn on_reauth_timer(timer: *mut uv_timer_t) {
    // SAFETY: our timers carry their connection.
    let conn = unsafe { Timer::owner(timer) }.cast::<MRConn>();
    if let Some(conn) = NonNull::new(conn) {
        send_auth(conn);
    }
}

extern "C" fn on_timer_closed(handle: *mut uv_handle_t) {
    // SAFETY: the timer's `data` is its connection, which was Box-allocated
    // in `new` and is referenced by nothing once Freeing but a backlog job.
    let conn = unsafe { (*handle).data }.cast::<MRConn>();
    // SAFETY: as above.
    let queued = unsafe { &mut (*conn).queued };
    if *queued == Queued::Held {
        // The job frees it when it comes to it.
        *queued = Queued::Freed;
        return;
    }
    // SAFETY: as above.
    drop(unsafe { Box::from_raw(conn) });
}
