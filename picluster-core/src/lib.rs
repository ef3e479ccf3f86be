//! picluster-core: everything the coordinator side of a picluster cluster is made of,
//! and the pieces workers and clients share with it.
//!
//! It owns the job model and the kernels that compute jobs, the wire protocol, the
//! coordinator's decisions (a synchronous state machine), cluster credentials
//! (a CA and certificates made with rcgen, bundles handed to workers and clients),
//! QUIC endpoint setup with mutual TLS, and the async coordinator service that a
//! program can embed. It does not own the worker's compute threads
//! (`picluster-worker`) or the client API and command line (`picluster-client`).
//!
//! # Layout
//! - [`ids`]: newtype ids (`JobId`, `WorkerId`, `LeaseId`, ...).
//! - [`hex`]: hex encoding with errors that name the problem.
//! - [`kernel`]: the `SearchKernel` trait, the job model (`JobSpec`), solutions.
//! - [`sha256d`]: block headers, targets, version rolling, the SHA-256d scan kernels.
//! - [`hashcash`]: proof of work over arbitrary data (leading zero bits).
//! - [`preimage`]: masks and the SHA-256/SHA-256d preimage search kernel.
//! - [`custom`]: the typed `Kernel` trait for user-defined kernels, and its
//!   type-erased form that workers run.
//! - [`wire`]: every protocol message, the frame codec, close codes.
//! - [`coordinator`]: the coordinator state machine (`handle_*` in, `poll_*` out).
//! - [`cluster`]: cluster directories, certificates and bundles.
//! - [`net`]: QUIC/TLS configuration, peer identity, framed streams.
//! - [`service`]: the async coordinator driver over QUIC.

pub mod cluster;
pub mod coordinator;
pub mod custom;
pub mod hashcash;
pub mod hex;
pub mod ids;
pub mod kernel;
pub mod net;
pub mod preimage;
pub mod service;
pub mod sha256d;
pub mod wire;
