//! picluster-core: everything the coordinator side of a picluster cluster is made of,
//! and the pieces workers and clients share with it.
//!
//! Two layers. The clock-free half decides and computes: the job model and the
//! kernels, the wire protocol, and the coordinator's decisions as a synchronous state
//! machine (`handle_*` in, `poll_*` out). It reads no clock, touches no socket or file
//! and builds without the IO half (`cargo check -p picluster-core
//! --no-default-features`). The IO half, behind the default `io` feature, does the
//! rest: QUIC endpoints with mutual TLS, cluster credentials (a CA and certificates made
//! with rcgen), and the async service that drives the coordinator. The IO half imports
//! the clock-free half, never the other way round.
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
//! - [`sync`]: small helpers for shared state.
//! - [`token`]: join tokens, their text form and the secret's hash.
//!
//! IO (feature `io`, on by default):
//! - [`trust`]: cluster directories, the CA, certificates, bundles, peer identities.
//! - [`net`]: QUIC/TLS configuration, framed streams, dialling the coordinator.
//! - [`service`]: the async coordinator driver, and process helpers for binaries.

pub mod coordinator;
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
pub mod service;
#[cfg(feature = "io")]
pub mod trust;
