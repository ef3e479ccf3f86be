//! The wire protocol: every message exchanged between coordinator, workers and
//! clients, and the frame codec. Nothing else in the workspace defines wire types.
//!
//! Each connection carries one bidirectional QUIC stream, opened by the dialling peer
//! (worker or client), holding a sequence of frames: a little-endian `u32` body
//! length, then a postcard body of at most [`MAX_FRAME_LEN`] bytes. The first frame in
//! each direction is the hello/welcome pair, which negotiates the minor version; the
//! major version is the ALPN string, so a peer of another major version fails the TLS
//! handshake.
//!
//! postcard is not self-describing: the order of enum variants is the tag. Enums here
//! are append-only within a major version, and the golden-byte tests fail on any
//! accidental change. No `usize`, `Instant` or `SystemTime` crosses the wire.
//!
//! # Layout
//! - `worker`: messages between workers and the coordinator.
//! - `client`: messages between clients and the coordinator, and the reports they carry.
//! - `refusal`: why a client's request is refused ([`Refusal`]), typed since minor 4.
//! - `mining`: what a mining bridge reports of its pool ([`MinerReport`]), minor 6.
//! - `mining`: what a mining bridge reports of its pool ([`MinerReport`]), minor 6.
//! - `credentials`: join tokens, revocations, certificates, and the join protocol.
//! - `work`: what to compute, as sent ([`WorkSpec`]), and its conversion to the job model.
//! - `frame`: the frame codec and [`FrameError`].
//! - `close`: application close codes.
//! - `limits`: sizes every message is kept within.

mod client;
mod close;
mod credentials;
mod frame;
mod limits;
mod mining;
mod refusal;
mod work;
mod worker;

pub use client::*;
pub use close::CloseCode;
pub use credentials::*;
pub use frame::*;
pub use limits::*;
pub use mining::*;
pub use refusal::*;
pub use work::*;
pub use worker::*;

/// ALPN protocol id: the major version.
pub const ALPN: &[u8] = b"picluster/1";
/// Highest minor version this build speaks. Minor 1: workers report the leases they
/// kept through a lost connection ([`WorkerToCoord::Holding`]). Minor 2: revocation,
/// join tokens, credential reports, certificate renewal and shares
/// ([`ClientToCoord::Revoke`], [`ClientToCoord::CreateToken`],
/// [`WorkerToCoord::Renew`], ...). Minor 3: richer client reports (who found each
/// solution, job times, waiting reasons, per-worker kernels, drain reasons,
/// [`ClientToCoord::Show`]). The worker protocol is unchanged by it; the client
/// messages' layout changed, so clients and coordinator must both speak minor 3
/// (each refuses the other with a message naming the versions). Minor 4: typed
/// refusals ([`Refusal::Forbidden`], [`Refusal::BadJob`], [`Refusal::BadToken`],
/// [`JoinRefusal::BadCsr`]), appended; a peer of minor 3 gets the text variants they
/// replace ([`Refusal::for_minor`], [`JoinRefusal::for_minor`]). Minor 5:
/// [`Refusal::OverLimit`], appended; a peer of minor 4 or below gets it as
/// [`Refusal::NotPermitted`] with the same text. Minor 6: block template jobs
/// ([`WorkSpec::Template`], their solutions and [`JobErrorKind::Template`]), appended;
/// only workers of minor 6 are given them; solutions pushed to watchers
/// ([`CoordToClient::Solutions`]); mining bridges' reports ([`ClientToCoord::Miner`],
/// [`ClientToCoord::Miners`]).
pub const PROTOCOL_MINOR: u16 = 6;
/// The first minor version with block template jobs.
pub const MINOR_TEMPLATES: u16 = 6;
/// The first minor version with [`WorkerToCoord::Holding`].
pub const MINOR_HOLDING: u16 = 1;
/// The first minor version with revocation, tokens and renewal.
pub const MINOR_CREDENTIALS: u16 = 2;
/// The first minor version with shares ([`CoordToWorker::ShareTarget`],
/// [`WorkerToCoord::Shares`]).
pub const MINOR_SHARES: u16 = 2;
/// The first minor version with [`WorkerToCoord::Rate`].
pub const MINOR_RATE: u16 = 3;
/// The first minor version of the client messages' current layout: a client (or
/// coordinator) below it cannot decode this build's client messages.
pub const MINOR_CLIENT_REPORTS: u16 = 3;
/// The minor version both sides speak: the lower of the two.
pub fn negotiate_minor(peer: u16) -> u16 {
    peer.min(PROTOCOL_MINOR)
}
