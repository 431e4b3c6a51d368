//! A model of what mrconn does with `mrconn-core`, driven by bytes.
//!
//! Each input is a program: byte by byte it picks an operation and its
//! arguments — open a connection, pick from a pool (round-robin with a
//! readiness predicate), shrink every pool, retire a node's pool (node removed
//! or endpoint changed), grow the pools (taking draining connections back
//! first), deliver a reply, raise a state event, hit a drain deadline, shut
//! down, close a batch that is gone, apply one raw transition, let time pass,
//! sort leaving connections (a call sorts some, the loop the rest, as
//! `drain::Leave`: replies and broken links come in between).
//! Each is done on the real [`Pool`], [`next_state`] and [`DrainBook`] the way
//! `src/drain.rs` and `src/conn.rs` use them, and mirrored in plain data.
//! After every step `Model::check` compares the two; any disagreement
//! panics, which libFuzzer reports as a crash. At the end a shutdown must
//! leave nothing open.

use mrconn_core::{
    BatchId, BatchReport, ConnState, DrainBook, DrainCause, DrainOutcome, Event, Pool, next_state,
};
use std::time::{Duration, Instant};

/// Nodes, each with its pool.
const NODES: usize = 3;
/// Largest pool the model builds, which keeps every step cheap.
const MAX_POOL: usize = 12;
/// Connections one input may open, freed ones included.
const MAX_CONNS: usize = 512;

/// Runs one input; panics when the real types and the model disagree.
pub fn run(data: &[u8]) {
    let mut model = Model::new();
    let mut input = Input(data);
    while let Some(op) = input.byte() {
        if model.step(op, &mut input).is_none() {
            break;
        }
        model.check();
    }
    model.shutdown();
    model.check();
    assert!(model.live.is_empty(), "shutdown left connections open");
    assert!(model.batches.is_empty(), "shutdown left batches unreported");
    assert!(
        model.leaves.is_empty(),
        "shutdown left connections unsorted"
    );
}

/// The input, read a byte at a time.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// A number below `n` (which is at least 1).
    fn below(&mut self, n: usize) -> Option<usize> {
        Some(usize::from(self.byte()?) % n)
    }
}

/// Where a connection is: in exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Pool(usize),
    /// Out of its pool, not sorted yet.
    Leaving,
    Draining(BatchId),
    Freed,
}

#[derive(Debug)]
struct Conn {
    /// Its node and that node's endpoint generation when it was opened:
    /// only a pool of the same endpoint takes it back.
    endpoint: (usize, u32),
    state: ConnState,
    /// Commands sent and not yet answered.
    pending: u64,
    place: Place,
}

/// Ended drains, counted as the book should count them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    graceful: u64,
    forced: u64,
    broken: u64,
    reclaimed: u64,
    failed: u64,
}

impl Tally {
    fn add(&mut self, outcome: DrainOutcome) {
        match outcome {
            DrainOutcome::Graceful => self.graceful += 1,
            DrainOutcome::Forced { failed } => {
                self.forced += 1;
                self.failed += failed;
            }
            DrainOutcome::Broken { failed } => {
                self.broken += 1;
                self.failed += failed;
            }
            DrainOutcome::Reclaimed => self.reclaimed += 1,
        }
    }

    fn ended(&self) -> u64 {
        self.graceful + self.forced + self.broken + self.reclaimed
    }
}

/// A batch the harness opened and that has not reported yet.
#[derive(Debug)]
struct Batch {
    id: BatchId,
    cause: DrainCause,
    opened: Instant,
    remaining: u64,
    /// Every connection of its call has been sorted.
    sealed: bool,
    tally: Tally,
}

/// The connections one call took out of their pools, still to sort, as
/// `drain::Leave`.
#[derive(Debug)]
struct Leave {
    conns: std::collections::VecDeque<usize>,
    cause: DrainCause,
    /// Opened with its first busy connection.
    batch: Option<BatchId>,
}

struct Model {
    now: Instant,
    conns: Vec<Conn>,
    /// Connections not freed, in no particular order.
    live: Vec<usize>,
    pools: [Pool<usize>; NODES],
    /// Each node's endpoint generation, bumped by an endpoint change.
    endpoints: [u32; NODES],
    /// The manager's connections per node, for the Shrink cause.
    node_conns: u32,
    /// Draining connections, as `Drains::by_endpoint`.
    draining: Vec<usize>,
    /// Calls whose leaving connections are not all sorted, oldest first.
    leaves: Vec<Leave>,
    book: DrainBook,
    batches: Vec<Batch>,
    /// Batches that reported, oldest first.
    reported: Vec<BatchId>,
    /// Largest batch id seen, for ids never handed out.
    max_id: BatchId,
    tally: Tally,
    /// Members of every batch opened so far.
    opened: u64,
    /// `check`'s marks: `seen[c] == round` when seen this round.
    seen: Vec<u32>,
    round: u32,
}

impl Model {
    fn new() -> Self {
        Model {
            now: Instant::now(),
            conns: Vec::new(),
            live: Vec::new(),
            pools: std::array::from_fn(|_| Pool::new(Vec::new())),
            endpoints: [0; NODES],
            node_conns: 0,
            draining: Vec::new(),
            leaves: Vec::new(),
            book: DrainBook::default(),
            batches: Vec::new(),
            reported: Vec::new(),
            max_id: 0,
            tally: Tally::default(),
            opened: 0,
            seen: Vec::new(),
            round: 0,
        }
    }

    /// One operation; `None` when the input ran out in its arguments.
    fn step(&mut self, op: u8, input: &mut Input) -> Option<()> {
        match op % 17 {
            0 | 1 => {
                let node = input.below(NODES)?;
                if self.pools[node].len() < MAX_POOL {
                    self.add(node);
                }
            }
            2 | 3 => {
                let node = input.below(NODES)?;
                let mask = input.byte()?;
                self.pick(node, mask);
            }
            4 => {
                let num = input.below(MAX_POOL + 2)?;
                let in_call = input.below(NODES * MAX_POOL + 1)?;
                self.shrink(num, in_call);
            }
            5 => {
                let node = input.below(NODES)?;
                let how = input.byte()?;
                let in_call = input.below(MAX_POOL + 1)?;
                self.retire(node, how, in_call);
            }
            6 => {
                let num = input.below(MAX_POOL + 1)?;
                let opened = input.below(MAX_POOL + 1)?;
                self.expand(num, opened);
            }
            7 | 8 => {
                let which = input.byte()?;
                self.reply(usize::from(which));
            }
            9 | 10 => {
                let which = input.byte()?;
                let event = Event::ALL[input.below(Event::ALL.len())?];
                // The owner's release is an operation of its own (shrink,
                // deadline, ...), not something a link does.
                if event != Event::Released {
                    self.event(usize::from(which), event);
                }
            }
            11 => {
                let which = input.byte()?;
                if !self.draining.is_empty() {
                    let c = self.draining[usize::from(which) % self.draining.len()];
                    let failed = self.conns[c].pending;
                    self.end_drain(c, DrainOutcome::Forced { failed });
                    self.free(c);
                }
            }
            // Rarer than the rest, so that programs build up state first.
            12 => {
                if input.byte()? < 64 {
                    self.shutdown();
                }
            }
            13 => {
                let which = input.byte()?;
                self.close_gone_batch(which);
            }
            14 => {
                let from = ConnState::ALL[input.below(ConnState::ALL.len())?];
                let event = Event::ALL[input.below(Event::ALL.len())?];
                let draining = input.byte()? & 1 == 1;
                transition(from, event, draining);
            }
            15 => {
                let ms = input.byte()?;
                self.now += Duration::from_millis(u64::from(ms) * 7);
            }
            _ => {
                let n = input.below(8)?;
                self.sort(n + 1);
            }
        }
        Some(())
    }

    /// Opens a connection into `node`'s pool, as the backlog's fill does
    /// (`MRConn::open` + `fill_one`), growing the pool by one first if it
    /// has none left to open.
    fn add(&mut self, node: usize) -> bool {
        if self.conns.len() >= MAX_CONNS {
            return false;
        }
        let c = self.conns.len();
        self.conns.push(Conn {
            endpoint: (node, self.endpoints[node]),
            state: ConnState::Connecting,
            pending: 0,
            place: Place::Pool(node),
        });
        self.live.push(c);
        let pool = &mut self.pools[node];
        if pool.to_open() == 0 {
            pool.grow_to(pool.len() + 1);
        }
        let (len, size, cursor) = (pool.len(), pool.size(), pool.cursor());
        assert!(pool.fill_one(c));
        assert_eq!(pool.len(), len + 1);
        assert_eq!(pool.size(), size, "opening changed the size");
        assert_eq!(pool.conns().last(), Some(&c));
        assert_eq!(pool.cursor(), cursor, "fill_one moved the cursor");
        true
    }

    /// `MRConn_Get` (+ a send when the connection is taken): the ready
    /// connections are the Connected ones whose bit `c % 8` is set in
    /// `mask`, so that readiness varies between picks.
    fn pick(&mut self, node: usize, mask: u8) {
        let conns = &self.conns;
        let ready = |c: usize| conns[c].state == ConnState::Connected && (mask >> (c % 8)) & 1 == 1;
        let pool = &mut self.pools[node];
        let before = pool.conns().to_vec();
        let cursor = pool.cursor();
        let mut looked = Vec::new();
        let got = pool.pick(|c| {
            looked.push(c);
            ready(c)
        });
        let len = before.len();
        assert_eq!(pool.conns(), &before[..], "pick changed the pool");
        assert!(looked.len() <= len, "pick looked at a connection twice");
        for (i, &c) in looked.iter().enumerate() {
            assert_eq!(c, before[(cursor + i) % len], "pick left round-robin order");
        }
        match got {
            Some(c) => {
                assert_eq!(looked.last(), Some(&c));
                assert!(ready(c), "pick returned a connection that is not ready");
                assert!(looked[..looked.len() - 1].iter().all(|&c| !ready(c)));
                assert_eq!(pool.cursor(), (cursor + looked.len()) % len);
                self.conns[c].pending += 1;
            }
            None => {
                assert_eq!(looked.len(), len, "pick gave up early");
                assert!(looked.iter().all(|&c| !ready(c)), "pick missed one");
                assert_eq!(pool.cursor(), cursor, "a fruitless lap moved the cursor");
            }
        }
    }

    /// `MRConnManager_Shrink`: every pool keeps its first `num`; the call
    /// sorts `in_call` of the rest.
    fn shrink(&mut self, num: usize, in_call: usize) {
        let mut leaving = Vec::new();
        for pool in &mut self.pools {
            let before = pool.conns().to_vec();
            let (cursor, size) = (pool.cursor(), pool.size());
            let keep = num.min(before.len());
            let surplus = pool.shrink(num);
            assert_eq!(pool.size(), size.min(num), "shrink left the wrong size");
            assert_eq!(
                surplus,
                &before[keep..],
                "shrink handed back the wrong ones"
            );
            assert_eq!(pool.conns(), &before[..keep]);
            let want = if keep == 0 { 0 } else { cursor % keep };
            assert_eq!(pool.cursor(), want, "shrink did not wrap the cursor");
            leaving.extend(surplus);
        }
        let to = u32::try_from(num).unwrap_or(u32::MAX);
        let cause = DrainCause::Shrink {
            from: self.node_conns,
            to,
        };
        self.node_conns = to;
        self.leave(leaving, cause, in_call);
    }

    /// Node removal (`how` even) or endpoint change (`how` odd, the new pool
    /// getting `how / 2 % MAX_POOL + 1` new connections); the call sorts
    /// `in_call` of the old ones.
    fn retire(&mut self, node: usize, how: u8, in_call: usize) {
        let pool = &mut self.pools[node];
        let before = pool.conns().to_vec();
        let all = pool.take_all();
        assert_eq!(all, before, "take_all handed back the wrong ones");
        assert!(pool.is_empty());
        assert_eq!(pool.cursor(), 0);
        if how & 1 == 0 {
            self.leave(all, DrainCause::NodeRemoved, in_call);
        } else {
            self.endpoints[node] += 1;
            self.leave(all, DrainCause::EndpointChanged, in_call);
            for _ in 0..usize::from(how / 2) % MAX_POOL + 1 {
                self.add(node);
            }
        }
    }

    /// `MRConnManager_Expand`: every pool of a non-zero size grows to
    /// `num`, and the loop opens up to `opened` of its new connections
    /// (the rest stay to open), taking back Connected draining connections
    /// to its endpoint first.
    fn expand(&mut self, num: usize, opened: usize) {
        for node in 0..NODES {
            let before = self.pools[node].conns().to_vec();
            let cursor = self.pools[node].cursor();
            // Size 0 stands for a node with no pool here (the model has no
            // manager of pool size 0): Expand only grows existing pools.
            if self.pools[node].size() == 0 {
                continue;
            }
            let size = self.pools[node].size();
            self.pools[node].grow_to(num);
            assert_eq!(self.pools[node].size(), size.max(num), "grow_to");
            for _ in 0..opened {
                if self.pools[node].to_open() == 0 {
                    break;
                }
                let endpoint = (node, self.endpoints[node]);
                let back = self.draining.iter().copied().find(|&c| {
                    let conn = &self.conns[c];
                    conn.state == ConnState::Connected && conn.endpoint == endpoint
                });
                if let Some(c) = back {
                    self.end_drain(c, DrainOutcome::Reclaimed);
                    self.conns[c].place = Place::Pool(node);
                    assert!(self.pools[node].fill_one(c));
                } else if !self.add(node) {
                    break;
                }
            }
            let pool = &self.pools[node];
            assert_eq!(
                &pool.conns()[..before.len()],
                &before[..],
                "growing reordered"
            );
            assert_eq!(pool.cursor(), cursor, "growing moved the cursor");
        }
        self.node_conns = u32::try_from(num).unwrap_or(u32::MAX);
    }

    /// Connections leaving their pools, as `drain::Leave`: marked leaving,
    /// `in_call` of them sorted now, the rest by [`Model::sort`].
    fn leave(&mut self, conns: Vec<usize>, cause: DrainCause, in_call: usize) {
        for &c in &conns {
            self.conns[c].place = Place::Leaving;
        }
        self.leaves.push(Leave {
            conns: conns.into(),
            cause,
            batch: None,
        });
        // The call sorts only its own leave, the newest.
        let at = self.leaves.len() - 1;
        self.sort_leave(at, in_call);
    }

    /// The backlog: sorts `n` connections, oldest leave first.
    fn sort(&mut self, n: usize) {
        for _ in 0..n {
            if self.leaves.is_empty() {
                return;
            }
            self.sort_leave(0, 1);
        }
    }

    /// Sorts up to `n` connections of leave `at`, as `Leave::sort_next`:
    /// idle or not Connected ones close, the others drain in the call's
    /// batch. A leave with none left is sealed.
    fn sort_leave(&mut self, at: usize, n: usize) {
        for _ in 0..n {
            let Some(c) = self.leaves[at].conns.pop_front() else {
                break;
            };
            if self.conns[c].place != Place::Leaving {
                // Its link broke while it waited: gone already.
                assert_eq!(self.conns[c].place, Place::Freed);
                continue;
            }
            let conn = &self.conns[c];
            if conn.state != ConnState::Connected || conn.pending == 0 {
                self.free(c);
                continue;
            }
            let id = match self.leaves[at].batch {
                Some(id) => id,
                None => {
                    let id = self.book.open(self.leaves[at].cause, self.now);
                    assert!(
                        self.batches.iter().all(|b| b.id != id) && !self.reported.contains(&id),
                        "batch id {id} handed out twice"
                    );
                    self.max_id = self.max_id.max(id);
                    self.batches.push(Batch {
                        id,
                        cause: self.leaves[at].cause,
                        opened: self.now,
                        remaining: 0,
                        sealed: false,
                        tally: Tally::default(),
                    });
                    self.leaves[at].batch = Some(id);
                    id
                }
            };
            self.book.join(id);
            self.batch_mut(id).remaining += 1;
            self.conns[c].place = Place::Draining(id);
            self.draining.push(c);
            self.opened += 1;
        }
        if self.leaves[at].conns.is_empty() {
            let leave = self.leaves.remove(at);
            if let Some(id) = leave.batch {
                self.seal(id);
            }
        }
    }

    /// No connection joins batch `id` any more; checks it reports now
    /// exactly when every member has already ended.
    fn seal(&mut self, id: BatchId) {
        let report = self.book.seal(id, self.now);
        self.batch_mut(id).sealed = true;
        self.report_if_done(id, report);
    }

    fn batch_mut(&mut self, id: BatchId) -> &mut Batch {
        let at = self.batches.iter().position(|b| b.id == id);
        &mut self.batches[at.expect("its batch is open")]
    }

    /// One reply reaches its callback; a draining connection whose last
    /// reply that was closes gracefully.
    fn reply(&mut self, which: usize) {
        let waiting: Vec<usize> = self
            .live
            .iter()
            .copied()
            .filter(|&c| self.conns[c].pending > 0)
            .collect();
        if waiting.is_empty() {
            return;
        }
        let c = waiting[which % waiting.len()];
        let conn = &mut self.conns[c];
        conn.pending -= 1;
        if conn.pending == 0 && matches!(conn.place, Place::Draining(_)) {
            self.end_drain(c, DrainOutcome::Graceful);
            self.free(c);
        }
    }

    /// What a link or server does to a live connection (`MRConn::switch`).
    fn event(&mut self, which: usize, event: Event) {
        if self.live.is_empty() {
            return;
        }
        let c = self.live[which % self.live.len()];
        let draining = matches!(self.conns[c].place, Place::Draining(_));
        let leaving = draining || self.conns[c].place == Place::Leaving;
        let to = transition(self.conns[c].state, event, leaving);
        if draining && to == ConnState::Freeing {
            // The link broke: hiredis failed what was pending.
            let failed = self.conns[c].pending;
            self.end_drain(c, DrainOutcome::Broken { failed });
            self.free(c);
            return;
        }
        if to == ConnState::Freeing {
            // A leaving connection never reconnects: it is torn down, and
            // its leave skips it.
            self.free(c);
            return;
        }
        let conn = &mut self.conns[c];
        conn.state = to;
        if !draining && to != ConnState::Connected {
            // Its context went, and hiredis failed its callbacks.
            conn.pending = 0;
        }
    }

    /// `MRConnManager_Shutdown`: leaves still being sorted are sealed and
    /// their connections released, draining connections close by force,
    /// pool connections are released.
    fn shutdown(&mut self) {
        for leave in std::mem::take(&mut self.leaves) {
            if let Some(id) = leave.batch {
                self.seal(id);
            }
            for c in leave.conns {
                if self.conns[c].place == Place::Leaving {
                    self.free(c);
                }
            }
        }
        while let Some(&c) = self.draining.first() {
            let failed = self.conns[c].pending;
            self.end_drain(c, DrainOutcome::Forced { failed });
            self.free(c);
        }
        for node in 0..NODES {
            let before = self.pools[node].conns().to_vec();
            let all = self.pools[node].take_all();
            assert_eq!(all, before);
            for c in all {
                self.free(c);
            }
        }
    }

    /// Closing a batch that already reported, or was never opened, changes
    /// nothing.
    fn close_gone_batch(&mut self, which: u8) {
        let id = if which & 1 == 0 && !self.reported.is_empty() {
            self.reported[usize::from(which / 2) % self.reported.len()]
        } else {
            self.max_id + 1 + BatchId::from(which / 2)
        };
        if self.batches.iter().any(|b| b.id == id) {
            return;
        }
        let stats = self.book.stats();
        let open = self.book.open_batches();
        let outcome = DrainOutcome::Forced {
            failed: u64::from(which),
        };
        assert_eq!(self.book.close(id, outcome, self.now), None);
        assert_eq!(self.book.stats(), stats, "a gone batch changed the totals");
        assert_eq!(self.book.open_batches(), open);
    }

    /// Books how draining connection `c` ended and checks the batch report
    /// comes exactly with its last member.
    fn end_drain(&mut self, c: usize, outcome: DrainOutcome) {
        let Place::Draining(id) = self.conns[c].place else {
            panic!("connection {c} is not draining");
        };
        let at = self.draining.iter().position(|&x| x == c);
        self.draining
            .swap_remove(at.expect("draining connection listed"));
        let report = self.book.close(id, outcome, self.now);
        self.tally.add(outcome);
        let batch = self.batch_mut(id);
        batch.tally.add(outcome);
        batch.remaining -= 1;
        self.report_if_done(id, report);
    }

    /// Batch `id` must report (`report`) exactly when it is sealed and its
    /// last member has ended.
    fn report_if_done(&mut self, id: BatchId, report: Option<BatchReport>) {
        let at = self.batches.iter().position(|b| b.id == id);
        let batch = &self.batches[at.expect("its batch is open")];
        if batch.remaining > 0 || !batch.sealed {
            assert_eq!(report, None, "batch {id} reported before its end");
            return;
        }
        let batch = self.batches.swap_remove(at.expect("found above"));
        let want = BatchReport {
            cause: batch.cause,
            elapsed: self.now - batch.opened,
            graceful: batch.tally.graceful,
            forced: batch.tally.forced,
            broken: batch.tally.broken,
            reclaimed: batch.tally.reclaimed,
            failed_callbacks: batch.tally.failed,
        };
        assert_eq!(report, Some(want), "batch {id}'s report");
        self.reported.push(id);
    }

    /// `MRConn::release`: out of every place, for good.
    fn free(&mut self, c: usize) {
        let conn = &mut self.conns[c];
        let draining = matches!(conn.place, Place::Draining(_));
        let to = next_state(conn.state, Event::Released, draining);
        assert_eq!(to, ConnState::Freeing);
        conn.state = to;
        conn.place = Place::Freed;
        conn.pending = 0;
        let at = self.live.iter().position(|&x| x == c);
        self.live.swap_remove(at.expect("freed once"));
    }

    /// The invariants, after every step.
    fn check(&mut self) {
        self.round += 1;
        self.seen.resize(self.conns.len(), 0);
        let round = self.round;
        let mut placed = 0;
        for (node, pool) in self.pools.iter().enumerate() {
            let ok = pool.cursor() < pool.len() || (pool.is_empty() && pool.cursor() == 0);
            assert!(ok, "cursor {} in a pool of {}", pool.cursor(), pool.len());
            for &c in pool.conns() {
                assert_eq!(self.conns[c].place, Place::Pool(node), "connection {c}");
                assert_ne!(self.seen[c], round, "connection {c} is in two places");
                self.seen[c] = round;
            }
            placed += pool.len();
        }
        for &c in &self.draining {
            let conn = &self.conns[c];
            let Place::Draining(id) = conn.place else {
                panic!("connection {c} listed as draining is {:?}", conn.place);
            };
            assert!(self.batches.iter().any(|b| b.id == id), "batch {id} gone");
            assert!(conn.pending > 0, "a drained connection {c} did not close");
            assert_ne!(self.seen[c], round, "connection {c} is in two places");
            self.seen[c] = round;
        }
        placed += self.draining.len();
        for leave in &self.leaves {
            for &c in &leave.conns {
                if self.conns[c].place == Place::Leaving {
                    assert_ne!(self.seen[c], round, "connection {c} is in two places");
                    self.seen[c] = round;
                    placed += 1;
                }
            }
        }
        assert_eq!(placed, self.live.len(), "a live connection is nowhere");
        for &c in &self.live {
            assert_eq!(self.seen[c], round, "live connection {c} is nowhere");
            assert_ne!(self.conns[c].state, ConnState::Freeing);
        }

        let s = self.book.stats();
        let draining = self.draining.len() as u64;
        assert_eq!(s.draining, draining, "draining != open members");
        let members: u64 = self.batches.iter().map(|b| b.remaining).sum();
        assert_eq!(members, draining);
        let got = Tally {
            graceful: s.graceful,
            forced: s.forced,
            broken: s.broken,
            reclaimed: s.reclaimed,
            failed: s.failed_callbacks,
        };
        assert_eq!(got, self.tally, "totals differ from what happened");
        assert_eq!(got.ended() + s.draining, self.opened, "members lost");
        assert_eq!(self.book.open_batches(), self.batches.len());
    }
}

/// [`next_state`], checked against what holds for every transition.
fn transition(from: ConnState, event: Event, draining: bool) -> ConnState {
    let to = next_state(from, event, draining);
    let plain = next_state(from, event, false);
    if from == ConnState::Freeing || event == Event::Released {
        assert_eq!(to, ConnState::Freeing, "{from:?} + {event:?}");
    } else if draining && plain == ConnState::Reconnecting {
        assert_eq!(to, ConnState::Freeing, "a draining connection reconnects");
    } else {
        assert_eq!(to, plain, "draining changed {from:?} + {event:?}");
    }
    assert_ne!(
        to,
        ConnState::Connecting,
        "only new connections are Connecting"
    );
    to
}
