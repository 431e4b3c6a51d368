//! mrconn: RediSearch's coordinator connection pool (`conn.c`), in Rust, with
//! graceful draining when pools shrink or nodes go away.
//!
//! Module map:
//! - [`exports`]: the C ABI of `conn.h`, plus the drain controls. Checks and
//!   converts arguments, nothing else.
//! - [`manager`]: the node-id → pool map and the operations on it.
//! - [`drain`]: what happens to connections that leave a pool (Shrink, node
//!   removal, endpoint change): draining, deadlines, reports.
//! - [`backlog`]: opening, sorting and closing connections on the loop in
//!   slices, so that no resize stalls it at any pool size.
//! - [`pending`]: the commands a hiredis context still owes a reply: when it
//!   is idle, and failing them with an error reply.
//! - [`conn`]: one connection's life on hiredis: connect, TLS, AUTH, back-off.
//! - [`tls`]: the client TLS context from the Redis config.
//! - [`event_loop`]: attaching hiredis to libuv, and the library's timers.
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
mod pending;
mod sys;
mod tls;
