//! What happens to connections that leave a pool: on `Shrink`, when a node's
//! pool is removed (`Disconnect`) or replaced (`Add` with a new endpoint), and
//! what `Expand` and `Add` take back. Opening and closing sockets happens in
//! slices on the loop ([`crate::backlog`]).
//!
//! A leaving connection takes no new command from that moment: it is out of
//! its pool, so `MRConn_Get` cannot return it, and `MRConn_SendCommand`
//! refuses it. Then:
//! - idle (nothing in hiredis's reply lists, see [`pending::is_idle`]) or not
//!   Connected (no user work can be queued on it), it closes at once;
//! - otherwise it *drains*: after every read the loop checks its reply lists
//!   and closes it as soon as the last pending reply has reached its
//!   callback. A deadline (see [`deadline_ms`]) closes it by force: what is
//!   still pending gets an error reply naming the deadline, which RediSearch
//!   shows the client. A broken link ends the drain too; hiredis fails the
//!   rest with NULL, as it does in conn.c.
//!
//! Nothing here waits: every step is a callback on the loop. No user callback
//! runs while this module borrows the manager's pools or state: connections
//! are collected first, and closed after.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use mrconn_core::{BatchReport, DrainBook, DrainCause, DrainOutcome, DrainStats};

use crate::conn::{Draining, MRConn, Tag};
use crate::event_loop::Timer;
use crate::host::dict;
use crate::host::{self, Level, MREndpoint, hlog};
use crate::manager::{MRConnManager, NodePool, State};
use crate::pending;
use crate::sys::glue::mrconn_enforced_query_timeout_ms;
use crate::sys::hiredis::redisAsyncContext;
use crate::sys::uv::{uv_loop_t, uv_timer_t};

/// `MRConnManager_SetDrainTimeout`'s value that restores the default.
pub const TIMEOUT_DEFAULT: u32 = u32::MAX;

/// The least default deadline, in milliseconds.
const MIN_DEFAULT_MS: u32 = 5000;

/// How much longer than RediSearch's query timeout the default deadline is:
/// the shard's reply to a query that just timed out is still on its way.
const QUERY_TIMEOUT_SLACK_MS: u32 = 1000;

/// The deadline set by `MRConnManager_SetDrainTimeout` ([`TIMEOUT_DEFAULT`]:
/// none set). Read when a drain starts; set from any thread.
static TIMEOUT_MS: AtomicU32 = AtomicU32::new(TIMEOUT_DEFAULT);

/// Sets the deadline of drains that start from now on: `ms`, 0 for none, or
/// [`TIMEOUT_DEFAULT`] to derive it from the query timeout again.
pub fn set_timeout_ms(ms: u32) {
    TIMEOUT_MS.store(ms, Ordering::Relaxed);
}

/// The deadline of a drain that starts now; `None`: it waits as long as its
/// work takes, as conn.c does.
///
/// By default the deadline never cuts work RediSearch itself still waits
/// for: when RediSearch enforces its query timeout on a silent shard
/// (`search-on-timeout` `fail` or `return-strict`), it is `max(5000,
/// search-timeout + 1000)` ms, the shard's late reply being of no use by
/// then; otherwise (the `return` policy, RediSearch's default, which waits
/// for every shard; or a timeout of 0) there is none.
pub fn deadline_ms() -> Option<u32> {
    match TIMEOUT_MS.load(Ordering::Relaxed) {
        0 => None,
        TIMEOUT_DEFAULT => default_deadline_ms(mrconn_enforced_query_timeout_ms()),
        ms => Some(ms),
    }
}

fn default_deadline_ms(query_timeout_ms: i64) -> Option<u32> {
    if query_timeout_ms <= 0 {
        return None;
    }
    let ms = u32::try_from(query_timeout_ms)
        .unwrap_or(u32::MAX)
        .saturating_add(QUERY_TIMEOUT_SLACK_MS)
        .max(MIN_DEFAULT_MS);
    // u32::MAX stays the "default" marker, never a deadline.
    Some(ms.min(TIMEOUT_DEFAULT - 1))
}

fn describe(deadline: Option<u32>) -> String {
    deadline.map_or_else(
        || "no deadline".to_owned(),
        |ms| format!("deadline {ms} ms"),
    )
}

/// A manager's draining connections and their bookkeeping.
#[derive(Default)]
pub struct Drains {
    book: DrainBook,
    conns: Vec<NonNull<MRConn>>,
}

impl Drains {
    /// The totals so far.
    pub fn stats(&self) -> DrainStats {
        self.book.stats()
    }
}

/// Connections that left their pool, sorted, before anything happens to them.
#[derive(Default)]
struct Leaving {
    /// Nothing to finish: they close at once.
    idle: Vec<NonNull<MRConn>>,
    /// Connections with work pending, and how many callbacks each awaits.
    busy: Vec<(NonNull<MRConn>, u64)>,
    pending: u64,
}

impl Leaving {
    fn sort(conns: Vec<NonNull<MRConn>>) -> Leaving {
        let mut leaving = Leaving::default();
        for conn in conns {
            // SAFETY: pool connections are live.
            let c = unsafe { conn.as_ref() };
            let ac = c
                .context()
                .filter(|_| c.state() == mrconn_core::ConnState::Connected);
            // SAFETY: a connection's context is live.
            match ac.filter(|&ac| !unsafe { pending::is_idle(ac) }) {
                Some(ac) => {
                    // SAFETY: as above.
                    let pending = unsafe { pending::callbacks(ac) };
                    leaving.busy.push((conn, pending));
                    leaving.pending += pending;
                }
                None => leaving.idle.push(conn),
            }
        }
        leaving
    }

    /// Closes the idle ones: those with a hiredis context on the loop, in
    /// slices; the others (no socket to close) at once. With no user command
    /// pending, no user callback runs (an `AUTH` in flight gets its error
    /// reply, which ours ignores).
    fn close_idle(self, mgr: &mut MRConnManager) {
        let map = mgr.map();
        let backlog = &mut mgr.state().backlog;
        for conn in self.idle {
            // SAFETY: leaving connections are live.
            if unsafe { conn.as_ref() }.context().is_some() {
                backlog.close(map, conn);
            } else {
                MRConn::release(conn, "connection left its pool");
            }
        }
    }
}

/// `MRConnManager_Shrink`: every pool keeps its first `num` connections.
pub fn shrink(mgr: &mut MRConnManager, num: u32) {
    let from = mgr.nodeConns;
    let mut surplus = Vec::new();
    mgr.parts()
        .0
        .for_each(|_, pool| surplus.extend(pool.shrink(num as usize)));
    mgr.nodeConns = num as i32;
    let leaving = Leaving::sort(surplus);
    let deadline = deadline_ms();
    hlog!(
        Level::Notice,
        "MRConnManager_Shrink: {from} -> {num} connections per node: {} closed idle, {} draining with {} commands pending ({})",
        leaving.idle.len(),
        leaving.busy.len(),
        leaving.pending,
        describe(deadline),
    );
    let cause = DrainCause::Shrink {
        from: u32::try_from(from).unwrap_or(0),
        to: num,
    };
    let state = mgr.state();
    state.backlog.cap(num as usize);
    begin(&mut state.drains, deadline, &leaving.busy, cause);
    leaving.close_idle(mgr);
}

/// `MRConnManager_Expand`: every pool grows to `num` on the loop, in
/// slices, taking back draining connections to its endpoint before opening
/// new ones.
pub fn expand(mgr: &mut MRConnManager, num: u32, loop_: NonNull<uv_loop_t>) {
    let map = mgr.map();
    let (mut pools, state) = mgr.parts();
    pools.for_each(|id, pool| {
        if pool.is_empty() {
            hlog!(
                Level::Warning,
                "MRConnManager_Expand: node {} has an empty pool",
                id.to_string_lossy()
            );
            return;
        }
        state.backlog.fill(map, loop_, id, num as usize);
    });
    mgr.nodeConns = num as i32;
}

/// A connection for a new pool to `ep`: a draining one taken back, or a new
/// one, which the backlog starts (creating it is cheap, connecting is not).
/// Runs no callback.
pub fn join_pool(
    state: &mut State,
    map: NonNull<dict>,
    ep: &MREndpoint,
    loop_: NonNull<uv_loop_t>,
) -> NonNull<MRConn> {
    reclaim(&mut state.drains, ep).unwrap_or_else(|| {
        // SAFETY: `ep` is valid; the loop is the caller's live loop.
        let conn = unsafe { MRConn::new(ep, loop_) };
        state.backlog.start(map, conn);
        conn
    })
}

/// One step of growing `pool` to `size`: a draining connection to its
/// endpoint taken back, or a new one opened. Whether it grew. Runs no
/// callback.
pub fn grow_one(drains: &mut Drains, pool: &mut NodePool, size: usize) -> bool {
    let Some(first) = pool.first().filter(|_| pool.len() < size) else {
        return false;
    };
    // SAFETY: pool connections are live, and the first one stays in its
    // pool (and alive) while this only appends.
    let first = unsafe { first.as_ref() };
    let conn = reclaim(drains, first.endpoint()).unwrap_or_else(|| {
        // SAFETY: a pool connection's endpoint is valid and its loop live.
        unsafe { MRConn::open(first.endpoint(), first.event_loop()) }
    });
    pool.push(conn);
    true
}

fn reclaim(drains: &mut Drains, ep: &MREndpoint) -> Option<NonNull<MRConn>> {
    if drains.conns.is_empty() {
        return None;
    }
    let conn = *drains.conns.iter().find(|c| {
        // SAFETY: draining connections are live.
        let c = unsafe { c.as_ref() };
        // SAFETY: both endpoints are valid.
        c.state() == mrconn_core::ConnState::Connected
            && unsafe { host::MREndpoint_Equal(c.endpoint(), ep) }
    })?;
    finish_in(drains, conn, DrainOutcome::Reclaimed);
    Some(conn)
}

/// Retires the connections of a pool the manager dropped: node removal or
/// endpoint change. The caller holds no borrow of the manager's pools.
pub fn retire(mgr: &mut MRConnManager, conns: Vec<NonNull<MRConn>>, cause: DrainCause, node: &str) {
    let leaving = Leaving::sort(conns);
    let deadline = deadline_ms();
    hlog!(
        Level::Notice,
        "{}: node {node}: {} connections closed idle, {} draining with {} commands pending ({})",
        operation(cause),
        leaving.idle.len(),
        leaving.busy.len(),
        leaving.pending,
        describe(deadline),
    );
    begin(&mut mgr.state().drains, deadline, &leaving.busy, cause);
    leaving.close_idle(mgr);
}

/// Sends `busy` draining as one batch, each closed by force at `deadline_ms`
/// if it has one.
fn begin(
    drains: &mut Drains,
    deadline_ms: Option<u32>,
    busy: &[(NonNull<MRConn>, u64)],
    cause: DrainCause,
) {
    if busy.is_empty() {
        return;
    }
    let since = Instant::now();
    let batch = drains.book.open(cause, busy.len() as u64, since);
    let registry = NonNull::from(&mut *drains);
    for &(conn, pending) in busy {
        // SAFETY: leaving connections are live and owned by us alone now.
        let c = unsafe { &mut *conn.as_ptr() };
        c.draining = Some(Box::new(Draining {
            drains: registry,
            batch,
            since,
            pending,
            deadline_ms,
            slot: drains.conns.len(),
        }));
        if let Some(ms) = deadline_ms {
            c.timer.start_from_now(u64::from(ms), on_deadline);
        }
        drains.conns.push(conn);
    }
}

/// After a read on a draining connection: closes it once it is idle.
pub fn on_read(conn: NonNull<MRConn>, ac: NonNull<redisAsyncContext>) {
    // SAFETY: the read hook passes the connection's live context.
    if !unsafe { pending::is_idle(ac) } {
        // Kept for a broken link: hiredis fails those callbacks before it
        // tells us, and a read either delivers replies or finds the break.
        // SAFETY: as above.
        let pending = unsafe { pending::callbacks(ac) };
        // SAFETY: draining connections are live; no other reference to
        // this one exists in the read hook.
        if let Some(draining) = unsafe { &mut (*conn.as_ptr()).draining } {
            draining.pending = pending;
        }
        return;
    }
    finish(conn, DrainOutcome::Graceful);
    MRConn::release(conn, "drain finished");
}

/// The link of a draining connection broke, and it is being freed; hiredis
/// has already failed its pending callbacks with NULL.
pub fn on_link_lost(conn: NonNull<MRConn>) {
    // SAFETY: draining connections are live.
    let failed = unsafe { conn.as_ref() }
        .draining
        .as_ref()
        .map_or(0, |d| d.pending);
    hlog!(
        Level::Warning,
        "{} Link lost while draining: {failed} pending commands failed",
        Tag(conn)
    );
    finish(conn, DrainOutcome::Broken { failed });
}

extern "C" fn on_deadline(timer: *mut uv_timer_t) {
    // SAFETY: connection timers carry their connection.
    let Some(conn) = NonNull::new(unsafe { Timer::owner(timer) }.cast::<MRConn>()) else {
        return;
    };
    // SAFETY: the timer runs only while its connection is live.
    let Some(draining) = (unsafe { conn.as_ref() }).draining.as_deref().copied() else {
        return;
    };
    // SAFETY: the registry outlives its draining connections, and nothing
    // else refers to it while a timer callback runs.
    stop_draining_by_force(
        unsafe { &mut *draining.drains.as_ptr() },
        conn,
        "Drain deadline reached",
    );
    // The registry reference has ended: the callbacks failed here may call
    // back into the manager.
    let ms = draining.deadline_ms.unwrap_or(0);
    MRConn::release(conn, &format!("drain deadline of {ms} ms reached"));
}

/// Ends the drain of `conn` as forced, with a warning; the caller then
/// closes it, failing its pending callbacks with an error reply.
fn stop_draining_by_force(drains: &mut Drains, conn: NonNull<MRConn>, why: &str) {
    // SAFETY: draining connections are live.
    let c = unsafe { conn.as_ref() };
    let Some(draining) = c.draining.as_deref().copied() else {
        return;
    };
    // SAFETY: a draining connection's context is live.
    let failed = c
        .context()
        .map_or(0, |ac| unsafe { pending::callbacks(ac) });
    hlog!(
        Level::Warning,
        "{} {why} after {} ms: closing by force, failing {failed} pending commands",
        Tag(conn),
        draining.since.elapsed().as_millis()
    );
    finish_in(drains, conn, DrainOutcome::Forced { failed });
}

/// Shutdown: every drain ends as forced. Returns the connections, for the
/// caller to close once it holds no borrow of the registry.
pub fn force_all(drains: &mut Drains) -> Vec<NonNull<MRConn>> {
    let conns = drains.conns.clone();
    for &conn in &conns {
        stop_draining_by_force(drains, conn, "Shutdown while draining");
    }
    conns
}

/// Ends the drain of `conn` (see [`finish_in`]) from a hook that holds no
/// reference to its registry: the read hook and the link-lost hook.
fn finish(conn: NonNull<MRConn>, outcome: DrainOutcome) {
    // SAFETY: draining connections are live.
    let Some(draining) = (unsafe { conn.as_ref() }).draining.as_deref().copied() else {
        return;
    };
    // SAFETY: the registry outlives its draining connections (it forces
    // them all before it goes), and these hooks run from hiredis callbacks,
    // when no other reference to it exists.
    finish_in(unsafe { &mut *draining.drains.as_ptr() }, conn, outcome);
}

/// Ends the drain of `conn`: out of `drains` (its registry), timer stopped,
/// outcome booked, and the batch's report logged when it was the last.
///
/// Callers that already hold `&mut Drains` (reclaim, shutdown) pass it here:
/// reaching the registry through the connection's pointer as well would make
/// two live `&mut` to it, which the optimiser does exploit.
fn finish_in(drains: &mut Drains, conn: NonNull<MRConn>, outcome: DrainOutcome) {
    // SAFETY: draining connections are live.
    let c = unsafe { &mut *conn.as_ptr() };
    let Some(draining) = c.draining.take() else {
        return;
    };
    debug_assert_eq!(draining.drains, NonNull::from(&mut *drains));
    c.timer.stop();
    // Out of the list in O(1): when thousands of drains end in one burst of
    // replies, a search per drain would stall the loop.
    debug_assert_eq!(drains.conns.get(draining.slot), Some(&conn));
    drains.conns.swap_remove(draining.slot);
    if let Some(&moved) = drains.conns.get(draining.slot) {
        // SAFETY: draining connections are live; `moved` is another one.
        if let Some(d) = unsafe { &mut (*moved.as_ptr()).draining } {
            d.slot = draining.slot;
        }
    }
    if let Some(report) = drains.book.close(draining.batch, outcome, Instant::now()) {
        log_report(&report);
    }
}

fn log_report(r: &BatchReport) {
    hlog!(
        Level::Notice,
        "{}: drain of {} connections finished in {} ms: {} graceful, {} forced, {} lost their link, {} reclaimed, {} callbacks failed",
        operation(r.cause),
        r.graceful + r.forced + r.broken + r.reclaimed,
        r.elapsed.as_millis(),
        r.graceful,
        r.forced,
        r.broken,
        r.reclaimed,
        r.failed_callbacks
    );
}

fn operation(cause: DrainCause) -> &'static str {
    match cause {
        DrainCause::Shrink { .. } => "MRConnManager_Shrink",
        DrainCause::NodeRemoved => "MRConnManager_Disconnect",
        DrainCause::EndpointChanged => "MRConnManager_Add",
    }
}
