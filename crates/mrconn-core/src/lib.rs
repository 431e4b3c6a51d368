//! The parts of mrconn that need neither hiredis nor libuv: the connection
//! state machine, the pool, the bookkeeping of draining connections and the
//! lists that index them. The `mrconn` crate drives them from hiredis and
//! libuv events; here they are plain data, so unit tests and Miri can run
//! them.

pub mod drain;
pub mod index;
pub mod node_log;
pub mod pool;
pub mod state;
pub mod throttle;

pub use drain::{BatchId, BatchReport, DrainBook, DrainCause, DrainOutcome, DrainStats};
pub use index::{Grouped, SlotList};
pub use node_log::{NodeLog, Recovery, Say, Warning};
pub use pool::{Pick, Pool};
pub use state::{ConnState, Event, next_state};
pub use throttle::Bucket;
