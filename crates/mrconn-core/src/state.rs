//! The life of one connection, as a pure transition function.
//!
//! The states and their strings are those of RediSearch's `conn.c`; the
//! strings reach users through `FT.DEBUG` output and logs, so they are ABI too.

use std::ffi::CStr;

/// The state of one connection. The discriminants are `MRConnState`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnState {
    /// TCP (and TLS) handshake in flight.
    Connecting = 0,
    /// Back-off before the next connect attempt.
    Reconnecting = 1,
    /// Handshake done, `AUTH` in flight.
    Authenticating = 2,
    /// Back-off before re-sending a rejected `AUTH`.
    ReAuth = 3,
    /// Ready for commands.
    Connected = 4,
    /// Terminal: being torn down.
    Freeing = 5,
}

impl ConnState {
    /// Every state, in discriminant order.
    pub const ALL: [ConnState; 6] = [
        ConnState::Connecting,
        ConnState::Reconnecting,
        ConnState::Authenticating,
        ConnState::ReAuth,
        ConnState::Connected,
        ConnState::Freeing,
    ];

    /// The user-visible name, as `MRConnState_Str` gives it.
    pub const fn as_cstr(self) -> &'static CStr {
        match self {
            ConnState::Connecting => c"Connecting",
            ConnState::Reconnecting => c"Reconnecting",
            ConnState::Authenticating => c"Authenticating",
            ConnState::ReAuth => c"Re-Authenticating",
            ConnState::Connected => c"Connected",
            ConnState::Freeing => c"Freeing",
        }
    }

    /// [`ConnState::as_cstr`] as a `&str`, for log formatting.
    pub fn as_str(self) -> &'static str {
        match self.as_cstr().to_str() {
            Ok(s) => s,
            Err(_) => unreachable!("state names are ASCII"),
        }
    }
}

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A connect attempt could not even be dispatched.
    ConnectNotStarted,
    /// hiredis reported the handshake failed (refused, timed out, reset).
    ConnectFailed,
    /// The handshake finished; `tls_ok` is false when TLS setup failed and
    /// `needs_auth` says whether `AUTH` must follow.
    ConnectSucceeded {
        /// TLS was set up, or was not wanted.
        tls_ok: bool,
        /// An `AUTH` must be sent before commands.
        needs_auth: bool,
    },
    /// `AUTH` could not be queued.
    AuthNotSent,
    /// The server accepted `AUTH`.
    AuthAccepted,
    /// The server answered `AUTH` with an error.
    AuthRejected,
    /// The `AUTH` reply never came: the context failed or was torn down.
    AuthLost,
    /// The link dropped while the connection was in use.
    Disconnected,
    /// The owner no longer wants the connection.
    Released,
}

impl Event {
    /// Every event, each `ConnectSucceeded` combination included.
    pub const ALL: [Event; 12] = [
        Event::ConnectNotStarted,
        Event::ConnectFailed,
        Event::ConnectSucceeded {
            tls_ok: true,
            needs_auth: false,
        },
        Event::ConnectSucceeded {
            tls_ok: true,
            needs_auth: true,
        },
        Event::ConnectSucceeded {
            tls_ok: false,
            needs_auth: false,
        },
        Event::ConnectSucceeded {
            tls_ok: false,
            needs_auth: true,
        },
        Event::AuthNotSent,
        Event::AuthAccepted,
        Event::AuthRejected,
        Event::AuthLost,
        Event::Disconnected,
        Event::Released,
    ];
}

/// The state a connection in `from` moves to on `event`.
///
/// `draining` marks a connection that has left its pool and only finishes
/// work already queued on it: anything that would make it reconnect frees it
/// instead, since no new work will ever be routed to it.
pub const fn next_state(from: ConnState, event: Event, draining: bool) -> ConnState {
    let to = match event {
        Event::ConnectNotStarted
        | Event::ConnectFailed
        | Event::AuthNotSent
        | Event::AuthLost
        | Event::Disconnected => ConnState::Reconnecting,
        Event::ConnectSucceeded { tls_ok: false, .. } => ConnState::Reconnecting,
        Event::ConnectSucceeded {
            needs_auth: true, ..
        } => ConnState::Authenticating,
        Event::ConnectSucceeded { .. } | Event::AuthAccepted => ConnState::Connected,
        Event::AuthRejected => ConnState::ReAuth,
        Event::Released => ConnState::Freeing,
    };
    match (from, to) {
        (ConnState::Freeing, _) => ConnState::Freeing,
        (_, ConnState::Reconnecting) if draining => ConnState::Freeing,
        _ => to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_those_of_conn_h() {
        let names: Vec<&str> = ConnState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "Connecting",
                "Reconnecting",
                "Authenticating",
                "Re-Authenticating",
                "Connected",
                "Freeing"
            ]
        );
        for (i, s) in ConnState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }

    const RC: ConnState = ConnState::Reconnecting;
    const AU: ConnState = ConnState::Authenticating;
    const RA: ConnState = ConnState::ReAuth;
    const CD: ConnState = ConnState::Connected;
    const FR: ConnState = ConnState::Freeing;

    /// `EXPECTED[draining][from][event]`, written from CONTRACT §4: a failed
    /// or unsendable connect or AUTH, a lost link or a TLS failure back off
    /// and reconnect; a rejected AUTH retries AUTH; success leads to
    /// Connected, through Authenticating when an AUTH is due; Freeing is
    /// terminal. No event leads to Connecting: it is the state of a new
    /// connection only (a reconnect attempt stays Reconnecting, as in
    /// conn.c). Beyond conn.c, a draining connection that would reconnect
    /// is freed instead; the handshake columns of the draining rows are
    /// unreachable (only Connected connections drain) and keep their
    /// non-draining targets, ReAuth included. The event alone picks the next state: conn.rs
    /// raises each event only in the states where it can happen (AUTH
    /// replies in Authenticating, connect results in Connecting, ...), so
    /// every row but Freeing's is the same. Columns follow [`Event::ALL`]:
    /// not started, failed, ok, ok + AUTH, bad TLS, bad TLS + AUTH,
    /// AUTH not sent, accepted, rejected, lost, disconnected, released.
    #[rustfmt::skip]
    const EXPECTED: [[[ConnState; 12]; 6]; 2] = [
        [
            /* Connecting     */ [RC, RC, CD, AU, RC, RC, RC, CD, RA, RC, RC, FR],
            /* Reconnecting   */ [RC, RC, CD, AU, RC, RC, RC, CD, RA, RC, RC, FR],
            /* Authenticating */ [RC, RC, CD, AU, RC, RC, RC, CD, RA, RC, RC, FR],
            /* ReAuth         */ [RC, RC, CD, AU, RC, RC, RC, CD, RA, RC, RC, FR],
            /* Connected      */ [RC, RC, CD, AU, RC, RC, RC, CD, RA, RC, RC, FR],
            /* Freeing        */ [FR, FR, FR, FR, FR, FR, FR, FR, FR, FR, FR, FR],
        ],
        [
            /* Connecting     */ [FR, FR, CD, AU, FR, FR, FR, CD, RA, FR, FR, FR],
            /* Reconnecting   */ [FR, FR, CD, AU, FR, FR, FR, CD, RA, FR, FR, FR],
            /* Authenticating */ [FR, FR, CD, AU, FR, FR, FR, CD, RA, FR, FR, FR],
            /* ReAuth         */ [FR, FR, CD, AU, FR, FR, FR, CD, RA, FR, FR, FR],
            /* Connected      */ [FR, FR, CD, AU, FR, FR, FR, CD, RA, FR, FR, FR],
            /* Freeing        */ [FR, FR, FR, FR, FR, FR, FR, FR, FR, FR, FR, FR],
        ],
    ];

    /// The column of `event` in [`EXPECTED`]; being an exhaustive match, it
    /// stops compiling when an event is added without a column.
    const fn column(event: Event) -> usize {
        match event {
            Event::ConnectNotStarted => 0,
            Event::ConnectFailed => 1,
            Event::ConnectSucceeded {
                tls_ok: true,
                needs_auth: false,
            } => 2,
            Event::ConnectSucceeded {
                tls_ok: true,
                needs_auth: true,
            } => 3,
            Event::ConnectSucceeded {
                tls_ok: false,
                needs_auth: false,
            } => 4,
            Event::ConnectSucceeded {
                tls_ok: false,
                needs_auth: true,
            } => 5,
            Event::AuthNotSent => 6,
            Event::AuthAccepted => 7,
            Event::AuthRejected => 8,
            Event::AuthLost => 9,
            Event::Disconnected => 10,
            Event::Released => 11,
        }
    }

    #[test]
    fn every_state_event_and_draining_flag_goes_where_the_table_says() {
        let mut checked = 0;
        for draining in [false, true] {
            for from in ConnState::ALL {
                for (e, event) in Event::ALL.into_iter().enumerate() {
                    assert_eq!(column(event), e, "Event::ALL out of column order");
                    let want = EXPECTED[usize::from(draining)][from as usize][e];
                    assert_eq!(
                        next_state(from, event, draining),
                        want,
                        "{from:?} + {event:?}, draining: {draining}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 2 * 6 * 12);
    }
}
