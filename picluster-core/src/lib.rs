//! picluster-core: everything the coordinator side of a picluster cluster is made of,
//! and the pieces workers and clients share with it.
//!
//! Two layers. The clock-free half decides and computes: the job model and the
//! kernels, the wire protocol, and the coordinator's decisions as a synchronous state
//! machine (`handle_*` in, `poll_*` out). It reads no clock, touches no socket or file
//! and builds without the IO half (`cargo check -p picluster-core
//! --no-default-features`). The IO half does the rest, in two features: `io` (QUIC
//! endpoints with mutual TLS, cluster credentials made with rcgen, and the helpers
//! every program needs around its async work), which workers and clients use, and
//! `service` (the async driver of the coordinator and its redb job store), which only
//! a coordinator needs; both are on by default. The IO half imports the clock-free
//! half, never the other way round; CI checks both (`.ci/house`, `cargo tree`).
//!
//! It does not own the worker's compute threads (`picluster-worker`) or the client API
//! and command line (`picluster-client`).
//!
//! # Layout
//! Clock-free:
//! - [`ids`]: newtype ids (`JobId`, `WorkerId`, `LeaseId`, ...).
//! - [`identity`]: a peer's [`Role`](identity::Role) and name.
//! - [`hex`]: hex encoding with errors that name the problem.
//! - [`job`]: the job model (`JobKind`, `JobSpec`, `SearchMode`, `SpecError`).
//! - [`kernel`]: the `SearchKernel` trait and every kernel (SHA-256d, hashcash,
//!   preimage, custom); the only home of `unsafe`.
//! - [`wire`]: every protocol message, the frame codec, close codes, limits.
//! - [`coordinator`]: the coordinator state machine and its tables.
//! - [`election`]: leader election and self-fencing among coordinators that share
//!   a store, as a state machine.
//! - [`sync`]: small helpers for shared state.
//! - [`token`]: join tokens, their text form and the secret's hash.
//! - [`admission`]: which new connections may start a handshake (token buckets and
//!   caps per address).
//!
//! IO (feature `io`):
//! - [`trust`]: cluster directories, the CA, certificates, bundles, peer identities.
//! - [`net`]: QUIC/TLS configuration, framed streams, dialling the coordinator.
//! - [`runtime`]: shutdown signal, small runtime, lossy stderr, the metrics HTTP
//!   endpoint: what every program needs around its async work.
//!
//! Coordinator service (feature `service`, which implies `io`):
//! - [`service`]: the async coordinator driver and its job store.

pub mod admission;
pub mod coordinator;
pub mod election;
pub mod hex;
pub mod identity;
pub mod ids;
pub mod job;
pub mod kernel;
pub mod sync;
pub mod token;
pub mod wire;

#[cfg(feature = "io")]
pub mod net;
#[cfg(feature = "io")]
pub mod runtime;
#[cfg(feature = "service")]
pub mod service;
#[cfg(feature = "io")]
pub mod trust;

/// Implements `Debug` as the error's sentence (its `Display`): what a program whose
/// `main` returns the error prints, `Error: invalid mask: a trailing '?'` rather than
/// `Error: TrailingQuestionMark`.
#[doc(hidden)]
#[macro_export]
macro_rules! debug_as_display {
    ($($error:ty),* $(,)?) => {
        $(impl ::std::fmt::Debug for $error {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(self, f)
            }
        })*
    };
}
