//! One connection to a shard and its life on hiredis: connect, TLS, `AUTH`,
//! back-off and retry, teardown. The transitions themselves are
//! [`mrconn_core::next_state`]; this module performs what each state means.
//!
//! A connection knows nothing of pools or drains. Out of its pool it is
//! *leaving*; while it drains it reports what happens to it (a read, a lost
//! link, its deadline) to its owner through the one hook the manager
//! installs ([`Owner`]).
//!
//! Every use goes through [`ConnRef`], whose only constructor is `unsafe`
//! and states the invariant once; a connection's mutable parts are `Cell`s,
//! so no `&mut MRConn` ever exists beside another reference to it.

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, c_char, c_int, c_void};
use std::fmt;
use std::ptr::{self, NonNull};
use std::rc::Rc;
use std::time::Instant;

use mrconn_core::pool::PENDING_CAP;
use mrconn_core::{ConnState, Event, NodeLog, Say, Warning, next_state};

use crate::event_loop::{self, Timer};
use crate::host::{self, Endpoint, Gil, Level, MRCommand, hlog};
use crate::sys::errstr;
use crate::sys::glue::{mrconn_reply_error, mrconn_send_formatted};
use crate::sys::hiredis::{
    REDIS_CONN_TCP, REDIS_ERR, REDIS_OK, REDIS_OPT_NOAUTOFREEREPLIES, redisAsyncCommandArgv,
    redisAsyncConnectWithOptions, redisAsyncContext, redisAsyncFree, redisAsyncSetConnectCallback,
    redisAsyncSetDisconnectCallback, redisCallbackFn, redisFormatSdsCommandArgv, redisOptions,
};
use crate::sys::uv::{uv_loop_t, uv_timer_t};
use crate::{pending, reentry, tls};

const RECONNECT_MS: u64 = 250;
const REAUTH_MS: u64 = 1000;
const INTERNAL_AUTH_USER: &[u8] = b"internal connection";

/// A node's summed warnings, shared by its connections (loop thread only).
pub type NodeWarnings = Rc<RefCell<NodeLog>>;

/// What a draining connection tells its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// hiredis handled a read: replies may have reached their callbacks.
    Read,
    /// The link broke and the connection is being freed; hiredis has failed
    /// (or is about to fail) the pending callbacks with NULL.
    LinkLost,
    /// The deadline started with [`ConnRef::start_draining`] passed.
    Deadline,
}

/// Where a connection reports while it drains: the manager's hook and its
/// data.
#[derive(Clone, Copy)]
pub struct Owner {
    hook: unsafe fn(NonNull<c_void>, ConnRef, Report),
    data: NonNull<c_void>,
}

impl Owner {
    /// An owner that gets `hook(data, conn, report)`.
    ///
    /// # Safety
    /// 1. `hook` may be called with `data` on the loop thread whenever one of
    ///    the connections opened with this owner drains, with no borrow of
    ///    the manager's state live.
    pub unsafe fn new(
        hook: unsafe fn(NonNull<c_void>, ConnRef, Report),
        data: NonNull<c_void>,
    ) -> Owner {
        Owner { hook, data }
    }
}

/// Where a connection stands with respect to its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// In a pool (or being put in one): takes commands when Connected.
    Pool,
    /// Out of its pool, about to be held or released.
    Leaving,
    /// Out of its pool, held by a [`Held`] (a backlog job that sorts or
    /// closes it).
    Held,
    /// Torn down while held: the [`Held`] frees it.
    HeldFreed,
    /// Out of its pool, finishing the commands queued on it.
    Draining,
}

/// A connection: `MRConn` to C, which only ever holds pointers to it.
pub struct MRConn {
    ac: Cell<Option<NonNull<redisAsyncContext>>>,
    state: Cell<ConnState>,
    /// The RESP version last requested with `HELLO` (0: none yet).
    protocol: Cell<u8>,
    role: Cell<Role>,
    ep: Endpoint,
    loop_: NonNull<uv_loop_t>,
    /// Back-off while Reconnecting/ReAuth, the deadline while draining.
    timer: Timer,
    /// Its node's warnings, summed (shared with the node's other
    /// connections in this manager).
    node_log: NodeWarnings,
    owner: Owner,
}

/// A live connection, used on its loop thread.
///
/// Copies are held by its pool, the drain registry and backlog jobs; each
/// lets go before the connection's memory goes (at the earliest in the loop
/// iteration after [`ConnRef::release`], or with the [`Held`] that holds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef(NonNull<MRConn>);

impl ConnRef {
    /// A handle to `conn`.
    ///
    /// # Safety
    /// 1. `conn` points to a connection made by [`MRConn::open`] whose memory
    ///    has not gone yet, and the result, and its copies, are used only on
    ///    its loop thread and only until then.
    #[inline(always)]
    pub unsafe fn new(conn: NonNull<MRConn>) -> ConnRef {
        ConnRef(conn)
    }

    /// The pointer C holds.
    #[inline(always)]
    pub fn as_ptr(self) -> *mut MRConn {
        self.0.as_ptr()
    }
}

impl std::ops::Deref for ConnRef {
    type Target = MRConn;
    #[inline(always)]
    fn deref(&self) -> &MRConn {
        // SAFETY: `new`'s contract 1.; shared references only (the mutable
        // parts are Cells).
        unsafe { self.0.as_ref() }
    }
}

/// A backlog job's hold on a connection out of every pool: it takes no
/// command and never reconnects meanwhile, and its memory stays until the
/// hold is let go. At most one exists per connection.
#[must_use = "a held connection is freed only through its hold"]
pub struct Held(ConnRef);

impl Held {
    /// Whether there is still work to do on it: not torn down meanwhile.
    pub fn is_live(&self) -> bool {
        self.0.role.get() == Role::Held && self.0.state.get() != ConnState::Freeing
    }

    /// Its loop.
    pub fn event_loop(&self) -> NonNull<uv_loop_t> {
        self.0.loop_
    }

    /// Lets go: the connection, leaving, if there is work to do on it;
    /// `None` if it was torn down meanwhile (and is freed now, or by its
    /// timer's close callback).
    pub fn let_go(self) -> Option<ConnRef> {
        let conn = self.0;
        match conn.role.replace(Role::Leaving) {
            Role::HeldFreed => {
                // SAFETY: from Box::into_raw in `open`; its timer has closed,
                // and this hold was the last reference to it.
                drop(unsafe { Box::from_raw(conn.as_ptr()) });
                None
            }
            _ if conn.state.get() == ConnState::Freeing => None,
            _ => Some(conn),
        }
    }
}

/// Shorthand for the `[ptr host:port State]` prefix of every log line.
pub struct Tag<'a>(pub &'a MRConn);

impl fmt::Display for Tag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        write!(
            f,
            "[{:p} {}:{} {}]",
            ptr::from_ref(c),
            c.host(),
            c.port(),
            c.state.get().as_str()
        )
    }
}

impl MRConn {
    /// A new connection to `ep` on `loop_`, in a pool, already connecting.
    ///
    /// # Safety
    /// 1. `loop_` is live; this runs on its thread or before it runs.
    pub unsafe fn open(
        ep: &Endpoint,
        loop_: NonNull<uv_loop_t>,
        owner: Owner,
        node_log: NodeWarnings,
    ) -> ConnRef {
        // SAFETY: 1.; the owner is set below, before the timer can run.
        let timer = unsafe { Timer::new(loop_, ptr::null_mut()) };
        let conn = NonNull::from(Box::leak(Box::new(MRConn {
            ac: Cell::new(None),
            state: Cell::new(ConnState::Connecting),
            protocol: Cell::new(0),
            role: Cell::new(Role::Pool),
            ep: ep.clone(),
            loop_,
            timer,
            node_log,
            owner,
        })));
        // SAFETY: a fresh connection, freed only through its timer's close
        // callback or its hold, on this thread.
        let conn = unsafe { ConnRef::new(conn) };
        // SAFETY: the timer's callbacks below read their connection, which
        // outlives the timer (freed after its close callback at the earliest).
        unsafe { conn.timer.set_owner(conn.as_ptr().cast()) };
        log_switch(conn, ConnState::Connecting);
        start_connect(conn);
        conn
    }

    /// Its state.
    #[inline]
    pub fn state(&self) -> ConnState {
        self.state.get()
    }

    /// Whether new commands may go to it: Connected, and not leaving.
    #[inline]
    pub fn is_ready(&self) -> bool {
        self.state.get() == ConnState::Connected && !self.is_leaving()
    }

    /// Whether a pool connection may take new commands: Connected. One in a
    /// pool is never leaving (it leaves its pool before it is marked, and a
    /// drain ends before its connection rejoins one), so `MRConn_Get` reads
    /// its state alone.
    #[inline]
    pub fn is_ready_in_pool(&self) -> bool {
        debug_assert!(!self.is_leaving(), "a pool connection is leaving");
        self.state.get() == ConnState::Connected
    }

    /// How many replies it awaits, up to 2 ([`PENDING_CAP`]): 0, 1, or 2 for
    /// more; two loads, where counting walks hiredis's list. A pool
    /// connection never subscribes, so `ac->replies` holds them all
    /// (CONTRACT §7).
    #[inline]
    pub fn pending_upto_two(&self) -> u32 {
        const { assert!(PENDING_CAP == 2) };
        let Some(ac) = self.ac.get() else { return 0 };
        // SAFETY: the context of a connection is live while it holds it,
        // and read on its loop thread.
        let replies = &unsafe { ac.as_ref() }.replies;
        // An empty list has no tail either; one record is head and tail.
        u32::from(!replies.head.is_null()) + u32::from(replies.head != replies.tail)
    }

    /// Whether it left its pool: draining, held, or about to be.
    #[inline]
    fn is_leaving(&self) -> bool {
        self.role.get() != Role::Pool
    }

    /// Whether it drains.
    pub fn is_draining(&self) -> bool {
        self.role.get() == Role::Draining
    }

    /// Its endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    /// Its loop.
    pub fn event_loop(&self) -> NonNull<uv_loop_t> {
        self.loop_
    }

    /// The host part of its endpoint, for logs.
    pub fn host(&self) -> std::borrow::Cow<'_, str> {
        self.ep.host_str()
    }

    /// Its port.
    pub fn port(&self) -> c_int {
        self.ep.port()
    }

    /// Its hiredis context, while it has one.
    pub fn context(&self) -> Option<NonNull<redisAsyncContext>> {
        self.ac.get()
    }

    /// Queues `cmd` with `callback`: `MRConn_SendCommand`.
    ///
    /// # Safety
    /// 1. `cmd` is a valid command: `strs`/`lens` hold `num` arguments (or
    ///    are NULL), and `cmd` is NULL or an sds that a send stored there.
    /// 2. `callback`, if set, may be called once with `privdata`.
    #[inline]
    pub unsafe fn send(
        &self,
        cmd: &mut MRCommand,
        callback: redisCallbackFn,
        privdata: *mut c_void,
    ) -> c_int {
        if !self.is_ready() {
            self.refuse_send();
            return REDIS_ERR;
        }
        if cmd.sds().is_null() || (cmd.protocol() != 0 && cmd.protocol() != self.protocol.get()) {
            // SAFETY: 1. and 2.
            return unsafe { self.prepare_and_send(cmd, callback, privdata) };
        }
        // SAFETY: 1.: `cmd.cmd` is a formatted sds; 2.
        unsafe { self.hand_to_hiredis(cmd, callback, privdata) }
    }

    /// Hands the formatted `cmd` to hiredis, which copies it.
    ///
    /// # Safety
    /// 1. `cmd.cmd` is an sds of a formatted command.
    /// 2. `callback`, if set, may be called once with `privdata`.
    #[inline(always)]
    unsafe fn hand_to_hiredis(
        &self,
        cmd: &MRCommand,
        callback: redisCallbackFn,
        privdata: *mut c_void,
    ) -> c_int {
        let Some(ac) = self.ac.get() else {
            return REDIS_ERR;
        };
        // SAFETY: `ac` is this connection's live context; 1. and 2.
        unsafe { mrconn_send_formatted(ac.as_ptr(), callback, privdata, cmd.sds()) }
    }

    // The rest of `send`, out of line: what a preformatted command on the
    // same protocol (RediSearch's fan-out) never needs.

    /// `send` of a command not formatted yet, or on another protocol.
    ///
    /// # Safety
    /// As [`MRConn::send`].
    #[inline(never)]
    unsafe fn prepare_and_send(
        &self,
        cmd: &mut MRCommand,
        callback: redisCallbackFn,
        privdata: *mut c_void,
    ) -> c_int {
        // SAFETY: `send`'s contract 1.
        if cmd.sds().is_null() && !unsafe { self.format(cmd) } {
            return REDIS_ERR;
        }
        let wanted = cmd.protocol();
        if wanted != 0 && wanted != self.protocol.get() && !self.switch_protocol(wanted) {
            return REDIS_ERR;
        }
        // SAFETY: `cmd.cmd` is formatted now; `send`'s contract 2.
        unsafe { self.hand_to_hiredis(cmd, callback, privdata) }
    }

    #[cold]
    #[inline(never)]
    fn refuse_send(&self) {
        let tag = Tag(self);
        if self.is_leaving() {
            hlog!(
                Level::Warning,
                "{tag} Tried to send command to a draining connection"
            );
        } else {
            hlog!(
                Level::Warning,
                "{tag} Tried to send command to node in state {}",
                self.state.get().as_str()
            );
        }
    }

    /// Formats `cmd` into `cmd.cmd`; false (logged) when it cannot.
    ///
    /// # Safety
    /// 1. `strs`/`lens` hold `num` arguments, or are NULL.
    unsafe fn format(&self, cmd: &mut MRCommand) -> bool {
        let tag = Tag(self);
        let (num, strs, lens) = cmd.args();
        if num == 0 || strs.is_null() || lens.is_null() {
            hlog!(
                Level::Warning,
                "{tag} Failed to format command: it has no arguments"
            );
            return false;
        }
        // SAFETY: 1.; hiredis stores a new sds in `cmd.cmd`.
        let rc =
            unsafe { redisFormatSdsCommandArgv(cmd.sds_slot(), num as c_int, strs.cast(), lens) };
        if rc < 0 {
            hlog!(Level::Warning, "{tag} Failed to format command");
            return false;
        }
        true
    }

    /// Queues `HELLO <wanted>`; false (logged) when it cannot.
    fn switch_protocol(&self, wanted: u8) -> bool {
        let Some(ac) = self.ac.get() else {
            return false;
        };
        let arg: &[u8] = match wanted {
            2 => b"2",
            3 => b"3",
            _ => {
                hlog!(
                    Level::Warning,
                    "{} Unsupported protocol {wanted} in command",
                    Tag(self)
                );
                return false;
            }
        };
        // SAFETY: `ac` is this connection's live context.
        if unsafe { command(ac, None, ptr::null_mut(), &[b"HELLO", arg]) } != REDIS_OK as c_int {
            return false;
        }
        self.protocol.set(wanted);
        true
    }

    /// Severs the link to a context that failed (the link broke, or never
    /// came up) and frees it: as in hiredis and conn.c, whatever was pending
    /// gets NULL, the shard being gone.
    fn detach(&self) {
        self.protocol.set(0);
        if let Some(ac) = self.ac.take() {
            // SAFETY: the live context just taken from its connection.
            unsafe { free_context(ac, None) };
        }
    }

    /// Logs `what`, a warning of `kind`, as its node's log allows: the
    /// first of its kind as is (conn.c's text, where conn.c logs it), the
    /// repeats from any of the node's connections summed, one line per
    /// window. A connection that keeps failing retries every 250 ms.
    pub fn warn(&self, kind: Warning, what: fmt::Arguments<'_>) {
        let id = ptr::from_ref(self) as usize;
        let say = self.node_log.borrow_mut().warn(kind, id, Instant::now());
        match say {
            Say::Line => hlog!(Level::Warning, "{} {what}", Tag(self)),
            Say::Summary { count, conns, over } => hlog!(
                Level::Warning,
                "{} {what} ({count} times on {conns} connections of this node in the last {} s)",
                Tag(self),
                over.as_secs()
            ),
            Say::Nothing => {}
        }
    }

    /// It reached Connected: its node's link warnings end, with a notice if
    /// there were any.
    fn recovered(&self) {
        let recovery = self.node_log.borrow_mut().recovered(Instant::now());
        if let Some(r) = recovery {
            hlog!(
                Level::Notice,
                "{} Node reachable again after {} failures on {} connections over {} s",
                Tag(self),
                r.failures,
                r.conns,
                r.over.as_secs()
            );
        }
    }

    /// Reports `what` to its owner, if it drains.
    fn report(conn: ConnRef, what: Report) {
        if conn.is_draining() {
            let Owner { hook, data } = conn.owner;
            // SAFETY: `Owner::new`'s contract 1.: it drains, and no borrow of
            // the manager's state is live in the hooks and callbacks that
            // report.
            unsafe { hook(data, conn, what) };
        }
    }
}

impl ConnRef {
    /// Marks it held, out of every pool: `None` (a bug, asserted) if it is
    /// held already or drains (a drain that ends idle holds it with
    /// [`ConnRef::park`]).
    pub fn hold(self) -> Option<Held> {
        match self.role.get() {
            Role::Pool | Role::Leaving => {
                self.role.set(Role::Held);
                // A held connection never reconnects nor re-authenticates: it
                // is only sorted or closed.
                if matches!(
                    self.state.get(),
                    ConnState::Reconnecting | ConnState::ReAuth
                ) {
                    self.timer.stop();
                }
                Some(Held(self))
            }
            role => {
                debug_assert!(false, "held a connection that is {role:?}");
                None
            }
        }
    }

    /// Starts draining it, out of every pool; with `deadline_ms`, it
    /// reports [`Report::Deadline`] that many milliseconds from now.
    pub fn start_draining(self, deadline_ms: Option<u64>) {
        debug_assert_eq!(self.role.get(), Role::Leaving);
        self.role.set(Role::Draining);
        if let Some(ms) = deadline_ms {
            // SAFETY: the timer's owner is this connection (`open`), which
            // the callback takes it for.
            unsafe { self.timer.start_from_now(ms, on_deadline_timer) };
        }
    }

    /// Ends its drain, idle: held (see [`ConnRef::hold`]) until it is
    /// closed or taken back, with no deadline.
    pub fn park(self) -> Held {
        debug_assert_eq!(self.role.get(), Role::Draining);
        self.role.set(Role::Held);
        self.timer.stop();
        Held(self)
    }

    /// Ends its drain: it is leaving, with no deadline.
    pub fn stop_draining(self) {
        debug_assert_eq!(self.role.get(), Role::Draining);
        self.role.set(Role::Leaving);
        self.timer.stop();
    }

    /// Puts a leaving connection back in a pool.
    pub fn rejoin(self) {
        debug_assert_eq!(self.role.get(), Role::Leaving);
        self.role.set(Role::Pool);
    }

    /// Moves it on `event`; if that frees it, `why` ends the error reply of
    /// every callback still pending.
    fn transition(self, event: Event, why: &str) {
        if self.state.get() == ConnState::Freeing {
            return;
        }
        let to = next_state(self.state.get(), event, self.is_leaving());
        log_switch(self, to);
        self.state.set(to);
        match to {
            ConnState::Reconnecting => {
                self.detach();
                // SAFETY: as in `start_draining`.
                unsafe { self.timer.start(RECONNECT_MS, on_reconnect_timer) };
            }
            // SAFETY: as in `start_draining`.
            ConnState::ReAuth => unsafe { self.timer.start(REAUTH_MS, on_reauth_timer) },
            ConnState::Authenticating => send_auth(self),
            ConnState::Connected => self.recovered(),
            ConnState::Connecting => {}
            ConnState::Freeing => self.teardown(why),
        }
    }

    fn switch(self, event: Event) {
        // Only a release frees a connection with callbacks pending; this
        // text never reaches one.
        self.transition(event, "connection closed");
    }

    /// Tears the connection down (`Freeing`): its hiredis context is freed
    /// at once, and every callback still pending gets an error reply ending
    /// in `why` ("ERR connection to host:port closed: <why>"), inside this
    /// call.
    pub fn release(self, why: &str) {
        self.transition(Event::Released, why);
    }

    /// Frees a connection now in `Freeing`. Upstream asks hiredis to
    /// disconnect, which waits without bound for every pending reply and
    /// leaves the context unowned meanwhile (its libuv handles open past
    /// Shutdown). Here the context goes at once: a drain releases its
    /// connection only once nothing is pending, or when its time is up
    /// (deadline, Shutdown), and then every callback still pending gets an
    /// error reply naming `why`, which RediSearch shows the client. A NULL
    /// reply would read as "shard gone" and silently shrink the result.
    fn teardown(self, why: &str) {
        // Only a broken link frees a draining connection before its drain
        // ends; the owner ends it here, so none outlives its connection.
        MRConn::report(self, Report::LinkLost);
        self.protocol.set(0);
        if let Some(ac) = self.ac.take() {
            // SAFETY: the live context just taken from its connection.
            let text = (unsafe { pending::callbacks(ac) } > 0).then(|| {
                format!(
                    "ERR connection to {}:{} closed: {why}",
                    self.host(),
                    self.port()
                )
            });
            // User callbacks run in here and may call back with this
            // connection (it refuses them: Freeing).
            // SAFETY: as above.
            unsafe { free_context(ac, text.as_deref()) };
        }
        // The memory (and the endpoint with it) goes in the timer's close
        // callback, or with the hold that holds it.
        // SAFETY: as in `start_draining`: `on_timer_closed` frees the
        // connection it is given.
        unsafe { self.timer.close(on_timer_closed) };
    }
}

/// Frees a context we no longer own (`data` is cleared first, so our own
/// callbacks ignore it). With `error`, every pending callback first gets an
/// error reply of that text; hiredis then fails nothing. Without, hiredis
/// gives them NULL. From inside one of the context's own callbacks hiredis
/// defers the free until that callback returns.
///
/// # Safety
/// 1. `ac` is a live context just taken from its connection, on its loop
///    thread.
unsafe fn free_context(ac: NonNull<redisAsyncContext>, error: Option<&str>) {
    // User callbacks run below.
    reentry::check("a user callback");
    // SAFETY: 1.
    unsafe { (*ac.as_ptr()).data = ptr::null_mut() };
    if let Some(text) = error {
        // SAFETY: 1.; unowned now, and freed right below.
        unsafe { pending::fail_all(ac, text) };
    }
    // SAFETY: 1.; nothing of ours refers to it any more.
    unsafe { redisAsyncFree(ac.as_ptr()) };
}

fn log_switch(conn: ConnRef, to: ConnState) {
    hlog!(
        Level::Debug,
        "{} Switching state to {}",
        Tag(&conn),
        to.as_str()
    );
}

/// The connection behind a hiredis context, if it still has one.
///
/// # Safety
/// 1. `ac` is a live context created by this module, on its loop thread.
unsafe fn conn_of(ac: *const redisAsyncContext) -> Option<ConnRef> {
    // SAFETY: 1.
    let data = unsafe { (*ac).data };
    // SAFETY: a context's `data` is its connection, live while it owns the
    // context (cleared before the connection lets go of it).
    NonNull::new(data.cast::<MRConn>()).map(|c| unsafe { ConnRef::new(c) })
}

/// The connection a connection timer's callback runs for.
///
/// # Safety
/// 1. `timer` is the timer of a connection, passed to its callback.
unsafe fn conn_of_timer(timer: *mut uv_timer_t) -> Option<ConnRef> {
    // SAFETY: 1.
    let owner = unsafe { Timer::owner(timer) };
    // SAFETY: a connection's timer carries it, live until after the timer's
    // close callback (no timer callback runs after that).
    NonNull::new(owner.cast::<MRConn>()).map(|c| unsafe { ConnRef::new(c) })
}

/// Queues a command given as arguments.
///
/// # Safety
/// 1. `ac` is a live context, on its loop thread.
unsafe fn command(
    ac: NonNull<redisAsyncContext>,
    callback: redisCallbackFn,
    privdata: *mut c_void,
    args: &[&[u8]],
) -> c_int {
    let argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr().cast()).collect();
    let lens: Vec<usize> = args.iter().map(|a| a.len()).collect();
    // SAFETY: 1.; `argv`/`lens` describe `args.len()` buffers that hiredis
    // copies before returning.
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
fn start_connect(conn: ConnRef) {
    if connect(conn).is_err() {
        conn.switch(Event::ConnectNotStarted);
    }
}

fn connect(conn: ConnRef) -> Result<(), ()> {
    debug_assert!(conn.ac.get().is_none());
    let timeout = host::connect_timeout();
    let mut opts = redisOptions {
        type_: REDIS_CONN_TCP as _,
        options: REDIS_OPT_NOAUTOFREEREPLIES as c_int,
        connect_timeout: timeout
            .as_ref()
            .map_or(ptr::null(), |t| ptr::from_ref(t).cast()),
        ..Default::default()
    };
    opts.endpoint.tcp.ip = conn.ep.raw().host_ptr();
    opts.endpoint.tcp.port = conn.ep.port();
    // SAFETY: `opts` is fully initialised and outlives the call; hiredis
    // copies what it keeps.
    let ac = unsafe { redisAsyncConnectWithOptions(&opts) };
    let Some(ac) = NonNull::new(ac) else {
        hlog!(
            Level::Debug,
            "{} Could not allocate async context with the given options",
            Tag(&conn)
        );
        return Err(());
    };
    // SAFETY: `ac` is the live context just returned.
    let failed = unsafe { (*ac.as_ptr()).err } != 0;
    if failed {
        // SAFETY: as above.
        let why = errstr(unsafe { &(*ac.as_ptr()).c });
        conn.warn(
            Warning::ConnectNotStarted,
            format_args!("Could not connect to node: {why}"),
        );
        // SAFETY: `ac` is ours and unused.
        unsafe { redisAsyncFree(ac.as_ptr()) };
        return Err(());
    }
    // SAFETY: `ac` is live with no event library yet; our loop is live.
    let attached = unsafe { event_loop::attach(ac, conn.loop_, after_read) }.is_ok()
        // SAFETY: `ac` is live; the callbacks are ours.
        && unsafe { redisAsyncSetConnectCallback(ac.as_ptr(), Some(on_connect)) } == REDIS_OK as c_int
        // SAFETY: as above.
        && unsafe { redisAsyncSetDisconnectCallback(ac.as_ptr(), Some(on_disconnect)) } == REDIS_OK as c_int;
    if !attached {
        hlog!(
            Level::Warning,
            "{} Failed to attach hiredis context to libuv",
            Tag(&conn)
        );
        // SAFETY: `ac` is ours and unused.
        unsafe { redisAsyncFree(ac.as_ptr()) };
        return Err(());
    }
    // SAFETY: `ac` is live; `data` is ours to set.
    unsafe { (*ac.as_ptr()).data = conn.as_ptr().cast() };
    conn.ac.set(Some(ac));
    conn.protocol.set(0);
    Ok(())
}

fn send_auth(conn: ConnRef) {
    let rc = match conn.ac.get() {
        None => REDIS_ERR,
        Some(ac) if !host::IsEnterprise() => {
            let gil = Gil::lock();
            let secret = gil.internal_secret();
            let args: [&[u8]; 3] = [b"AUTH", INTERNAL_AUTH_USER, &secret];
            // SAFETY: the connection's live context.
            let rc = unsafe { command(ac, Some(on_auth), ptr::null_mut(), &args) };
            drop(gil);
            rc
        }
        Some(ac) => {
            let password = conn.ep.password().map_or(&b""[..], CStr::to_bytes);
            // SAFETY: the connection's live context.
            unsafe { command(ac, Some(on_auth), ptr::null_mut(), &[b"AUTH", password]) }
        }
    };
    if rc != REDIS_OK as c_int {
        conn.switch(Event::AuthNotSent);
    }
}

unsafe extern "C" fn on_connect(ac: *const redisAsyncContext, status: c_int) {
    // SAFETY: hiredis passes its live context.
    // A context is freed as soon as it is detached, so it always has an owner
    // here; a callback on an ownerless one has nothing to do.
    let Some(conn) = (unsafe { conn_of(ac) }) else {
        return;
    };
    if status != REDIS_OK as c_int {
        // SAFETY: as above.
        let why = errstr(unsafe { &(*ac).c });
        conn.warn(
            Warning::ConnectFailed,
            format_args!("Error on connect: {why}"),
        );
        conn.switch(Event::ConnectFailed);
        return;
    }
    // SAFETY: as above; hiredis does not touch its context while its connect
    // callback runs, and nothing else refers to the link.
    let link = unsafe { &mut (*ac.cast_mut()).c };
    let warn = |what: fmt::Arguments<'_>| conn.warn(Warning::TlsFailed, what);
    let tls_ok = tls::initiate(link, conn.ep.raw(), &Tag(&conn), &warn).is_ok();
    let has_password = conn.ep.password().is_some();
    let needs_auth = !host::IsEnterprise() || has_password;
    conn.switch(Event::ConnectSucceeded { tls_ok, needs_auth });
}

unsafe extern "C" fn on_disconnect(ac: *const redisAsyncContext, status: c_int) {
    // SAFETY: hiredis passes its live context.
    let Some(conn) = (unsafe { conn_of(ac) }) else {
        return;
    };
    // Beyond upstream, which switches silently: a link that broke with an
    // error (server gone, TLS handshake rejected after the connect callback)
    // gets a warning, summed per node. A draining connection reports its
    // broken link in its drain's terms instead.
    if status != REDIS_OK as c_int && !conn.is_leaving() {
        // SAFETY: as above.
        let why = unsafe { context_error(ac) };
        conn.warn(
            Warning::Disconnected,
            format_args!("Disconnected from node: {why}"),
        );
    }
    conn.switch(Event::Disconnected);
}

/// The error text of a context, for a log line.
///
/// # Safety
/// 1. `ac` is a live context.
unsafe fn context_error(ac: *const redisAsyncContext) -> String {
    // SAFETY: 1.
    let why = errstr(unsafe { &(*ac).c });
    // hiredis leaves "Success" (strerror(0)) when the peer closed the link
    // or a TLS handshake failed after the connect: no reason to give.
    if why.is_empty() || why == "Success" {
        "connection closed".to_owned()
    } else {
        why
    }
}

unsafe extern "C" fn on_auth(
    ac: *mut redisAsyncContext,
    reply: *mut c_void,
    _privdata: *mut c_void,
) {
    // SAFETY: hiredis passes its live context.
    if let Some(conn) = unsafe { conn_of(ac) } {
        // SAFETY: as above.
        let ctx_err = unsafe { (*ac).err } != 0;
        let event = if reply.is_null() || ctx_err {
            // Beyond upstream, which reconnects silently here: the link broke
            // under AUTH, e.g. the TLS handshake failed (peer verification
            // happens after the connect callback); say why.
            // SAFETY: as above.
            let why = unsafe { context_error(ac) };
            conn.warn(
                Warning::AuthLost,
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
                conn.warn(
                    Warning::AuthRejected,
                    format_args!("Error authenticating: {text}"),
                );
                Event::AuthRejected
            } else {
                Event::AuthAccepted
            }
        };
        conn.switch(event);
    }
    // SAFETY: with REDIS_OPT_NOAUTOFREEREPLIES the reply is ours (NULL is accepted).
    unsafe { host::MRReply_Free(reply) };
}

/// # Safety
/// 1. `ac` is a live context, on its loop thread (the read hook's contract).
unsafe fn after_read(ac: NonNull<redisAsyncContext>) {
    // SAFETY: 1.
    if let Some(conn) = unsafe { conn_of(ac.as_ptr()) } {
        MRConn::report(conn, Report::Read);
    }
}

unsafe extern "C" fn on_reconnect_timer(timer: *mut uv_timer_t) {
    // SAFETY: libuv passes the connection timer it runs.
    if let Some(conn) = unsafe { conn_of_timer(timer) } {
        start_connect(conn);
    }
}

unsafe extern "C" fn on_reauth_timer(timer: *mut uv_timer_t) {
    // SAFETY: libuv passes the connection timer it runs.
    if let Some(conn) = unsafe { conn_of_timer(timer) } {
        send_auth(conn);
    }
}

unsafe extern "C" fn on_deadline_timer(timer: *mut uv_timer_t) {
    // SAFETY: libuv passes the connection timer it runs.
    if let Some(conn) = unsafe { conn_of_timer(timer) } {
        MRConn::report(conn, Report::Deadline);
    }
}

/// A connection's timer has closed: its memory goes now, or with the hold
/// that holds it.
///
/// # Safety
/// 1. `owner` is the connection whose timer closed, from `open`, after its
///    teardown: referenced by nothing but a hold.
unsafe fn on_timer_closed(owner: *mut c_void) {
    let conn = owner.cast::<MRConn>();
    // SAFETY: 1.
    let role = unsafe { &(*conn).role };
    if role.get() == Role::Held {
        role.set(Role::HeldFreed);
        return;
    }
    // SAFETY: 1.: from Box::leak in `open`, referenced by nothing.
    drop(unsafe { Box::from_raw(conn) });
}
