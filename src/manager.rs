//! The manager: a host dict from node id to that node's pool, and the
//! manager's own state. The operations on them are in [`crate::resize`].
//!
//! The dict is RediSearch's own (callers iterate it), keyed by node-id
//! strings it copies, and its value destructor frees a pool (or leaves it to
//! its queued fill, see [`crate::node_pool`]). The manager's own state, which
//! `MRConnManager`'s fixed 16 bytes cannot hold, lives in the dict's
//! `privdata`. Both are reached through [`Parts`], a borrow that the
//! re-entrancy guard checks in debug builds.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use mrconn_core::ConnState;

use crate::backlog::Backlog;
use crate::drain::Drains;
use crate::host::{
    self, RS_dictAddOrFind, RS_dictCreate, RS_dictDelete, RS_dictFind, RS_dictGetIterator,
    RS_dictNext, RS_dictRelease, RS_dictReleaseIterator, RS_dictReplace, Reply,
    array_ensure_append_n_func, array_len_func, array_new_sz, dict, dictEntry, dictType,
    stringsHashFunction, stringsKeyCompare, stringsKeyDestructor, stringsKeyDup,
};
use crate::node_pool::NodePool;
use crate::reentry;

/// The connection manager of one IO runtime. Layout is ABI (`conn.h`):
/// callers embed it by value, read `nodeConns` and walk `map`.
#[repr(C)]
#[expect(non_snake_case, reason = "the C names of conn.h")]
pub struct MRConnManager {
    /// Node id → pool; NULL before Init and after Shutdown.
    map: *mut dict,
    /// Connections per node.
    nodeConns: c_int,
}

/// The manager's state beyond the two ABI fields: the dict's `privdata`.
#[derive(Default)]
pub struct State {
    /// Connections that left their pool and are finishing their work.
    pub drains: Drains,
    /// Connections to open, sort and close on the loop, in slices.
    pub backlog: Backlog,
}

/// A manager's pools and state, borrowed together. While one lives, no user
/// callback may run: the re-entrancy guard checks it in debug builds.
pub struct Parts<'a> {
    /// The pools.
    pub pools: Pools<'a>,
    /// The map, for the handles and connections that reach back to it.
    pub map: Map,
    /// The state.
    pub state: &'a mut State,
}

/// A live manager's map: how the loop's callbacks (the slices, the
/// connections' hooks) reach their manager.
#[derive(Clone, Copy)]
pub struct Map(NonNull<dict>);

impl Map {
    /// A handle to `map`.
    ///
    /// # Safety
    /// 1. `map` is the map of a manager, made by `new`, and the result and
    ///    its copies are used on its loop thread, only until Shutdown
    ///    releases it.
    /// 2. The [`Parts`] made through them never overlap with another borrow
    ///    of the same manager's pools and state (the re-entrancy guard
    ///    checks this in debug builds).
    pub unsafe fn new(map: NonNull<dict>) -> Map {
        Map(map)
    }

    /// The pointer, for a libuv handle's or a connection's owner data.
    pub fn ptr(self) -> NonNull<dict> {
        self.0
    }

    /// The manager's pools and state.
    pub fn parts(&self) -> Parts<'_> {
        // SAFETY: `new`'s contract 1. and 2.
        unsafe { Parts::of(self.0) }
    }
}

impl Parts<'_> {
    /// The pools and state of the manager whose map is `map`.
    ///
    /// # Safety
    /// 1. `map` is the live map of a manager (made by `new`, not released),
    ///    used on its loop thread, and nothing else refers to its pools or
    ///    state while the result lives.
    unsafe fn of<'a>(map: NonNull<dict>) -> Parts<'a> {
        // SAFETY: 1.
        let pools = unsafe { Pools::of(map) };
        // SAFETY: 1.: a live map of ours has its State as privdata.
        let privdata = unsafe { (*map.as_ptr()).privdata() };
        Parts {
            pools,
            // SAFETY: 1.
            map: unsafe { Map::new(map) },
            // SAFETY: 1.: the State made in `init`, which no dict entry
            // points into, referred to by nothing else.
            state: unsafe { &mut *privdata.cast::<State>() },
        }
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

/// Frees a pool the dict drops, unless a fill of it is queued (that fill
/// frees it). It is empty: Disconnect and Shutdown take the connections out
/// first, so that none closes (and runs callbacks that may call back into
/// the manager) while the dict is changing.
unsafe extern "C" fn destroy_pool(_privdata: *mut c_void, pool: *mut c_void) {
    let Some(mut pool) = NonNull::new(pool.cast::<NodePool>()) else {
        return;
    };
    debug_assert!(
        // SAFETY: every value of our dicts is a Box<NodePool> made in
        // `insert`, which the dict lets go of.
        unsafe { pool.as_ref() }.is_empty(),
        "a pool reached the dict's destructor"
    );
    // SAFETY: as above.
    if unsafe { pool.as_mut() }.orphan() {
        return;
    }
    // SAFETY: as above; no fill refers to it.
    drop(unsafe { Box::from_raw(pool.as_ptr()) });
}

impl MRConnManager {
    /// `MRConnManager_Init`: an empty manager of `node_conns` connections
    /// per node.
    pub fn new(node_conns: c_int) -> MRConnManager {
        let state = Box::into_raw(Box::<State>::default());
        // SAFETY: the type is a static the dict only reads; the state lives
        // until Shutdown releases the dict.
        let map = unsafe { RS_dictCreate(ptr::from_ref(&POOL_DICT_TYPE).cast_mut(), state.cast()) };
        MRConnManager {
            map,
            nodeConns: node_conns,
        }
    }

    /// Its map, while `init` ran and Shutdown did not.
    pub fn map(&self) -> Option<Map> {
        let map = NonNull::new(self.map)?;
        // SAFETY: a non-NULL map was made by `new` (the field is private,
        // and C hands over only initialised managers, on their loop thread);
        // every borrow of its pools and state goes through a Map or `parts`,
        // which take turns (see `crate::resize`).
        Some(unsafe { Map::new(map) })
    }

    /// Connections per node.
    pub fn node_conns(&self) -> u32 {
        u32::try_from(self.nodeConns).unwrap_or(0)
    }

    /// Sets the connections per node.
    pub fn set_node_conns(&mut self, num: u32) {
        self.nodeConns = c_int::try_from(num).unwrap_or(c_int::MAX);
    }

    /// Its pools and state, while it is live.
    pub fn parts(&mut self) -> Option<Parts<'_>> {
        let map = NonNull::new(self.map)?;
        // SAFETY: as in `map`; `&mut self` excludes another borrow through
        // the manager.
        Some(unsafe { Parts::of(map) })
    }

    /// Its pools, while it is live (without its state: the query path).
    #[inline]
    pub fn pools(&mut self) -> Option<Pools<'_>> {
        let map = NonNull::new(self.map)?;
        // SAFETY: as in `parts`.
        Some(unsafe { Pools::of(map) })
    }

    /// Takes its map away: it is shut down from now on.
    ///
    /// # Safety
    /// 1. `mgr` points to a valid manager, on its loop thread.
    pub unsafe fn take_map(mgr: NonNull<MRConnManager>) -> Option<Map> {
        // SAFETY: 1.
        let field = unsafe { &raw mut (*mgr.as_ptr()).map };
        // SAFETY: 1.: a valid, aligned field.
        let map = NonNull::new(unsafe { ptr::replace(field, ptr::null_mut()) })?;
        // SAFETY: as in `map`: the manager's, and its last handle.
        Some(unsafe { Map::new(map) })
    }

    /// Releases the map of a manager shut down: the dict, its (empty) pools
    /// and keys; returns the state, for Shutdown to finish.
    ///
    /// # Safety
    /// 1. `map` was taken by `take_map`, its pools are empty, and no handle
    ///    to it is used after this.
    pub unsafe fn release(map: Map) -> Box<State> {
        // SAFETY: 1.: a live map of ours has our State as privdata.
        let state = unsafe { (*map.ptr().as_ptr()).privdata() }.cast::<State>();
        // SAFETY: 1.
        unsafe { RS_dictRelease(map.ptr().as_ptr()) };
        // SAFETY: from Box::into_raw in `new`; the dict that pointed to it
        // is gone.
        unsafe { Box::from_raw(state) }
    }

    /// `MRConnManager_FillStateDict`.
    ///
    /// # Safety
    /// 1. `out` is a live dict with C-string keys it copies, whose values are
    ///    NULL or host arrays of C-string pointers.
    pub unsafe fn fill_state_dict(&mut self, out: NonNull<dict>) {
        let Some(mut parts) = self.parts() else {
            return;
        };
        parts.pools.for_each(|_, pool| {
            if pool.size() == 0 {
                return;
            }
            let ep = pool.endpoint();
            let Ok(key) = CString::new(format!("{}:{}", ep.host_str(), ep.port())) else {
                return;
            };
            // SAFETY: 1.
            let Some((entry, mut states)) = (unsafe { add_or_find(out, &key) }) else {
                return;
            };
            // 1.: the value is NULL or an array of C-string pointers.
            if states.is_null() {
                let cap = u16::try_from(pool.size()).unwrap_or(u16::MAX);
                // SAFETY: a plain allocation of an empty array of pointers.
                states = unsafe { array_new_sz(size_of::<*mut c_char>() as u16, cap, 0) };
            }
            // Those still to open show as conn.c's new connections do.
            let opened = pool.conns().iter().map(|conn| conn.state());
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
            // SAFETY: 1.; `entry` is `out`'s, live.
            unsafe { set_value(out, entry, states) };
        });
    }
}

/// The pools of a manager, borrowed from it (see [`Parts`]).
pub struct Pools<'a> {
    map: NonNull<dict>,
    _borrow: PhantomData<&'a mut State>,
    _guard: reentry::Borrow,
}

impl Pools<'_> {
    /// The pools of the manager whose map is `map`.
    ///
    /// # Safety
    /// 1. As [`Parts::of`]'s contract 1.
    #[inline]
    unsafe fn of<'a>(map: NonNull<dict>) -> Pools<'a> {
        Pools {
            map,
            _borrow: PhantomData,
            _guard: reentry::Borrow::parts(),
        }
    }

    /// The pool of `id`.
    pub fn find(&mut self, id: &CStr) -> Option<&mut NodePool> {
        // SAFETY: a CStr is NUL-terminated.
        unsafe { self.find_raw(NonNull::from(id).cast()) }
    }

    /// The pool of `id`, without measuring it first (the query path).
    ///
    /// # Safety
    /// 1. `id` is NUL-terminated.
    #[inline]
    pub unsafe fn find_raw(&mut self, id: NonNull<c_char>) -> Option<&mut NodePool> {
        // SAFETY: the map is live (`Parts::of`); 1.
        let entry = unsafe { RS_dictFind(self.map.as_ptr(), id.as_ptr().cast()) };
        // SAFETY: a live entry of our dict, borrowed with `self`.
        NonNull::new(entry).map(|e| unsafe { pool_of(e) })
    }

    /// Makes `pool` the pool of `id`, a node that has none.
    pub fn insert(&mut self, id: &CStr, pool: NodePool) -> &mut NodePool {
        let pool = Box::into_raw(Box::new(pool));
        // SAFETY: the map is live; the dict copies `id` and owns the pool
        // from now on.
        unsafe {
            RS_dictReplace(
                self.map.as_ptr(),
                id.as_ptr().cast_mut().cast(),
                pool.cast(),
            )
        };
        // SAFETY: the dict's value now, borrowed with `self`.
        unsafe { &mut *pool }
    }

    /// Removes the pool of `id`, emptied first (a pool whose fill is queued
    /// is left to that fill). `id` may be the dict's own key, which this
    /// frees.
    pub fn remove(&mut self, id: &CStr) {
        // SAFETY: the map is live; `id` is NUL-terminated. The destructor
        // frees the pool, and the key.
        unsafe { RS_dictDelete(self.map.as_ptr(), id.as_ptr().cast()) };
    }

    /// Every pool, in dict order.
    pub fn for_each(&mut self, mut f: impl FnMut(&CStr, &mut NodePool)) {
        // SAFETY: the map is live.
        let it = unsafe { RS_dictGetIterator(self.map.as_ptr()) };
        loop {
            // SAFETY: `it` is a live iterator of our dict, which `f` cannot
            // change (it has no access to it).
            let entry = unsafe { RS_dictNext(it) };
            let Some(entry) = NonNull::new(entry) else {
                break;
            };
            // SAFETY: a live entry of our dict.
            let key = unsafe { (*entry.as_ptr()).key() };
            // SAFETY: keys of our dict are NUL-terminated copies of node ids.
            let id = unsafe { CStr::from_ptr(key.cast()) };
            // SAFETY: a live entry of our dict, borrowed for the call.
            f(id, unsafe { pool_of(entry) });
        }
        // SAFETY: `it` is live and released once.
        unsafe { RS_dictReleaseIterator(it) };
    }
}

/// The pool held by a live entry of a manager's dict.
///
/// # Safety
/// 1. `entry` is a live entry of a manager's dict, and nothing else refers to
///    its pool for `'a`.
unsafe fn pool_of<'a>(entry: NonNull<dictEntry>) -> &'a mut NodePool {
    // SAFETY: 1.
    let val = unsafe { (*entry.as_ptr()).val() };
    // SAFETY: 1.: every value of our dicts is a Box<NodePool> made in
    // `insert`, owned by the dict.
    unsafe { &mut *val.cast::<NodePool>() }
}

/// `dictAddOrFind`: the entry of `key` in `d`, and its value; NULL for an
/// entry it adds, whose value RediSearch's dict leaves unset (its
/// `dictAddRaw` sets only the key).
///
/// # Safety
/// 1. `d` is a live dict that copies its keys.
unsafe fn add_or_find(d: NonNull<dict>, key: &CStr) -> Option<(NonNull<dictEntry>, *mut c_void)> {
    // SAFETY: 1.
    let before = unsafe { d.as_ref() }.len();
    // SAFETY: 1.: the dict copies `key`.
    let entry =
        NonNull::new(unsafe { RS_dictAddOrFind(d.as_ptr(), key.as_ptr().cast_mut().cast()) })?;
    // SAFETY: 1.
    if unsafe { d.as_ref() }.len() > before {
        return Some((entry, ptr::null_mut()));
    }
    // SAFETY: an entry of the live dict, found there.
    Some((entry, unsafe { (*entry.as_ptr()).val() }))
}

/// `dictSetVal`: through the dict's `valDup` when it has one.
///
/// # Safety
/// 1. `d` is a live dict and `entry` one of its live entries.
unsafe fn set_value(d: NonNull<dict>, entry: NonNull<dictEntry>, val: *mut c_void) {
    // SAFETY: 1.
    let d = unsafe { d.as_ref() };
    // SAFETY: 1.: a live dict has a valid type.
    let dup = unsafe { (*d.dict_type()).valDup };
    let val = match dup {
        // SAFETY: the dict's own duplicator, with its own privdata.
        Some(dup) => unsafe { dup(d.privdata(), val) },
        None => val,
    };
    // SAFETY: 1.
    let entry = unsafe { &mut *entry.as_ptr() };
    // SAFETY: `val` is a value of the dict, duplicated as the dict does.
    unsafe { entry.set_val(val) };
}

/// `MRConnManager_ReplyState`: a map of `"host:port"` to state arrays.
///
/// # Safety
/// 1. `states` is a live dict filled by `fill_state_dict`: C-string keys,
///    values that are NULL or arrays of C-string pointers.
pub unsafe fn reply_state(states: NonNull<dict>, reply: &Reply) {
    // SAFETY: 1.
    let d = unsafe { states.as_ref() };
    reply.map(d.len());
    // SAFETY: as above.
    let it = unsafe { RS_dictGetIterator(states.as_ptr()) };
    loop {
        // SAFETY: `it` is a live iterator.
        let entry = unsafe { RS_dictNext(it) };
        if entry.is_null() {
            break;
        }
        // SAFETY: 1.: a live entry.
        let entry = unsafe { &*entry };
        // SAFETY: 1.: keys are C strings.
        reply.cstring(unsafe { CStr::from_ptr(entry.key().cast::<c_char>()) });
        let arr = entry.val();
        let len = if arr.is_null() {
            0
        } else {
            // SAFETY: 1.: an array made by the host.
            unsafe { array_len_func(arr) }
        } as usize;
        reply.array(len);
        let elems = arr.cast::<*const c_char>();
        for i in 0..len {
            // SAFETY: 1.: the array holds `len` C-string pointers.
            let elem = unsafe { elems.wrapping_add(i).read() };
            // A state the host could not copy (NULL) shows empty.
            let state = if elem.is_null() {
                c""
            } else {
                // SAFETY: 1.: a non-NULL element is a C string.
                unsafe { CStr::from_ptr(elem) }
            };
            reply.cstring(state);
        }
    }
    // SAFETY: `it` is live and released once.
    unsafe { RS_dictReleaseIterator(it) };
}
