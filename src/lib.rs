//! mrconn: RediSearch's coordinator connection pool (`conn.c`), in Rust, with
//! graceful draining when pools shrink or nodes go away.
//!
//! Module map, each module using only those below it:
//! - [`exports`]: the C ABI of `conn.h`, plus the drain controls. Checks and
//!   converts arguments, nothing else.
//! - [`resize`]: what happens on Shrink, Expand, Add, Disconnect and
//!   Shutdown, the slices that do the socket work on the loop, and the hook
//!   through which draining connections report.
//! - [`manager`]: the node-id → pool map and the manager's state, borrowed
//!   through `Parts`.
//! - [`backlog`]: the queue of resize work and the idle handle that runs it.
//! - [`node_pool`]: one node's pool, and the handle a queued fill holds.
//! - [`drain`]: connections that left a pool: sorting them, their drains,
//!   deadlines and reports.
//! - [`conn`]: one connection's life on hiredis: connect, TLS, AUTH,
//!   back-off; `ConnRef`, the handle every use goes through.
//! - [`tls`]: the client TLS context from the Redis config.
//! - [`pending`]: the commands a hiredis context still owes a reply: when it
//!   is idle, and failing them with an error reply.
//! - [`event_loop`]: attaching hiredis to libuv, and the library's timers.
//! - [`reentry`]: the re-entrancy guard of debug and sanitizer builds.
//! - [`host`]: everything taken from RediSearch. [`sys`]: generated bindings.
//! - [`alloc`]: the host allocator for all of the library's memory.
//!
//! The pool, the state machine and the drain bookkeeping themselves are plain
//! Rust in the `mrconn-core` crate.

mod alloc;
mod backlog;
mod conn;
mod drain;
mod event_loop;
mod exports;
mod host;
mod manager;
mod node_pool;
mod pending;
mod reentry;
mod resize;
mod sys;
mod tls;
