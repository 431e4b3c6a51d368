//! A shard that hangs, with no drain deadline (RediSearch's `return` policy),
//! while its pool is resized every 100 ms for an hour: 36,000 resizes. The
//! surplus of each Shrink drains forever, and each Expand takes draining
//! connections back, newest first, before it opens new ones, as `mrconn`
//! does. The drain book and the endpoint index must not grow with the
//! number of resizes: live heap bytes after the hour equal those after the
//! first minute. (The book's own test is in `src/drain.rs`; this one counts
//! bytes, so it is a binary of its own.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use mrconn_core::{BatchId, DrainBook, DrainCause, DrainOutcome, Grouped, Pool};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, counting bytes on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The one node's endpoint key.
const NODE: u64 = 1;

/// A pool of one node whose shard answers nothing: every connection has a
/// command pending, so every surplus connection drains, and never ends.
struct Node {
    pool: Pool<u32>,
    book: DrainBook,
    draining: Grouped<u64, u32>,
    /// Each draining connection's batch and place in `draining`.
    records: HashMap<u32, (BatchId, usize)>,
    next_conn: u32,
    opened: u64,
}

impl Node {
    fn resize(&mut self, size: usize, now: Instant) {
        if size < self.pool.size() {
            let from = self.pool.size() as u32;
            let surplus = self.pool.shrink(size);
            let batch = self.book.open(
                DrainCause::Shrink {
                    from,
                    to: size as u32,
                },
                now,
            );
            for conn in surplus {
                self.book.join(batch);
                let slot = self.draining.push(NODE, conn);
                self.records.insert(conn, (batch, slot));
            }
            assert_eq!(self.book.seal(batch, now), None, "they drain forever");
            return;
        }
        self.pool.grow_to(size);
        while self.pool.to_open() > 0 {
            let conn = match self.draining.group(NODE).last().copied() {
                Some(conn) => {
                    let (batch, slot) = self.records.remove(&conn).unwrap();
                    if let Some((moved, at)) = self.draining.remove(NODE, conn, slot) {
                        self.records.get_mut(&moved).unwrap().1 = at;
                    }
                    self.book.close(batch, DrainOutcome::Reclaimed, now);
                    conn
                }
                None => {
                    self.next_conn += 1;
                    self.opened += 1;
                    self.next_conn
                }
            };
            self.pool.fill_one(conn);
        }
    }
}

#[test]
fn an_hour_of_resizes_around_a_hung_shard_keeps_memory_flat() {
    let mut node = Node {
        pool: Pool::new((0..8).collect()),
        book: DrainBook::default(),
        draining: Grouped::default(),
        records: HashMap::new(),
        next_conn: 8,
        opened: 0,
    };
    let t0 = Instant::now();
    // A fixed pseudo-random walk of sizes 1..=8 (WORKERS changing).
    let mut seed: u32 = 0x2545_f491;
    let mut next_size = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        1 + (seed % 8) as usize
    };
    let mut after_a_minute = 0;
    for step in 0..36_000u32 {
        let now = t0 + Duration::from_millis(100 * u64::from(step));
        let size = next_size();
        node.resize(size, now);
        assert_eq!(node.pool.size(), size);
        let draining = node.book.stats().draining;
        assert_eq!(draining as usize, node.records.len());
        assert!(draining <= 7, "at most the largest pool's surplus drains");
        assert!(node.book.open_batches() <= 7);
        if step == 600 {
            after_a_minute = LIVE.load(Ordering::Relaxed);
        }
    }
    let after_an_hour = LIVE.load(Ordering::Relaxed);
    let stats = node.book.stats();
    println!(
        "36,000 resizes: {} reclaimed, {} opened anew, {} open batches, \
         live heap {after_a_minute} B after a minute, {after_an_hour} B after an hour",
        stats.reclaimed,
        node.opened,
        node.book.open_batches()
    );
    // Every Expand took every draining connection it could back.
    assert_eq!(node.opened, 0);
    assert!(
        after_an_hour <= after_a_minute,
        "live heap grew from {after_a_minute} B to {after_an_hour} B"
    );
}
