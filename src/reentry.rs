//! The re-entrancy guard of debug and sanitizer builds.
//!
//! A manager, its pools and its state are borrowed mutably only while no
//! user callback can run: a callback may call any export, and the export
//! would borrow them again. Debug builds and builds with `--cfg
//! mrconn_reentry_guard` (the C tests' and the sanitizer builds) check that
//! rule: an export's use of its manager and every borrow of a manager's
//! pools and state is a [`Borrow`], and every export, and every place that
//! runs user callbacks, calls [`check`] first, which aborts with a clear
//! message while a borrow is live on the thread. Release builds compile
//! both to nothing.

#[cfg(any(debug_assertions, mrconn_reentry_guard))]
mod imp {
    use std::cell::Cell;

    use crate::host::{Level, hlog};

    thread_local! {
        /// How many borrows are live on this thread (managers run on their
        /// loop's), and who made the outermost one.
        static HELD: Cell<(u32, &'static str)> = const { Cell::new((0, "")) };
        /// Whether a borrow of pools and state is live: two would alias.
        static PARTS: Cell<bool> = const { Cell::new(false) };
    }

    /// A live borrow of a manager, or of its pools and state.
    pub struct Borrow {
        parts: bool,
    }

    impl Borrow {
        /// Marks a manager borrowed by `export` until the result is dropped.
        pub fn manager(export: &'static str) -> Borrow {
            Borrow::push(export, false)
        }

        /// Marks a manager's pools and state borrowed until the result is
        /// dropped; aborts if they are already.
        pub fn parts() -> Borrow {
            if PARTS.replace(true) {
                abort("a manager's pools and state borrowed twice");
            }
            Borrow::push("a borrow of a manager's pools and state", true)
        }

        fn push(who: &'static str, parts: bool) -> Borrow {
            let (depth, outer) = HELD.get();
            HELD.set((depth + 1, if depth == 0 { who } else { outer }));
            Borrow { parts }
        }
    }

    impl Drop for Borrow {
        fn drop(&mut self) {
            let (depth, outer) = HELD.get();
            HELD.set((depth - 1, outer));
            if self.parts {
                PARTS.set(false);
            }
        }
    }

    /// Aborts if a borrow is live: `who` is about to re-enter.
    pub fn check(who: &str) {
        let (depth, held) = HELD.get();
        if depth > 0 {
            abort(&format!(
                "{who} inside {held}, which borrows a connection manager (a callback re-entered mrconn)"
            ));
        }
    }

    #[cold]
    fn abort(what: &str) -> ! {
        let msg = format!("mrconn: re-entrancy guard: {what}; aborting");
        eprintln!("{msg}");
        hlog!(Level::Warning, "{msg}");
        std::process::abort();
    }
}

#[cfg(not(any(debug_assertions, mrconn_reentry_guard)))]
mod imp {
    /// A live borrow of a manager, or of its pools and state (unchecked
    /// here).
    pub struct Borrow(());

    impl Borrow {
        /// Nothing to mark in this build.
        #[inline(always)]
        pub fn manager(_export: &'static str) -> Borrow {
            Borrow(())
        }

        /// Nothing to mark in this build.
        #[inline(always)]
        pub fn parts() -> Borrow {
            Borrow(())
        }
    }

    /// Nothing to check in this build.
    #[inline(always)]
    pub fn check(_who: &str) {}
}

pub use imp::{Borrow, check};
