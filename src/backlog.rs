//! Resize work done on the loop in slices, so that no call stalls it at any
//! pool size: opening a pool's new connections (about 30 µs each: a socket,
//! a non-blocking connect, libuv handles) and closing idle connections that
//! left their pool (about 20 µs each). `Expand` and `Add` queue the first,
//! `Shrink`, `Disconnect` and `Add` the second; a libuv idle handle then does
//! at most [`SLICE`] of it per loop iteration, in queue order.
//!
//! What callers observe changes at once: a connection queued to close is in
//! no pool, so `MRConn_Get` never returns it; `Add` puts its whole pool in
//! place, `Connecting` as conn.c's, and only their connects wait; a pool
//! that `Expand` grows shows its new connections, in order, as they open.
//! `Shutdown` does what is left inside the call (CONTRACT §5).

use std::collections::VecDeque;
use std::ffi::{CStr, CString, c_void};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::conn::MRConn;
use crate::drain;
use crate::event_loop::Idle;
use crate::host::dict;
use crate::manager::{NodePool, Pools, State};
use crate::sys::uv::{uv_idle_t, uv_loop_t};

/// The most work one loop iteration does.
pub const SLICE: Duration = Duration::from_micros(250);

/// One step of queued work.
enum Job {
    /// Grow the pool of `node` to `size`, one connection per step.
    Fill { node: CString, size: usize },
    /// Start connecting a new connection already in its pool.
    Start(NonNull<MRConn>),
    /// Close a connection that left its pool with nothing pending.
    Close(NonNull<MRConn>),
}

/// A manager's queued resize work.
#[derive(Default)]
pub struct Backlog {
    jobs: VecDeque<Job>,
    /// Runs the slices; made on first use, with the loop of that call.
    idle: Option<Idle>,
}

impl Backlog {
    /// Queues growing `node`'s pool to `size` connections.
    pub fn fill(
        &mut self,
        map: NonNull<dict>,
        loop_: NonNull<uv_loop_t>,
        node: &CStr,
        size: usize,
    ) {
        self.jobs.push_back(Job::Fill {
            node: node.to_owned(),
            size,
        });
        self.wake(map, loop_);
    }

    /// Queues starting the connect of `conn`, from [`MRConn::new`].
    pub fn start(&mut self, map: NonNull<dict>, conn: NonNull<MRConn>) {
        MRConn::queue_to_start(conn);
        self.jobs.push_back(Job::Start(conn));
        // SAFETY: a queued connection lives until the queue lets it go.
        let loop_ = unsafe { conn.as_ref() }.event_loop();
        self.wake(map, loop_);
    }

    /// Queues closing `conn`, which is in no pool and has nothing pending.
    pub fn close(&mut self, map: NonNull<dict>, conn: NonNull<MRConn>) {
        MRConn::queue_to_close(conn);
        self.jobs.push_back(Job::Close(conn));
        // SAFETY: a queued connection lives until the queue lets it go.
        let loop_ = unsafe { conn.as_ref() }.event_loop();
        self.wake(map, loop_);
    }

    /// How many connections are still to open, start or close.
    pub fn queued(&self, map: NonNull<dict>) -> u64 {
        self.jobs
            .iter()
            .map(|job| match job {
                Job::Start(conn) | Job::Close(conn) => u64::from(MRConn::queued_work(*conn)),
                Job::Fill { node, size } => {
                    // SAFETY: `map` is the live map of this backlog's manager.
                    let pool = unsafe { pool_of(map, node) };
                    size.saturating_sub(pool.map_or(*size, |p| p.len())) as u64
                }
            })
            .sum()
    }

    /// No queued fill goes past `size` any more (`Shrink`).
    pub fn cap(&mut self, size: usize) {
        for job in &mut self.jobs {
            if let Job::Fill { size: s, .. } = job {
                *s = (*s).min(size);
            }
        }
    }

    fn wake(&mut self, map: NonNull<dict>, loop_: NonNull<uv_loop_t>) {
        // SAFETY: the loop of a call on this manager is live, on its thread;
        // the map outlives the handle (Shutdown closes it first).
        let idle = self
            .idle
            .get_or_insert_with(|| unsafe { Idle::new(loop_, map.as_ptr().cast::<c_void>()) });
        idle.start(on_idle);
    }

    /// Shutdown: closes what is queued to close now, drops the fills, and
    /// closes the idle handle. Returns the connections to close.
    pub fn finish(&mut self) -> Vec<NonNull<MRConn>> {
        if let Some(idle) = self.idle.take() {
            idle.close();
        }
        self.jobs
            .drain(..)
            .filter_map(|job| match job {
                Job::Close(conn) => MRConn::unqueue(conn),
                // Still in its pool, which Shutdown closes.
                Job::Start(conn) => MRConn::unqueue(conn).and(None),
                Job::Fill { .. } => None,
            })
            .collect()
    }
}

/// The pool of `node` in `map`, if it still has one.
///
/// # Safety
/// 1. `map` is a manager's live map, and nothing else refers to that pool
///    for `'a`.
unsafe fn pool_of<'a>(map: NonNull<dict>, node: &CStr) -> Option<&'a mut NodePool> {
    // SAFETY: 1.
    let pools = unsafe { Pools::of(map) };
    // SAFETY: 1.; a CStr is NUL-terminated.
    unsafe { pools.find(NonNull::from(node).cast()) }
}

/// One slice: queued work until the queue is empty or [`SLICE`] is spent.
extern "C" fn on_idle(handle: *mut uv_idle_t) {
    // SAFETY: the handle's owner is its manager's map, live while the handle
    // is (Shutdown closes the handle before it releases the map).
    let Some(map) = NonNull::new(unsafe { Idle::owner(handle) }.cast::<dict>()) else {
        return;
    };
    let start = Instant::now();
    loop {
        // SAFETY: a live map of ours has its State as privdata; nothing else
        // refers to it while a libuv callback runs, and the reference ends
        // before the step below may run callbacks.
        let state = unsafe { State::of(map) };
        let Some(job) = state.backlog.jobs.pop_front() else {
            if let Some(idle) = &state.backlog.idle {
                idle.stop();
            }
            return;
        };
        match job {
            Job::Start(conn) => {
                if let Some(conn) = MRConn::unqueue(conn) {
                    MRConn::start(conn);
                }
            }
            Job::Close(conn) => {
                if let Some(conn) = MRConn::unqueue(conn) {
                    MRConn::release(conn, "connection left its pool");
                }
            }
            Job::Fill { node, size } => {
                // SAFETY: `map` is live, and no other reference to the pool exists.
                if let Some(pool) = unsafe { pool_of(map, &node) } {
                    let grown = drain::grow_one(&mut state.drains, pool, size);
                    if grown && pool.len() < size {
                        state.backlog.jobs.push_front(Job::Fill { node, size });
                    }
                }
            }
        }
        if start.elapsed() >= SLICE {
            return;
        }
    }
}
