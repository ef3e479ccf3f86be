//! What the coordinator asks its driver to do: the [`Transmit`] effects it drains
//! through `poll_transmit`, the certificates it asks the driver to sign ([`Issue`]),
//! and what a full outgoing queue means for each message ([`Transmit::overflow`]).
//! Whether a message waits for the journal is decided in `effects`, not here.

use super::journal::UnixMillis;
use super::violation::CloseReason;
use crate::identity::Role;
use crate::ids::ConnId;
use crate::wire::{CoordToClient, CoordToJoin, CoordToWorker};

/// A certificate for the driver to sign with the cluster CA (the state machine holds
/// no key): the public key of `csr`, bound to `role` and `name`, its serial number
/// saying it was issued at `issued_ms`. The driver answers the connection with
/// [`CoordToJoin::Enrolled`] (a join) or [`CoordToWorker::Renewed`] (a renewal), or
/// with a refusal if it cannot sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// The role the certificate carries.
    pub role: Role,
    /// The name it carries.
    pub name: String,
    /// The PKCS#10 request (DER) whose key it certifies.
    pub csr: Vec<u8>,
    /// Its issuing time (Unix milliseconds), after any revocation it must survive.
    pub issued_ms: UnixMillis,
    /// A working worker's renewal (`true`) or a join.
    pub renewal: bool,
}

/// An effect for the driver to carry out, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Send a message to a worker.
    ToWorker(ConnId, CoordToWorker),
    /// Send a message to a client.
    ToClient(ConnId, CoordToClient),
    /// Close a connection (after sending what was queued for it before).
    Close(ConnId, CloseReason),
    /// Send a message to a joining connection.
    ToJoiner(ConnId, CoordToJoin),
    /// Sign a certificate and send it to the connection.
    Issue(ConnId, Issue),
}

/// What the driver does with a message whose peer's outgoing queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Drop it: a later message supersedes it (a progress push).
    Skip,
    /// The peer must get it or nothing more: call
    /// [`Coordinator::handle_backlogged`](super::Coordinator::handle_backlogged),
    /// which cuts the peer off.
    CutOff,
}

impl Transmit {
    /// The connection the effect concerns.
    pub fn conn(&self) -> ConnId {
        match self {
            Transmit::ToWorker(conn, _)
            | Transmit::ToClient(conn, _)
            | Transmit::Close(conn, _)
            | Transmit::ToJoiner(conn, _)
            | Transmit::Issue(conn, _) => *conn,
        }
    }

    /// What to do with this message when its peer's outgoing queue is full.
    pub fn overflow(&self) -> Overflow {
        match self {
            Transmit::ToClient(_, CoordToClient::Progress(_)) => Overflow::Skip,
            _ => Overflow::CutOff,
        }
    }
}
