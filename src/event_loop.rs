//! hiredis on libuv: the event hooks that attach a `redisAsyncContext` to a
//! loop (RediSearch uses hiredis's header-only libuv adapter, which neither
//! Rust nor the pinned sources can use), and the connection timers.
//!
//! One difference from that adapter: after hiredis has handled a read, the
//! owner is told (`after_read`), which is how a draining connection learns at
//! once that its last pending reply has been delivered.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::ptr::{self, NonNull};

use crate::sys::hiredis::{
    redisAsyncContext, redisAsyncHandleRead, redisAsyncHandleTimeout, redisAsyncHandleWrite,
    timeval,
};
use crate::sys::uv::{
    UV_READABLE, UV_WRITABLE, uv_close, uv_handle_t, uv_idle_init, uv_idle_start, uv_idle_stop,
    uv_idle_t, uv_loop_t, uv_poll_init, uv_poll_start, uv_poll_stop, uv_poll_t, uv_timer_init,
    uv_timer_start, uv_timer_stop, uv_timer_t, uv_update_time,
};

/// Called after hiredis has handled a read on a context, with that context,
/// live: the callee may rely on that.
pub type AfterRead = unsafe fn(NonNull<redisAsyncContext>);

/// The libuv side of one hiredis context: `ac->ev.data`.
struct Attachment {
    poll: uv_poll_t,
    /// hiredis's timer, for its connect timeout only (mrconn sets no command
    /// timeout): made on first use, so most connections never carry one.
    timer: Option<NonNull<uv_timer_t>>,
    /// NULL once hiredis has released the context.
    ac: *mut redisAsyncContext,
    events: c_int,
    /// Handles not yet closed; the attachment is freed when none is.
    open_handles: u8,
    after_read: AfterRead,
    loop_: NonNull<uv_loop_t>,
}

/// Why a context could not be attached.
#[derive(Debug)]
pub struct AttachError;

/// Attaches `ac` to `loop_`, as `redisLibuvAttach` does.
///
/// # Safety
/// 1. `ac` is a live context with no event library attached yet.
/// 2. `loop_` is a live loop, and this runs on its thread (or before it runs).
pub unsafe fn attach(
    ac: NonNull<redisAsyncContext>,
    loop_: NonNull<uv_loop_t>,
    after_read: AfterRead,
) -> Result<(), AttachError> {
    let ac = ac.as_ptr();
    // SAFETY: 1. `ac` is live.
    let fd = unsafe { (*ac).c.fd };
    let att = Box::into_raw(Box::new(Attachment {
        poll: uv_poll_t::default(),
        timer: None,
        ac,
        events: 0,
        open_handles: 0,
        after_read,
        loop_,
    }));
    // SAFETY: `att` is ours until both handles close.
    let a = unsafe { &mut *att };
    // SAFETY: 2. the loop is live; the handle lives in the heap block `att`
    // until its close callback.
    if unsafe { uv_poll_init(loop_.as_ptr(), &mut a.poll, fd) } != 0 {
        // SAFETY: `att` came from Box::into_raw and no handle refers to it.
        drop(unsafe { Box::from_raw(att) });
        return Err(AttachError);
    }
    a.open_handles = 1;
    a.poll.data = att.cast();
    // SAFETY: 1. `ac` is live and its `ev` block is ours to fill.
    let ev = unsafe { &mut (*ac).ev };
    ev.data = att.cast();
    ev.addRead = Some(add_read);
    ev.delRead = Some(del_read);
    ev.addWrite = Some(add_write);
    ev.delWrite = Some(del_write);
    ev.cleanup = Some(cleanup);
    ev.scheduleTimer = Some(schedule_timer);
    Ok(())
}

/// # Safety
/// `data` is an `Attachment` from `attach` whose context is still live.
unsafe fn set_events(data: *mut c_void, add: c_int, remove: c_int) {
    // SAFETY: caller's guarantee.
    let att = unsafe { &mut *data.cast::<Attachment>() };
    let events = (att.events | add) & !remove;
    if events == att.events {
        return;
    }
    att.events = events;
    if events == 0 {
        // SAFETY: the poll handle is initialised and not closing.
        unsafe { uv_poll_stop(&raw mut att.poll) };
    } else {
        // SAFETY: as above.
        unsafe { uv_poll_start(&raw mut att.poll, events, Some(on_poll)) };
    }
}

unsafe extern "C" fn add_read(data: *mut c_void) {
    // SAFETY: hiredis passes back `ev.data`, set by `attach`.
    unsafe { set_events(data, UV_READABLE as c_int, 0) }
}

unsafe extern "C" fn del_read(data: *mut c_void) {
    // SAFETY: hiredis passes back `ev.data`, set by `attach`.
    unsafe { set_events(data, 0, UV_READABLE as c_int) }
}

unsafe extern "C" fn add_write(data: *mut c_void) {
    // SAFETY: hiredis passes back `ev.data`, set by `attach`.
    unsafe { set_events(data, UV_WRITABLE as c_int, 0) }
}

unsafe extern "C" fn del_write(data: *mut c_void) {
    // SAFETY: hiredis passes back `ev.data`, set by `attach`.
    unsafe { set_events(data, 0, UV_WRITABLE as c_int) }
}

unsafe extern "C" fn on_poll(handle: *mut uv_poll_t, status: c_int, events: c_int) {
    // SAFETY: libuv passes back our poll handle, whose `data` is its attachment.
    let att = unsafe { (*handle).data.cast::<Attachment>() };
    // Only raw accesses from here: hiredis may release the context (and our
    // cleanup hook write `ac`) inside any of the calls below.
    // SAFETY: the attachment outlives its handles' callbacks.
    let ac = || unsafe { (*att).ac };
    // On a poll error let hiredis try what it waits for: it finds the error
    // itself and tears the context down.
    let ev = if status < 0 {
        // SAFETY: as above.
        unsafe { (*att).events }
    } else {
        events
    };
    if !ac().is_null() && ev & UV_READABLE as c_int != 0 {
        // SAFETY: `ac` is non-NULL, so hiredis has not released it.
        unsafe { redisAsyncHandleRead(ac()) };
    }
    if !ac().is_null() && ev & UV_WRITABLE as c_int != 0 {
        // SAFETY: as above; a read may have released it, hence the re-check.
        unsafe { redisAsyncHandleWrite(ac()) };
    }
    if let Some(live) = NonNull::new(ac()) {
        // SAFETY: as above.
        let after_read = unsafe { (*att).after_read };
        // SAFETY: non-NULL, so hiredis has not released the context.
        unsafe { after_read(live) };
    }
}

unsafe extern "C" fn schedule_timer(data: *mut c_void, tv: timeval) {
    // SAFETY: hiredis passes back `ev.data`, set by `attach`.
    let att = unsafe { &mut *data.cast::<Attachment>() };
    let ms = (tv.tv_sec.max(0) as u64) * 1000 + (tv.tv_usec.max(0) as u64).div_ceil(1000);
    let timer = *att.timer.get_or_insert_with(|| {
        let timer = NonNull::from(Box::leak(Box::new(uv_timer_t::default())));
        // SAFETY: the attachment's loop is live while its context is; the
        // handle is heap memory freed by its close callback.
        unsafe { uv_timer_init(att.loop_.as_ptr(), timer.as_ptr()) };
        // SAFETY: a plain field of the fresh handle.
        unsafe { (*timer.as_ptr()).data = data };
        att.open_handles += 1;
        timer
    });
    // SAFETY: the timer is initialised and not closing while the context lives.
    unsafe { uv_timer_start(timer.as_ptr(), Some(on_timeout), ms, 0) };
}

unsafe extern "C" fn on_timeout(timer: *mut uv_timer_t) {
    // SAFETY: libuv passes back our timer, whose `data` is its attachment.
    let att = unsafe { (*timer).data.cast::<Attachment>() };
    // SAFETY: the attachment outlives its handles' callbacks.
    let ac = unsafe { (*att).ac };
    if !ac.is_null() {
        // SAFETY: non-NULL, so hiredis has not released the context.
        unsafe { redisAsyncHandleTimeout(ac) };
    }
}

unsafe extern "C" fn cleanup(data: *mut c_void) {
    // SAFETY: hiredis calls this once, with `ev.data`, as it releases the
    // context; the attachment lives until its handles have closed.
    let att = unsafe { &mut *data.cast::<Attachment>() };
    att.ac = ptr::null_mut();
    let poll: *mut uv_poll_t = &mut att.poll;
    // SAFETY: the poll handle is initialised and closed only here.
    unsafe { uv_close(poll.cast::<uv_handle_t>(), Some(on_handle_closed)) };
    if let Some(timer) = att.timer {
        // SAFETY: as above.
        unsafe { uv_close(timer.as_ptr().cast::<uv_handle_t>(), Some(on_timer_closed)) };
    }
}

unsafe extern "C" fn on_timer_closed(handle: *mut uv_handle_t) {
    // SAFETY: the timer was Box-allocated in `schedule_timer`; libuv is done
    // with it, and its `data` (its attachment) is read before it goes.
    let timer = unsafe { Box::from_raw(handle.cast::<uv_timer_t>()) };
    // SAFETY: the timer's `data` is its attachment, whose handle it was.
    unsafe { handle_closed(timer.data.cast()) };
}

unsafe extern "C" fn on_handle_closed(handle: *mut uv_handle_t) {
    // SAFETY: the attachment's handles carry it in `data`.
    let att = unsafe { (*handle).data }.cast();
    // SAFETY: as above.
    unsafe { handle_closed(att) };
}

/// One more of the attachment's handles has closed.
///
/// # Safety
/// 1. `att` is an attachment from `attach`, one of whose handles just
///    closed.
unsafe fn handle_closed(att: *mut Attachment) {
    // SAFETY: 1.: the attachment lives until its last handle has closed.
    let a = unsafe { &mut *att };
    a.open_handles -= 1;
    if a.open_handles == 0 {
        // SAFETY: from Box::into_raw in `attach`; no handle refers to it any more.
        drop(unsafe { Box::from_raw(att) });
    }
}

/// A libuv timer on the heap whose callbacks get its owner: it may move
/// with its owner, and it is closed at most once. Made only by the unsafe
/// [`Timer::new`], whose contract (a live loop, used on its thread) every
/// method relies on when it touches the handle; the methods that hand libuv
/// a callback are unsafe, for what the callback may assume.
pub struct Timer {
    block: NonNull<TimerBlock>,
    closed: Cell<bool>,
}

/// The heap block of a [`Timer`]: the handle first, so that libuv's handle
/// pointer is the block's.
#[repr(C)]
struct TimerBlock {
    handle: uv_timer_t,
    owner: *mut c_void,
    on_closed: Option<unsafe fn(*mut c_void)>,
}

impl Timer {
    /// A stopped timer on `loop_` whose callbacks get `owner`.
    ///
    /// # Safety
    /// 1. `loop_` is live; this runs on its thread or before it runs.
    pub unsafe fn new(loop_: NonNull<uv_loop_t>, owner: *mut c_void) -> Timer {
        let block = NonNull::from(Box::leak(Box::new(TimerBlock {
            handle: uv_timer_t::default(),
            owner,
            on_closed: None,
        })));
        // SAFETY: 1.; the handle lives in a heap block that only its close
        // callback frees.
        unsafe { uv_timer_init(loop_.as_ptr(), block.as_ptr().cast()) };
        Timer {
            block,
            closed: Cell::new(false),
        }
    }

    /// Sets the owner its callbacks get.
    ///
    /// # Safety
    /// 1. Every callback started on it, and its close callback, may be
    ///    called with `owner` from now on.
    pub unsafe fn set_owner(&self, owner: *mut c_void) {
        // SAFETY: the block is ours; no callback runs during this call.
        unsafe { (*self.block.as_ptr()).owner = owner };
    }

    fn handle(&self) -> *mut uv_timer_t {
        self.block.as_ptr().cast()
    }

    /// (Re)arms the timer: `cb` runs once after `ms`. No effect once closed.
    ///
    /// # Safety
    /// 1. `cb` may be called with this timer's handle, whose owner
    ///    ([`Timer::owner`]) is the current one, until the timer is stopped,
    ///    started again or closed.
    pub unsafe fn start(&self, ms: u64, cb: unsafe extern "C" fn(*mut uv_timer_t)) {
        if self.closed.get() {
            return;
        }
        // SAFETY: initialised in `new` and not closing; 1. for `cb`.
        unsafe { uv_timer_start(self.handle(), Some(cb), ms, 0) };
    }

    /// Like [`Timer::start`], counting from now rather than from the time
    /// the loop cached at the start of its iteration (which may be long ago
    /// when called from a long callback, or before the loop ever ran).
    ///
    /// # Safety
    /// 1. As [`Timer::start`]'s.
    pub unsafe fn start_from_now(&self, ms: u64, cb: unsafe extern "C" fn(*mut uv_timer_t)) {
        if self.closed.get() {
            return;
        }
        // SAFETY: initialised in `new`: a plain read of its loop.
        let loop_ = unsafe { (*self.handle()).loop_ };
        // SAFETY: an initialised timer's loop is live.
        unsafe { uv_update_time(loop_) };
        // SAFETY: 1.
        unsafe { self.start(ms, cb) };
    }

    /// Disarms the timer.
    pub fn stop(&self) {
        if self.closed.get() {
            return;
        }
        // SAFETY: as in `start`.
        unsafe { uv_timer_stop(self.handle()) };
    }

    /// Closes the timer (again: no effect); once libuv is done with it, its
    /// memory goes and `on_closed` runs with the owner, which it may free.
    ///
    /// # Safety
    /// 1. `on_closed` may be called with the timer's owner once its handle
    ///    has closed.
    pub unsafe fn close(&self, on_closed: unsafe fn(*mut c_void)) {
        if self.closed.replace(true) {
            return;
        }
        // SAFETY: the block is ours until the close callback below, which
        // calls `on_closed` (1.).
        unsafe { (*self.block.as_ptr()).on_closed = Some(on_closed) };
        // SAFETY: as in `start`; closed once, here.
        unsafe { uv_close(self.handle().cast(), Some(on_timer_block_closed)) };
    }

    /// The owner a timer callback was started for.
    ///
    /// # Safety
    /// 1. `handle` is the handle of a [`Timer`] not closed yet.
    pub unsafe fn owner(handle: *const uv_timer_t) -> *mut c_void {
        // SAFETY: 1.: the handle is the first field of its block.
        unsafe { (*handle.cast::<TimerBlock>()).owner }
    }
}

unsafe extern "C" fn on_timer_block_closed(handle: *mut uv_handle_t) {
    // SAFETY: a Timer's handle is the first field of its block, from
    // Box::leak in `Timer::new`; libuv is done with it.
    let block = unsafe { Box::from_raw(handle.cast::<TimerBlock>()) };
    if let Some(on_closed) = block.on_closed {
        // SAFETY: `Timer::close`'s contract 1.
        unsafe { on_closed(block.owner) };
    }
}

/// A libuv idle handle on the heap: while started, its callback runs once per
/// loop iteration and the loop does not block waiting for I/O. Made only by
/// the unsafe [`Idle::new`], whose contract every method relies on.
pub struct Idle {
    handle: NonNull<uv_idle_t>,
    cb: unsafe extern "C" fn(*mut uv_idle_t),
}

impl Idle {
    /// A stopped idle handle on `loop_` that runs `cb` with `owner`.
    ///
    /// # Safety
    /// 1. `loop_` is live; this runs on its thread or before it runs.
    /// 2. `cb` may be called with the handle, carrying `owner`, until the
    ///    handle is closed.
    pub unsafe fn new(
        loop_: NonNull<uv_loop_t>,
        owner: *mut c_void,
        cb: unsafe extern "C" fn(*mut uv_idle_t),
    ) -> Idle {
        let handle = NonNull::from(Box::leak(Box::new(uv_idle_t::default())));
        // SAFETY: 1.; the handle is heap memory freed only by its close callback.
        unsafe { uv_idle_init(loop_.as_ptr(), handle.as_ptr()) };
        // SAFETY: as above; a plain field of the fresh handle.
        unsafe { (*handle.as_ptr()).data = owner };
        Idle { handle, cb }
    }

    /// Runs the callback once per loop iteration from now on (again: no
    /// effect).
    pub fn start(&self) {
        // SAFETY: initialised in `new`, not closed (`close` consumes self);
        // `new`'s contract 2.
        unsafe { uv_idle_start(self.handle.as_ptr(), Some(self.cb)) };
    }

    /// Stops the callbacks.
    pub fn stop(&self) {
        // SAFETY: as in `start`.
        unsafe { uv_idle_stop(self.handle.as_ptr()) };
    }

    /// Closes the handle; its memory goes in the close callback.
    pub fn close(self) {
        // SAFETY: as in `start`; closed once, here.
        unsafe { uv_close(self.handle.as_ptr().cast(), Some(on_idle_closed)) };
    }

    /// The owner an idle callback was started for.
    ///
    /// # Safety
    /// 1. `handle` is the handle of an [`Idle`] not closed yet.
    pub unsafe fn owner(handle: *const uv_idle_t) -> *mut c_void {
        // SAFETY: 1.
        unsafe { (*handle).data }
    }
}

unsafe extern "C" fn on_idle_closed(handle: *mut uv_handle_t) {
    // SAFETY: Box-allocated in `Idle::new`; libuv is done with it.
    drop(unsafe { Box::from_raw(handle.cast::<uv_idle_t>()) });
}
