//! One node's pool, the value of the manager's dict, and the handle through
//! which a queued fill reaches it.
//!
//! A topology update queues a fill for each of thousands of pools inside
//! one call, so a fill holds its pool's address, not a copy of the node id
//! to look up. The address stays valid because the dict never frees a pool
//! whose fill is queued: when its node goes, the dict's destructor orphans
//! it ([`NodePool::orphan`]) and the fill frees it when it ends
//! ([`QueuedFill::end`]).

use std::cell::OnceCell;
use std::ptr::NonNull;

use mrconn_core::{ConnState, Pool};

use crate::conn::{ConnRef, NodeWarnings};
use crate::host::Endpoint;
use crate::sys::uv::uv_loop_t;

/// One node's pool: the dict value. Its connections (those still to open
/// included) and the endpoint and loop they are opened with.
pub struct NodePool {
    conns: Pool<ConnRef>,
    ep: Endpoint,
    loop_: NonNull<uv_loop_t>,
    fill: Fill,
    /// Its connections' warnings, summed; made with its first connection
    /// (a topology update adds thousands of pools in one call).
    log: OnceCell<NodeWarnings>,
}

/// Whether a fill of the pool is queued.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fill {
    None,
    Queued,
    /// Queued, and the pool is out of the dict: the fill frees it.
    Orphaned,
}

impl NodePool {
    /// A pool of `size` connections to `ep` on `loop_`, none opened yet.
    ///
    /// # Safety
    /// 1. `loop_` is live while the pool is, and the manager's loop.
    pub unsafe fn new(ep: Endpoint, loop_: NonNull<uv_loop_t>, size: usize) -> NodePool {
        NodePool {
            conns: Pool::unopened(size),
            ep,
            loop_,
            fill: Fill::None,
            log: OnceCell::new(),
        }
    }

    /// Its connections' warnings, for a connection it opens.
    pub fn log(&self) -> NodeWarnings {
        self.log.get_or_init(NodeWarnings::default).clone()
    }

    /// The node's endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    /// The loop its connections run on.
    pub fn event_loop(&self) -> NonNull<uv_loop_t> {
        self.loop_
    }

    /// The state shown for the pool: its first connection's, `Connecting`
    /// before that one is opened (as conn.c's new connections), none for a
    /// pool of size 0.
    pub fn state(&self) -> Option<ConnState> {
        match self.conns.first() {
            Some(c) => Some(c.state()),
            None => (self.size() > 0).then_some(ConnState::Connecting),
        }
    }

    /// Puts `new` in its place (the node's endpoint changed) and hands back
    /// the old one: a fill queued for this pool serves the new one.
    pub fn replace(&mut self, mut new: NodePool) -> NodePool {
        new.fill = std::mem::replace(&mut self.fill, Fill::None);
        std::mem::replace(self, new)
    }

    /// A fill of this pool, to queue; `None` when one is queued already: one
    /// fill per node.
    ///
    /// # Safety
    /// 1. The pool is the value of an entry of a manager's dict (boxed by
    ///    `Pools::insert`), which frees it only through `destroy_pool`.
    pub unsafe fn queue_fill(&mut self) -> Option<QueuedFill> {
        if self.fill != Fill::None {
            return None;
        }
        self.fill = Fill::Queued;
        Some(QueuedFill(NonNull::from(self)))
    }

    /// The dict lets go of the pool: whether its queued fill now owns it
    /// (else the caller frees it).
    pub fn orphan(&mut self) -> bool {
        if self.fill == Fill::None {
            return false;
        }
        self.fill = Fill::Orphaned;
        true
    }
}

impl std::ops::Deref for NodePool {
    type Target = Pool<ConnRef>;
    fn deref(&self) -> &Self::Target {
        &self.conns
    }
}

impl std::ops::DerefMut for NodePool {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conns
    }
}

/// A queued fill's handle to its pool, made by [`NodePool::queue_fill`]:
/// the pool lives until [`QueuedFill::end`], in the dict or orphaned (a
/// handle dropped without `end` leaves its pool unfillable, and an orphan
/// leaked: a bug, but no dangling pointer).
pub struct QueuedFill(NonNull<NodePool>);

impl QueuedFill {
    /// The pool, unless its node was removed meanwhile.
    ///
    /// # Safety
    /// 1. No other reference to the pool is live while the result is: the
    ///    caller holds its manager's `Parts` and takes no pool from them.
    pub unsafe fn pool(&mut self) -> Option<&mut NodePool> {
        // SAFETY: live until `end` (`queue_fill`); 1.
        let pool = unsafe { self.0.as_mut() };
        (pool.fill == Fill::Queued).then_some(pool)
    }

    /// The fill is over: an orphan is freed, and a pool still in the dict
    /// may be filled again.
    ///
    /// # Safety
    /// 1. As [`QueuedFill::pool`]'s.
    pub unsafe fn end(self) {
        // SAFETY: live until now (`queue_fill`); 1.
        let pool = unsafe { &mut *self.0.as_ptr() };
        if pool.fill == Fill::Orphaned {
            // SAFETY: an orphan is the Box the dict let go of, owned by its
            // fill alone (`orphan`).
            drop(unsafe { Box::from_raw(self.0.as_ptr()) });
        } else {
            pool.fill = Fill::None;
        }
    }
}
