//! Sizes every message is kept within, so that each fits in one frame.

/// Most solutions a job keeps (its lowest indices), so that its report fits in one
/// frame whatever the target.
pub const MAX_SOLUTIONS: usize = 10_000;
/// Most solutions a job's detail ([`JobDetail`](super::JobDetail)) lists: its
/// lowest; the report has them all.
pub const MAX_LISTED_SOLUTIONS: usize = 100;
/// Longest drain reason kept, in bytes.
pub const MAX_REASON_LEN: usize = 200;
/// Most jobs a listing shows (the newest), so that it fits in one frame.
pub const MAX_LISTED_JOBS: usize = 4096;
/// Most bytes of results a custom job may accumulate at the coordinator; beyond
/// them the job fails (its kernel's results are meant to be summaries).
pub const MAX_JOB_OUTPUT_BYTES: u64 = 256 << 20;
/// Largest batch of results in one [`CoordToClient::Outputs`](super::CoordToClient::Outputs) frame.
pub const MAX_OUTPUT_BATCH_BYTES: usize = 512 << 10;
/// Most leases a worker reports holding after a reconnection (its engine queues
/// far fewer).
pub const MAX_HELD_LEASES: usize = 256;
/// Most solutions a worker remembers per lease for a reconnection; a lease with more
/// is given up when the connection is lost (its range is searched again).
pub const MAX_HELD_FOUND: usize = 1024;

/// Indices a worker's engine claims at a time for the built-in kernels (a custom
/// kernel's block is its own): a worker asked to trim a lease that has more than
/// (threads + 1) blocks left must shrink it, since it cannot have claimed them all.
pub const SEARCH_BLOCK: u64 = 1 << 16;

/// Largest frame body accepted.
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// Length of the frame header.
pub const FRAME_HEADER_LEN: usize = 4;
