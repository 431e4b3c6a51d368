//! Resize work queued for the loop, so that no call stalls it at any pool
//! size: opening a pool's new connections (about 30 µs each: a socket, a
//! non-blocking connect, libuv handles) and sorting the connections that left
//! their pools (see [`Leave`]). This is the queue and the idle handle that
//! wakes the loop for it; [`crate::resize`] queues the jobs and runs them,
//! and then closes the parked connections (see [`crate::drain::park`]), at
//! most a slice per loop iteration.

use std::collections::VecDeque;
use std::time::Instant;

use mrconn_core::Bucket;

use crate::drain::Leave;
use crate::event_loop::{Idle, Timer};
use crate::node_pool::{NodePool, QueuedFill};
use crate::sys::uv::uv_timer_t;

/// Socket closes allowed at once, and then per millisecond. A close costs
/// the kernel about 20 µs in the call and as much again later, in softirq
/// work (the FIN exchange, TIME_WAIT, RCU frees) that the next timer
/// interrupts run on the loop's CPU: thousands of closes back to back, even
/// in slices, stack that work into a few interrupts of milliseconds each.
/// Measured at 10,000 connections (`scripts/bench.sh scale`, 6 runs each):
/// in most runs the drain-end iteration took 0.8-1.3 ms unpaced; 0.5-0.8 ms
/// at 2 per ms, the closes spread over 5 s; 0.26-0.6 ms at 12 per ms, over
/// 0.9 s.
const CLOSE_BURST: u32 = 32;
const CLOSES_PER_MS: u32 = 12;

/// How long the slices pause when the close budget is spent.
const CLOSE_PAUSE_MS: u64 = 1;

/// One step of queued work.
pub enum Job {
    /// Open the connections a pool has to open, one per step.
    Fill(QueuedFill),
    /// Sort connections that left their pools, one per step.
    Leave(Box<Leave>),
}

/// A manager's queued resize work.
pub struct Backlog {
    jobs: VecDeque<Job>,
    /// Runs the slices; made on first use.
    idle: Option<Idle>,
    /// Wakes the slices after a pause of the closes; made on first use.
    pause: Option<Timer>,
    closes: Bucket,
}

impl Default for Backlog {
    fn default() -> Self {
        Backlog {
            jobs: VecDeque::new(),
            idle: None,
            pause: None,
            closes: Bucket::new(CLOSE_BURST, CLOSES_PER_MS),
        }
    }
}

impl Backlog {
    /// Queues a fill of `pool` unless one is queued already (one fill per
    /// node); whether it queued one.
    ///
    /// # Safety
    /// 1. As [`NodePool::queue_fill`]'s.
    pub unsafe fn fill(&mut self, pool: &mut NodePool) -> bool {
        // SAFETY: 1.
        let Some(fill) = (unsafe { pool.queue_fill() }) else {
            return false;
        };
        self.jobs.push_back(Job::Fill(fill));
        true
    }

    /// Queues `job` last.
    pub fn push_back(&mut self, job: Job) {
        self.jobs.push_back(job);
    }

    /// Queues `job` first.
    pub fn push_front(&mut self, job: Job) {
        self.jobs.push_front(job);
    }

    /// The next job.
    pub fn pop_front(&mut self) -> Option<Job> {
        self.jobs.pop_front()
    }

    /// No work is left: the slices stop.
    pub fn sleep(&self) {
        if let Some(idle) = &self.idle {
            idle.stop();
        }
    }

    /// Makes sure a slice runs in the coming loop iterations; `make` makes
    /// the idle handle, the first time.
    pub fn wake(&mut self, make: impl FnOnce() -> Idle) {
        self.idle.get_or_insert_with(make).start();
    }

    /// Whether a socket may close now (see [`CLOSES_PER_MS`]).
    pub fn may_close(&mut self) -> bool {
        self.closes.take(Instant::now())
    }

    /// The slices pause for [`CLOSE_PAUSE_MS`] and then go on: `make` makes
    /// the timer, the first time, and `resume` runs then.
    ///
    /// # Safety
    /// 1. `resume` may be called with the timer's handle, carrying the owner
    ///    `make` gave it, until [`Backlog::finish`] closes it.
    pub unsafe fn pause(
        &mut self,
        make: impl FnOnce() -> Timer,
        resume: unsafe extern "C" fn(*mut uv_timer_t),
    ) {
        self.sleep();
        let timer = self.pause.get_or_insert_with(make);
        // SAFETY: 1.
        unsafe { timer.start(CLOSE_PAUSE_MS, resume) };
    }

    /// After a pause: the slices go on.
    pub fn resume(&self) {
        if let Some(idle) = &self.idle {
            idle.start();
        }
    }

    /// How many connections queued jobs still have to sort.
    pub fn queued(&self) -> u64 {
        self.jobs
            .iter()
            .map(|job| match job {
                Job::Leave(leave) => leave.remaining_work() as u64,
                Job::Fill(_) => 0,
            })
            .sum()
    }

    /// Shutdown: closes the idle handle and the timer, and hands over the
    /// jobs left.
    pub fn finish(&mut self) -> VecDeque<Job> {
        if let Some(idle) = self.idle.take() {
            idle.close();
        }
        if let Some(pause) = self.pause.take() {
            // SAFETY: the callback does nothing with the owner.
            unsafe { pause.close(|_| {}) };
        }
        std::mem::take(&mut self.jobs)
    }
}
