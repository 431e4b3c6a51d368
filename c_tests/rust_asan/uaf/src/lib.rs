//! Reads a heap block after freeing it, in Rust code: under
//! `-Zsanitizer=address` ASan must report a heap-use-after-free here.

use std::hint::black_box;

/// Frees a boxed value, then reads it through the stale pointer.
#[inline(never)]
fn read_after_free() -> u64 {
    let stale = Box::into_raw(Box::new(black_box(0x6d72_636f_6e6e_u64)));
    // SAFETY: `stale` came from Box::into_raw and is freed once.
    drop(unsafe { Box::from_raw(stale) });
    // SAFETY: none, deliberately: the block was freed above.
    unsafe { black_box(stale).read() }
}

/// The fixture's entry point, called from C.
#[unsafe(no_mangle)]
pub extern "C" fn mrconn_asan_uaf() -> u64 {
    read_after_free()
}
