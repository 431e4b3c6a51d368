//! The commands a hiredis context still owes a reply. hiredis keeps one
//! callback record per queued command in `ac->replies` (`ac->sub.replies`
//! once subscribed) and unlinks it just before running its callback
//! (CONTRACT §7). The lists are read and edited through the bindgen structs
//! of the very headers the build compiles against.
//!
//! One rule says when a context has work left ([`is_idle`]); both the decision
//! to drain and the decision that a drain is over use it.
//!
//! mrconn never subscribes: the callbacks of `sub.channels` and
//! `sub.patterns` (a subscribed context's per-channel callbacks) are neither
//! counted nor failed here; hiredis still gives them NULL when it frees the
//! context.

use std::ffi::{c_int, c_void};
use std::ptr::{self, NonNull};

use crate::host;
use crate::sys::glue::mrconn_free_callback;
use crate::sys::hiredis::{
    REDIS_DISCONNECTING, REDIS_IN_CALLBACK, REDIS_NO_AUTO_FREE_REPLIES, REDIS_SUBSCRIBED,
    redisAsyncContext, redisCallback, redisCallbackFn,
};

/// Whether `ac` has nothing left to do: no record in either list (a command
/// queued without a callback, like `HELLO`, still has bytes to send and a
/// reply to read) and no subscription (whose messages keep coming).
///
/// # Safety
/// 1. `ac` is a live context, used on its loop thread.
pub unsafe fn is_idle(ac: NonNull<redisAsyncContext>) -> bool {
    // SAFETY: 1.; plain reads of two list heads and the flags.
    let ac = unsafe { ac.as_ref() };
    let lists_empty = ac.replies.head.is_null() && ac.sub.replies.head.is_null();
    // `shift` relies on hiredis clearing a list's tail with its head.
    debug_assert!(
        !lists_empty || (ac.replies.tail.is_null() && ac.sub.replies.tail.is_null()),
        "a hiredis reply list with a tail but no head"
    );
    // A subscribed context keeps its channel callbacks outside both lists:
    // its flag alone says that messages keep coming, so it never reads idle.
    lists_empty && ac.c.flags & REDIS_SUBSCRIBED as c_int == 0
}

/// How many records on `ac` carry a callback: the user commands that will
/// get a reply, an error reply or NULL.
///
/// # Safety
/// 1. `ac` is a live context, used on its loop thread, not inside one of its
///    own callbacks that is editing the lists (hiredis keeps them
///    well-formed between callbacks).
pub unsafe fn callbacks(ac: NonNull<redisAsyncContext>) -> u64 {
    // SAFETY: 1.
    let ac = unsafe { ac.as_ref() };
    [ac.replies.head, ac.sub.replies.head]
        .into_iter()
        // SAFETY: 1.: the heads of a live context's well-formed lists.
        .map(|head| unsafe { records(head) }.filter(|&(_, cb)| cb).count() as u64)
        .sum()
}

/// The records of the list starting at `head`: each one's address, and
/// whether it carries a callback.
///
/// # Safety
/// 1. `head` is the head of a well-formed list of a live context, which
///    stays unchanged while the iterator is used.
unsafe fn records(head: *mut redisCallback) -> impl Iterator<Item = (usize, bool)> {
    std::iter::successors(NonNull::new(head), |record| {
        // SAFETY: 1.: a record of the list.
        NonNull::new(unsafe { record.as_ref() }.next)
    })
    .map(|record| {
        // SAFETY: 1.: as above.
        let r = unsafe { record.as_ref() };
        (record.as_ptr() as usize, r.fn_.is_some())
    })
}

/// The callbacks still pending on a draining context, kept up to date in
/// O(1) amortised per read: a draining context takes no command, so its
/// lists only lose records at their heads. One walk, when the drain starts,
/// notes each record's address and how many callbacks it and the records
/// after it carry; a read then finds the list's new head among those still
/// to come. (A freed record's address cannot be a live head's: every noted
/// record was live at the same time.) A walk per read would make a drain of
/// n replies cost O(n²).
pub struct Countdown {
    lists: [Trail; 2],
}

/// One list's records as noted: (address, callbacks from this record to the
/// tail), and where its head was at the last read.
struct Trail {
    records: Vec<(usize, u64)>,
    at: usize,
}

impl Countdown {
    /// Notes the records of `ac`'s lists.
    ///
    /// # Safety
    /// 1. As [`callbacks`].
    pub unsafe fn new(ac: NonNull<redisAsyncContext>) -> Countdown {
        // SAFETY: 1.
        let ac = unsafe { ac.as_ref() };
        let lists = [ac.replies.head, ac.sub.replies.head].map(|head| {
            // SAFETY: 1.: the head of a live context's well-formed list.
            let mut records: Vec<(usize, u64)> = unsafe { records(head) }
                .map(|(addr, cb)| (addr, u64::from(cb)))
                .collect();
            let mut below = 0;
            for (_, n) in records.iter_mut().rev() {
                below += *n;
                *n = below;
            }
            Trail { records, at: 0 }
        });
        Countdown { lists }
    }

    /// The callbacks pending as of the last look.
    pub fn pending(&self) -> u64 {
        self.lists.iter().map(Trail::pending).sum()
    }

    /// Looks at `ac`'s lists again, for [`Countdown::pending`].
    ///
    /// # Safety
    /// 1. As [`callbacks`]; `ac` is the context this was made from, and
    ///    nothing was queued on it since.
    pub unsafe fn update(&mut self, ac: NonNull<redisAsyncContext>) {
        // SAFETY: 1.
        let ac_ref = unsafe { ac.as_ref() };
        let heads = [
            ac_ref.replies.head as usize,
            ac_ref.sub.replies.head as usize,
        ];
        let found = self
            .lists
            .iter_mut()
            .zip(heads)
            .all(|(trail, head)| trail.advance_to(head));
        if !found {
            // A record that was not noted: only a command queued while
            // draining adds one, and none is.
            debug_assert!(false, "a record queued on a draining context");
            // SAFETY: 1.
            *self = unsafe { Countdown::new(ac) };
        }
    }
}

impl Trail {
    fn pending(&self) -> u64 {
        self.records.get(self.at).map_or(0, |&(_, n)| n)
    }

    /// Moves on to `head` (0: an empty list); false if it was not noted.
    fn advance_to(&mut self, head: usize) -> bool {
        if head == 0 {
            self.at = self.records.len();
            return true;
        }
        while let Some(&(addr, _)) = self.records.get(self.at) {
            if addr == head {
                return true;
            }
            self.at += 1;
        }
        false
    }
}

/// Runs every callback still pending on `ac`, oldest first, each exactly once
/// with its own `REDIS_REPLY_ERROR` reply of `text` (from the host's
/// `MRReply_CreateError`, owned by the callback as every reply is here), and
/// leaves both lists empty, so that freeing the context afterwards fails
/// nothing with NULL. Returns how many callbacks ran.
///
/// The context refuses new commands from here on. Each callback runs as
/// hiredis runs one (`REDIS_IN_CALLBACK` set), so a free or disconnect of
/// `ac` asked for from inside it waits until it returns; a callback may call
/// back into the manager.
///
/// # Safety
/// 1. `ac` is a live context on its loop thread that no connection owns any
///    more (`data` cleared), and that the caller frees right after.
pub unsafe fn fail_all(ac: NonNull<redisAsyncContext>, text: &str) -> u64 {
    let ac = ac.as_ptr();
    // SAFETY: 1.: a plain read of a live context's flags.
    let no_auto_free = unsafe { (*ac).c.flags } & REDIS_NO_AUTO_FREE_REPLIES as c_int != 0;
    // The error replies below are the callbacks' to free, as every reply is
    // with this option; without it hiredis would free them a second time.
    debug_assert!(
        no_auto_free,
        "a context without REDIS_OPT_NOAUTOFREEREPLIES"
    );
    // SAFETY: 1.: the flags of a live context.
    let flags = unsafe { &raw mut (*ac).c.flags };
    // SAFETY: as above.
    unsafe { *flags |= REDIS_DISCONNECTING as c_int };
    let mut ran = 0;
    // Records are taken one at a time: a callback may not add any (the
    // context refuses commands), but it may free other contexts.
    // SAFETY: 1.
    while let Some((callback, privdata)) = unsafe { shift(ac) } {
        let Some(callback) = callback else { continue };
        let reply = host::error_reply(text);
        // SAFETY: as above.
        let outer = unsafe { *flags } & REDIS_IN_CALLBACK as c_int;
        // SAFETY: as above.
        unsafe { *flags |= REDIS_IN_CALLBACK as c_int };
        // SAFETY: the callback and privdata the user queued together; the
        // reply is new and becomes the callback's.
        unsafe { callback(ac, reply, privdata) };
        // SAFETY: as above; the context outlives its callbacks (a free asked
        // for inside one is deferred by the flag).
        let after = unsafe { *flags };
        // SAFETY: as above.
        unsafe { *flags = (after & !(REDIS_IN_CALLBACK as c_int)) | outer };
        ran += 1;
    }
    ran
}

/// Takes the oldest record off `ac`'s lists (`replies` first, as hiredis
/// fails them), frees it with hiredis's allocator, and returns its callback.
///
/// # Safety
/// 1. `ac` is a live context on its loop thread, between its callbacks.
unsafe fn shift(ac: *mut redisAsyncContext) -> Option<(redisCallbackFn, *mut c_void)> {
    // SAFETY: 1.
    let replies = unsafe { &raw mut (*ac).replies };
    // SAFETY: 1.
    let sub_replies = unsafe { &raw mut (*ac).sub.replies };
    for list in [replies, sub_replies] {
        // SAFETY: 1.: a list of a live context.
        let list = unsafe { &mut *list };
        let Some(head) = NonNull::new(list.head) else {
            continue;
        };
        // SAFETY: 1.: the head record of a well-formed list.
        let record = unsafe { head.as_ref() };
        let taken = (record.fn_, record.privdata);
        list.head = record.next;
        if list.tail == head.as_ptr() {
            list.tail = ptr::null_mut();
        }
        // SAFETY: hiredis allocated the record with its allocator; it is
        // unlinked and referenced by nothing any more.
        unsafe { mrconn_free_callback(head.as_ptr()) };
        return Some(taken);
    }
    None
}
