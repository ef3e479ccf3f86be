//! Listings: what one `ListJobs` costs the coordinator's state machine, with 10 and
//! with 2,000 queued jobs, asked by an admin (who gets every job) and by a client
//! that owns 10 of them (who gets its own). A listing should cost what it returns:
//! the client's at 2,000 about what it is at 10, the admin's in proportion to the
//! jobs listed.
//!
//! `cargo bench --bench listing`. Prints one line per case and a final JSON line.

use picluster_core::coordinator::{Coordinator, CoordinatorConfig, Inbound, Transmit};
use picluster_core::identity::{PeerIdentity, Role};
use picluster_core::ids::{ConnId, RequestId};
use picluster_core::job::{JobKind, SearchMode};
use picluster_core::kernel::sha256d::Sha256dJob;
use picluster_core::wire::{
    ClientHello, ClientToCoord, CoordToClient, Submit, WorkSpec, WorkerHello, WorkerToCoord,
    PROTOCOL_MINOR,
};
use picluster_suite::fixtures::{easy_target, vectors};
use std::time::{Duration, Instant};

const ADMIN: ConnId = ConnId(1);
const CAROL: ConnId = ConnId(2);

fn hello(core: &mut Coordinator, now: Instant, conn: ConnId, role: Role, name: &str) {
    core.handle_connected(now, conn, PeerIdentity::new(role, name));
    core.handle_inbound(
        now,
        conn,
        Inbound::Client(ClientToCoord::Hello(ClientHello {
            minor: PROTOCOL_MINOR,
            client_version: "bench".into(),
        })),
    );
}

fn submit(core: &mut Coordinator, now: Instant, conn: ConnId, n: u64) {
    let v = &vectors()[0];
    let job = Sha256dJob::new(v.header, Some(easy_target()), n..n + 1, 0)
        .expect("a one-nonce job of a real header");
    core.handle_inbound(
        now,
        conn,
        Inbound::Client(ClientToCoord::Submit(Submit {
            request: RequestId(n as u32),
            work: WorkSpec::from(&JobKind::Sha256d(job)),
            mode: SearchMode::All,
            priority: (n % 7) as i32,
        })),
    );
}

/// A coordinator with `queued` jobs waiting (10 of them Carol's), and a worker busy
/// elsewhere so that each says why it waits.
fn coordinator(queued: u64) -> (Coordinator, Instant) {
    let now = Instant::now();
    let mut core = Coordinator::new(
        CoordinatorConfig {
            max_live_jobs_per_client: 100_000,
            ..CoordinatorConfig::default()
        },
        now,
    );
    hello(&mut core, now, ADMIN, Role::Admin, "admin");
    hello(&mut core, now, CAROL, Role::Client, "carol");
    for n in 0..queued {
        let conn = if n % (queued / 10) == 0 { CAROL } else { ADMIN };
        submit(&mut core, now, conn, n);
    }
    core.handle_connected(now, ConnId(3), PeerIdentity::new(Role::Worker, "pi-1"));
    core.handle_inbound(
        now,
        ConnId(3),
        Inbound::Worker(WorkerToCoord::Hello(WorkerHello {
            minor: PROTOCOL_MINOR,
            agent_version: "bench".into(),
            threads: 1,
            arch: "bench".into(),
            kernel_impl: "bench".into(),
            bench_hps: 1,
            kernels: vec![],
        })),
    );
    while core.poll_transmit(now).is_some() {}
    (core, now)
}

/// The median time of one listing asked by `conn`, and how many jobs it held.
fn time_listing(core: &mut Coordinator, now: Instant, conn: ConnId) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut listed = 0;
    for round in 0..31 {
        let start = Instant::now();
        core.handle_inbound(
            now,
            conn,
            Inbound::Client(ClientToCoord::ListJobs(RequestId(round))),
        );
        while let Some(t) = core.poll_transmit(now) {
            if let Transmit::ToClient(_, CoordToClient::Jobs(_, jobs)) = t {
                listed = jobs.len();
            }
        }
        times.push(start.elapsed());
    }
    times.sort();
    (times[times.len() / 2], listed)
}

fn main() {
    let mut figures = Vec::new();
    for queued in [10u64, 2000] {
        let (mut core, now) = coordinator(queued);
        for (who, conn) in [("admin", ADMIN), ("client", CAROL)] {
            let (median, listed) = time_listing(&mut core, now, conn);
            println!(
                "{queued:>5} queued, {who:<6} listing {listed:>5} jobs: {:>9.1} us",
                median.as_secs_f64() * 1e6
            );
            figures.push(format!(
                "\"{who}_{queued}_us\": {:.1}",
                median.as_secs_f64() * 1e6
            ));
        }
    }
    println!("{{\"bench\": \"listing\", {}}}", figures.join(", "));
}
