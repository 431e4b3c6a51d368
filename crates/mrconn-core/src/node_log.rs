//! The warnings of one node's connections, summed. A node that refuses
//! connections fails each of its connections every 250 ms: conn.c logs a
//! line each time (64 connections: 256 lines a second per IO thread), which
//! buries everything else. Here the first warning of a kind is logged as is;
//! repeats, from any of the node's connections, are counted and logged as
//! one line per [`WINDOW`] with the count and the connections affected,
//! until a connection of the node reaches Connected again, which is logged
//! once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

/// At most one line per node and kind in this long.
pub const WINDOW: Duration = Duration::from_secs(10);

/// The kinds of warning summed per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warning {
    /// conn.c's "Error on connect".
    ConnectFailed,
    /// conn.c's "Could not connect to node".
    ConnectNotStarted,
    /// conn.c's "Error authenticating".
    AuthRejected,
    /// conn.c's TLS lines: "Error on ssl context creation", "Error creating
    /// SSL object", "Error on tls auth".
    TlsFailed,
    /// A used connection's link broke.
    Disconnected,
    /// The link broke under `AUTH`.
    AuthLost,
    /// A draining connection's link broke.
    LinkLostWhileDraining,
    /// A drain was closed by force (its deadline, or Shutdown).
    DrainForced,
}

/// The kinds that a connection reaching Connected ends: a drain's warnings
/// come from connections that are Connected all along.
const ENDED_BY_RECOVERY: [Warning; 6] = [
    Warning::ConnectFailed,
    Warning::ConnectNotStarted,
    Warning::AuthRejected,
    Warning::TlsFailed,
    Warning::Disconnected,
    Warning::AuthLost,
];

/// What to log for one warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Say {
    /// The warning, as is: the first of its kind.
    Line,
    /// The warning, with the `count` of its kind (this one included) on
    /// `conns` connections since the last line, `over` ago.
    Summary {
        /// Warnings since the last line, this one included.
        count: u64,
        /// Connections they came from.
        conns: usize,
        /// Since the last line.
        over: Duration,
    },
    /// Nothing: counted for the next summary.
    Nothing,
}

/// The node is reachable again after failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Warnings since the first, the first included.
    pub failures: u64,
    /// Connections they came from.
    pub conns: usize,
    /// Since the first.
    pub over: Duration,
}

#[derive(Debug)]
struct Episode {
    since: Instant,
    last_line: Instant,
    last_event: Instant,
    /// Since the last line.
    count: u64,
    conns: HashSet<usize>,
    /// Since the first.
    total: u64,
    all_conns: HashSet<usize>,
    /// A connection reached Connected since the last warning.
    recovered: bool,
}

impl Episode {
    fn new(conn: usize, now: Instant) -> Episode {
        Episode {
            since: now,
            last_line: now,
            last_event: now,
            count: 0,
            conns: HashSet::new(),
            total: 1,
            all_conns: HashSet::from([conn]),
            recovered: false,
        }
    }
}

/// One node's warnings, in one manager. Empty (no allocation) until the
/// node's first warning: there is one per pool.
#[derive(Debug, Default)]
pub struct NodeLog {
    episodes: Vec<(Warning, Episode)>,
    last_recovery_line: Option<Instant>,
}

impl NodeLog {
    /// A warning of `kind` from connection `conn` (any id that tells the
    /// node's connections apart) at `now`: what to log. After a [`WINDOW`]
    /// with no warning of its kind and none left to sum, a warning is a
    /// first one again.
    pub fn warn(&mut self, kind: Warning, conn: usize, now: Instant) -> Say {
        let Some(at) = self.episodes.iter().position(|(k, _)| *k == kind) else {
            self.episodes.push((kind, Episode::new(conn, now)));
            return Say::Line;
        };
        let e = &mut self.episodes[at].1;
        if e.count == 0 && now.saturating_duration_since(e.last_event) >= WINDOW {
            *e = Episode::new(conn, now);
            return Say::Line;
        }
        e.last_event = now;
        e.recovered = false;
        e.total += 1;
        e.all_conns.insert(conn);
        e.count += 1;
        e.conns.insert(conn);
        let over = now.saturating_duration_since(e.last_line);
        if over < WINDOW {
            return Say::Nothing;
        }
        let say = Say::Summary {
            count: e.count,
            conns: e.conns.len(),
            over,
        };
        e.last_line = now;
        e.count = 0;
        e.conns.clear();
        say
    }

    /// A connection of the node reached Connected at `now`: the episodes of
    /// its link's warnings are over. Returns what they came to, to log, at
    /// most once per [`WINDOW`] (a node whose TLS handshake fails reaches
    /// Connected on every attempt).
    pub fn recovered(&mut self, now: Instant) -> Option<Recovery> {
        let mut found: Option<Recovery> = None;
        let mut conns = HashSet::new();
        let link = self
            .episodes
            .iter_mut()
            .filter(|(k, _)| ENDED_BY_RECOVERY.contains(k));
        for (_, e) in link {
            if e.recovered {
                continue;
            }
            e.recovered = true;
            conns.extend(e.all_conns.iter().copied());
            let over = now.saturating_duration_since(e.since);
            let r = found.get_or_insert(Recovery {
                failures: 0,
                conns: 0,
                over,
            });
            r.failures += e.total;
            r.over = r.over.max(over);
        }
        let r = found?;
        let due = self
            .last_recovery_line
            .is_none_or(|at| now.saturating_duration_since(at) >= WINDOW);
        if !due {
            return None;
        }
        self.last_recovery_line = Some(now);
        // What the line reports is not summed again.
        for (k, e) in &mut self.episodes {
            if ENDED_BY_RECOVERY.contains(k) {
                e.count = 0;
                e.conns.clear();
            }
        }
        Some(Recovery {
            conns: conns.len(),
            ..r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_partition_logs_the_first_line_then_one_summary_per_window() {
        let t0 = Instant::now();
        let mut log = NodeLog::default();
        let mut lines = Vec::new();
        // 64 connections failing every 250 ms for 60 s.
        for tick in 0..240u64 {
            for conn in 0..64 {
                match log.warn(Warning::ConnectFailed, conn, at(t0, tick * 250)) {
                    Say::Nothing => {}
                    say => lines.push(say),
                }
            }
        }
        assert_eq!(lines[0], Say::Line);
        assert_eq!(lines.len(), 1 + 5, "the first, then one a window");
        assert_eq!(
            lines[1],
            Say::Summary {
                count: 40 * 64,
                conns: 64,
                over: WINDOW
            }
        );
        let r = log.recovered(at(t0, 60_000)).unwrap();
        assert_eq!((r.failures, r.conns), (240 * 64, 64));
        assert_eq!(r.over, Duration::from_secs(60));
        assert_eq!(log.recovered(at(t0, 60_001)), None, "logged once");
        // A failure a window after the last one is a first one again.
        assert_eq!(
            log.warn(Warning::ConnectFailed, 3, at(t0, 70_000)),
            Say::Line
        );
    }

    #[test]
    fn a_node_that_connects_then_fails_every_time_logs_two_lines_a_window() {
        // A rejected TLS handshake: Connected, then the link breaks, every
        // 250 ms on each of 4 connections, for 60 s.
        let t0 = Instant::now();
        let mut log = NodeLog::default();
        let (mut warnings, mut recoveries) = (0, 0);
        for tick in 0..240u64 {
            for conn in 0..4 {
                let now = at(t0, tick * 250 + conn as u64);
                recoveries += usize::from(log.recovered(now).is_some());
                warnings += usize::from(log.warn(Warning::Disconnected, conn, now) != Say::Nothing);
            }
        }
        assert_eq!((warnings, recoveries), (6, 6), "one of each per 10 s");
    }

    #[test]
    fn kinds_are_counted_apart_and_drains_do_not_recover() {
        let t0 = Instant::now();
        let mut log = NodeLog::default();
        assert_eq!(log.warn(Warning::Disconnected, 1, t0), Say::Line);
        assert_eq!(log.warn(Warning::DrainForced, 1, t0), Say::Line);
        assert_eq!(log.warn(Warning::Disconnected, 2, t0), Say::Nothing);
        let r = log.recovered(at(t0, 5)).unwrap();
        assert_eq!((r.failures, r.conns), (2, 2));
        assert_eq!(
            log.warn(Warning::DrainForced, 2, at(t0, 5_000)),
            Say::Nothing,
            "a recovery does not end a drain's warnings"
        );
        assert_eq!(
            log.warn(Warning::DrainForced, 3, at(t0, 10_000)),
            Say::Summary {
                count: 2,
                conns: 2,
                over: WINDOW
            }
        );
        // Quiet for a window, nothing left to sum: a first one again.
        assert_eq!(log.warn(Warning::DrainForced, 3, at(t0, 20_000)), Say::Line);
    }
}
