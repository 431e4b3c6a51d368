//! A node's pool: its connections, the cursor that rotates over them, how
//! many of its connections are still to be opened, and how `MRConn_Get`
//! picks among them ([`Pick`]).

use std::sync::OnceLock;

/// How `MRConn_Get` chooses among a pool's ready connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// [`Pool::pick_least_pending`]: the default.
    LeastPending,
    /// [`Pool::pick`], as `conn.c`: for comparison.
    RoundRobin,
}

impl Pick {
    /// The pick a value of `MRCONN_PICK` names: `round_robin`, or else
    /// (unset, `least_pending`, anything else) the default.
    pub fn named(value: Option<&str>) -> Pick {
        match value {
            Some("round_robin") => Pick::RoundRobin,
            _ => Pick::LeastPending,
        }
    }

    /// The process's pick, from `MRCONN_PICK` read once: the hot path then
    /// pays one load for it.
    #[inline]
    pub fn configured() -> Pick {
        static PICK: OnceLock<Pick> = OnceLock::new();
        *PICK.get_or_init(|| Pick::named(std::env::var("MRCONN_PICK").ok().as_deref()))
    }
}

/// Pending replies are counted up to this many: [`Pool::pick_least_pending`]
/// needs "none", "one" or "more", which hiredis's list tells in two loads
/// (its head and tail); counting further would walk it.
pub const PENDING_CAP: u32 = 2;

/// Probes (looks at a ready connection's pending replies) banked at most,
/// beyond each call's own: [`Pool::pick_least_pending`] banks
/// [`IDLE_EARNS`] whenever a call takes an idle connection, so a call costs
/// at most `1 + IDLE_EARNS` probes amortised (O(1)), a saturated pool
/// (nothing idle) costs one probe per call, and a call after quiet ones may
/// look at the whole pool. A new pool starts with a full bank.
fn bank_cap(pool_len: usize) -> usize {
    pool_len.saturating_sub(1)
}

/// Probes a call banks when it takes an idle connection. Measured with
/// `scripts/bench.sh head_of_line` (pool 8, ~2.5 connections blocked at a
/// time, often several in a row): banking 2 let scans past the blocked runs
/// drain the bank (fast p99 22-23 ms), 4 still did (5-7 ms), 8 keeps it full
/// (0.3-0.6 ms). Any constant keeps the cost O(1) amortised.
const IDLE_EARNS: usize = 8;

/// The connections to one node that take new commands, the cursor that
/// spreads commands over them, and the rest of the pool's size: connections
/// not opened yet (the loop opens them a few at a time, in pool order).
#[derive(Debug)]
pub struct Pool<C> {
    conns: Vec<C>,
    cursor: usize,
    unopened: usize,
    /// Probes banked by [`Pool::pick_least_pending`] (see [`bank_cap`]).
    probes: usize,
}

impl<C: Copy> Pool<C> {
    /// A pool of `conns`, the cursor at the first.
    pub fn new(conns: Vec<C>) -> Self {
        Pool {
            probes: bank_cap(conns.len()),
            conns,
            cursor: 0,
            unopened: 0,
        }
    }

    /// A pool of `size` connections, none opened yet (and no memory for
    /// them yet: a topology update adds thousands of pools in one call).
    pub fn unopened(size: usize) -> Self {
        Pool {
            conns: Vec::new(),
            cursor: 0,
            unopened: size,
            probes: bank_cap(size),
        }
    }

    /// How many connections are open (and take new commands when ready).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether the pool has no open connection.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The pool's size: open connections and those still to open.
    pub fn size(&self) -> usize {
        self.conns.len() + self.unopened
    }

    /// How many connections are still to open.
    pub fn to_open(&self) -> usize {
        self.unopened
    }

    /// Grows the pool's size to `size` (never shrinks it); the new
    /// connections are to open.
    pub fn grow_to(&mut self, size: usize) {
        self.unopened = self.unopened.max(size.saturating_sub(self.conns.len()));
    }

    /// Puts `conn` in the place of the next connection to open (at the end
    /// of the open ones). Nothing happens to a pool with none to open.
    pub fn fill_one(&mut self, conn: C) -> bool {
        if self.unopened == 0 {
            return false;
        }
        self.unopened -= 1;
        self.conns.push(conn);
        true
    }

    /// The connections, in pool order.
    pub fn conns(&self) -> &[C] {
        &self.conns
    }

    /// The first connection, which speaks for the pool (endpoint, state).
    pub fn first(&self) -> Option<C> {
        self.conns.first().copied()
    }

    /// The round-robin cursor.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The next connection that `ready` accepts, looking at each at most once
    /// from the cursor and moving the cursor past every one looked at, as
    /// `conn.c` does.
    #[inline]
    pub fn pick(&mut self, mut ready: impl FnMut(C) -> bool) -> Option<C> {
        let n = self.conns.len();
        for _ in 0..n {
            let c = self.conns[self.cursor];
            self.cursor += 1;
            if self.cursor == n {
                self.cursor = 0;
            }
            if ready(c) {
                return Some(c);
            }
        }
        None
    }

    /// The ready connection with the fewest pending replies among those
    /// probed: the first idle one from the cursor, else the least busy
    /// probed (the first of equals), the cursor moving past the one taken.
    /// With nothing pending this is [`Pool::pick`]'s rotation; a connection
    /// stuck behind a slow reply is passed over while an idle one exists.
    ///
    /// `ready` says whether a connection takes commands (those that do not
    /// are skipped, as [`Pool::pick`] skips them); `pending` counts its
    /// pending replies up to [`PENDING_CAP`]. A call probes once plus the
    /// probes it has banked (see [`bank_cap`]).
    #[inline]
    pub fn pick_least_pending(
        &mut self,
        mut ready: impl FnMut(C) -> bool,
        mut pending: impl FnMut(C) -> u32,
    ) -> Option<C> {
        // The common cases in few instructions: the cursor's connection is
        // idle, or busy with no probe banked to look further.
        let at = self.cursor;
        let &c = self.conns.get(at)?;
        let mut first = None;
        if ready(c) {
            let p = pending(c);
            if p == 0 || self.probes == 0 {
                let n = self.conns.len();
                let earned = if p == 0 { IDLE_EARNS } else { 0 };
                self.probes = (self.probes + earned).min(bank_cap(n));
                self.cursor = if at + 1 == n { 0 } else { at + 1 };
                return Some(c);
            }
            first = Some((c, p));
        }
        self.pick_beyond_cursor(first, ready, pending)
    }

    /// The rest of [`Pool::pick_least_pending`], out of line: the cursor's
    /// connection is busy (`first`, with its pending count) or not ready
    /// (`None`). Looks on from the next one with the banked probes, and the
    /// call's own probe if the cursor's connection did not take it.
    #[inline(never)]
    fn pick_beyond_cursor(
        &mut self,
        first: Option<(C, u32)>,
        mut ready: impl FnMut(C) -> bool,
        mut pending: impl FnMut(C) -> u32,
    ) -> Option<C> {
        let n = self.conns.len();
        let cursor = self.cursor;
        let mut best = first.map(|(c, _)| (cursor, c));
        let mut fewest = first.map_or(u32::MAX, |(_, p)| p);
        let mut probes = self.probes + usize::from(first.is_none());
        // Looks at connection `at`; true once the scan is over.
        let mut probe = |at: usize, c: C| {
            if !ready(c) {
                return false;
            }
            let p = pending(c);
            if p < fewest {
                fewest = p;
                best = Some((at, c));
            }
            // At least one probe to spend on entry.
            probes -= 1;
            p == 0 || probes == 0
        };
        // After the cursor to the end, then from the start: two plain slice
        // walks cost less per connection than a wrapping index.
        let (up_to, after) = self.conns.split_at(cursor + 1);
        if !(cursor + 1..).zip(after).any(|(at, &c)| probe(at, c)) {
            (0..).zip(&up_to[..cursor]).any(|(at, &c)| probe(at, c));
        }
        let earned = if fewest == 0 { IDLE_EARNS } else { 0 };
        self.probes = (probes + earned).min(bank_cap(n));
        let (at, c) = best?;
        self.cursor = if at + 1 == n { 0 } else { at + 1 };
        Some(c)
    }

    /// The next connection by `how`: [`Pool::pick_least_pending`] or
    /// [`Pool::pick`] (which ignores `pending`).
    #[inline]
    pub fn pick_by(
        &mut self,
        how: Pick,
        ready: impl FnMut(C) -> bool,
        pending: impl FnMut(C) -> u32,
    ) -> Option<C> {
        match how {
            Pick::LeastPending => self.pick_least_pending(ready, pending),
            Pick::RoundRobin => self.pick(ready),
        }
    }

    /// Keeps the first `num` connections and appends the open ones of the
    /// rest to `surplus`, in order (one copy: a `Shrink` collects thousands
    /// of pools' surplus inside its call); those still to open are
    /// forgotten. The cursor wraps into the new size. `num == 0` empties the
    /// pool.
    pub fn shrink_into(&mut self, num: usize, surplus: &mut Vec<C>) {
        self.unopened = self.unopened.min(num.saturating_sub(self.conns.len()));
        let keep = num.min(self.conns.len());
        surplus.extend_from_slice(&self.conns[keep..]);
        self.conns.truncate(keep);
        self.cursor = if self.conns.is_empty() {
            0
        } else {
            self.cursor % self.conns.len()
        };
    }

    /// Keeps the first `num` connections and hands back the open ones of
    /// the rest, as [`Pool::shrink_into`].
    pub fn shrink(&mut self, num: usize) -> Vec<C> {
        let mut surplus = Vec::new();
        self.shrink_into(num, &mut surplus);
        surplus
    }

    /// Empties the pool, handing back every connection.
    pub fn take_all(&mut self) -> Vec<C> {
        self.shrink(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_unready_and_advances_past_them() {
        let mut p = Pool::new(vec![0, 1, 2, 3]);
        let ready = |c: i32| c != 1;
        assert_eq!(p.pick(ready), Some(0));
        assert_eq!(p.pick(ready), Some(2));
        assert_eq!(p.cursor(), 3);
        assert_eq!(p.pick(ready), Some(3));
        assert_eq!(p.pick(ready), Some(0));
        assert_eq!(p.pick(|_| false), None);
        // A full fruitless lap leaves the cursor where it started.
        assert_eq!(p.cursor(), 1);
    }

    /// Connections `0..n` with `pending[c]` replies pending; picks counted.
    fn least_pending(
        p: &mut Pool<usize>,
        pending: &[u32],
        ready: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        p.pick_least_pending(ready, |c| pending[c].min(PENDING_CAP))
    }

    #[test]
    fn least_pending_rotates_like_round_robin_when_nothing_is_pending() {
        let idle = [0; 4];
        let mut a = Pool::new(vec![0, 1, 2, 3]);
        let mut b = Pool::new(vec![0, 1, 2, 3]);
        for _ in 0..9 {
            let ready = |c: usize| c != 1;
            assert_eq!(least_pending(&mut a, &idle, ready), b.pick(ready));
            assert_eq!(a.cursor(), b.cursor());
        }
        assert_eq!(least_pending(&mut a, &idle, |_| false), None);
    }

    #[test]
    fn least_pending_passes_over_busy_connections() {
        let mut p = Pool::new(vec![0, 1, 2, 3]);
        let pending = [1, 0, 9, 0];
        assert_eq!(least_pending(&mut p, &pending, |_| true), Some(1));
        assert_eq!(p.cursor(), 2);
        assert_eq!(least_pending(&mut p, &pending, |_| true), Some(3));
        assert_eq!(least_pending(&mut p, &pending, |_| true), Some(1));
        // A busy connection that is not ready is never taken.
        assert_eq!(least_pending(&mut p, &pending, |c| c == 2), Some(2));
        assert_eq!(least_pending(&mut p, &[1, 1, 1, 1], |c| c == 2), Some(2));
    }

    #[test]
    fn with_all_busy_the_fewest_pending_of_those_probed_wins() {
        let mut p = Pool::new(vec![0, 1, 2, 3]);
        // Quiet calls banked probes: this one looks at all four.
        for _ in 0..2 {
            least_pending(&mut p, &[0; 4], |_| true);
        }
        assert_eq!(p.cursor(), 2);
        assert_eq!(least_pending(&mut p, &[1, 3, 2, 4], |_| true), Some(0));
        // Counts are capped: beyond PENDING_CAP all are equal, and the
        // first from the cursor wins, so a burst keeps the rotation.
        let full = [PENDING_CAP + 5, PENDING_CAP, PENDING_CAP + 1, 99];
        for want in [1, 2, 3, 0, 1] {
            assert_eq!(least_pending(&mut p, &full, |_| true), Some(want));
        }
    }

    /// Picks `calls` times from a pool of 8 where connection `c` has
    /// `pending(c)` replies pending; returns the probes spent.
    fn probes_spent(p: &mut Pool<usize>, calls: usize, pending: impl Fn(usize) -> u32) -> usize {
        let mut probes = 0;
        for _ in 0..calls {
            p.pick_least_pending(
                |_| true,
                |c| {
                    probes += 1;
                    pending(c)
                },
            );
        }
        probes
    }

    #[test]
    fn least_pending_costs_constant_probes_per_call_amortised() {
        let mut p = Pool::new((0..8).collect::<Vec<_>>());
        // Quiet: one probe each, banking up to 7.
        assert_eq!(probes_spent(&mut p, 100, |_| 0), 100);
        // Saturated: the bank first (7 + 1 probes), then one per call.
        assert_eq!(probes_spent(&mut p, 100, |_| 2), 8 + 99);
        // Only connection 5 idle: each call finds it, by the bank while it
        // lasts; the amortised cost stays within 1 + IDLE_EARNS per call.
        let calls = 1000;
        let spent = probes_spent(&mut p, calls, |c| u32::from(c != 5));
        assert!(spent <= (1 + IDLE_EARNS) * calls + 8, "{spent} probes");
    }

    #[test]
    fn pick_is_named_by_mrconn_pick() {
        assert_eq!(Pick::named(Some("round_robin")), Pick::RoundRobin);
        assert_eq!(Pick::named(Some("least_pending")), Pick::LeastPending);
        assert_eq!(Pick::named(None), Pick::LeastPending);
        let mut p = Pool::new(vec![0, 1]);
        let busy_first = |c: usize| u32::from(c == 0);
        assert_eq!(p.pick_by(Pick::RoundRobin, |_| true, busy_first), Some(0));
        assert_eq!(p.pick_by(Pick::LeastPending, |_| true, busy_first), Some(1));
        assert_eq!(p.pick_by(Pick::LeastPending, |_| true, busy_first), Some(1));
    }

    #[test]
    fn shrink_keeps_the_head_and_wraps_the_cursor() {
        let mut p = Pool::new(vec![10, 11, 12, 13, 14]);
        for _ in 0..3 {
            p.pick(|_| true);
        }
        assert_eq!(p.shrink(2), vec![12, 13, 14]);
        assert_eq!(p.conns(), &[10, 11]);
        assert_eq!(p.cursor(), 1);
        assert_eq!(p.shrink(7), Vec::<i32>::new());
        assert!(!p.fill_one(15), "nothing to open");
        p.grow_to(3);
        assert!(p.fill_one(15));
        assert_eq!(p.conns(), &[10, 11, 15]);
        assert_eq!(p.take_all(), vec![10, 11, 15]);
        assert!(p.is_empty());
        assert_eq!(p.pick(|_| true), None);
    }

    #[test]
    fn connections_to_open_count_in_the_size_and_shrink_first() {
        let mut p = Pool::unopened(4);
        assert_eq!((p.len(), p.size(), p.to_open()), (0, 4, 4));
        assert_eq!(p.pick(|_| true), None);
        assert!(p.fill_one(1));
        assert!(p.fill_one(2));
        assert_eq!((p.len(), p.size()), (2, 4));
        // Shrinking to 3 forgets one to open and hands back none.
        assert_eq!(p.shrink(3), Vec::<i32>::new());
        assert_eq!((p.size(), p.to_open()), (3, 1));
        // Shrinking below the open ones forgets the rest.
        assert_eq!(p.shrink(1), vec![2]);
        assert_eq!((p.size(), p.to_open()), (1, 0));
        // Growing never shrinks.
        p.grow_to(5);
        p.grow_to(2);
        assert_eq!((p.size(), p.to_open()), (5, 4));
        assert_eq!(p.take_all(), vec![1]);
        assert_eq!(p.size(), 0);
    }
}
