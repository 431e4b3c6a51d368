//! What happens to connections that left a pool (on `Shrink`, when a node's
//! pool is removed by `Disconnect` or replaced by `Add` with a new endpoint),
//! and what `Expand` and `Add` take back. [`crate::resize`] decides who
//! leaves and when; this module sorts them and keeps the drains' books.
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
//! Nothing here waits, and nothing here runs a user callback: what must
//! close is handed back to the caller, which closes it once it holds no
//! borrow of the manager's state.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use mrconn_core::{
    BatchId, BatchReport, DrainBook, DrainCause, DrainOutcome, DrainStats, Grouped, SlotList,
    Warning,
};

use crate::conn::{ConnRef, Held};
use crate::host::{Endpoint, Level, hlog};
use crate::pending::{self, Countdown};
use crate::sys::glue::mrconn_enforced_query_timeout_ms;
use crate::sys::uv::uv_loop_t;

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

/// A manager's connections out of their pools that a pool may take back:
/// those that drain, with their bookkeeping, and idle ones waiting for a
/// slice to close their socket (*parked*).
#[derive(Default)]
pub struct Drains {
    book: DrainBook,
    records: HashMap<ConnRef, Record>,
    /// The same connections by endpoint (see [`endpoint_key`]): `Expand`
    /// takes one back per connection it opens, and a scan of thousands per
    /// connection would stall the loop.
    by_endpoint: Grouped<u64, ConnRef>,
    /// The parked ones, in the order the slices close them (last first).
    parked: SlotList<ConnRef>,
}

struct Record {
    /// Its endpoint's key, and its place among that endpoint's connections.
    ep_key: u64,
    ep_slot: usize,
    kind: Kind,
}

enum Kind {
    Draining(Draining),
    /// Idle, waiting to close; its place in [`Drains::parked`].
    Parked {
        held: Held,
        slot: usize,
    },
}

/// One connection's drain.
struct Draining {
    batch: BatchId,
    /// When its call made it leave.
    since: Instant,
    /// Its callbacks still pending (for a broken link's report: hiredis
    /// fails those callbacks before it tells us).
    countdown: Countdown,
    deadline_ms: Option<u32>,
}

impl Drains {
    /// The totals so far.
    pub fn stats(&self) -> DrainStats {
        self.book.stats()
    }

    /// How many connections are parked (in O(1): those torn down meanwhile
    /// included, which a slice lets go of without a close).
    pub fn parked(&self) -> u64 {
        self.parked.len() as u64
    }

    /// Room for `n` more connections, made at once: growing a table of
    /// thousands of entries later, in a slice, would rehash it all there
    /// (0.5 ms and more at 10,000).
    pub fn reserve(&mut self, n: usize) {
        self.records.reserve(n);
        self.parked.reserve(n);
    }

    /// Adds `conn`, its endpoint's `key`.
    fn insert(&mut self, conn: ConnRef, key: u64, kind: Kind) {
        let ep_slot = self.by_endpoint.push(key, conn);
        self.records.insert(
            conn,
            Record {
                ep_key: key,
                ep_slot,
                kind,
            },
        );
    }

    /// Removes `conn` if it drains, in O(1).
    fn take_draining(&mut self, conn: ConnRef) -> Option<Draining> {
        self.draining(conn)?;
        match self.remove(conn)? {
            Kind::Draining(d) => Some(d),
            Kind::Parked { .. } => None,
        }
    }

    /// Removes `conn` if it is parked, in O(1).
    fn take_parked(&mut self, conn: ConnRef) -> Option<Held> {
        if !matches!(self.records.get(&conn)?.kind, Kind::Parked { .. }) {
            return None;
        }
        match self.remove(conn)? {
            Kind::Parked { held, .. } => Some(held),
            Kind::Draining(_) => None,
        }
    }

    /// Removes `conn`, in O(1).
    fn remove(&mut self, conn: ConnRef) -> Option<Kind> {
        let record = self.records.remove(&conn)?;
        if let Some((moved, slot)) = self.by_endpoint.remove(record.ep_key, conn, record.ep_slot) {
            if let Some(r) = self.records.get_mut(&moved) {
                r.ep_slot = slot;
            }
        }
        if let Kind::Parked { slot, .. } = &record.kind {
            if let Some((moved, slot)) = self.parked.remove(conn, *slot) {
                if let Some(Record {
                    kind: Kind::Parked { slot: s, .. },
                    ..
                }) = self.records.get_mut(&moved)
                {
                    *s = slot;
                }
            }
        }
        Some(record.kind)
    }

    fn draining(&mut self, conn: ConnRef) -> Option<&mut Draining> {
        match &mut self.records.get_mut(&conn)?.kind {
            Kind::Draining(d) => Some(d),
            Kind::Parked { .. } => None,
        }
    }
}

/// The key of an endpoint in [`Drains`]: its host and port, hashed. Other
/// fields (and a collision) are told apart by comparing the endpoints.
fn endpoint_key(ep: &Endpoint) -> u64 {
    let mut h = DefaultHasher::new();
    ep.host().hash(&mut h);
    ep.port().hash(&mut h);
    h.finish()
}

/// The connections that left their pools in one call (`Shrink`, a node
/// removed or re-pointed), sorted a few at a time: the call marks them
/// leaving, which is one write per connection, and sorts a few hundred; the
/// backlog sorts the rest in its slices. Sorting reads each connection's
/// hiredis reply lists, so it costs a few cache misses per connection:
/// thousands of them in one call would stall the loop.
///
/// The call's notice is logged once every connection has been sorted, with
/// what it found.
pub struct Leave {
    conns: std::vec::IntoIter<Held>,
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

/// What sorting one leaving connection found.
pub enum Sorted {
    /// It drains, or it was torn down meanwhile.
    Busy,
    /// Nothing pending: the caller closes it.
    Idle(ConnRef),
    /// Every connection is sorted, and the call's notice logged.
    Done,
}

impl Leave {
    /// Marks `conns`, out of their pools, leaving: from now on none takes a
    /// command or reconnects.
    pub fn new(conns: Vec<ConnRef>, cause: DrainCause, node: Option<String>) -> Leave {
        Leave {
            conns: conns
                .into_iter()
                .filter_map(ConnRef::hold)
                .collect::<Vec<_>>()
                .into_iter(),
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
        self.conns.as_slice().iter().filter(|h| h.is_live()).count()
    }

    /// The loop of those still to sort, if any.
    pub fn event_loop(&self) -> Option<NonNull<uv_loop_t>> {
        self.conns.as_slice().first().map(Held::event_loop)
    }

    /// Shutdown: no more connections join the batch (Shutdown forces its
    /// members, and the last one ends it with its report); returns those
    /// still to sort, let go of.
    pub fn abandon(self, drains: &mut Drains) -> impl Iterator<Item = ConnRef> {
        self.seal(drains);
        self.conns.filter_map(Held::let_go)
    }

    /// No connection joins this call's batch any more: it reports once its
    /// last member ends, now if that has happened.
    fn seal(&self, drains: &mut Drains) {
        if let Some(report) = self.batch.and_then(|b| drains.book.seal(b, Instant::now())) {
            log_report(&report);
        }
    }

    /// Sorts the next connection. Idle ones (nothing in hiredis's reply
    /// lists, see [`pending::is_idle`]) and ones not Connected are handed
    /// back to close; the others drain. Once every one is sorted, logs the
    /// call's notice. Runs no user callback.
    pub fn sort_next(&mut self, drains: &mut Drains) -> Sorted {
        let Some(held) = self.conns.next() else {
            self.finish(drains);
            return Sorted::Done;
        };
        // A connection whose link broke meanwhile is gone already.
        let Some(conn) = held.let_go() else {
            self.idle += 1;
            return Sorted::Busy;
        };
        let ac = conn
            .context()
            .filter(|_| conn.state() == mrconn_core::ConnState::Connected);
        // SAFETY: a connection's context is live, on its loop thread.
        match ac.filter(|&ac| !unsafe { pending::is_idle(ac) }) {
            Some(ac) => {
                // SAFETY: as above; it takes no command from now on.
                let countdown = unsafe { Countdown::new(ac) };
                self.busy += 1;
                self.pending += countdown.pending();
                self.drain(drains, conn, countdown);
                Sorted::Busy
            }
            None => {
                self.idle += 1;
                Sorted::Idle(conn)
            }
        }
    }

    /// Sends `conn` draining in this call's batch, closed by force at the
    /// deadline, which counts from the call.
    fn drain(&mut self, drains: &mut Drains, conn: ConnRef, countdown: Countdown) {
        let batch = *self
            .batch
            .get_or_insert_with(|| drains.book.open(self.cause, self.since));
        drains.book.join(batch);
        drains.insert(
            conn,
            endpoint_key(conn.endpoint()),
            Kind::Draining(Draining {
                batch,
                since: self.since,
                countdown,
                deadline_ms: self.deadline_ms,
            }),
        );
        let left = self
            .deadline_ms
            .map(|ms| u64::from(ms).saturating_sub(self.since.elapsed().as_millis() as u64));
        conn.start_draining(left);
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

/// After a read on draining `conn`: true once it is idle, its drain over;
/// it is parked then, and the caller wakes the slices to close it
/// (thousands of drains may end in one burst of replies, and closing a
/// socket costs about 20 µs). It stays where it is in the registry: a drain
/// ending costs a lookup, no removal and insertion.
pub fn on_read(drains: &mut Drains, conn: ConnRef) -> bool {
    let Some(ac) = conn.context() else {
        return false;
    };
    let Drains {
        book,
        records,
        parked,
        ..
    } = drains;
    let Some(record) = records.get_mut(&conn) else {
        return false;
    };
    let Kind::Draining(d) = &mut record.kind else {
        return false;
    };
    // SAFETY: a connection's context is live; the read hook runs on its loop
    // thread, between hiredis's callbacks.
    if !unsafe { pending::is_idle(ac) } {
        // SAFETY: as above; a draining connection takes no command.
        unsafe { d.countdown.update(ac) };
        return false;
    }
    let batch = d.batch;
    record.kind = Kind::Parked {
        held: conn.park(),
        slot: parked.push(conn),
    };
    if let Some(report) = book.close(batch, DrainOutcome::Graceful, Instant::now()) {
        log_report(&report);
    }
    true
}

/// The link of draining `conn` broke, and it is being freed; hiredis fails
/// its pending callbacks with NULL.
pub fn on_link_lost(drains: &mut Drains, conn: ConnRef) {
    let failed = drains.draining(conn).map_or(0, |d| d.countdown.pending());
    conn.warn(
        Warning::LinkLostWhileDraining,
        format_args!("Link lost while draining: {failed} pending commands failed"),
    );
    end(drains, conn, DrainOutcome::Broken { failed });
}

/// The deadline of draining `conn` passed: its drain ends as forced. Returns
/// the deadline, for the caller to close it with (failing its pending
/// callbacks with an error reply naming it).
pub fn on_deadline(drains: &mut Drains, conn: ConnRef) -> Option<u32> {
    let record = force(drains, conn, "Drain deadline reached")?;
    Some(record.deadline_ms.unwrap_or(0))
}

/// Ends the drain of `conn` as forced, with a warning; the caller then
/// closes it, failing its pending callbacks with an error reply.
fn force(drains: &mut Drains, conn: ConnRef, why: &str) -> Option<Draining> {
    let since = drains.draining(conn)?.since;
    // SAFETY: a draining connection's context is live, on its loop thread.
    let failed = conn
        .context()
        .map_or(0, |ac| unsafe { pending::callbacks(ac) });
    conn.warn(
        Warning::DrainForced,
        format_args!(
            "{why} after {} ms: closing by force, failing {failed} pending commands",
            since.elapsed().as_millis()
        ),
    );
    end(drains, conn, DrainOutcome::Forced { failed })
}

/// Shutdown: every drain ends as forced, and the parked connections are let
/// go. Returns the connections, for the caller to close once it holds no
/// borrow of the registry.
pub fn force_all(drains: &mut Drains) -> Vec<ConnRef> {
    let conns: Vec<_> = drains.by_endpoint.iter().collect();
    conns
        .into_iter()
        .filter_map(|conn| {
            if drains.draining(conn).is_some() {
                return force(drains, conn, "Shutdown while draining").map(|_| conn);
            }
            drains.take_parked(conn)?.let_go()
        })
        .collect()
}

/// Parks `conn`, idle and out of its pool, until a slice closes it (see
/// [`next_to_close`]) or a pool takes it back (see [`reclaim`]).
pub fn park(drains: &mut Drains, conn: ConnRef) {
    let Some(held) = conn.hold() else {
        return;
    };
    let slot = drains.parked.push(conn);
    drains.insert(
        conn,
        endpoint_key(conn.endpoint()),
        Kind::Parked { held, slot },
    );
}

/// The next parked connection, for a slice to close.
pub fn next_to_close(drains: &mut Drains) -> Option<Held> {
    let conn = drains.parked.last()?;
    drains.take_parked(conn)
}

/// A still-Connected connection to `ep`, draining or parked, taken back
/// (the newest first): a drain ends as reclaimed, a socket stays open, and
/// the connection is ready to rejoin a pool.
pub fn reclaim(drains: &mut Drains, ep: &Endpoint) -> Option<ConnRef> {
    let conn = *drains
        .by_endpoint
        .group(endpoint_key(ep))
        .iter()
        .rev()
        .find(|c| c.state() == mrconn_core::ConnState::Connected && c.endpoint() == ep)?;
    let conn = match drains.records.get(&conn).map(|r| &r.kind) {
        Some(Kind::Draining(_)) => {
            end(drains, conn, DrainOutcome::Reclaimed);
            conn
        }
        _ => drains.take_parked(conn)?.let_go()?,
    };
    conn.rejoin();
    Some(conn)
}

/// Ends the drain of `conn`: out of the registry, deadline stopped, outcome
/// booked, and the batch's report logged when it was the last. Returns its
/// record.
fn end(drains: &mut Drains, conn: ConnRef, outcome: DrainOutcome) -> Option<Draining> {
    // Out of the lists in O(1): when thousands of drains end in one burst of
    // replies, a search per drain would stall the loop.
    let record = drains.take_draining(conn)?;
    conn.stop_draining();
    if let Some(report) = drains.book.close(record.batch, outcome, Instant::now()) {
        log_report(&report);
    }
    Some(record)
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
