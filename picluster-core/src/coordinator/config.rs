//! The coordinator's tunables.

use std::time::Duration;

/// Tunables of the coordinator.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// A chunk is sized to take about this long on the worker it goes to.
    pub chunk_time: Duration,
    /// Until a worker's rate is measured from its reports, its chunks are sized for
    /// this long at its benchmarked rate: small, to calibrate.
    pub calibration_time: Duration,
    /// Smallest chunk handed out (except a job's last remainder).
    pub min_chunk: u64,
    /// Largest chunk handed out.
    pub max_chunk: u64,
    /// Leases a worker holds at once: the one it works on plus queued ones, so it
    /// never waits a round trip between chunks.
    pub leases_per_worker: usize,
    /// When a worker's chunks take less than a progress interval (tiny jobs, a job's
    /// tail, no-op chunks), two leases cannot cover a round trip: it may then hold up
    /// to this many.
    pub max_prefetch: usize,
    /// How often workers report progress, and how often watchers get progress.
    pub progress_interval: Duration,
    /// A worker silent for this long loses its leases (the unfinished parts return to
    /// the queue). Independent of QUIC's idle timeout.
    pub lease_timeout: Duration,
    /// After a restart, how long the previous run's leases are held back for their
    /// workers to claim (a worker keeps computing through an outage of any length
    /// and reconnects within seconds of the coordinator's return). After a lease
    /// timeout they are given to others as soon as a worker has nothing else to do.
    pub adoption_window: Duration,
    /// Smallest range worth stealing: below this a split costs more than it saves.
    pub min_steal: u64,
    /// Steal only when the lease that ends last would end at least this much later
    /// than the thief becomes free.
    pub steal_gap: Duration,
    /// Work stealing on (the default); off only to compare against it.
    pub steal: bool,
    /// The fraction of finished leases whose range another worker searches again
    /// (an audit, as BOINC's redundant computing does on a sample): a worker that
    /// hashes honestly but keeps the solutions it finds, or skips part of a range,
    /// is caught when one of its ranges is audited. It costs this fraction of the
    /// cluster's throughput; 0 turns audits off.
    pub audit_fraction: f64,
    /// The secret that chooses which leases are audited: a worker that knew it
    /// could cheat only where no audit looks. The service draws it at random at
    /// start; the same seed replays a simulation exactly.
    pub audit_seed: u64,
    /// Jobs one client (certificate name) may have queued or running at once; a
    /// submit past it is refused with [`Refusal::OverLimit`](crate::wire::Refusal)
    /// (Slurm's `MaxSubmitJobs`). What one client can make the coordinator hold and
    /// list is bounded by it.
    pub max_live_jobs_per_client: usize,
    /// Finished jobs (completed, cancelled, failed) kept for `jobs`, `wait` and late
    /// watchers; beyond this many (at least one) the oldest are dropped.
    pub keep_finished: usize,
    /// A finished job is dropped this long after it ended.
    pub keep_finished_for: Duration,
    /// Bytes the driver may queue for one peer that has not yet been written to its
    /// connection. A peer that lets more pile up is not reading: what
    /// [`Transmit::overflow`](super::Transmit::overflow) says may be skipped is, and
    /// otherwise the peer is cut off.
    pub peer_queue_bytes: usize,
    /// Bytes the queues of one client credential's sessions may hold together: a
    /// client that opens many sessions and reads none gets no more than one would.
    pub credential_queue_bytes: usize,
    /// Bytes every client's queues may hold together; past it, the client holding
    /// the most is cut off.
    pub client_queues_bytes: usize,
    /// Bytes of frames from non-admin clients that the driver holds at once, read
    /// or being read and not yet handled, whatever the number of certificates: a
    /// frame's body is read only once it fits (meanwhile it waits in QUIC's
    /// flow-control window, a few hundred KiB per connection). One certificate's
    /// share is bounded by its sessions.
    pub client_frame_bytes: usize,
    /// With a journal, how often the committed ranges of jobs that progressed are
    /// written: what a crash of the coordinator can cost in rework, and what sets the
    /// store's writes under steady progress.
    pub checkpoint_interval: Duration,
    /// A connection whose peer has not sent its hello this long after the handshake
    /// is closed (the driver enforces it).
    pub hello_timeout: Duration,
    /// A frame whose header arrived must be whole within this long, or its connection
    /// is closed (the driver enforces it): a peer cannot hold a half-sent frame open.
    pub frame_timeout: Duration,
    /// Connections open at once, in all (the driver refuses more).
    pub max_connections: usize,
    /// TLS handshakes in progress at once, in all (the driver refuses more): what
    /// bounds the memory a flood of handshakes can take, whatever its sources.
    pub max_handshakes: usize,
    /// Connections without a certificate (enrolling with a join token) open at once:
    /// joins are rare, and such a peer has proven nothing yet.
    pub max_joining: usize,
    /// Of those, from one IP address: a flood from a few addresses leaves room for
    /// a joining worker elsewhere.
    pub max_joining_per_address: usize,
    /// A connection without a certificate must send its join request this soon.
    pub join_timeout: Duration,
    /// Client sessions open at once with one certificate (admins' included): each
    /// running `picluster` command and each program's `Client` holds one.
    pub max_sessions_per_client: usize,
    /// Client sessions of non-admin certificates open at once, in all: the rest of
    /// `max_connections` is kept for workers and admins.
    pub max_client_sessions: usize,
    /// A client session that has asked nothing and watched nothing for this long is
    /// closed (the client library reconnects at its next request).
    pub client_idle_timeout: Duration,
    /// Connections open at once from one IP address (a NATed rack shares one).
    pub max_connections_per_address: usize,
    /// Handshakes one IP address may start per second, on average (the driver
    /// refuses more before any cryptography)...
    pub handshakes_per_second: f64,
    /// ...and at once after a quiet spell.
    pub handshake_burst: u32,
    /// The leader's term when coordinators share a store (etcd; 0 for one
    /// coordinator): lease ids start at `epoch << 40`, so two leaders never hand out
    /// the same one, even a deposed leader that has not yet noticed.
    pub epoch: u64,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            chunk_time: Duration::from_secs(2),
            calibration_time: Duration::from_millis(500),
            min_chunk: 1 << 16,
            max_chunk: 1 << 32,
            leases_per_worker: 2,
            max_prefetch: 16,
            progress_interval: Duration::from_millis(250),
            lease_timeout: Duration::from_secs(5),
            adoption_window: Duration::from_secs(60),
            min_steal: 1 << 16,
            steal_gap: Duration::from_millis(50),
            steal: true,
            audit_fraction: 0.02,
            audit_seed: 0,
            max_live_jobs_per_client: 1000,
            keep_finished: 1000,
            keep_finished_for: Duration::from_secs(24 * 3600),
            peer_queue_bytes: 32 << 20,
            credential_queue_bytes: 32 << 20,
            client_queues_bytes: 64 << 20,
            client_frame_bytes: 32 << 20,
            checkpoint_interval: Duration::from_secs(5),
            epoch: 0,
            hello_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_handshakes: 128,
            max_joining: 32,
            max_joining_per_address: 4,
            join_timeout: Duration::from_secs(3),
            max_sessions_per_client: 16,
            max_client_sessions: 1024,
            client_idle_timeout: Duration::from_secs(600),
            max_connections_per_address: 512,
            handshakes_per_second: 50.0,
            handshake_burst: 50,
        }
    }
}
