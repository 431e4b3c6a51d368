//! Routes every heap allocation of the library through `RedisModule_Alloc`
//! and friends, so Redis counts it in `used_memory` and the test host's
//! counting allocator sees it.
//!
//! The host sets these pointers when it loads the module, before any of our
//! code runs; without them an allocation fails (and Rust aborts) rather than
//! mixing two heaps.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;
use std::ptr;

use crate::host::{RedisModule_Alloc, RedisModule_Calloc, RedisModule_Free, RedisModule_Realloc};

/// The alignment every allocator Redis may use returns: jemalloc and glibc
/// give 16, but Redis's own size prefix over a plain libc malloc leaves 8.
const HOST_ALIGN: usize = 8;

struct HostAlloc;

/// Aligns a host block for `layout`, storing the block's start just before
/// the aligned pointer (for `dealloc`).
///
/// # Safety
/// 1. `raw` is NULL or a host block of `layout.size() + layout.align()`
///    bytes, and `layout.align()` is above [`HOST_ALIGN`].
unsafe fn over_aligned(layout: Layout, raw: *mut u8) -> *mut u8 {
    if raw.is_null() {
        return raw;
    }
    let offset = layout.align() - (raw as usize % layout.align());
    let aligned = raw.wrapping_add(offset);
    // `offset` is a multiple of HOST_ALIGN (8), so at least 8 bytes precede
    // `aligned` inside the block: a pointer-sized, pointer-aligned slot.
    let slot = aligned.cast::<*mut u8>().wrapping_sub(1);
    // SAFETY: 1.: `slot` is inside the block and aligned.
    unsafe { slot.write(raw) };
    aligned
}

// SAFETY: every block comes from the host allocator and goes back to it;
// alignment is honoured by the host for `HOST_ALIGN` and by padding beyond.
unsafe impl GlobalAlloc for HostAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain read of a host global set at module load.
        let Some(alloc) = (unsafe { RedisModule_Alloc }) else {
            return ptr::null_mut();
        };
        if layout.align() <= HOST_ALIGN {
            // SAFETY: the host allocator takes any size.
            return unsafe { alloc(layout.size()) }.cast();
        }
        // SAFETY: as above.
        let raw = unsafe { alloc(layout.size() + layout.align()) }.cast();
        // SAFETY: `raw` is such a block, or NULL.
        unsafe { over_aligned(layout, raw) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() > HOST_ALIGN {
            // SAFETY: forwarded with the caller's guarantees.
            let p = unsafe { self.alloc(layout) };
            if !p.is_null() {
                // SAFETY: `p` has `layout.size()` writable bytes.
                unsafe { p.write_bytes(0, layout.size()) };
            }
            return p;
        }
        // SAFETY: plain read of a host global set at module load.
        let Some(calloc) = (unsafe { RedisModule_Calloc }) else {
            return ptr::null_mut();
        };
        // SAFETY: the host allocator takes any size.
        unsafe { calloc(1, layout.size()) }.cast()
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: plain read of a host global set at module load.
        let Some(free) = (unsafe { RedisModule_Free }) else {
            return;
        };
        let block = if layout.align() <= HOST_ALIGN {
            p
        } else {
            // SAFETY: `alloc` stored the block start just before `p`.
            unsafe { p.cast::<*mut u8>().wrapping_sub(1).read() }
        };
        // SAFETY: `block` came from the host allocator (caller's guarantee).
        unsafe { free(block.cast::<c_void>()) };
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() > HOST_ALIGN {
            // SAFETY: `new_size` with `layout.align()` is a valid layout (caller's guarantee).
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            // SAFETY: forwarded with the caller's guarantees.
            let q = unsafe { self.alloc(new_layout) };
            if !q.is_null() {
                // SAFETY: both blocks hold at least `min(old, new)` bytes and do not overlap.
                unsafe { ptr::copy_nonoverlapping(p, q, layout.size().min(new_size)) };
                // SAFETY: `p` was allocated by us with `layout`.
                unsafe { self.dealloc(p, layout) };
            }
            return q;
        }
        // SAFETY: plain read of a host global set at module load.
        let Some(realloc) = (unsafe { RedisModule_Realloc }) else {
            return ptr::null_mut();
        };
        // SAFETY: `p` came from the host allocator with the same alignment class.
        unsafe { realloc(p.cast(), new_size) }.cast()
    }
}

#[global_allocator]
static HOST_ALLOC: HostAlloc = HostAlloc;
