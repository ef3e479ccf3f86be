//! Limits per credential: how many jobs one client may have live, and listings that
//! cost what they return.

use super::*;

/// Client `conn` submits a one-chunk job at `priority`; the coordinator's reply.
fn submit_from(h: &mut Harness, conn: ConnId, priority: i32) -> CoordToClient {
    h.core.handle_inbound(
        h.now,
        conn,
        Inbound::Client(ClientToCoord::Submit(Submit {
            request: RequestId(40),
            work: WorkSpec::from(&JobKind::Sha256d(genesis_job(0..1 << 12))),
            mode: SearchMode::All,
            priority,
        })),
    );
    reply_to(h, conn)
}

/// The one reply `conn` got.
fn reply_to(h: &mut Harness, conn: ConnId) -> CoordToClient {
    let mut replies: Vec<CoordToClient> = h
        .drain()
        .into_iter()
        .filter_map(|t| match t {
            Transmit::ToClient(c, m) if c == conn => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 1, "{replies:?}");
    replies.remove(0)
}

/// Client `conn` asks `m`; the coordinator's reply.
fn ask(h: &mut Harness, conn: ConnId, m: ClientToCoord) -> CoordToClient {
    h.core.handle_inbound(h.now, conn, Inbound::Client(m));
    reply_to(h, conn)
}

fn listing(h: &mut Harness, conn: ConnId) -> Vec<JobSummary> {
    match ask(h, conn, ClientToCoord::ListJobs(RequestId(41))) {
        CoordToClient::Jobs(RequestId(41), jobs) => jobs,
        other => panic!("{other:?}"),
    }
}

fn status(h: &mut Harness, conn: ConnId) -> ClusterStatus {
    match ask(h, conn, ClientToCoord::Status(RequestId(46))) {
        CoordToClient::Status(_, status) => status,
        other => panic!("{other:?}"),
    }
}

/// A harness with client carol and worker pi-1 (one benchmark hash a second).
fn carol_and_a_worker() -> (Harness, ConnId) {
    let mut h = Harness::small_chunks();
    let carol = ConnId(200);
    add_client_at(&mut h, carol, "carol", PROTOCOL_MINOR);
    h.add_worker(ConnId(1), "pi-1", 1);
    h.drain();
    (h, carol)
}

#[test]
fn a_client_may_have_at_most_its_limit_of_live_jobs_and_is_told_which_limit() {
    let mut h = Harness::new(CoordinatorConfig {
        max_live_jobs_per_client: 3,
        ..CoordinatorConfig::default()
    });
    let (carol, dave) = (ConnId(200), ConnId(201));
    add_client_at(&mut h, carol, "carol", PROTOCOL_MINOR);
    add_client_at(&mut h, dave, "dave", MINOR_CLIENT_REPORTS);
    for n in 1..=3 {
        assert_eq!(
            submit_from(&mut h, carol, 0),
            CoordToClient::Submitted(JobRequest {
                request: RequestId(40),
                job: JobId(n),
            })
        );
    }
    let reached = LimitReached {
        client: "carol".into(),
        limit: Limit::LiveJobs,
        allowed: 3,
        used: 3,
    };
    assert_eq!(
        submit_from(&mut h, carol, 0),
        CoordToClient::Refused(RequestId(40), Refusal::OverLimit(reached.clone()))
    );
    assert_eq!(
        reached.to_string(),
        "client carol has 3 jobs queued or running, and 3 is the most one client may have: wait for some to finish or cancel some, then submit again"
    );
    // Another client's count is its own; one of an older minor reads the same text.
    for n in 4..=6 {
        assert!(matches!(
            submit_from(&mut h, dave, 0),
            CoordToClient::Submitted(JobRequest { job, .. }) if job == JobId(n)
        ));
    }
    assert_eq!(
        submit_from(&mut h, dave, 0),
        CoordToClient::Refused(
            RequestId(40),
            Refusal::NotPermitted(
                "client dave has 3 jobs queued or running, and 3 is the most one client may have: wait for some to finish or cancel some, then submit again".into()
            )
        )
    );
    assert!(matches!(
        submit_from(&mut h, CLIENT, 0),
        CoordToClient::Submitted(JobRequest { job: JobId(7), .. })
    ));
    // A job that ends makes room; the refused submits took no id.
    h.core.handle_inbound(
        h.now,
        carol,
        Inbound::Client(ClientToCoord::Cancel(JobRequest {
            request: RequestId(42),
            job: JobId(2),
        })),
    );
    assert!(matches!(
        reply_to(&mut h, carol),
        CoordToClient::Cancelled(RequestId(42), _)
    ));
    assert!(matches!(
        submit_from(&mut h, carol, 0),
        CoordToClient::Submitted(JobRequest { job: JobId(8), .. })
    ));
    assert!(matches!(
        submit_from(&mut h, carol, 0),
        CoordToClient::Refused(_, Refusal::OverLimit(LimitReached { used: 3, .. }))
    ));
    assert_eq!(h.core.jobs(h.now).len(), 8);
}

#[test]
fn a_listing_holds_the_clients_own_jobs_and_says_how_many_wait_ahead() {
    let (mut h, carol) = carol_and_a_worker();
    // pi-1 holds two leases (one chunk each of j1 and j2); j3 (admin) waits
    // behind them, j4 (carol) jumps the queue with a higher priority, j5 (carol)
    // waits behind all four.
    submit_from(&mut h, CLIENT, 0);
    submit_from(&mut h, carol, 0);
    submit_from(&mut h, CLIENT, 0);
    submit_from(&mut h, carol, 5);
    submit_from(&mut h, carol, 0);
    let waits = |jobs: &[JobSummary]| {
        jobs.iter()
            .map(|j| (j.progress.job.0, j.waiting.clone().unwrap_or_default()))
            .collect::<Vec<_>>()
    };
    let all = listing(&mut h, CLIENT);
    assert_eq!(
        waits(&all),
        vec![
            (1, String::new()),
            (2, String::new()),
            (3, "workers busy: 3 jobs ahead of it".into()),
            (4, "waiting for a worker to ask for work".into()),
            (5, "workers busy: 4 jobs ahead of it".into()),
        ],
        "{all:?}"
    );
    // Carol sees her own jobs only, placed in the whole queue.
    let hers = listing(&mut h, carol);
    assert_eq!(
        waits(&hers),
        vec![
            (2, String::new()),
            (4, "waiting for a worker to ask for work".into()),
            (5, "workers busy: 4 jobs ahead of it".into()),
        ]
    );
    assert!(hers.iter().all(|j| j.client == "carol"));
    // Her status lists the same jobs.
    assert_eq!(status(&mut h, carol).jobs, hers);
}

fn closed_with(out: &[Transmit]) -> Vec<(ConnId, String)> {
    out.iter()
        .filter_map(|t| match t {
            Transmit::Close(c, reason) => {
                assert_eq!(reason.code(), CloseCode::Normal, "{reason}");
                Some((*c, reason.to_string()))
            }
            _ => None,
        })
        .collect()
}

fn connect(h: &mut Harness, conn: ConnId, role: Role, name: &str) -> Vec<(ConnId, String)> {
    h.core
        .handle_connected(h.now, conn, PeerIdentity::new(role, name));
    let out = h.drain();
    closed_with(&out)
}

#[test]
fn a_certificate_holds_at_most_its_sessions_and_clients_leave_room_for_workers_and_admins() {
    let mut h = Harness::new(CoordinatorConfig {
        max_sessions_per_client: 3,
        max_client_sessions: 5,
        ..CoordinatorConfig::default()
    });
    for n in 0..3 {
        assert_eq!(connect(&mut h, ConnId(200 + n), Role::Client, "carol"), []);
    }
    assert_eq!(
        connect(&mut h, ConnId(203), Role::Client, "carol"),
        [(ConnId(203), "client carol already has 3 sessions open, the most one certificate may have: close some (each running `picluster` command and each program's Client holds one)".to_string())]
    );
    for n in 0..2 {
        assert_eq!(connect(&mut h, ConnId(210 + n), Role::Client, "dave"), []);
    }
    // Five client sessions are all that clients get: the rest is for workers and
    // admins.
    assert_eq!(
        connect(&mut h, ConnId(220), Role::Client, "erin"),
        [(ConnId(220), "the coordinator holds 5 client sessions, the most it keeps for clients (the rest is for workers and admins): try again later".to_string())]
    );
    assert_eq!(connect(&mut h, ConnId(230), Role::Admin, "root"), []);
    h.add_worker(ConnId(1), "pi-1", 1);
    assert_eq!(closed_with(&h.drain()), []);
    // A session that ends makes room; a refused one never took any.
    h.core.handle_disconnected(h.now, ConnId(201));
    h.drain();
    assert_eq!(connect(&mut h, ConnId(220), Role::Client, "erin"), []);
    assert_eq!(
        connect(&mut h, ConnId(204), Role::Client, "carol"),
        [(
            ConnId(204),
            "the coordinator holds 5 client sessions, the most it keeps for clients (the rest is for workers and admins): try again later".to_string()
        )]
    );
    add_client_at(&mut h, ConnId(220), "erin", PROTOCOL_MINOR);
    assert!(matches!(
        submit_from(&mut h, ConnId(220), 0),
        CoordToClient::Submitted(_)
    ));
}

#[test]
fn a_client_session_idle_for_its_timeout_is_closed_and_one_that_watches_is_not() {
    let mut h = Harness::new(CoordinatorConfig {
        client_idle_timeout: Duration::from_secs(60),
        ..CoordinatorConfig::default()
    });
    let start = h.now;
    let at = |s: u64| start + Duration::from_secs(s);
    let (idle, watcher) = (ConnId(200), ConnId(201));
    add_client_at(&mut h, idle, "carol", PROTOCOL_MINOR);
    add_client_at(&mut h, watcher, "carol", PROTOCOL_MINOR);
    submit_from(&mut h, watcher, 0);
    h.core.handle_inbound(
        h.now,
        watcher,
        Inbound::Client(ClientToCoord::Watch(JobRequest {
            request: RequestId(44),
            job: JobId(1),
        })),
    );
    h.drain();
    let tick = |h: &mut Harness, s: u64| {
        h.now = at(s);
        h.core.handle_timeout(h.now);
        closed_with(&h.drain())
    };
    assert_eq!(tick(&mut h, 30), []);
    listing(&mut h, idle);
    // The harness's admin asked nothing since it said hello.
    let idle_60 = "idle for 60s: nothing asked or watched (a client reconnects when it next asks)";
    assert_eq!(tick(&mut h, 61), [(CLIENT, idle_60.to_string())]);
    assert!(h.core.poll_timeout().is_some_and(|t| t <= at(90)));
    assert_eq!(tick(&mut h, 89), []);
    assert_eq!(tick(&mut h, 91), [(idle, idle_60.to_string())]);
    // The watch ends when the job does; the idle time counts from then.
    h.now = at(100);
    h.core.handle_inbound(
        h.now,
        watcher,
        Inbound::Client(ClientToCoord::Cancel(JobRequest {
            request: RequestId(45),
            job: JobId(1),
        })),
    );
    h.drain();
    assert_eq!(tick(&mut h, 155), []);
    assert_eq!(tick(&mut h, 159), []);
    assert_eq!(tick(&mut h, 161), [(watcher, idle_60.to_string())]);
    assert_eq!(tick(&mut h, 1000), []);
    // No client left: the next timer is the finished job's retention, a day on.
    assert!(h.core.poll_timeout().is_some_and(|t| t >= at(3600)));
}

#[test]
fn a_clients_status_names_only_its_own_jobs_among_the_workers_jobs() {
    let (mut h, carol) = carol_and_a_worker();
    // pi-1 holds a lease of the admin's j1 and one of carol's j2.
    submit_from(&mut h, CLIENT, 0);
    submit_from(&mut h, carol, 0);
    assert_eq!(
        status(&mut h, CLIENT).workers[0].jobs,
        vec![JobId(1), JobId(2)]
    );
    let hers = status(&mut h, carol);
    assert_eq!(hers.workers[0].jobs, vec![JobId(2)]);
    assert_eq!(
        hers.workers[0].leases, 2,
        "the worker itself is the same for all"
    );
}
