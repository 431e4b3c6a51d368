//! Exercises std and the allocator, so a clash with mrconn's copies would show.

/// The sum of `1..=n`, computed through a heap-allocated vector.
#[unsafe(no_mangle)]
pub extern "C" fn coexist_other_sum(n: u32) -> u64 {
    let v: Vec<u64> = (1..=u64::from(n)).collect();
    let s = format!("{}", v.iter().sum::<u64>());
    s.parse().unwrap_or(0)
}
