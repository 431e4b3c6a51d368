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

    #[test]
    fn handshake_paths() {
        use ConnState::*;
        let ok_auth = Event::ConnectSucceeded {
            tls_ok: true,
            needs_auth: true,
        };
        let ok_open = Event::ConnectSucceeded {
            tls_ok: true,
            needs_auth: false,
        };
        let bad_tls = Event::ConnectSucceeded {
            tls_ok: false,
            needs_auth: true,
        };
        assert_eq!(next_state(Connecting, ok_auth, false), Authenticating);
        assert_eq!(next_state(Connecting, ok_open, false), Connected);
        assert_eq!(next_state(Connecting, bad_tls, false), Reconnecting);
        assert_eq!(
            next_state(Connecting, Event::ConnectFailed, false),
            Reconnecting
        );
        assert_eq!(
            next_state(Reconnecting, Event::ConnectNotStarted, false),
            Reconnecting
        );
        assert_eq!(
            next_state(Authenticating, Event::AuthAccepted, false),
            Connected
        );
        assert_eq!(
            next_state(Authenticating, Event::AuthRejected, false),
            ReAuth
        );
        assert_eq!(next_state(ReAuth, Event::AuthAccepted, false), Connected);
        assert_eq!(next_state(ReAuth, Event::AuthNotSent, false), Reconnecting);
        assert_eq!(
            next_state(Authenticating, Event::AuthLost, false),
            Reconnecting
        );
        assert_eq!(
            next_state(Connected, Event::Disconnected, false),
            Reconnecting
        );
    }

    #[test]
    fn draining_never_reconnects_and_freeing_is_terminal() {
        use ConnState::*;
        assert_eq!(next_state(Connected, Event::Disconnected, true), Freeing);
        assert_eq!(next_state(Connected, Event::Released, true), Freeing);
        for s in ConnState::ALL {
            assert_eq!(next_state(Freeing, Event::AuthAccepted, false), Freeing);
            assert_eq!(next_state(s, Event::Released, false), Freeing);
        }
    }
}
