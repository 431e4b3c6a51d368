//! What happens to connections that leave a pool: on `Shrink`, when a node's
//! pool is removed (`Disconnect`) or replaced (`Add` with a new endpoint), and
//! what `Expand` and `Add` take back.
//!
//! A leaving connection takes no new command from that moment: it is out of
//! its pool, so `MRConn_Get` cannot return it, and `MRConn_SendCommand`
//! refuses it. Then:
//! - with no callback pending (none in hiredis's reply lists) or not Connected
//!   (no user work can be queued on it), it closes at once;
//! - otherwise it *drains*: after every read the loop checks its reply lists
//!   and closes it as soon as the last pending reply has reached its
//!   callback; a deadline timer (`MRConnManager_SetDrainTimeout`, 5 s by
//!   default) closes it by force, failing what is still pending with NULL
//!   replies; a broken link ends the drain too, hiredis failing the rest.
//!
//! Nothing here waits: every step is a callback on the loop.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use mrconn_core::{BatchReport, DrainBook, DrainCause, DrainOutcome, DrainStats};

use crate::conn::{Draining, MRConn, Tag};
use crate::event_loop::Timer;
use crate::exports::MRConnManager;
use crate::host::{self, Level, MREndpoint, hlog};
use crate::manager::NodePool;
use crate::sys::hiredis::redisAsyncContext;
use crate::sys::uv::{uv_loop_t, uv_timer_t};

/// The drain deadline used when none is set, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u32 = 5000;

/// Read when a drain starts; set from any thread.
static TIMEOUT_MS: AtomicU32 = AtomicU32::new(DEFAULT_TIMEOUT_MS);

/// Sets the deadline of drains that start from now on.
pub fn set_timeout_ms(ms: u32) {
    TIMEOUT_MS.store(ms, Ordering::Relaxed);
}

/// The deadline of drains that start now.
pub fn timeout_ms() -> u32 {
    TIMEOUT_MS.load(Ordering::Relaxed)
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

/// Connections sorted on leaving their pool.
#[derive(Default)]
struct Leaving {
    closed_idle: usize,
    /// Connections with work pending, and how many callbacks each awaits.
    busy: Vec<(NonNull<MRConn>, u64)>,
    pending: u64,
}

impl Leaving {
    /// Closes every connection with no user work at once; keeps the others.
    fn sort(&mut self, conns: Vec<NonNull<MRConn>>) {
        for conn in conns {
            // SAFETY: pool connections are live.
            let pending = unsafe { conn.as_ref() }.context().map_or(0, pending);
            // SAFETY: as above.
            if pending == 0 || unsafe { conn.as_ref() }.state() != mrconn_core::ConnState::Connected
            {
                MRConn::release(conn);
                self.closed_idle += 1;
            } else {
                self.busy.push((conn, pending));
                self.pending += pending;
            }
        }
    }
}

/// `MRConnManager_Shrink`: every pool keeps its first `num` connections.
pub fn shrink(mgr: &mut MRConnManager, num: u32) {
    let from = mgr.nodeConns;
    let mut leaving = Leaving::default();
    let (mut pools, state) = mgr.parts();
    pools.for_each(|_, pool| leaving.sort(pool.shrink(num as usize)));
    let drains = &mut state.drains;
    let deadline = timeout_ms();
    hlog!(
        Level::Notice,
        "MRConnManager_Shrink: {from} -> {num} connections per node: {} closed idle, {} draining with {} commands pending (deadline {deadline} ms)",
        leaving.closed_idle,
        leaving.busy.len(),
        leaving.pending,
    );
    begin(
        drains,
        deadline,
        leaving.busy,
        DrainCause::Shrink {
            from: u32::try_from(from).unwrap_or(0),
            to: num,
        },
    );
    mgr.nodeConns = num as i32;
}

/// `MRConnManager_Expand`: every pool grows to `num`, taking back draining
/// connections to its endpoint before opening new ones.
pub fn expand(mgr: &mut MRConnManager, num: u32, loop_: NonNull<uv_loop_t>) {
    let (mut pools, state) = mgr.parts();
    pools.for_each(|id, pool| {
        let Some(first) = pool.first() else {
            hlog!(
                Level::Warning,
                "MRConnManager_Expand: node {} has an empty pool",
                id.to_string_lossy()
            );
            return;
        };
        // SAFETY: pool connections are live, and the first one stays in
        // its pool (and alive) while `fill` only appends.
        let ep = unsafe { first.as_ref() }.endpoint();
        fill(&mut state.drains, pool, num as usize, ep, loop_);
    });
    mgr.nodeConns = num as i32;
}

/// Grows `pool` to `num`: first with draining connections to `ep` that are
/// still Connected, then with new ones.
pub fn fill(
    drains: &mut Drains,
    pool: &mut NodePool,
    num: usize,
    ep: &MREndpoint,
    loop_: NonNull<uv_loop_t>,
) {
    while pool.len() < num {
        let conn = match reclaim(drains, ep) {
            Some(conn) => conn,
            // SAFETY: `ep` is valid; the loop is the caller's live loop.
            None => unsafe { MRConn::open(ep, loop_) },
        };
        pool.push(conn);
    }
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
/// endpoint change.
pub fn retire(drains: &mut Drains, conns: Vec<NonNull<MRConn>>, cause: DrainCause, node: &str) {
    let mut leaving = Leaving::default();
    leaving.sort(conns);
    let deadline = timeout_ms();
    hlog!(
        Level::Notice,
        "{}: node {node}: {} connections closed idle, {} draining with {} commands pending (deadline {deadline} ms)",
        operation(cause),
        leaving.closed_idle,
        leaving.busy.len(),
        leaving.pending,
    );
    begin(drains, deadline, leaving.busy, cause);
}

/// Sends `busy` draining as one batch, each closed by force after
/// `deadline_ms` at the latest.
fn begin(
    drains: &mut Drains,
    deadline_ms: u32,
    busy: Vec<(NonNull<MRConn>, u64)>,
    cause: DrainCause,
) {
    if busy.is_empty() {
        return;
    }
    let since = Instant::now();
    let batch = drains.book.open(cause, busy.len() as u64, since);
    let registry = NonNull::from(&mut *drains);
    for (conn, pending) in busy {
        // SAFETY: leaving connections are live and owned by us alone now.
        let c = unsafe { &mut *conn.as_ptr() };
        c.draining = Some(Draining {
            drains: registry,
            batch,
            since,
            pending,
        });
        c.timer.start_from_now(u64::from(deadline_ms), on_deadline);
        drains.conns.push(conn);
    }
}

/// After a read on a draining connection: closes it if nothing is pending.
pub fn on_read(conn: NonNull<MRConn>, ac: NonNull<redisAsyncContext>) {
    if has_pending(ac) {
        // Kept for a broken link: hiredis fails those callbacks before it
        // tells us, and a read either delivers replies or finds the break.
        // SAFETY: draining connections are live; no other reference to
        // this one exists in the read hook.
        if let Some(draining) = unsafe { &mut (*conn.as_ptr()).draining } {
            draining.pending = pending(ac);
        }
        return;
    }
    finish(conn, DrainOutcome::Graceful);
    MRConn::release(conn);
}

/// The link of a draining connection broke; hiredis has already failed its
/// pending callbacks with NULL.
pub fn on_link_lost(conn: NonNull<MRConn>) {
    // SAFETY: draining connections are live.
    let failed = unsafe { conn.as_ref() }.draining.map_or(0, |d| d.pending);
    hlog!(
        Level::Warning,
        "{} Link lost while draining: {failed} pending commands failed",
        Tag(conn)
    );
    finish(conn, DrainOutcome::Broken { failed });
    MRConn::release(conn);
}

extern "C" fn on_deadline(timer: *mut uv_timer_t) {
    // SAFETY: connection timers carry their connection.
    let Some(conn) = NonNull::new(unsafe { Timer::owner(timer) }.cast::<MRConn>()) else {
        return;
    };
    // SAFETY: the timer runs only while its connection is live.
    let Some(draining) = (unsafe { conn.as_ref() }).draining else {
        return;
    };
    // SAFETY: the registry outlives its draining connections, and nothing
    // else refers to it while a timer callback runs.
    stop_draining_by_force(
        unsafe { &mut *draining.drains.as_ptr() },
        conn,
        "Drain deadline reached",
    );
    // The registry reference has ended: the NULL-reply callbacks run here
    // may call back into the manager.
    MRConn::release(conn);
}

/// Ends the drain of `conn` as forced, with a warning; the caller then
/// closes it by force, failing its pending callbacks.
fn stop_draining_by_force(drains: &mut Drains, conn: NonNull<MRConn>, why: &str) {
    // SAFETY: draining connections are live.
    let c = unsafe { conn.as_ref() };
    let Some(draining) = c.draining else { return };
    let failed = c.context().map_or(0, pending);
    hlog!(
        Level::Warning,
        "{} {why} after {} ms: closing by force, failing {failed} pending commands",
        Tag(conn),
        draining.since.elapsed().as_millis()
    );
    finish_in(drains, conn, DrainOutcome::Forced { failed });
}

/// Shutdown: every draining connection closes by force.
pub fn force_all(drains: &mut Drains) {
    for conn in drains.conns.clone() {
        stop_draining_by_force(drains, conn, "Shutdown while draining");
        MRConn::release(conn);
    }
}

/// Ends the drain of `conn` (see [`finish_in`]) from a hook that holds no
/// reference to its registry: the read hook and the link-lost hook.
fn finish(conn: NonNull<MRConn>, outcome: DrainOutcome) {
    // SAFETY: draining connections are live.
    let Some(draining) = (unsafe { conn.as_ref() }).draining else {
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
    if let Some(at) = drains.conns.iter().position(|&x| x == conn) {
        drains.conns.swap_remove(at);
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

/// Whether any command on `ac` still awaits its reply. hiredis appends a
/// record per command to `replies` (or `sub.replies`) and unlinks it just
/// before running its callback.
pub fn has_pending(ac: NonNull<redisAsyncContext>) -> bool {
    // SAFETY: callers pass live contexts; both heads are plain pointers.
    let ac = unsafe { ac.as_ref() };
    !ac.replies.head.is_null() || !ac.sub.replies.head.is_null()
}

/// How many callbacks on `ac` await their reply: the user's commands. A
/// `HELLO` queued without a callback is not counted; it is answered before
/// the command queued behind it anyway.
pub fn pending(ac: NonNull<redisAsyncContext>) -> u64 {
    // SAFETY: callers pass live contexts.
    let ac = unsafe { ac.as_ref() };
    let mut n = 0;
    for head in [ac.replies.head, ac.sub.replies.head] {
        let mut cb = head;
        while !cb.is_null() {
            // SAFETY: hiredis keeps the list well-formed between its callbacks.
            let record = unsafe { &*cb };
            n += u64::from(record.fn_.is_some());
            cb = record.next;
        }
    }
    n
}
