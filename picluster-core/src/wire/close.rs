//! Application close codes.

/// Application close codes on a QUIC connection. The close frame's reason text says
/// more; the code tells a program what kind of end it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum CloseCode {
    /// An end that reconnecting may mend: a worker left, a client finished, or a
    /// peer was cut off for not reading what it was sent (the reason text says which).
    Normal = 0,
    /// The peer broke the protocol (unexpected message, a lease that is not its own,
    /// a position outside its lease). Reconnecting with the same software won't help.
    Protocol = 1,
    /// The peer sent a frame that does not decode or is too large.
    BadFrame = 2,
    /// A newer connection with the same certificate name replaced this one.
    Replaced = 3,
    /// The coordinator (or worker) is shutting down; reconnecting later can succeed.
    ShuttingDown = 4,
    /// The certificate is valid but its role may not do this (e.g. a coordinator
    /// certificate used to connect as a worker).
    Unauthorized = 5,
    /// A worker claimed a solution that does not verify.
    BadResult = 6,
    /// Another connection with the same certificate name is live (the same
    /// credential on two machines, or a restarted worker whose old connection has not
    /// timed out yet): this one is refused, the live one kept.
    NameInUse = 7,
    /// The certificate is revoked: a new credential is needed.
    Revoked = 8,
    /// This coordinator is a standby: the reason text is the leading coordinator's
    /// address (`HOST:PORT`), or empty when no coordinator leads (etcd unreachable,
    /// or an election under way). Dialling the leader, or again shortly, helps.
    NotLeader = 9,
}

impl CloseCode {
    /// The code for a number received in a close frame.
    pub fn from_u32(code: u32) -> Option<CloseCode> {
        [
            CloseCode::Normal,
            CloseCode::Protocol,
            CloseCode::BadFrame,
            CloseCode::Replaced,
            CloseCode::ShuttingDown,
            CloseCode::Unauthorized,
            CloseCode::BadResult,
            CloseCode::NameInUse,
            CloseCode::Revoked,
            CloseCode::NotLeader,
        ]
        .into_iter()
        .find(|c| *c as u32 == code)
    }
}
