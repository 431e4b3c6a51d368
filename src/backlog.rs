//! Resize work done on the loop in slices, so that no call stalls it at any
//! pool size: opening a pool's new connections (about 30 µs each: a socket,
//! a non-blocking connect, libuv handles), sorting the connections that left
//! their pools (see [`drain::Leave`]), and closing the idle ones among them
//! (about 20 µs each). `Expand` and `Add` queue the first, `Shrink`,
//! `Disconnect` and `Add` the others; a libuv idle handle then does at most
//! [`SLICE`] of it per loop iteration, in queue order (sorting first; pools
//! that fill take turns, a connection each).
//!
//! What callers observe changes at once: a pool's size is its new size
//! (`FillStateDict` shows the connections still to open as `Connecting`, as
//! conn.c's new connections are), and a connection that left its pool is in
//! none, so `MRConn_Get` never returns it. `Shutdown` does what is left
//! inside the call (CONTRACT §5).

use std::collections::VecDeque;
use std::ffi::{CStr, CString, c_void};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::conn::MRConn;
use crate::drain::{self, Drains, Leave};
use crate::event_loop::Idle;
use crate::host::dict;
use crate::manager::{NodePool, Pools, State};
use crate::sys::uv::{uv_idle_t, uv_loop_t};

/// The most work one loop iteration does.
const SLICE: Duration = Duration::from_micros(100);

/// One step of queued work.
enum Job {
    /// Open the connections `node`'s pool has to open, one per step.
    Fill { node: NodeId },
    /// Sort connections that left their pools, one per step.
    Leave(Box<Leave>),
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
    /// Queues opening the connections `node`'s pool has to open.
    pub fn fill(&mut self, map: NonNull<dict>, loop_: NonNull<uv_loop_t>, node: &CStr) {
        self.jobs.push_back(Job::Fill {
            node: NodeId::new(node),
        });
        self.wake(map, loop_);
    }

    /// Queues sorting the rest of `leave`, ahead of other work: until a
    /// busy connection is sorted, its drain has no deadline timer.
    pub fn leave(&mut self, map: NonNull<dict>, leave: Leave) {
        debug_assert!(leave.remaining() > 0, "queued a leave with nothing to sort");
        let Some(loop_) = leave.event_loop() else {
            return;
        };
        self.jobs.push_front(Job::Leave(Box::new(leave)));
        self.wake(map, loop_);
    }

    /// Queues closing `conn`, which is in no pool and has nothing pending.
    pub fn close(&mut self, map: NonNull<dict>, conn: NonNull<MRConn>) {
        MRConn::hold(conn);
        self.jobs.push_back(Job::Close(conn));
        // SAFETY: a queued connection lives until the queue lets it go.
        let loop_ = unsafe { conn.as_ref() }.event_loop();
        self.wake(map, loop_);
    }

    /// How many connections are still to open, sort or close.
    pub fn queued(&self, map: NonNull<dict>) -> u64 {
        let mut to_open = 0;
        // SAFETY: `map` is the live map of this backlog's manager.
        unsafe { Pools::of(map) }.for_each(|_, pool| to_open += pool.to_open() as u64);
        self.jobs
            .iter()
            .map(|job| match job {
                Job::Close(conn) => u64::from(MRConn::queued_work(*conn)),
                Job::Leave(leave) => leave.remaining_work() as u64,
                Job::Fill { .. } => 0,
            })
            .sum::<u64>()
            + to_open
    }

    fn wake(&mut self, map: NonNull<dict>, loop_: NonNull<uv_loop_t>) {
        // SAFETY: the loop of a call on this manager is live, on its thread;
        // the map outlives the handle (Shutdown closes it first).
        let idle = self
            .idle
            .get_or_insert_with(|| unsafe { Idle::new(loop_, map.as_ptr().cast::<c_void>()) });
        idle.start(on_idle);
    }

    /// Shutdown: drops the fills, and closes the idle handle. Returns the
    /// connections queued to close or still to sort, for the caller to
    /// close.
    pub fn finish(&mut self, drains: &mut Drains) -> Vec<NonNull<MRConn>> {
        if let Some(idle) = self.idle.take() {
            idle.close();
        }
        let mut conns = Vec::new();
        for job in self.jobs.drain(..) {
            match job {
                Job::Close(conn) => conns.extend(MRConn::unqueue(conn)),
                Job::Leave(leave) => conns.extend(leave.abandon(drains)),
                Job::Fill { .. } => {}
            }
        }
        conns
    }
}

/// A node id, inline when short (RediSearch's are 40 hex digits): a
/// topology update queues a fill for each of thousands of nodes inside one
/// callback, and an allocation each was a fifth of `Add`'s cost.
enum NodeId {
    Inline([u8; INLINE_ID]),
    Heap(CString),
}

/// Bytes of an inline node id, its NUL included.
const INLINE_ID: usize = 48;

impl NodeId {
    fn new(id: &CStr) -> NodeId {
        let bytes = id.to_bytes_with_nul();
        if bytes.len() > INLINE_ID {
            return NodeId::Heap(id.to_owned());
        }
        let mut inline = [0; INLINE_ID];
        inline[..bytes.len()].copy_from_slice(bytes);
        NodeId::Inline(inline)
    }

    fn as_cstr(&self) -> &CStr {
        match self {
            // Made from a CStr: it holds a NUL.
            NodeId::Inline(bytes) => CStr::from_bytes_until_nul(bytes).unwrap_or_default(),
            NodeId::Heap(id) => id,
        }
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
            Job::Close(conn) => {
                if let Some(conn) = MRConn::unqueue(conn) {
                    MRConn::release(conn, "connection left its pool");
                }
            }
            Job::Leave(mut leave) => {
                if leave.sort_next(state, map) {
                    state.backlog.jobs.push_front(Job::Leave(leave));
                }
            }
            Job::Fill { node } => {
                // SAFETY: `map` is live, and no other reference to the pool exists.
                if let Some(pool) = unsafe { pool_of(map, node.as_cstr()) } {
                    // Back of the queue: the nodes of a topology take turns,
                    // so that each has a connection soon (RediSearch's IO
                    // thread waits for one to every node before it serves).
                    if drain::open_one(&mut state.drains, pool) {
                        state.backlog.jobs.push_back(Job::Fill { node });
                    }
                }
            }
        }
        if start.elapsed() >= SLICE {
            return;
        }
    }
}
