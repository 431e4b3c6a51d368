//! What happens to connections that leave a pool: on `Shrink`, when a node's
//! pool is removed (`Disconnect`) or replaced (`Add` with a new endpoint), and
//! what `Expand` and `Add` take back. Opening and closing sockets, and
//! sorting thousands of leaving connections, happen in slices on the loop
//! ([`crate::backlog`]).
//!
//! A leaving connection takes no new command from that moment: it is out of
//! its pool, so `MRConn_Get` cannot return it, and it is marked leaving, so
//! `MRConn_SendCommand` refuses it. Once sorted ([`Leave`]):
//! - idle (nothing in hiredis's reply lists, see [`pending::is_idle`]) or not
//!   Connected (no user work can be queued on it), it closes;
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

use std::collections::HashMap;
use std::ffi::CStr;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mrconn_core::{BatchId, BatchReport, DrainBook, DrainCause, DrainOutcome, DrainStats};

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
    /// The draining connections by endpoint (see [`endpoint_key`]): `Expand`
    /// takes one back per connection it opens, and a scan of thousands per
    /// connection would stall the loop.
    by_endpoint: HashMap<u64, Vec<NonNull<MRConn>>>,
}

impl Drains {
    /// The totals so far.
    pub fn stats(&self) -> DrainStats {
        self.book.stats()
    }

    /// Adds `conn`; returns its place in its endpoint's list.
    fn insert(&mut self, conn: NonNull<MRConn>) -> usize {
        // SAFETY: draining connections are live.
        let bucket = self
            .by_endpoint
            .entry(endpoint_key(unsafe { conn.as_ref() }.endpoint()))
            .or_default();
        bucket.push(conn);
        bucket.len() - 1
    }

    /// Removes `conn`, at `slot` in its endpoint's list, in O(1).
    fn remove(&mut self, conn: NonNull<MRConn>, slot: usize) {
        // SAFETY: draining connections are live.
        let key = endpoint_key(unsafe { conn.as_ref() }.endpoint());
        let Some(bucket) = self.by_endpoint.get_mut(&key) else {
            return;
        };
        debug_assert_eq!(bucket.get(slot), Some(&conn));
        bucket.swap_remove(slot);
        if let Some(&moved) = bucket.get(slot) {
            // SAFETY: draining connections are live; `moved` is another one.
            if let Some(d) = unsafe { &mut (*moved.as_ptr()).draining } {
                d.slot = slot;
            }
        }
        if bucket.is_empty() {
            self.by_endpoint.remove(&key);
        }
    }
}

/// The key of an endpoint in [`Drains`]: its host and port, hashed. Other
/// fields (and a collision) are told apart by `MREndpoint_Equal`.
fn endpoint_key(ep: &MREndpoint) -> u64 {
    let mut h = DefaultHasher::new();
    if !ep.host.is_null() {
        // SAFETY: an endpoint's non-NULL host is NUL-terminated.
        unsafe { CStr::from_ptr(ep.host) }.hash(&mut h);
    }
    ep.port.hash(&mut h);
    h.finish()
}

/// The connections that left their pools in one call (`Shrink`, a node
/// removed or re-pointed), sorted on the loop a few at a time: a call marks
/// them leaving, which is one write per connection, and sorts a few hundred
/// ([`depart`]); the backlog sorts the rest in its slices. Sorting reads
/// each connection's hiredis reply lists, so it costs a few cache misses per
/// connection: thousands of them in one call would stall the loop.
///
/// The call's notice is logged once every connection has been sorted, with
/// what it found.
pub struct Leave {
    conns: std::vec::IntoIter<NonNull<MRConn>>,
    cause: DrainCause,
    /// The node, for a removal or an endpoint change.
    node: Option<String>,
    since: Instant,
    deadline_ms: Option<u32>,
    /// The batch of those that drain, opened with the first one.
    batch: Option<BatchId>,
    idle: u64,
    busy: u64,
    pending: u64,
}

impl Leave {
    /// Marks `conns` leaving: from now on none takes a command or
    /// reconnects.
    fn new(conns: Vec<NonNull<MRConn>>, cause: DrainCause, node: Option<String>) -> Leave {
        for &conn in &conns {
            MRConn::hold(conn);
        }
        Leave {
            conns: conns.into_iter(),
            cause,
            node,
            since: Instant::now(),
            deadline_ms: deadline_ms(),
            batch: None,
            idle: 0,
            busy: 0,
            pending: 0,
        }
    }

    /// How many are still to sort.
    pub fn remaining(&self) -> usize {
        self.conns.len()
    }

    /// How many of those still to sort are live: not those torn down while
    /// they waited (a broken link).
    pub fn remaining_work(&self) -> usize {
        let conns = self.conns.as_slice();
        conns.iter().filter(|&&c| MRConn::queued_work(c)).count()
    }

    /// The loop of those still to sort, if any.
    pub fn event_loop(&self) -> Option<NonNull<uv_loop_t>> {
        let &conn = self.conns.as_slice().first()?;
        // SAFETY: a connection still to sort lives until it is (`unqueue`).
        Some(unsafe { conn.as_ref() }.event_loop())
    }

    /// Shutdown: no more connections join the batch (Shutdown forces its
    /// members, and the last one ends it with its report); returns those
    /// still to sort, let go of.
    pub fn abandon(self, drains: &mut Drains) -> impl Iterator<Item = NonNull<MRConn>> {
        self.seal(drains);
        self.conns.filter_map(MRConn::unqueue)
    }

    /// No connection joins this call's batch any more: it reports once its
    /// last member ends, now if that has happened.
    fn seal(&self, drains: &mut Drains) {
        if let Some(report) = self.batch.and_then(|b| drains.book.seal(b, Instant::now())) {
            log_report(&report);
        }
    }

    /// Sorts the next connection; false once every one is sorted, after
    /// logging the call's notice. Idle ones (nothing in hiredis's reply
    /// lists, see [`pending::is_idle`]) and ones not Connected close: at
    /// once without a socket, in the backlog's slices with one; the others
    /// drain. Runs no user callback.
    pub fn sort_next(&mut self, state: &mut State, map: NonNull<dict>) -> bool {
        let Some(conn) = self.conns.next() else {
            self.finish(&mut state.drains);
            return false;
        };
        // A connection whose link broke meanwhile is gone already.
        let Some(conn) = MRConn::unqueue(conn) else {
            self.idle += 1;
            return true;
        };
        // SAFETY: leaving connections are live.
        let c = unsafe { conn.as_ref() };
        let ac = c
            .context()
            .filter(|_| c.state() == mrconn_core::ConnState::Connected);
        // SAFETY: a connection's context is live.
        match ac.filter(|&ac| !unsafe { pending::is_idle(ac) }) {
            Some(ac) => {
                // SAFETY: as above.
                let pending = unsafe { pending::callbacks(ac) };
                self.busy += 1;
                self.pending += pending;
                self.drain(&mut state.drains, map, conn, pending);
            }
            None => {
                self.idle += 1;
                if c.context().is_some() {
                    state.backlog.close(map, conn);
                } else {
                    MRConn::release(conn, "connection left its pool");
                }
            }
        }
        true
    }

    /// Sends `conn` draining in this call's batch, closed by force at the
    /// deadline, which counts from the call.
    fn drain(
        &mut self,
        drains: &mut Drains,
        map: NonNull<dict>,
        conn: NonNull<MRConn>,
        pending: u64,
    ) {
        let batch = *self
            .batch
            .get_or_insert_with(|| drains.book.open(self.cause, self.since));
        drains.book.join(batch);
        let slot = drains.insert(conn);
        // SAFETY: leaving connections are live and owned by us alone now.
        let c = unsafe { &mut *conn.as_ptr() };
        c.draining = Some(Box::new(Draining {
            map,
            batch,
            since: self.since,
            pending,
            deadline_ms: self.deadline_ms,
            slot,
        }));
        if let Some(ms) = self.deadline_ms {
            let left = u64::from(ms).saturating_sub(self.since.elapsed().as_millis() as u64);
            c.timer.start_from_now(left, on_deadline);
        }
    }

    fn finish(&mut self, drains: &mut Drains) {
        let (idle, busy, pending) = (self.idle, self.busy, self.pending);
        if self.node.is_some() && idle + busy == 0 {
            // A pool none of whose connections was opened yet.
            return;
        }
        let deadline = describe(self.deadline_ms);
        match (&self.node, self.cause) {
            (None, DrainCause::Shrink { from, to }) => hlog!(
                Level::Notice,
                "MRConnManager_Shrink: {from} -> {to} connections per node: {idle} closed idle, {busy} draining with {pending} commands pending ({deadline})",
            ),
            (node, cause) => hlog!(
                Level::Notice,
                "{}: node {}: {idle} connections closed idle, {busy} draining with {pending} commands pending ({deadline})",
                operation(cause),
                node.as_deref().unwrap_or_default(),
            ),
        }
        self.seal(drains);
    }
}

/// How long a call sorts leaving connections itself: what is left goes to
/// the backlog, whose slice may run in the same loop iteration.
const IN_CALL: Duration = Duration::from_micros(100);

/// How many leaving connections a call sorts whatever the time (about 0.1 to
/// 0.5 µs each): a resize of that many is over when the call returns, its
/// notice logged, on any machine and build.
const IN_CALL_AT_LEAST: usize = 256;

/// Sends `leave` on its way: sorts [`IN_CALL_AT_LEAST`] connections, and
/// more while [`IN_CALL`] allows, now; queues the rest for the backlog.
fn depart(mgr: &mut MRConnManager, mut leave: Leave) {
    let map = mgr.map();
    let state = mgr.state();
    let start = Instant::now();
    let mut sorted = 0;
    while leave.sort_next(state, map) {
        sorted += 1;
        // With none left, the next sort_next finishes the call's work here.
        if leave.remaining() > 0 && sorted >= IN_CALL_AT_LEAST && start.elapsed() >= IN_CALL {
            state.backlog.leave(map, leave);
            return;
        }
    }
}

/// `MRConnManager_Shrink`: every pool keeps its first `num` connections.
pub fn shrink(mgr: &mut MRConnManager, num: u32) {
    let from = u32::try_from(mgr.nodeConns).unwrap_or(0);
    let mut surplus = Vec::new();
    mgr.parts()
        .0
        .for_each(|_, pool| pool.shrink_into(num as usize, &mut surplus));
    mgr.nodeConns = num as i32;
    let cause = DrainCause::Shrink { from, to: num };
    depart(mgr, Leave::new(surplus, cause, None));
}

/// `MRConnManager_Expand`: every pool grows to `num`; the backlog opens the
/// new connections in slices, taking back draining connections to its
/// endpoint before opening new ones.
pub fn expand(mgr: &mut MRConnManager, num: u32, loop_: NonNull<uv_loop_t>) {
    let map = mgr.map();
    let (mut pools, state) = mgr.parts();
    pools.for_each(|id, pool| {
        // A pool with connections still to open has its fill queued already.
        let queued = pool.to_open() > 0;
        pool.grow_to(num as usize);
        if !queued && pool.to_open() > 0 {
            state.backlog.fill(map, loop_, id);
        }
    });
    mgr.nodeConns = num as i32;
}

/// Opens the next connection `pool` has to open: a draining connection to
/// its endpoint taken back, or a new one. Whether one is left to open.
/// Runs no callback.
pub fn open_one(drains: &mut Drains, pool: &mut NodePool) -> bool {
    if pool.to_open() == 0 {
        return false;
    }
    let conn = reclaim(drains, pool.endpoint()).unwrap_or_else(|| {
        // SAFETY: a pool's endpoint is valid and its loop live.
        unsafe { MRConn::open(pool.endpoint(), pool.event_loop()) }
    });
    pool.fill_one(conn);
    pool.to_open() > 0
}

fn reclaim(drains: &mut Drains, ep: &MREndpoint) -> Option<NonNull<MRConn>> {
    let bucket = drains.by_endpoint.get(&endpoint_key(ep))?;
    let conn = *bucket.iter().rev().find(|c| {
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
pub fn retire(
    mgr: &mut MRConnManager,
    conns: Vec<NonNull<MRConn>>,
    cause: DrainCause,
    node: String,
) {
    depart(mgr, Leave::new(conns, cause, Some(node)));
}

/// After a read on a draining connection: once it is idle, its drain ends
/// and the backlog closes it (thousands of drains may end in one burst of
/// replies, and closing a socket costs about 20 µs).
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
    // SAFETY: draining connections are live.
    let Some(map) = (unsafe { conn.as_ref() }).draining.as_ref().map(|d| d.map) else {
        return;
    };
    finish(conn, DrainOutcome::Graceful);
    // SAFETY: a draining connection's map is live (Shutdown ends every
    // drain, and no read runs after), and nothing else refers to its state
    // in the read hook.
    unsafe { State::of(map) }.backlog.close(map, conn);
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
    // SAFETY: a draining connection's map is live (Shutdown ends every
    // drain), and nothing else refers to its state while a timer callback
    // runs.
    let drains = &mut unsafe { State::of(draining.map) }.drains;
    stop_draining_by_force(drains, conn, "Drain deadline reached");
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
    let conns: Vec<_> = drains.by_endpoint.values().flatten().copied().collect();
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
    // SAFETY: a draining connection's map is live (Shutdown ends every
    // drain), and these hooks run from hiredis callbacks, when no other
    // reference to its state exists.
    let drains = &mut unsafe { State::of(draining.map) }.drains;
    finish_in(drains, conn, outcome);
}

/// Ends the drain of `conn`: out of `drains` (its registry), timer stopped,
/// outcome booked, and the batch's report logged when it was the last.
///
/// Callers that already hold `&mut Drains` (reclaim, shutdown) pass it here:
/// reaching the registry through the connection's map as well would make
/// two live `&mut` to it, which the optimiser does exploit.
fn finish_in(drains: &mut Drains, conn: NonNull<MRConn>, outcome: DrainOutcome) {
    // SAFETY: draining connections are live.
    let c = unsafe { &mut *conn.as_ptr() };
    let Some(draining) = c.draining.take() else {
        return;
    };
    c.timer.stop();
    // Out of the list in O(1): when thousands of drains end in one burst of
    // replies, a search per drain would stall the loop.
    drains.remove(conn, draining.slot);
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
