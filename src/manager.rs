//! The manager: a host dict from node id to that node's pool, and the
//! operations of `conn.h` on it.
//!
//! The dict is RediSearch's own (callers iterate it), keyed by node-id
//! strings it copies, and its value destructor retires a pool. The manager's
//! own state, which `MRConnManager`'s fixed 16 bytes cannot hold, lives in the
//! dict's `privdata`.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use mrconn_core::{ConnState, DrainCause, Pool};

use crate::backlog::Backlog;
use crate::conn::MRConn;
use crate::drain::{self, Drains};
use crate::host::{
    self, Level, MREndpoint, RS_dictAddOrFind, RS_dictCreate, RS_dictDelete, RS_dictFind,
    RS_dictGetIterator, RS_dictNext, RS_dictRelease, RS_dictReleaseIterator, RS_dictReplace, Reply,
    array_ensure_append_n_func, array_len_func, array_new_sz, dict, dictEntry, dictType, hlog,
    stringsHashFunction, stringsKeyCompare, stringsKeyDestructor, stringsKeyDup,
};
use crate::sys::uv::uv_loop_t;

/// The connection manager of one IO runtime. Layout is ABI (`conn.h`):
/// callers embed it by value, read `nodeConns` and walk `map`.
#[repr(C)]
#[expect(non_snake_case, reason = "the C names of conn.h")]
pub struct MRConnManager {
    /// Node id → pool.
    pub map: *mut dict,
    /// Connections per node.
    pub nodeConns: c_int,
}

/// One node's pool: the dict value. Its connections (those still to open
/// included) and the endpoint and loop they are opened with.
pub struct NodePool {
    conns: Pool<NonNull<MRConn>>,
    ep: MREndpoint,
    loop_: NonNull<uv_loop_t>,
}

impl NodePool {
    /// A pool of `size` connections to `ep` on `loop_`, none opened yet.
    fn new(ep: &MREndpoint, loop_: NonNull<uv_loop_t>, size: usize) -> NodePool {
        let mut pool = NodePool {
            conns: Pool::unopened(size),
            ep: MREndpoint::empty(),
            loop_,
        };
        // SAFETY: `ep` is valid; the copy's strings are owned by the pool
        // and freed in `drop`.
        unsafe { host::MREndpoint_Copy(&mut pool.ep, ep) };
        pool
    }

    /// The node's endpoint.
    pub fn endpoint(&self) -> &MREndpoint {
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
            // SAFETY: pool connections are live.
            Some(c) => Some(unsafe { c.as_ref() }.state()),
            None => (self.size() > 0).then_some(ConnState::Connecting),
        }
    }
}

impl std::ops::Deref for NodePool {
    type Target = Pool<NonNull<MRConn>>;
    fn deref(&self) -> &Self::Target {
        &self.conns
    }
}

impl std::ops::DerefMut for NodePool {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conns
    }
}

impl Drop for NodePool {
    fn drop(&mut self) {
        // SAFETY: `ep` was filled by MREndpoint_Copy in `new` and is freed
        // once, here.
        unsafe { host::MREndpoint_Free(&mut self.ep) };
    }
}

/// The manager's state beyond the two ABI fields: the dict's `privdata`.
pub struct State {
    /// Connections that left their pool and are finishing their work.
    pub drains: Drains,
    /// Connections to open and close on the loop, in slices.
    pub backlog: Backlog,
}

impl State {
    /// The state of a manager's map.
    ///
    /// # Safety
    /// 1. `map` is the live map of a manager, and nothing else refers to its
    ///    state for the reference's lifetime.
    pub unsafe fn of<'a>(map: NonNull<dict>) -> &'a mut State {
        // SAFETY: 1.: a live map of ours has its State as privdata.
        let privdata = unsafe { (*map.as_ptr()).privdata };
        // SAFETY: 1.
        unsafe { &mut *privdata.cast::<State>() }
    }
}

static POOL_DICT_TYPE: dictType = dictType {
    hashFunction: Some(stringsHashFunction),
    keyDup: Some(stringsKeyDup),
    valDup: None,
    keyCompare: Some(stringsKeyCompare),
    keyDestructor: Some(stringsKeyDestructor),
    valDestructor: Some(destroy_pool),
};

/// Frees a pool the dict drops. It is empty: Disconnect and Shutdown take
/// the connections out first, so that none closes (and runs callbacks that
/// may call back into the manager) while the dict is changing.
extern "C" fn destroy_pool(_privdata: *mut c_void, pool: *mut c_void) {
    if pool.is_null() {
        return;
    }
    // SAFETY: every value of our dicts is a Box<NodePool> made in `add`.
    let pool = unsafe { Box::from_raw(pool.cast::<NodePool>()) };
    debug_assert!(pool.is_empty(), "a pool reached the dict's destructor");
}

impl MRConnManager {
    /// `MRConnManager_Init`.
    pub fn init(&mut self, node_conns: c_int) {
        let state = Box::into_raw(Box::new(State {
            drains: Drains::default(),
            backlog: Backlog::default(),
        }));
        // SAFETY: the type is a static the dict only reads; the state lives
        // until `shutdown` releases the dict.
        self.map =
            unsafe { RS_dictCreate(ptr::from_ref(&POOL_DICT_TYPE).cast_mut(), state.cast()) };
        self.nodeConns = node_conns;
    }

    /// Whether `init` ran and `shutdown` did not.
    pub fn is_live(&self) -> bool {
        !self.map.is_null()
    }

    /// The manager's own state.
    pub fn state(&mut self) -> &mut State {
        self.parts().1
    }

    /// The map, live (callers check `is_live`).
    pub fn map(&self) -> NonNull<dict> {
        NonNull::new(self.map).expect("a live manager has a map")
    }

    /// The pools and the state, borrowed apart: they live in different
    /// allocations (dict entries, and the dict's privdata).
    pub fn parts(&mut self) -> (Pools<'_>, &mut State) {
        // SAFETY: the map is live; privdata is the State made in `init`,
        // which no dict entry points into, borrowed with `self`.
        let state = unsafe { State::of(self.map()) };
        // SAFETY: as above.
        (unsafe { Pools::of(self.map()) }, state)
    }

    /// The pool of `id`.
    ///
    /// # Safety
    /// `id` is NUL-terminated.
    pub unsafe fn pool(&mut self, id: NonNull<c_char>) -> Option<&mut NodePool> {
        // SAFETY: caller's guarantee.
        unsafe {
            Pools {
                map: self.map,
                _borrow: PhantomData,
            }
            .find(id)
        }
    }

    /// `MRConnManager_Add`. The pool takes its size at once; the backlog
    /// opens its connections in slices (and a topology update adds
    /// thousands of connections in one loop callback).
    pub fn add(&mut self, loop_: NonNull<uv_loop_t>, id: &CStr, ep: &MREndpoint) -> bool {
        let node_conns = usize::try_from(self.nodeConns).unwrap_or(0);
        let map = self.map();
        let (pools, state) = self.parts();
        // SAFETY: a CStr is NUL-terminated.
        let old = unsafe { pools.find(NonNull::from(id).cast()) };
        if let Some(old) = &old {
            // SAFETY: both endpoints are valid.
            if unsafe { host::MREndpoint_Equal(old.endpoint(), ep) } {
                return false;
            }
            hlog!(
                Level::Notice,
                "MRConnManager_Add: Node {} endpoint changed from {}:{} to {}:{}, reconnecting (state: {})",
                id.to_string_lossy(),
                old.endpoint().host_str(),
                old.endpoint().port,
                ep.host_str(),
                ep.port,
                old.state().unwrap_or(ConnState::Connecting).as_str()
            );
        }
        let pool = NodePool::new(ep, loop_, node_conns);
        // An old pool with connections still to open has its fill queued
        // already, which serves the new one (a fill names the node).
        if pool.to_open() > 0 && old.as_ref().is_none_or(|o| o.to_open() == 0) {
            state.backlog.fill(map, loop_, id);
        }
        let Some(old) = old else {
            // SAFETY: `map` is live; the dict copies `id` and owns the pool from now on.
            unsafe {
                RS_dictReplace(
                    self.map,
                    id.as_ptr().cast_mut().cast(),
                    Box::into_raw(Box::new(pool)).cast(),
                )
            };
            return true;
        };
        // The entry (and `id`, which may be its key) stays; the old
        // connections leave.
        let leaving = std::mem::replace(old, pool).take_all();
        drain::retire(
            self,
            leaving,
            DrainCause::EndpointChanged,
            id.to_string_lossy().into_owned(),
        );
        true
    }

    /// `MRConnManager_Disconnect`: whether `id` had a pool. Its connections
    /// drain.
    pub fn disconnect(&mut self, id: &CStr) -> bool {
        let map = self.map;
        // SAFETY: a CStr is NUL-terminated.
        let Some(pool) = (unsafe { self.pool(NonNull::from(id).cast()) }) else {
            return false;
        };
        let leaving = pool.take_all();
        // `id` may be the dict's own key, which the delete frees.
        let node = id.to_string_lossy().into_owned();
        // SAFETY: `map` is live; `id` is NUL-terminated. The destructor frees
        // the now empty pool, and the key.
        unsafe { RS_dictDelete(map, id.as_ptr().cast()) };
        drain::retire(self, leaving, DrainCause::NodeRemoved, node);
        true
    }

    /// `MRConnManager_Shutdown` of the map its manager has already let go
    /// of: the map is released, then every connection closes now, pending
    /// callbacks getting an error reply (they may call back into the
    /// manager, which finds itself shut down).
    pub fn shutdown(map: NonNull<dict>) {
        let mut conns = Vec::new();
        // SAFETY: the map is live and ours.
        unsafe { Pools::of(map) }.for_each(|_, pool| conns.extend(pool.take_all()));
        {
            // SAFETY: as above; the reference ends with the block.
            let state = unsafe { State::of(map) };
            conns.extend(state.backlog.finish(&mut state.drains));
        }
        // SAFETY: a live map of ours has our State as privdata.
        let state = unsafe { (*map.as_ptr()).privdata }.cast::<State>();
        // SAFETY: `map` is live and ours; its pools are empty now.
        unsafe { RS_dictRelease(map.as_ptr()) };
        // SAFETY: `state` came from Box::into_raw in `init`; the dict that
        // pointed to it is gone.
        let mut state = unsafe { Box::from_raw(state) };
        conns.extend(drain::force_all(&mut state.drains));
        drop(state);
        for conn in conns {
            MRConn::release(conn, "connection manager shut down");
        }
    }

    /// `MRConnManager_FillStateDict`.
    pub fn fill_state_dict(&mut self, out: NonNull<dict>) {
        self.parts().0.for_each(|_, pool| {
            if pool.size() == 0 {
                return;
            }
            let ep = pool.endpoint();
            let Ok(key) = CString::new(format!("{}:{}", ep.host_str(), ep.port)) else {
                return;
            };
            // SAFETY: `out` is the caller's live dict, which copies the key.
            let entry = unsafe { RS_dictAddOrFind(out.as_ptr(), key.as_ptr().cast_mut().cast()) };
            let Some(entry) = NonNull::new(entry) else {
                return;
            };
            // SAFETY: the entry is live until the dict changes, which only we do here.
            let mut states = unsafe { (*entry.as_ptr()).v };
            if states.is_null() {
                let cap = u16::try_from(pool.size()).unwrap_or(u16::MAX);
                // SAFETY: a plain allocation of an empty array of pointers.
                states = unsafe { array_new_sz(size_of::<*mut c_char>() as u16, cap, 0) };
            }
            // Those still to open show as conn.c's new connections do.
            let opened = pool.conns().iter().map(|conn| {
                // SAFETY: pool connections are live.
                unsafe { conn.as_ref() }.state()
            });
            let to_open = std::iter::repeat_n(ConnState::Connecting, pool.to_open());
            for state in opened.chain(to_open) {
                let mut s = host::strdup(state.as_cstr());
                // SAFETY: `states` is an array of pointers; one element is copied from `s`.
                states = unsafe {
                    array_ensure_append_n_func(
                        states,
                        (&raw mut s).cast(),
                        1,
                        size_of::<*mut c_char>() as u16,
                    )
                };
            }
            set_value(out, entry, states);
        });
    }
}

/// The pools of a manager, borrowed from it.
pub struct Pools<'a> {
    map: *mut dict,
    _borrow: PhantomData<&'a mut MRConnManager>,
}

impl<'a> Pools<'a> {
    /// The pools of a manager's map.
    ///
    /// # Safety
    /// 1. `map` is the live map of a manager, which does not change for `'a`
    ///    but through the result.
    pub unsafe fn of(map: NonNull<dict>) -> Pools<'a> {
        Pools {
            map: map.as_ptr(),
            _borrow: PhantomData,
        }
    }

    /// The pool of `id`.
    ///
    /// # Safety
    /// `id` is NUL-terminated.
    pub unsafe fn find(self, id: NonNull<c_char>) -> Option<&'a mut NodePool> {
        // SAFETY: `map` is live; `id` is NUL-terminated (caller's guarantee).
        let entry = unsafe { RS_dictFind(self.map, id.as_ptr().cast()) };
        NonNull::new(entry).map(|e| pool_of(e.as_ptr()))
    }

    /// Every pool, in dict order. The dict must not change meanwhile.
    pub fn for_each(&mut self, mut f: impl FnMut(&CStr, &mut NodePool)) {
        // SAFETY: `map` is live.
        let it = unsafe { RS_dictGetIterator(self.map) };
        loop {
            // SAFETY: `it` is a live iterator of our dict.
            let entry = unsafe { RS_dictNext(it) };
            if entry.is_null() {
                break;
            }
            // SAFETY: a live entry of our dict.
            let key = unsafe { (*entry).key };
            // SAFETY: keys of our dict are NUL-terminated copies of node ids.
            f(unsafe { CStr::from_ptr(key.cast()) }, pool_of(entry));
        }
        // SAFETY: `it` is live and released once.
        unsafe { RS_dictReleaseIterator(it) };
    }
}

/// The pool held by a live entry of a manager's dict.
fn pool_of<'a>(entry: *mut dictEntry) -> &'a mut NodePool {
    // SAFETY: callers pass live entries of our dict.
    let val = unsafe { (*entry).v };
    // SAFETY: every value of our dicts is a Box<NodePool> made in `add`,
    // owned by the dict and used on the loop thread only.
    unsafe { &mut *val.cast::<NodePool>() }
}

/// `dictSetVal`: through the dict's `valDup` when it has one.
fn set_value(d: NonNull<dict>, entry: NonNull<dictEntry>, val: *mut c_void) {
    // SAFETY: `d` is a live dict.
    let d = unsafe { d.as_ref() };
    // SAFETY: a live dict has a valid type.
    let dup = unsafe { (*d.type_).valDup };
    let val = match dup {
        // SAFETY: the dict's own duplicator, with its own privdata.
        Some(dup) => unsafe { dup(d.privdata, val) },
        None => val,
    };
    // SAFETY: `entry` belongs to `d` and is live.
    unsafe { (*entry.as_ptr()).v = val };
}

/// `MRConnManager_ReplyState`: a map of `"host:port"` to state arrays.
///
/// # Safety
/// `states` is a dict filled by `fill_state_dict`: C-string keys, values that
/// are arrays of C strings (or NULL).
pub unsafe fn reply_state(states: NonNull<dict>, reply: &Reply) {
    // SAFETY: caller's guarantee: `states` is live.
    let d = unsafe { states.as_ref() };
    reply.map((d.ht[0].used + d.ht[1].used) as usize);
    // SAFETY: as above.
    let it = unsafe { RS_dictGetIterator(states.as_ptr()) };
    loop {
        // SAFETY: `it` is a live iterator.
        let entry = unsafe { RS_dictNext(it) };
        if entry.is_null() {
            break;
        }
        // SAFETY: a live entry; caller's guarantee on keys and values.
        let entry = unsafe { &*entry };
        reply.cstring(entry.key.cast::<c_char>());
        let arr = entry.v;
        let len = if arr.is_null() {
            0
        } else {
            // SAFETY: `arr` is an array made by the host.
            unsafe { array_len_func(arr) }
        } as usize;
        reply.array(len);
        let elems = arr.cast::<*const c_char>();
        for i in 0..len {
            // SAFETY: the array holds `len` C-string pointers.
            reply.cstring(unsafe { elems.wrapping_add(i).read() });
        }
    }
    // SAFETY: `it` is live and released once.
    unsafe { RS_dictReleaseIterator(it) };
}
