//! What happens on `Shrink`, `Expand`, `Add`, `Disconnect` and `Shutdown`,
//! and the loop's side of it: the slices that open, sort and close
//! connections, and the hook through which draining connections report.
//!
//! A call changes the pools at once and queues the socket work
//! ([`crate::backlog`]): a pool's size is its new size (`FillStateDict`
//! shows the connections still to open as `Connecting`, as conn.c's new
//! connections are), and a connection that left its pool is in none, so
//! `MRConn_Get` never returns it. Leaving connections are sorted
//! ([`Leave`]): in the call when there are at most [`IN_CALL`], otherwise
//! in slices of at most [`SLICE`] per loop iteration. `Shutdown` does what
//! is left inside the call (CONTRACT §5).
//!
//! No user callback runs while the manager's pools or state are borrowed:
//! every step borrows them ([`Map::parts`]), collects what must close, and
//! lets go before closing it.

use std::ffi::{CStr, c_void};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use mrconn_core::{ConnState, DrainCause};

use crate::backlog::Job;
use crate::conn::{ConnRef, MRConn, Owner, Report};
use crate::drain::{self, Leave, Sorted};
use crate::event_loop::{Idle, Timer};
use crate::host::{Endpoint, Level, MREndpoint, hlog};
use crate::manager::{MRConnManager, Map, Parts};
use crate::node_pool::NodePool;
use crate::sys::uv::{uv_idle_t, uv_loop_t, uv_timer_t};

/// The most leaving connections a call sorts itself (about 0.2 to 1 µs
/// each): a resize of that many is over when the call returns, its notice
/// logged, on any machine and build. More go to the slices, all of them: a
/// call that leaves thousands has spent a few hundred µs marking them, and
/// its loop iteration has no room for sorting as well.
const IN_CALL: usize = 256;

/// The most work one loop iteration does.
const SLICE: Duration = Duration::from_micros(100);

/// `MRConnManager_Shrink`: every pool keeps its first `num` connections; the
/// others leave (a connection never opened is simply forgotten).
pub fn shrink(mgr: &mut MRConnManager, num: u32) {
    let from = mgr.node_conns();
    let Some(mut parts) = mgr.parts() else {
        return;
    };
    let mut surplus = Vec::new();
    parts
        .pools
        .for_each(|_, pool| pool.shrink_into(num as usize, &mut surplus));
    let map = parts.map;
    drop(parts);
    mgr.set_node_conns(num);
    depart(
        map,
        Leave::new(surplus, DrainCause::Shrink { from, to: num }, None),
    );
}

/// `MRConnManager_Expand`: every pool grows to `num`; the slices open the
/// new connections, taking back draining connections to the same endpoint
/// before opening new ones.
///
/// # Safety
/// 1. `loop_` is the manager's live loop, and this runs on its thread.
pub unsafe fn expand(mgr: &mut MRConnManager, num: u32, loop_: NonNull<uv_loop_t>) {
    let Some(mut parts) = mgr.parts() else {
        return;
    };
    let Parts { pools, state, .. } = &mut parts;
    let mut woke = false;
    pools.for_each(|_, pool| {
        pool.grow_to(num as usize);
        if pool.to_open() > 0 {
            // SAFETY: a pool of the dict.
            woke |= unsafe { state.backlog.fill(pool) };
        }
    });
    if woke {
        // SAFETY: 1.
        unsafe { wake(&mut parts, loop_) };
    }
    drop(parts);
    mgr.set_node_conns(num);
}

/// `MRConnManager_Add`: gives `id` a pool of `nodeConns` connections to `ep`,
/// opened by the slices; false when it has one to an equal endpoint. The
/// connections of an older pool to another endpoint leave.
///
/// # Safety
/// 1. `ep` is a valid endpoint (its strings NUL-terminated or NULL).
/// 2. `loop_` is the manager's live loop, and this runs on its thread.
pub unsafe fn add(
    mgr: &mut MRConnManager,
    loop_: NonNull<uv_loop_t>,
    id: &CStr,
    ep: &MREndpoint,
) -> bool {
    let size = mgr.node_conns() as usize;
    let Some(mut parts) = mgr.parts() else {
        return false;
    };
    let old = parts.pools.find(id);
    // SAFETY: 1.
    let same = old
        .as_ref()
        .is_some_and(|o| unsafe { o.endpoint().equals(ep) });
    if same {
        // Every topology update adds every node again: no copy for these.
        return false;
    }
    // SAFETY: 1.
    let ep = unsafe { Endpoint::copy(ep) };
    if let Some(old) = &old {
        hlog!(
            Level::Notice,
            "MRConnManager_Add: Node {} endpoint changed from {}:{} to {}:{}, reconnecting (state: {})",
            id.to_string_lossy(),
            old.endpoint().host_str(),
            old.endpoint().port(),
            ep.host_str(),
            ep.port(),
            old.state().unwrap_or(ConnState::Connecting).as_str()
        );
    }
    // SAFETY: 2.
    let new = unsafe { NodePool::new(ep, loop_, size) };
    let (pool, leaving) = match old {
        // The entry (and `id`, which may be its key) stays; the old
        // connections leave, and a fill queued for them serves the new ones.
        Some(old) => {
            let leaving = old.replace(new).take_all();
            (old, Some(leaving))
        }
        None => (parts.pools.insert(id, new), None),
    };
    // SAFETY: a pool of the dict.
    if size > 0 && unsafe { parts.state.backlog.fill(pool) } {
        // SAFETY: 2.
        unsafe { wake(&mut parts, loop_) };
    }
    let map = parts.map;
    drop(parts);
    if let Some(leaving) = leaving {
        let node = id.to_string_lossy().into_owned();
        depart(
            map,
            Leave::new(leaving, DrainCause::EndpointChanged, Some(node)),
        );
    }
    true
}

/// `MRConnManager_Disconnect`: whether `id` had a pool. Its connections
/// leave.
pub fn disconnect(mgr: &mut MRConnManager, id: &CStr) -> bool {
    let Some(mut parts) = mgr.parts() else {
        return false;
    };
    let Some(pool) = parts.pools.find(id) else {
        return false;
    };
    let leaving = pool.take_all();
    // `id` may be the dict's own key, which the removal frees.
    let node = id.to_string_lossy().into_owned();
    parts.pools.remove(id);
    let map = parts.map;
    drop(parts);
    depart(
        map,
        Leave::new(leaving, DrainCause::NodeRemoved, Some(node)),
    );
    true
}

/// `MRConnManager_Shutdown` of the map its manager has already let go of:
/// the map is released, then every connection closes now, pending
/// callbacks getting an error reply (they may call back into the manager,
/// which finds itself shut down).
///
/// # Safety
/// 1. `map` was taken by `MRConnManager::take_map`; no handle to it is used
///    after this.
pub unsafe fn shutdown(map: Map) {
    let mut conns = Vec::new();
    {
        let mut parts = map.parts();
        parts
            .pools
            .for_each(|_, pool| conns.extend(pool.take_all()));
        for job in parts.state.backlog.finish() {
            match job {
                Job::Leave(leave) => conns.extend(leave.abandon(&mut parts.state.drains)),
                // SAFETY: no pool is taken from `parts` meanwhile.
                Job::Fill(fill) => unsafe { fill.end() },
            }
        }
    }
    // SAFETY: 1.; its pools are empty now.
    let mut state = unsafe { MRConnManager::release(map) };
    conns.extend(drain::force_all(&mut state.drains));
    drop(state);
    for conn in conns {
        conn.release("connection manager shut down");
    }
}

/// Sends `leave` on its way: sorts it now if it holds at most [`IN_CALL`]
/// connections, else queues it for the slices.
fn depart(map: Map, mut leave: Leave) {
    // Room for all of them in the registry now, not a rehash in a slice.
    map.parts().state.drains.reserve(leave.remaining());
    if leave.remaining() > IN_CALL {
        let mut parts = map.parts();
        let Some(loop_) = leave.event_loop() else {
            return;
        };
        // First: until a busy connection is sorted, its drain has no
        // deadline timer.
        parts.state.backlog.push_front(Job::Leave(Box::new(leave)));
        // SAFETY: the loop of live connections.
        unsafe { wake(&mut parts, loop_) };
        return;
    }
    loop {
        // Its own statement: the borrow ends before `close`.
        let next = leave.sort_next(&mut map.parts().state.drains);
        match next {
            Sorted::Done => return,
            Sorted::Busy => {}
            Sorted::Idle(conn) => close(map, conn),
        }
    }
}

/// Closes `conn`, which left its pool with nothing pending: now when it has
/// no socket (which runs no callback: nothing can be pending on it); in a
/// slice when it has one (about 20 µs to close), parked meanwhile, so that
/// an `Expand` or `Add` that comes first takes it back.
fn close(map: Map, conn: ConnRef) {
    if conn.context().is_none() {
        conn.release("connection left its pool");
        return;
    }
    let mut parts = map.parts();
    drain::park(&mut parts.state.drains, conn);
    // SAFETY: the loop of a live connection, whose hooks and slices run on it.
    unsafe { wake(&mut parts, conn.event_loop()) };
}

/// Makes sure a slice runs soon.
///
/// # Safety
/// 1. `loop_` is the manager's live loop, and this runs on its thread.
unsafe fn wake(parts: &mut Parts<'_>, loop_: NonNull<uv_loop_t>) {
    let map = parts.map;
    parts.state.backlog.wake(|| {
        // SAFETY: 1.; the map outlives the handle (Shutdown closes it before
        // releasing the map), and `run_slice` takes it as a Map.
        unsafe { Idle::new(loop_, map.ptr().as_ptr().cast(), run_slice) }
    });
}

/// Opens the next connection `pool` has to open: a draining connection to
/// its endpoint taken back, or a new one. Whether the fill goes on (the pool
/// has more to open). Runs no callback.
fn open_one(parts: &mut Parts<'_>, pool: &mut NodePool) -> bool {
    let map = parts.map;
    if pool.to_open() == 0 {
        return false;
    }
    let conn = drain::reclaim(&mut parts.state.drains, pool.endpoint()).unwrap_or_else(|| {
        // SAFETY: a manager's map lives while any of its connections drains
        // (Shutdown ends every drain before it releases the map), and the
        // hook borrows nothing live while it runs.
        let owner = unsafe { Owner::new(on_report, map.ptr().cast()) };
        // SAFETY: a pool's loop is live, and slices run on it.
        unsafe { MRConn::open(pool.endpoint(), pool.event_loop(), owner, pool.log()) }
    });
    pool.fill_one(conn);
    pool.to_open() > 0
}

/// One slice: queued work, then the parked connections' closes, until none
/// is left or [`SLICE`] is spent. Closes come last: a fill queued meanwhile
/// takes parked connections back instead of opening new ones.
///
/// # Safety
/// 1. `handle` is the idle handle made by `wake`, not closed.
unsafe extern "C" fn run_slice(handle: *mut uv_idle_t) {
    // SAFETY: 1.
    let owner = unsafe { Idle::owner(handle) };
    let Some(map) = NonNull::new(owner.cast()) else {
        return;
    };
    // SAFETY: 1.: `wake` gave the handle its manager's map, live while the
    // handle is; each step below borrows its parts and lets go before
    // closing anything.
    let map = unsafe { Map::new(map) };
    let start = Instant::now();
    loop {
        let mut parts = map.parts();
        let Some(job) = parts.state.backlog.pop_front() else {
            if parts.state.drains.parked() == 0 {
                parts.state.backlog.sleep();
                return;
            }
            if !parts.state.backlog.may_close() {
                // SAFETY: 1.: a plain read of a live handle's loop.
                let Some(loop_) = NonNull::new(unsafe { (*handle).loop_ }) else {
                    return;
                };
                // SAFETY: the manager's loop, on its thread.
                let make = || unsafe { Timer::new(loop_, map.ptr().as_ptr().cast()) };
                // SAFETY: `resume` takes the timer's owner as a Map: the map,
                // which outlives the timer (Shutdown closes it before it
                // releases the map).
                unsafe { parts.state.backlog.pause(make, resume) };
                return;
            }
            let Some(held) = drain::next_to_close(&mut parts.state.drains) else {
                // Only on a bug (the parked list and the records disagree):
                // next iteration, not a spin inside this one.
                return;
            };
            drop(parts);
            if let Some(conn) = held.let_go() {
                conn.release("connection left its pool");
            }
            if start.elapsed() >= SLICE {
                return;
            }
            continue;
        };
        match job {
            Job::Leave(mut leave) => match leave.sort_next(&mut parts.state.drains) {
                Sorted::Done => {}
                Sorted::Busy => parts.state.backlog.push_front(Job::Leave(leave)),
                Sorted::Idle(conn) => {
                    parts.state.backlog.push_front(Job::Leave(leave));
                    drop(parts);
                    close(map, conn);
                }
            },
            Job::Fill(mut fill) => {
                // SAFETY: no pool is taken from `parts` meanwhile.
                let more = unsafe { fill.pool() }.is_some_and(|pool| open_one(&mut parts, pool));
                if more {
                    // Back of the queue: the nodes of a topology take turns,
                    // so that each has a connection soon (RediSearch's IO
                    // thread waits for one to every node before it serves).
                    parts.state.backlog.push_back(Job::Fill(fill));
                } else {
                    // SAFETY: as above.
                    unsafe { fill.end() };
                }
            }
        }
        if start.elapsed() >= SLICE {
            return;
        }
    }
}

/// The slices go on after a pause of the closes.
///
/// # Safety
/// 1. `handle` is the timer made in `run_slice`, not closed.
unsafe extern "C" fn resume(handle: *mut uv_timer_t) {
    // SAFETY: 1.
    let owner = unsafe { Timer::owner(handle) };
    let Some(map) = NonNull::new(owner.cast()) else {
        return;
    };
    // SAFETY: 1.: `run_slice` gave the timer its manager's map, live while
    // the timer is.
    let map = unsafe { Map::new(map) };
    map.parts().state.backlog.resume();
}

/// What a draining connection reports (the hook of [`Owner`]).
///
/// # Safety
/// 1. `data` is the map of `conn`'s manager, live (see `open_one`), and no
///    borrow of its pools or state is live.
unsafe fn on_report(data: NonNull<c_void>, conn: ConnRef, report: Report) {
    // SAFETY: 1.
    let map = unsafe { Map::new(data.cast()) };
    let mut parts = map.parts();
    let drains = &mut parts.state.drains;
    match report {
        Report::Read => {
            if drain::on_read(drains, conn) {
                // SAFETY: the loop of a live connection, whose hooks and
                // slices run on it.
                unsafe { wake(&mut parts, conn.event_loop()) };
            }
        }
        Report::LinkLost => drain::on_link_lost(drains, conn),
        Report::Deadline => {
            let Some(ms) = drain::on_deadline(drains, conn) else {
                return;
            };
            // The callbacks failed here may call back into the manager.
            drop(parts);
            conn.release(&format!("drain deadline of {ms} ms reached"));
        }
    }
}
