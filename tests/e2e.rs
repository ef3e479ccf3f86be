//! End to end over real QUIC with mutual TLS on loopback: an in-process coordinator
//! and workers, compared with a single-process reference scan.

use picluster_client::{JobKind, JobSpec, JobState, LocalCluster, LocalClusterOptions, SearchMode};
use picluster_core::coordinator::CoordinatorConfig;
use picluster_core::hex;
use picluster_core::identity::Role;
use picluster_core::kernel::sha256d::Sha256dJob;
use picluster_core::net::{self, NetError};
use picluster_core::trust::{Bundle, ClusterCa};
use picluster_core::wire::{ClientHello, ClientToCoord, CloseCode, CoordToClient, PROTOCOL_MINOR};
use picluster_suite::fixtures::{easy_target, reference_scan, vectors};
use picluster_worker::{WorkerError, WorkerOptions};
use std::time::Duration;

/// Three one-thread workers, with chunks small enough that every job is split
/// among all of them.
async fn three_workers() -> LocalCluster {
    LocalCluster::start_with(LocalClusterOptions {
        workers: 3,
        worker: WorkerOptions {
            threads: 1,
            benchmark: Duration::from_millis(20),
            ..WorkerOptions::default()
        },
        coordinator: CoordinatorConfig {
            min_chunk: 1 << 16,
            max_chunk: 1 << 17,
            ..CoordinatorConfig::default()
        },
    })
    .await
    .expect("cluster starts")
}

const WINDOW: u64 = 1 << 20;

fn first(job: Sha256dJob) -> JobSpec {
    JobSpec {
        kind: JobKind::Sha256d(job),
        mode: SearchMode::First,
    }
}

fn all(job: Sha256dJob) -> JobSpec {
    JobSpec {
        kind: JobKind::Sha256d(job),
        mode: SearchMode::All,
    }
}

fn window_around(nonce: u32) -> std::ops::Range<u64> {
    let start = u64::from(nonce).saturating_sub(WINDOW / 3);
    start..start + WINDOW
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_find_the_nonces_of_blocks_0_1_2_like_a_single_process_scan() {
    let cluster = three_workers().await;
    let client = cluster.client().await.unwrap();
    for v in vectors() {
        let nonces = window_around(v.nonce);
        let job = Sha256dJob::new(v.header, None, nonces.clone(), 0).unwrap();
        let reference = reference_scan(&v.header, &job.target, nonces.clone());
        assert_eq!(
            reference,
            vec![v.nonce],
            "block {} window holds only its nonce",
            v.height
        );

        // First-solution mode: the block's own nonce and hash.
        let first = client.run(&first(job)).await.unwrap();
        assert_eq!(first.state, JobState::Completed);
        assert_eq!(first.solutions.len(), 1);
        assert_eq!(first.solutions[0].nonce().unwrap(), v.nonce);
        assert_eq!(first.solutions[0].version().unwrap(), v.header.version());
        assert_eq!(hex::encode(&first.solutions[0].hash), v.hash);

        // Exhaustive mode: the same single solution, every nonce counted once.
        let all = client.run(&all(job)).await.unwrap();
        assert_eq!(all.state, JobState::Completed);
        assert_eq!(
            all.solutions
                .iter()
                .map(|s| s.nonce().unwrap())
                .collect::<Vec<_>>(),
            reference
        );
        assert_eq!(all.hashes, WINDOW);
        assert_eq!(all.keyspace, WINDOW);
        assert_eq!(
            all.contributions.iter().map(|c| c.hashes).sum::<u64>(),
            WINDOW
        );
        assert!(
            all.contributions.len() >= 2,
            "the window is split among workers: {:?}",
            all.contributions
        );
    }
    let status = client.status().await.unwrap();
    assert_eq!(status.workers.len(), 3);
    assert_eq!(status.jobs.len(), 6);
    client.close();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_rolling_finds_every_solution_across_versions() {
    let cluster = three_workers().await;
    let client = cluster.client().await.unwrap();
    let v = &vectors()[2];
    let job = Sha256dJob::new(v.header, Some(easy_target()), 0..100_000, 0x0000_6000).unwrap();
    let report = client.run(&all(job)).await.unwrap();
    assert_eq!(report.hashes, 400_000);
    let mut expected = Vec::new();
    for slot in 0..4 {
        let version = job.version_of_slot(slot);
        let header = v.header.with(version, 0);
        for nonce in reference_scan(&header, &job.target, 0..100_000) {
            expected.push((version, nonce));
        }
    }
    let got: Vec<(u32, u32)> = report
        .solutions
        .iter()
        .map(|s| (s.version().unwrap(), s.nonce().unwrap()))
        .collect();
    assert_eq!(got, expected);
    assert!(got.len() > 1000);
    client.close();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_a_running_job_and_frees_the_workers() {
    let cluster = three_workers().await;
    let client = cluster.client().await.unwrap();
    let v = &vectors()[0];
    let job = Sha256dJob::new(v.header, None, 0..1 << 32, 0).unwrap();
    let id = client.submit(&all(job)).await.unwrap();
    let mut watch = client.watch(id).await.unwrap();
    // Wait until work is under way.
    while let Some(picluster_client::JobEvent::Progress(p)) = watch.next().await {
        if p.hashes > 0 {
            break;
        }
    }
    let summary = client.cancel(id).await.unwrap();
    assert_eq!(summary.progress.state, JobState::Cancelled);
    let report = client.wait(id).await.unwrap();
    assert_eq!(report.state, JobState::Cancelled);
    assert!(report.hashes > 0 && report.hashes < 1 << 32);
    // Workers are free: a small job completes at once.
    let small = Sha256dJob::new(v.header, None, window_around(v.nonce), 0).unwrap();
    let done = client.run(&first(small)).await.unwrap();
    assert_eq!(done.solutions[0].nonce().unwrap(), v.nonce);
    // Unknown jobs are refused with a clear error.
    let err = client.wait(picluster_client::JobId(999)).await.unwrap_err();
    assert_eq!(err.to_string(), "no job j999");
    client.close();
    cluster.shutdown().await;
}

async fn expect_refused(bundle: Bundle) -> String {
    let options = WorkerOptions {
        threads: 1,
        benchmark: Duration::from_millis(10),
        ..WorkerOptions::default()
    };
    let result = tokio::time::timeout(
        Duration::from_secs(15),
        picluster_worker::run(bundle, options, std::future::pending()),
    )
    .await
    .expect("a refused worker gives up instead of retrying forever");
    match result {
        Err(WorkerError::Net(e @ NetError::CertificateRejected(_))) => {
            assert!(!e.is_retryable());
            e.to_string()
        }
        other => panic!("expected a certificate rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_with_another_clusters_certificates_are_refused_while_a_job_completes() {
    let cluster = three_workers().await;
    let client = cluster.client().await.unwrap();
    let v = &vectors()[1];
    let job = Sha256dJob::new(v.header, None, window_around(v.nonce), 0).unwrap();
    let id = client.submit(&all(job)).await.unwrap();

    // A bundle from another cluster: it does not trust our coordinator.
    let other = ClusterCa::generate("other").unwrap();
    let foreign = other
        .bundle(Role::Worker, "intruder", &cluster.address().to_string())
        .unwrap();
    let message = expect_refused(foreign).await;
    assert!(message.contains("not trusted"), "{message}");

    // Our CA pinned, but a certificate issued by the other CA: the coordinator refuses
    // it, which TLS 1.3 reports only when the connection is first used.
    let mut rogue = cluster.bundle(Role::Worker, "rogue").unwrap();
    let credential = other.issue(Role::Worker, "rogue", &[]).unwrap();
    rogue.cert = credential.cert_pem;
    rogue.key = credential.key_pem;
    let message = expect_refused(rogue).await;
    assert!(message.contains("refused this certificate"), "{message}");

    let report = client.wait(id).await.unwrap();
    assert_eq!(report.state, JobState::Completed);
    assert_eq!(
        report
            .solutions
            .iter()
            .map(|s| s.nonce().unwrap())
            .collect::<Vec<_>>(),
        vec![v.nonce]
    );
    assert_eq!(report.hashes, WINDOW);
    let names: Vec<String> = client
        .status()
        .await
        .unwrap()
        .workers
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, vec!["worker-1", "worker-2", "worker-3"]);
    client.close();
    cluster.shutdown().await;
}

/// Opens a raw session as a client (hello done), for sending arbitrary bytes.
async fn raw_session(cluster: &LocalCluster) -> net::Session<CoordToClient> {
    let bundle = cluster.bundle(Role::Admin, "raw").unwrap();
    let hello = ClientToCoord::Hello(ClientHello {
        minor: PROTOCOL_MINOR,
        client_version: "raw".into(),
    });
    net::connect(&bundle, &hello).await.unwrap()
}

async fn close_code(session: &net::Session<CoordToClient>) -> u32 {
    match tokio::time::timeout(Duration::from_secs(5), session.connection.closed())
        .await
        .unwrap()
    {
        quinn::ConnectionError::ApplicationClosed(c) => c.error_code.into_inner() as u32,
        other => panic!("expected an application close, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_only_the_offending_connection() {
    let cluster = LocalCluster::start_with(LocalClusterOptions {
        workers: 1,
        worker: WorkerOptions {
            threads: 1,
            benchmark: Duration::from_millis(10),
            ..WorkerOptions::default()
        },
        coordinator: CoordinatorConfig::default(),
    })
    .await
    .unwrap();
    let client = cluster.client().await.unwrap();

    // A frame header announcing more than the limit.
    let mut s = raw_session(&cluster).await;
    s.writer
        .send_frame(&(2u32 << 20).to_le_bytes())
        .await
        .unwrap();
    assert_eq!(close_code(&s).await, CloseCode::BadFrame as u32);

    // An unknown message kind.
    let mut s = raw_session(&cluster).await;
    s.writer.send_frame(&[1, 0, 0, 0, 0xee]).await.unwrap();
    assert_eq!(close_code(&s).await, CloseCode::BadFrame as u32);

    // A valid message with trailing garbage.
    let mut s = raw_session(&cluster).await;
    s.writer
        .send_frame(&[3, 0, 0, 0, 4, 1, 0xff])
        .await
        .unwrap();
    assert_eq!(close_code(&s).await, CloseCode::BadFrame as u32);

    // A second hello.
    let mut s = raw_session(&cluster).await;
    s.writer
        .send(&ClientToCoord::Hello(ClientHello {
            minor: picluster_core::wire::PROTOCOL_MINOR,
            client_version: "again".into(),
        }))
        .await
        .unwrap();
    assert_eq!(close_code(&s).await, CloseCode::Protocol as u32);

    // Everyone else is still served.
    let v = &vectors()[0];
    let job = Sha256dJob::new(v.header, None, window_around(v.nonce), 0).unwrap();
    let report = client.run(&first(job)).await.unwrap();
    assert_eq!(report.solutions[0].nonce().unwrap(), v.nonce);
    client.close();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_speaking_another_major_version_fails_the_handshake() {
    let cluster = LocalCluster::start_with(LocalClusterOptions {
        workers: 0,
        worker: WorkerOptions::default(),
        coordinator: CoordinatorConfig::default(),
    })
    .await
    .unwrap();
    let bundle = cluster.bundle(Role::Client, "future").unwrap();
    // The same credentials as a real client, but ALPN picluster/2.
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let tls = {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls_pki_types::CertificateDer::from_pem_slice(bundle.ca.as_bytes()).unwrap())
            .unwrap();
        let mut tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![rustls_pki_types::CertificateDer::from_pem_slice(bundle.cert.as_bytes()).unwrap()],
            rustls_pki_types::PrivateKeyDer::from_pem_slice(bundle.key.as_bytes()).unwrap(),
        )
        .unwrap();
        tls.alpn_protocols = vec![b"picluster/2".to_vec()];
        tls
    };
    let config = quinn::ClientConfig::new(std::sync::Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
    ));
    let result = endpoint
        .connect_with(config, cluster.address(), "127.0.0.1")
        .unwrap()
        .await;
    let err = result.expect_err("ALPN picluster/2 is refused");
    assert!(
        err.to_string().contains("no_application_protocol") || err.to_string().contains("120"),
        "{err}"
    );
    cluster.shutdown().await;
}

fn quick_worker() -> WorkerOptions {
    WorkerOptions {
        threads: 1,
        benchmark: Duration::from_millis(10),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        ..WorkerOptions::default()
    }
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_mid_job_hands_its_range_back_and_nothing_is_lost() {
    let cluster = LocalCluster::start_with(LocalClusterOptions {
        workers: 1,
        worker: quick_worker(),
        coordinator: CoordinatorConfig {
            min_chunk: 1 << 16,
            max_chunk: 1 << 18,
            ..CoordinatorConfig::default()
        },
    })
    .await
    .unwrap();
    let client = cluster.client().await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let leaver = tokio::spawn(picluster_worker::run(
        cluster.bundle(Role::Worker, "leaver").unwrap(),
        quick_worker(),
        async {
            let _ = stopped.await;
        },
    ));
    let v = &vectors()[0];
    let nonces = u64::from(v.nonce) - (1 << 22)..u64::from(v.nonce) + (1 << 22);
    let job = Sha256dJob::new(v.header, None, nonces, 0).unwrap();
    let id = client.submit(&all(job)).await.unwrap();
    wait_until("the leaver has worked", async || {
        let status = client.status().await.unwrap();
        status
            .workers
            .iter()
            .any(|w| w.name == "leaver" && w.hashes > 0)
    })
    .await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), leaver)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let report = client.wait(id).await.unwrap();
    assert_eq!(report.state, JobState::Completed);
    assert_eq!(report.hashes, 1 << 23);
    assert_eq!(
        report
            .solutions
            .iter()
            .map(|s| s.nonce().unwrap())
            .collect::<Vec<_>>(),
        vec![v.nonce]
    );
    let names: Vec<&str> = report
        .contributions
        .iter()
        .map(|c| c.worker.as_str())
        .collect();
    assert_eq!(names, vec!["leaver", "worker-1"]);
    let status = client.status().await.unwrap();
    assert_eq!(
        status
            .workers
            .iter()
            .map(|w| w.name.as_str())
            .collect::<Vec<_>>(),
        vec!["worker-1"]
    );
    client.close();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_reconnect_when_the_coordinator_comes_back() {
    use picluster_core::service::CoordinatorService;
    let ca = ClusterCa::generate("restart").unwrap();
    let credential = ca
        .issue(Role::Coordinator, "coordinator", &["127.0.0.1".into()])
        .unwrap();
    let start = async |address: std::net::SocketAddr| {
        // quinn releases a stopped endpoint's socket shortly after its last handle.
        let mut attempts = 0;
        let service = loop {
            match CoordinatorService::bind(
                address,
                ca.cert_pem(),
                &credential,
                CoordinatorConfig::default(),
            ) {
                Ok(service) => break service,
                Err(_) if attempts < 100 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot bind {address}: {e}"),
            }
        };
        let address = service.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(service.run(async {
            let _ = stopped.await;
        }));
        (address, stop, task)
    };
    let (address, stop, task) = start("127.0.0.1:0".parse().unwrap()).await;
    let worker = tokio::spawn(picluster_worker::run(
        ca.bundle(Role::Worker, "pi-1", &address.to_string())
            .unwrap(),
        quick_worker(),
        std::future::pending(),
    ));
    let admin = ca
        .bundle(Role::Admin, "admin", &address.to_string())
        .unwrap();
    let joined = async || match picluster_client::Client::connect(&admin).await {
        Ok(c) => {
            let n = c.status().await.map(|s| s.workers.len()).unwrap_or(0);
            c.close();
            n == 1
        }
        Err(_) => false,
    };
    wait_until("the worker joins", joined).await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    // Same address, a new coordinator process in all but name.
    let (_, stop, task) = start(address).await;
    wait_until("the worker rejoins", joined).await;
    let client = picluster_client::Client::connect(&admin).await.unwrap();
    let v = &vectors()[1];
    let job = Sha256dJob::new(v.header, None, window_around(v.nonce), 0).unwrap();
    let report = client.run(&first(job)).await.unwrap();
    assert_eq!(report.solutions[0].nonce().unwrap(), v.nonce);
    assert!(!worker.is_finished(), "the worker keeps serving");
    client.close();
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    worker.abort();
}

#[test]
fn the_blocking_client_submits_and_waits_without_an_async_runtime() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cluster = runtime
        .block_on(LocalCluster::start_with(LocalClusterOptions {
            workers: 2,
            worker: quick_worker(),
            coordinator: CoordinatorConfig::default(),
        }))
        .unwrap();
    let client =
        picluster_client::blocking::Client::connect(&cluster.bundle(Role::Client, "sync").unwrap())
            .unwrap();
    let v = &vectors()[2];
    let job = Sha256dJob::new(v.header, None, window_around(v.nonce), 0).unwrap();
    let id = client.submit(&all(job)).unwrap();
    let mut updates = 0;
    let report = client.wait_with_progress(id, |_| updates += 1).unwrap();
    assert!(updates >= 1, "at least the initial state");
    assert_eq!(
        report
            .solutions
            .iter()
            .map(|s| s.nonce().unwrap())
            .collect::<Vec<_>>(),
        vec![v.nonce]
    );
    assert_eq!(report.hashes, WINDOW);
    let jobs = client.jobs().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].progress.state, JobState::Completed);
    assert_eq!(client.status().unwrap().workers.len(), 2);
    assert_eq!(
        client.cancel(id).unwrap().progress.state,
        JobState::Completed,
        "an ended job keeps its state"
    );
    drop(client);
    runtime.block_on(cluster.shutdown());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_idle_for_longer_than_the_lease_and_client_timeouts_still_runs_jobs() {
    // The client's idle session is closed between the jobs: it reconnects at its
    // next request.
    let cluster = LocalCluster::start_with(LocalClusterOptions {
        workers: 2,
        worker: quick_worker(),
        coordinator: CoordinatorConfig {
            lease_timeout: Duration::from_millis(600),
            client_idle_timeout: Duration::from_millis(400),
            ..CoordinatorConfig::default()
        },
    })
    .await
    .unwrap();
    let client = cluster.client().await.unwrap();
    let v = &vectors()[0];
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let job = Sha256dJob::new(v.header, None, window_around(v.nonce), 0).unwrap();
        let report = tokio::time::timeout(Duration::from_secs(10), client.run(&all(job)))
            .await
            .expect("the job runs")
            .unwrap();
        assert_eq!(report.hashes, WINDOW);
        assert_eq!(report.solutions[0].nonce().unwrap(), v.nonce);
    }
    client.close();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noop_jobs_run_through_the_scheduler_and_an_empty_one_is_refused() {
    let cluster = LocalCluster::start_with(LocalClusterOptions {
        workers: 2,
        worker: quick_worker(),
        coordinator: CoordinatorConfig {
            max_chunk: 100,
            ..CoordinatorConfig::default()
        },
    })
    .await
    .unwrap();
    let client = cluster.client().await.unwrap();
    let spec = JobSpec {
        kind: JobKind::Noop { keyspace: 10_000 },
        mode: SearchMode::All,
    };
    let report = client.run(&spec).await.unwrap();
    assert_eq!(
        (report.state, report.hashes, report.solutions.len()),
        (JobState::Completed, 10_000, 0)
    );
    let empty = JobSpec {
        kind: JobKind::Noop { keyspace: 0 },
        mode: SearchMode::All,
    };
    let err = client.submit(&empty).await.unwrap_err();
    assert_eq!(err.to_string(), "invalid job: the keyspace is empty");
    client.close();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_replies_is_cut_off_and_others_are_served() {
    let cluster = LocalCluster::start_with(LocalClusterOptions {
        workers: 1,
        worker: quick_worker(),
        coordinator: CoordinatorConfig {
            peer_queue_bytes: 64 << 10,
            ..CoordinatorConfig::default()
        },
    })
    .await
    .unwrap();
    let client = cluster.client().await.unwrap();
    // Listings of 40 jobs: about 2 KB per reply.
    for _ in 0..40 {
        let spec = JobSpec {
            kind: JobKind::Noop { keyspace: 1 },
            mode: SearchMode::All,
        };
        client.run(&spec).await.unwrap();
    }
    let mut s = raw_session(&cluster).await;
    let mut burst = Vec::new();
    for i in 0..20_000u32 {
        burst.extend(
            picluster_core::wire::encode_frame(&ClientToCoord::ListJobs(
                picluster_core::ids::RequestId(i),
            ))
            .unwrap(),
        );
    }
    // Sending may fail once the coordinator has closed the connection.
    let _ = s.writer.send_frame(&burst).await;
    // The coordinator closes it at once (not behind the replies it does not read).
    // The close carries the reason; on a loaded machine the client may still be
    // sending its burst when the coordinator has forgotten the connection (a few
    // round trips after the close), and then it sees a reset instead.
    match tokio::time::timeout(Duration::from_secs(20), s.connection.closed())
        .await
        .expect("the coordinator cuts the reader-less client off")
    {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code.into_inner() as u32, CloseCode::Normal as u32);
            assert_eq!(
                String::from_utf8_lossy(&c.reason),
                "too far behind: the peer does not read what it is sent"
            );
        }
        quinn::ConnectionError::Reset => {}
        other => panic!("expected the coordinator's close, got {other}"),
    }
    // Everyone else is still served.
    assert_eq!(client.jobs().await.unwrap().len(), 40);
    assert_eq!(client.status().await.unwrap().workers.len(), 1);
    client.close();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_that_dies_resumes_its_jobs_from_the_store() {
    use picluster_core::service::{CoordinatorService, RedbStore, STORE_FILE};
    let tmp = tempfile::tempdir().unwrap();
    let store_path = tmp.path().join(STORE_FILE);
    let ca = ClusterCa::generate("durable").unwrap();
    let credential = ca
        .issue(Role::Coordinator, "coordinator", &["127.0.0.1".into()])
        .unwrap();
    let config = CoordinatorConfig {
        checkpoint_interval: Duration::from_millis(100),
        max_chunk: 1 << 18,
        ..CoordinatorConfig::default()
    };
    let start = async |address: std::net::SocketAddr| {
        let mut attempts = 0;
        // The socket and the store's lock are released shortly after the old task.
        let (service, store) = loop {
            let bound =
                CoordinatorService::bind(address, ca.cert_pem(), &credential, config.clone());
            let store = RedbStore::open(&store_path);
            match (bound, store) {
                (Ok(service), Ok(store)) => break (service, store),
                _ if attempts < 200 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (bound, store) => panic!("cannot restart: {:?} {:?}", bound.err(), store.err()),
            }
        };
        let address = service.local_addr().unwrap();
        let task = tokio::spawn(service.with_store(store).run(std::future::pending()));
        (address, task)
    };
    let (address, task) = start("127.0.0.1:0".parse().unwrap()).await;
    let worker = tokio::spawn(picluster_worker::run(
        ca.bundle(Role::Worker, "pi-1", &address.to_string())
            .unwrap(),
        quick_worker(),
        std::future::pending(),
    ));
    let admin = ca
        .bundle(Role::Admin, "admin", &address.to_string())
        .unwrap();
    let client = picluster_client::Client::connect(&admin).await.unwrap();
    let v = &vectors()[0];
    let small = Sha256dJob::new(v.header, None, window_around(v.nonce), 0).unwrap();
    let first_report = client.run(&first(small)).await.unwrap();
    assert_eq!(first_report.job, picluster_client::JobId(1));
    let mut t = [0xff; 32];
    (t[0], t[1]) = (0, 0);
    let target = picluster_core::kernel::sha256d::Target(t);
    let big = Sha256dJob::new(v.header, Some(target), 0..1 << 24, 0).unwrap();
    let id = client.submit(&all(big)).await.unwrap();
    // A second client waits for it across the crash.
    let waiter = picluster_client::Client::connect(&admin).await.unwrap();
    waiter.set_reconnect_timeout(Duration::from_secs(60));
    let waiting = tokio::spawn(async move {
        let mut watch = waiter.watch(id).await.unwrap();
        let mut reconnections = 0;
        while let Some(event) = watch.next().await {
            match event {
                picluster_client::JobEvent::Reconnecting => reconnections += 1,
                picluster_client::JobEvent::Finished(report) => return (*report, reconnections),
                _ => {}
            }
        }
        panic!("the watch gave up: {:?}", watch.finish(|_| {}).await);
    });
    // Die once some of the big job is committed and checkpointed.
    let progressed = async || {
        client.jobs().await.is_ok_and(|jobs| {
            jobs.iter()
                .any(|j| j.progress.job == id && j.progress.hashes > 1 << 20)
        })
    };
    wait_until("the big job progresses", progressed).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    task.abort();
    let _ = task.await;
    client.close();

    let (_, task) = start(address).await;
    let client = picluster_client::Client::connect(&admin).await.unwrap();
    let jobs = client.jobs().await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].progress.state, JobState::Completed);
    let resumed = jobs[1].progress.hashes;
    assert!(resumed > 0 && resumed < 1 << 24, "resumed from {resumed}");
    // The worker comes back by itself and the job completes, exactly.
    let report = client.wait(id).await.unwrap();
    assert_eq!(
        (report.state, report.hashes, report.keyspace),
        (JobState::Completed, 1 << 24, 1 << 24)
    );
    let expected: Vec<u32> = reference_scan(&big.header, &big.target, 0..1 << 24);
    assert!(expected.len() > 100 && !report.truncated);
    assert_eq!(
        report
            .solutions
            .iter()
            .map(|s| s.nonce().unwrap())
            .collect::<Vec<_>>(),
        expected
    );
    // The client that was waiting reconnected by itself and got the same report.
    let (waited, reconnections) = waiting.await.unwrap();
    assert_eq!(waited, report);
    assert_eq!(reconnections, 1);
    // The finished job keeps its report, and ids continue.
    let again = client.wait(picluster_client::JobId(1)).await.unwrap();
    assert_eq!(again.solutions, first_report.solutions);
    let next = client.submit(&first(small)).await.unwrap();
    assert_eq!(next, picluster_client::JobId(3));
    client.close();
    task.abort();
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_gives_up_after_its_reconnect_timeout_with_a_retryable_error() {
    let cluster = LocalCluster::start_with(LocalClusterOptions {
        workers: 1,
        worker: quick_worker(),
        coordinator: CoordinatorConfig::default(),
    })
    .await
    .unwrap();
    let client = cluster.client().await.unwrap();
    client.set_reconnect_timeout(Duration::from_millis(700));
    let v = &vectors()[0];
    let job = Sha256dJob::new(v.header, None, 0..1 << 32, 0).unwrap();
    let id = client.submit(&all(job)).await.unwrap();
    let mut watch = client.watch(id).await.unwrap();
    cluster.shutdown().await;
    let started = std::time::Instant::now();
    let mut events = Vec::new();
    while let Some(event) = watch.next().await {
        events.push(event);
    }
    assert!(events.contains(&picluster_client::JobEvent::Reconnecting));
    let err = watch.finish(|_| {}).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_machine_with_a_working_workers_credential_is_refused_and_gives_up() {
    let cluster = LocalCluster::start_with(LocalClusterOptions {
        workers: 1,
        worker: quick_worker(),
        coordinator: CoordinatorConfig::default(),
    })
    .await
    .unwrap();
    let client = cluster.client().await.unwrap();
    let v = &vectors()[2];
    let job = Sha256dJob::new(v.header, None, window_around(v.nonce), 0).unwrap();
    let watched = client.submit(&all(job)).await.unwrap();
    // The same credential on a second machine.
    let copy = tokio::spawn(picluster_worker::run(
        cluster.bundle(Role::Worker, "worker-1").unwrap(),
        WorkerOptions {
            name_in_use_give_up: Duration::from_secs(1),
            ..quick_worker()
        },
        std::future::pending(),
    ));
    let ended = tokio::time::timeout(Duration::from_secs(30), copy)
        .await
        .expect("the copy gives up")
        .unwrap();
    let Err(e @ picluster_worker::WorkerError::NameInUse { .. }) = ended else {
        panic!("{ended:?}")
    };
    let message = e.to_string();
    assert!(
        message.contains("another machine is connected and working as worker worker-1"),
        "{message}"
    );
    assert!(message.contains("picluster add-worker"), "{message}");
    // The live worker was never evicted: it did the whole job.
    let report = client.wait(watched).await.unwrap();
    assert_eq!(report.state, JobState::Completed);
    assert_eq!(report.solutions[0].nonce().unwrap(), v.nonce);
    let names: Vec<&str> = report
        .contributions
        .iter()
        .map(|c| c.worker.as_str())
        .collect();
    assert_eq!(names, vec!["worker-1"]);
    assert_eq!(client.status().await.unwrap().workers.len(), 1);
    client.close();
    cluster.shutdown().await;
}

/// The close code and reason of a connection, within 5 s.
async fn closed_with(connection: &quinn::Connection) -> (u32, String) {
    match tokio::time::timeout(Duration::from_secs(5), connection.closed())
        .await
        .expect("closed within 5 s")
    {
        quinn::ConnectionError::ApplicationClosed(c) => (
            c.error_code.into_inner() as u32,
            String::from_utf8_lossy(&c.reason).into_owned(),
        ),
        other => panic!("expected an application close, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_say_hello_or_leave_a_frame_half_sent_are_closed() {
    let cluster = LocalCluster::start_with(LocalClusterOptions {
        workers: 1,
        worker: quick_worker(),
        coordinator: CoordinatorConfig {
            hello_timeout: Duration::from_millis(300),
            frame_timeout: Duration::from_millis(300),
            ..CoordinatorConfig::default()
        },
    })
    .await
    .unwrap();
    // A certified peer that opens its stream, sends two bytes of a header and stops.
    let bundle = cluster.bundle(Role::Client, "mute").unwrap();
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let connection = endpoint
        .connect_with(
            net::client_config(&bundle).unwrap(),
            cluster.address(),
            "127.0.0.1",
        )
        .unwrap()
        .await
        .unwrap();
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    send.write_all(&[1, 0]).await.unwrap();
    let started = std::time::Instant::now();
    let (code, reason) = closed_with(&connection).await;
    assert_eq!(code, CloseCode::Protocol as u32);
    assert_eq!(reason, "no hello, or a frame left half-sent, for 300ms");
    assert!(started.elapsed() < Duration::from_secs(3));

    // A greeted client that announces a 1 MiB frame and sends 10 bytes of it.
    let mut s = raw_session(&cluster).await;
    let mut frame = (1u32 << 20).to_le_bytes().to_vec();
    frame.extend_from_slice(&[0; 10]);
    s.writer.send_frame(&frame).await.unwrap();
    let (code, reason) = closed_with(&s.connection).await;
    assert_eq!(code, CloseCode::Protocol as u32);
    assert_eq!(reason, "no hello, or a frame left half-sent, for 300ms");

    // A greeted client that sends two bytes of a frame's header and stops.
    let mut s = raw_session(&cluster).await;
    s.writer.send_frame(&[1, 0]).await.unwrap();
    let (code, reason) = closed_with(&s.connection).await;
    assert_eq!(code, CloseCode::Protocol as u32);
    assert_eq!(reason, "no hello, or a frame left half-sent, for 300ms");

    // Everyone else is served.
    let client = cluster.client().await.unwrap();
    let v = &vectors()[0];
    let job = Sha256dJob::new(v.header, None, window_around(v.nonce), 0).unwrap();
    let report = client.run(&first(job)).await.unwrap();
    assert_eq!(report.solutions[0].nonce().unwrap(), v.nonce);
    client.close();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_address_and_handshake_limits_are_refused() {
    // Two connections at once from one address.
    let cluster = LocalCluster::start_with(LocalClusterOptions {
        workers: 0,
        worker: quick_worker(),
        coordinator: CoordinatorConfig {
            max_connections_per_address: 2,
            ..CoordinatorConfig::default()
        },
    })
    .await
    .unwrap();
    let first = cluster.client().await.unwrap();
    let second = cluster.client().await.unwrap();
    assert!(cluster.client().await.is_err(), "a third is refused");
    assert_eq!(second.status().await.unwrap().workers.len(), 0);
    first.close();
    wait_until(
        "a closed connection frees its place",
        async || match cluster.client().await {
            Ok(c) => {
                c.close();
                true
            }
            Err(_) => false,
        },
    )
    .await;
    second.close();
    cluster.shutdown().await;

    // Three handshakes, then (almost) none: the cluster's own start-up check took one.
    let cluster = LocalCluster::start_with(LocalClusterOptions {
        workers: 0,
        worker: quick_worker(),
        coordinator: CoordinatorConfig {
            handshakes_per_second: 0.001,
            handshake_burst: 3,
            ..CoordinatorConfig::default()
        },
    })
    .await
    .unwrap();
    let a = cluster.client().await.unwrap();
    let b = cluster.client().await.unwrap();
    assert!(
        cluster.client().await.is_err(),
        "the fourth handshake is refused"
    );
    // Those admitted are served.
    assert_eq!(a.jobs().await.unwrap().len(), 0);
    assert_eq!(b.jobs().await.unwrap().len(), 0);
    a.close();
    b.close();
    cluster.shutdown().await;
}
