//! Credentials over real QUIC: revocation, join tokens with a pinned CA, certificate
//! lifetimes and renewal. Each negative case is refused with an error naming the
//! reason, next to a positive control that is accepted.

use picluster_client::{ClientError, JobKind, JobSpec, JobState, LocalCluster, SearchMode};
use picluster_core::identity::Role;
use picluster_core::kernel::sha256d::Sha256dJob;
use picluster_core::net::NetError;
use picluster_core::token::JoinToken;
use picluster_core::trust::{Bundle, ClusterCa, Validity};
use picluster_core::wire::{CloseCode, JoinRefusal, Refusal};
use picluster_suite::fixtures::vectors;
use picluster_worker::{enroll, WorkerError, WorkerOptions};
use std::time::Duration;
use time::OffsetDateTime;

fn options() -> WorkerOptions {
    WorkerOptions {
        threads: 1,
        benchmark: Duration::from_millis(10),
        ..WorkerOptions::default()
    }
}

/// Block 1's nonce in a window of 2^20 around it, all solutions.
fn block_1_job() -> (JobSpec, u32) {
    let v = &vectors()[1];
    let start = u64::from(v.nonce).saturating_sub(1 << 18);
    let job = Sha256dJob::new(v.header, None, start..start + (1 << 20), 0).unwrap();
    (
        JobSpec {
            kind: JobKind::Sha256d(job),
            mode: SearchMode::All,
        },
        v.nonce,
    )
}

async fn run_job(cluster: &LocalCluster) {
    let client = cluster.client().await.unwrap();
    let (spec, nonce) = block_1_job();
    let report = client.run(&spec).await.unwrap();
    assert_eq!(report.state, JobState::Completed);
    let nonces: Vec<u32> = report
        .solutions
        .iter()
        .map(|s| s.nonce().unwrap())
        .collect();
    assert_eq!(nonces, vec![nonce]);
    assert_eq!(report.hashes, 1 << 20);
    client.close();
}

fn spawn_worker(bundle: Bundle) -> tokio::task::JoinHandle<Result<(), WorkerError>> {
    tokio::spawn(picluster_worker::run(
        bundle,
        options(),
        std::future::pending(),
    ))
}

fn closed_code(result: Result<(), WorkerError>) -> (u32, String) {
    match result {
        Err(WorkerError::Net(NetError::Closed { code, reason })) => (code, reason),
        other => panic!("expected a close by the coordinator, got {other:?}"),
    }
}

async fn worker_names(cluster: &LocalCluster) -> Vec<String> {
    let client = cluster.client().await.unwrap();
    let names = client
        .status()
        .await
        .unwrap()
        .workers
        .into_iter()
        .map(|w| w.name)
        .collect();
    client.close();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_worker_is_closed_within_a_second_and_its_copies_refused() {
    let cluster = LocalCluster::start(1, 1).await.unwrap();
    let stolen = cluster.bundle(Role::Worker, "pi-lost").unwrap();
    let live = spawn_worker(stolen.clone());
    cluster
        .wait_for_workers(2, Duration::from_secs(10))
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();

    let started = std::time::Instant::now();
    let revocation = client.revoke("pi-lost").await.unwrap();
    assert_eq!(revocation.name, "pi-lost");
    assert_eq!(revocation.closed, 1);
    let ended = tokio::time::timeout(Duration::from_secs(1), live)
        .await
        .expect("the revoked worker is closed within a second")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    let (code, reason) = closed_code(ended);
    assert_eq!(code, CloseCode::Revoked as u32);
    assert!(reason.contains("pi-lost is revoked"), "{reason}");

    // A copy of the credential is refused at its handshake, and does not retry.
    let copy = tokio::time::timeout(Duration::from_secs(10), spawn_worker(stolen))
        .await
        .expect("a revoked worker gives up")
        .unwrap();
    assert_eq!(closed_code(copy).0, CloseCode::Revoked as u32);

    // The status shows the name revoked, and the other worker still working.
    let credentials = client.credentials().await.unwrap();
    assert_eq!(
        credentials
            .revoked
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        vec!["pi-lost"]
    );
    assert_eq!(worker_names(&cluster).await, vec!["worker-1"]);
    run_job(&cluster).await;

    // A new credential for the name, made after the revocation, works.
    let replacement = spawn_worker(cluster.bundle(Role::Worker, "pi-lost").unwrap());
    cluster
        .wait_for_workers(2, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(worker_names(&cluster).await, vec!["pi-lost", "worker-1"]);

    // Only an admin revokes, and not its own credential.
    let mut alice = Bundle::clone(&cluster.bundle(Role::Client, "alice").unwrap());
    alice.role = Role::Client;
    let alice = picluster_client::Client::connect(&alice).await.unwrap();
    match alice.revoke("worker-1").await {
        Err(ClientError::Refused(Refusal::Forbidden(why))) => {
            assert!(why.to_string().contains("admin"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match client.revoke("local-admin").await {
        Err(ClientError::Refused(Refusal::Forbidden(why))) => {
            assert!(why.to_string().contains("lock you out"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match client.revoke("no/such").await {
        Err(ClientError::Refused(Refusal::InvalidName(name))) => assert_eq!(name, "no/such"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    alice.close();
    client.close();
    replacement.abort();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_joins_with_a_token_and_the_token_is_spent() {
    let cluster = LocalCluster::start(1, 1).await.unwrap();
    let client = cluster.client().await.unwrap();
    let (token, info) = client
        .create_token(Role::Worker, Duration::from_secs(600), 1, false)
        .await
        .unwrap();
    assert_eq!(info.uses_left, 1);
    assert_eq!(info.created_by, "local-admin");
    let text = token.to_string();
    assert_eq!(text.parse::<JoinToken>().unwrap(), token);

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bundle = enroll::join(&token, "pi-new", &state).await.unwrap();
    assert_eq!(
        (bundle.role, bundle.name.as_str()),
        (Role::Worker, "pi-new")
    );
    assert_eq!(bundle.ca, cluster.ca().cert_pem());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&enroll::state_bundle(&state)), 0o600);
    }
    // The key never left: the stored bundle's key is the one the certificate is for,
    // which the coordinator accepts.
    assert_eq!(enroll::load_state(&state).unwrap().unwrap(), bundle);
    let worker = spawn_worker(bundle);
    cluster
        .wait_for_workers(2, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(worker_names(&cluster).await, vec!["pi-new", "worker-1"]);
    run_job(&cluster).await;

    // Used once: a second machine with the same token is told so.
    let other = dir.path().join("other");
    match enroll::join(&token, "pi-other", &other).await {
        Err(WorkerError::Net(NetError::JoinRefused(JoinRefusal::UsedUp(id)))) => {
            assert_eq!(id, token.id)
        }
        other => panic!("expected a used-up token, got {other:?}"),
    }
    assert!(!other.join(enroll::STATE_BUNDLE).exists());
    // A wrong secret is not told apart from an unknown token.
    let mut guessed = token.clone();
    guessed.secret[0] ^= 1;
    match enroll::join(&guessed, "pi-other", &other).await {
        Err(WorkerError::Net(NetError::JoinRefused(JoinRefusal::UnknownToken))) => {}
        other => panic!("expected an unknown token, got {other:?}"),
    }
    let tokens = client.tokens().await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].uses_left, 0);
    client.revoke_token(&token.id).await.unwrap();
    assert!(client.tokens().await.unwrap().is_empty());
    match client.revoke_token(&token.id).await {
        Err(ClientError::Refused(Refusal::UnknownToken(id))) => assert_eq!(id, token.id),
        other => panic!("expected an unknown token, got {other:?}"),
    }
    client.close();
    worker.abort();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_are_refused_for_expired_tokens_taken_names_and_impostors() {
    let cluster = LocalCluster::start(1, 1).await.unwrap();
    let client = cluster.client().await.unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Expired.
    let (short, _) = client
        .create_token(Role::Worker, Duration::from_secs(1), 5, false)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    match enroll::join(&short, "pi-late", &dir.path().join("late")).await {
        Err(WorkerError::Net(NetError::JoinRefused(JoinRefusal::Expired(id)))) => {
            assert_eq!(id, short.id)
        }
        other => panic!("expected an expired token, got {other:?}"),
    }

    // A connected worker's name, and a reserved one, without --replace.
    let (token, _) = client
        .create_token(Role::Worker, Duration::from_secs(600), 5, false)
        .await
        .unwrap();
    // (`admin` and `coordinator` are refused before anything is sent:
    // joins::a_reserved_name_is_refused_as_reserved.)
    for name in ["worker-1"] {
        match enroll::join(&token, name, &dir.path().join(name)).await {
            Err(WorkerError::Net(NetError::JoinRefused(JoinRefusal::NameTaken(n)))) => {
                assert_eq!(n, name)
            }
            other => panic!("expected a taken name, got {other:?}"),
        }
    }
    match enroll::join(&token, "bad name", &dir.path().join("bad")).await {
        Err(WorkerError::Net(NetError::JoinRefused(JoinRefusal::BadName(n)))) => {
            assert_eq!(n, "bad name")
        }
        other => panic!("expected a bad name, got {other:?}"),
    }

    // An impostor at the token's address: the worker aborts before sending the
    // secret, which the impostor therefore never sees.
    let impostor = LocalCluster::start(0, 1).await.unwrap();
    let mut misdirected = token.clone();
    misdirected.address = impostor.address().to_string();
    match enroll::join(&misdirected, "pi-x", &dir.path().join("x")).await {
        Err(WorkerError::Net(e @ NetError::PinMismatch { .. })) => {
            assert!(e.to_string().contains("secret was not sent"), "{e}");
            assert!(!e.is_retryable());
        }
        other => panic!("expected a pin mismatch, got {other:?}"),
    }
    // Nothing was spent on the refusals.
    let tokens = client.tokens().await.unwrap();
    let left: Vec<u32> = tokens
        .iter()
        .filter(|t| t.id == token.id)
        .map(|t| t.uses_left)
        .collect();
    assert_eq!(left, vec![5]);

    // With --replace, the name is taken over: the old machine is revoked.
    let (replace, _) = client
        .create_token(Role::Worker, Duration::from_secs(600), 1, true)
        .await
        .unwrap();
    let bundle = enroll::join(&replace, "worker-1", &dir.path().join("w1"))
        .await
        .unwrap();
    let credentials = client.credentials().await.unwrap();
    assert!(credentials.revoked.iter().any(|r| r.name == "worker-1"));
    let worker = spawn_worker(bundle);
    cluster
        .wait_for_workers(1, Duration::from_secs(10))
        .await
        .unwrap();
    run_job(&cluster).await;

    // Only admins make tokens.
    let alice = picluster_client::Client::connect(&cluster.bundle(Role::Client, "alice").unwrap())
        .await
        .unwrap();
    assert!(matches!(
        alice
            .create_token(Role::Worker, Duration::from_secs(60), 1, false)
            .await,
        Err(ClientError::Refused(Refusal::Forbidden(_)))
    ));
    alice.close();
    client.close();
    worker.abort();
    impostor.shutdown().await;
    cluster.shutdown().await;
}

fn days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_not_yet_valid_certificates_are_refused_and_old_ones_renewed() {
    let mut cluster = LocalCluster::start(0, 1).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let with_validity = |name: &str, validity: Validity| {
        let credential = cluster
            .ca()
            .issue_with(Role::Worker, name, &[], validity)
            .unwrap();
        Bundle {
            cert: credential.cert_pem,
            key: credential.key_pem,
            ..cluster.bundle(Role::Worker, name).unwrap()
        }
    };
    for (name, validity) in [
        (
            "expired",
            Validity {
                not_before: now - days(100),
                not_after: now - days(10),
            },
        ),
        (
            "not-yet",
            Validity {
                not_before: now + days(10),
                not_after: now + days(100),
            },
        ),
    ] {
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            spawn_worker(with_validity(name, validity)),
        )
        .await
        .expect("a refused certificate is not retried")
        .unwrap();
        match result {
            Err(WorkerError::Net(e @ NetError::CertificateRejected(_))) => {
                assert!(
                    e.to_string().contains("refused this certificate"),
                    "{name}: {e}"
                )
            }
            other => panic!("{name}: expected a rejected certificate, got {other:?}"),
        }
    }

    // Two thirds through its validity: renewed over the working connection, into
    // its file, and the worker keeps working.
    let old = with_validity(
        "pi-old",
        Validity {
            not_before: now - days(70),
            not_after: now + days(20),
        },
    );
    assert!(enroll::renewal_due(&old, unix_ms()));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pi-old.bundle");
    old.save(&file).unwrap();
    // A renewal is asked for only where the renewed certificate can be kept.
    enroll::can_store_renewal(&file).unwrap();
    assert!(enroll::can_store_renewal(&dir.path().join("gone/pi-old.bundle")).is_err());
    let options = WorkerOptions {
        credential_file: Some(file.clone()),
        ..options()
    };
    let worker = tokio::spawn(picluster_worker::run(
        old.clone(),
        options,
        std::future::pending(),
    ));
    cluster.add_worker("worker-1").unwrap();
    cluster
        .wait_for_workers(2, Duration::from_secs(10))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let renewed = loop {
        let stored = Bundle::load(&file).unwrap();
        if stored.cert != old.cert {
            break stored;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no renewal within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(renewed.key, old.key, "a renewal makes a new key");
    let identity = renewed.identity().unwrap();
    assert_eq!(
        (identity.role, identity.name.as_str()),
        (Role::Worker, "pi-old")
    );
    let left_days = (identity.expires_ms - unix_ms()) / 86_400_000;
    assert!((89..=90).contains(&left_days), "{left_days}");
    assert!(!enroll::renewal_due(&renewed, unix_ms()));
    run_job(&cluster).await;
    // The status shows when each worker's certificate expires.
    let client = cluster.client().await.unwrap();
    let credentials = client.credentials().await.unwrap();
    let old_expiry = old.identity().unwrap().expires_ms;
    let listed: Vec<(String, u64)> = credentials
        .connected
        .iter()
        .filter(|c| c.role == Role::Worker)
        .map(|c| (c.name.clone(), c.expires_ms))
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.contains(&("pi-old".to_string(), old_expiry)));
    client.close();
    worker.abort();
    cluster.shutdown().await;
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn a_certificate_request_is_checked_and_its_names_ignored() {
    let ca = ClusterCa::generate("t").unwrap();
    let (_, csr) = picluster_core::trust::make_request("asks-for-admin").unwrap();
    let pem = ca
        .sign_request(Role::Worker, "pi-9", &csr, 90, 1_700_000_000_000)
        .unwrap();
    let bundle = Bundle {
        cert: pem,
        ..ca.bundle(Role::Worker, "x", "127.0.0.1:1").unwrap()
    };
    let identity = bundle.identity().unwrap();
    assert_eq!(
        (identity.role, identity.name.as_str()),
        (Role::Worker, "pi-9")
    );
    assert_eq!(identity.issued_ms, 1_700_000_000_000);
    // A tampered request does not verify; garbage is not a request.
    let mut tampered = csr.clone();
    let i = tampered.len() / 2;
    tampered[i] ^= 0x40;
    for (bad, why) in [
        (tampered, ""),
        (b"not a csr".to_vec(), "not a DER certificate request"),
        (vec![0; 9000], "longer than"),
    ] {
        let e = ca
            .sign_request(Role::Worker, "pi-9", &bad, 90, 0)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("certificate request refused"), "{e}");
        assert!(e.contains(why), "{e}");
    }
}

/// A worker built from the library that claims every chunk searched the moment it
/// gets it, without hashing (the attack in issue 10: 99.66 % of a job in 27 ms). It
/// speaks the current protocol, so it is given a share target, and ignores it.
async fn lazy_worker(bundle: Bundle) -> (Duration, u32, String) {
    use picluster_core::net;
    use picluster_core::wire::{
        CoordToWorker, Progress, WorkerHello, WorkerToCoord, PROTOCOL_MINOR,
    };
    let hello = WorkerToCoord::Hello(WorkerHello {
        minor: PROTOCOL_MINOR,
        agent_version: "lazy".into(),
        threads: 64,
        arch: "x86_64".into(),
        kernel_impl: "none".into(),
        bench_hps: 1_000_000_000_000,
        kernels: vec![],
    });
    let net::Session {
        endpoint: _endpoint,
        connection,
        mut reader,
        mut writer,
        ..
    } = net::connect::<WorkerToCoord, CoordToWorker>(&bundle, &hello)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        match reader.next::<CoordToWorker>().await {
            Ok(CoordToWorker::Assign(a)) => {
                let claim = WorkerToCoord::Progress(Progress {
                    lease: a.lease,
                    position: a.end,
                });
                if writer.send(&claim).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    match connection.closed().await {
        quinn::ConnectionError::ApplicationClosed(c) => (
            started.elapsed(),
            c.error_code.into_inner() as u32,
            String::from_utf8_lossy(&c.reason).into_owned(),
        ),
        other => panic!("expected the coordinator to close the lazy worker, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_worker_is_caught_by_its_shares_and_the_job_still_finds_the_answer() {
    let cluster = LocalCluster::start(1, 1).await.unwrap();
    let client = cluster.client().await.unwrap();
    let lazy = tokio::spawn(lazy_worker(cluster.bundle(Role::Worker, "lazy").unwrap()));
    cluster
        .wait_for_workers(2, Duration::from_secs(10))
        .await
        .unwrap();
    let v = &vectors()[1];
    let start = u64::from(v.nonce) - (1 << 22);
    let job = Sha256dJob::new(v.header, None, start..start + (1 << 23), 0).unwrap();
    let spec = JobSpec {
        kind: JobKind::Sha256d(job),
        mode: SearchMode::All,
    };
    let id = client.submit(&spec).await.unwrap();
    let (caught_after, code, reason) = tokio::time::timeout(Duration::from_secs(60), lazy)
        .await
        .expect("the lazy worker is caught")
        .unwrap();
    println!("lazy worker caught {caught_after:?} after it connected: {reason}");
    assert_eq!(code, CloseCode::BadResult as u32);
    assert!(
        reason.contains("shares where the progress claimed implies"),
        "{reason}"
    );
    assert!(reason.contains("lazy is quarantined"), "{reason}");
    let report = client.wait(id).await.unwrap();
    assert_eq!(report.state, JobState::Completed);
    let nonces: Vec<u32> = report
        .solutions
        .iter()
        .map(|s| s.nonce().unwrap())
        .collect();
    assert_eq!(
        nonces,
        vec![v.nonce],
        "the true nonce is found despite the lazy claims"
    );
    assert_eq!(report.hashes, 1 << 23);
    // Whatever the lazy worker claimed was searched again by the honest one.
    let honest: u64 = report
        .contributions
        .iter()
        .filter(|c| c.worker == "worker-1")
        .map(|c| c.hashes)
        .sum();
    assert_eq!(honest, 1 << 23, "{:?}", report.contributions);
    let status = client.status().await.unwrap();
    let lazy_state: Vec<&str> = status
        .workers
        .iter()
        .filter(|w| w.name == "lazy")
        .map(|w| w.state.as_str())
        .collect();
    assert_eq!(lazy_state, vec!["quarantined"]);
    client.close();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_workers_of_different_speeds_are_never_taken_for_lazy_ones() {
    // Two workers, one and two threads on two cores: the one-thread worker is the
    // slow one. Several jobs, so vardiff retargets and many windows are judged.
    let cluster = LocalCluster::start(0, 1).await.unwrap();
    let mut cluster = cluster;
    cluster
        .add_worker_with(
            "slow",
            WorkerOptions {
                threads: 1,
                ..options()
            },
        )
        .unwrap();
    cluster
        .add_worker_with(
            "fast",
            WorkerOptions {
                threads: 2,
                ..options()
            },
        )
        .unwrap();
    cluster
        .wait_for_workers(2, Duration::from_secs(10))
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();
    let v = &vectors()[1];
    for round in 0..3u64 {
        let start = u64::from(v.nonce) - (1 << 24) + round;
        let job = Sha256dJob::new(v.header, None, start..start + (1 << 25), 0).unwrap();
        let report = client
            .run(&JobSpec {
                kind: JobKind::Sha256d(job),
                mode: SearchMode::All,
            })
            .await
            .unwrap();
        assert_eq!(report.state, JobState::Completed);
        assert_eq!(report.hashes, 1 << 25);
        assert_eq!(report.solutions.len(), 1);
    }
    let status = client.status().await.unwrap();
    let states: Vec<(String, &str)> = status
        .workers
        .iter()
        .map(|w| (w.name.clone(), w.state.as_str()))
        .collect();
    assert_eq!(
        states,
        vec![("fast".to_string(), "idle"), ("slow".to_string(), "idle")]
    );
    client.close();
    cluster.shutdown().await;
}

/// The share test's verdict against simulated honest and lazy workers: Poisson
/// counts drawn with a seeded generator (inverse transform), judged as the
/// coordinator judges a window.
#[test]
fn the_share_test_has_no_false_alarm_in_a_million_honest_windows_and_catches_a_tenth() {
    use picluster_core::coordinator::{poisson_cdf, FALSE_ALARM, WINDOW_SHARES};
    let mut rng = picluster_suite::sim::Rng(0x5348_4152);
    let mut draw = |lambda: f64| {
        let u = (rng.bits() >> 11) as f64 / (1u64 << 53) as f64;
        let (mut k, mut p) = (0u32, (-lambda).exp());
        let mut cdf = p;
        while cdf < u && k < 10_000 {
            k += 1;
            p *= lambda / f64::from(k);
            cdf += p;
        }
        k
    };
    let judged = |observed: u32| poisson_cdf(observed, WINDOW_SHARES) < FALSE_ALARM;
    let honest_alarms = (0..1_000_000)
        .filter(|_| judged(draw(WINDOW_SHARES)))
        .count();
    assert_eq!(honest_alarms, 0);
    // The threshold: 4 shares where 32 are expected is too few, 5 is not.
    assert!(judged(4) && !judged(5));
    // A worker that hashes a tenth of what it claims: caught in most windows.
    let caught = (0..10_000)
        .filter(|_| judged(draw(WINDOW_SHARES / 10.0)))
        .count();
    assert!(caught > 7_000, "{caught}");
    // One that hashes nothing: every window.
    assert!(judged(0));
    assert!((poisson_cdf(0, 2.0) - (-2f64).exp()).abs() < 1e-15);
    assert!((poisson_cdf(2, 1.0) - 2.5 * (-1f64).exp()).abs() < 1e-15);
}

/// Revocations, tokens and enrolled names survive a restart: through the journal,
/// a real store file, and recovery.
#[test]
fn revocations_and_tokens_are_durable() {
    use picluster_core::coordinator::{
        Coordinator, CoordinatorConfig, Inbound, Snapshot, Transmit,
    };
    use picluster_core::identity::PeerIdentity;
    use picluster_core::ids::{ConnId, RequestId};
    use picluster_core::service::{RedbStore, Store};
    use picluster_core::wire::{
        ClientHello, ClientToCoord, CoordToClient, CreateToken, WorkerRequest,
    };
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("store.redb");
    let now = std::time::Instant::now();
    let t0 = 1_800_000_000_000;
    let admin = ConnId(1);
    let greet = |core: &mut Coordinator| {
        core.handle_connected(now, admin, PeerIdentity::new(Role::Admin, "admin"));
        core.handle_inbound(
            now,
            admin,
            Inbound::Client(ClientToCoord::Hello(ClientHello {
                minor: picluster_core::wire::PROTOCOL_MINOR,
                client_version: "t".into(),
            })),
        );
    };
    let mut core =
        Coordinator::recover(CoordinatorConfig::default(), Snapshot::default(), now, t0).unwrap();
    greet(&mut core);
    core.handle_connected(now, ConnId(2), PeerIdentity::new(Role::Worker, "pi-1"));
    core.handle_inbound(
        now,
        admin,
        Inbound::Client(ClientToCoord::Revoke(WorkerRequest {
            request: RequestId(1),
            worker: "pi-lost".into(),
        })),
    );
    core.handle_inbound(
        now,
        admin,
        Inbound::Client(ClientToCoord::CreateToken(CreateToken {
            request: RequestId(2),
            id: "00112233aabb".into(),
            secret_sha256: [9; 32],
            role: Role::Worker,
            ttl_s: 3600,
            uses: 3,
            replace: false,
        })),
    );
    let mut store = RedbStore::open(&path).unwrap();
    while let Some((seq, records)) = core.poll_records() {
        store.commit(&records).unwrap();
        core.handle_durable(now, seq);
    }
    drop(core);
    drop(store);

    let snapshot = RedbStore::open(&path).unwrap().load().unwrap();
    assert_eq!(snapshot.revoked.get("pi-lost"), Some(&t0));
    assert_eq!(snapshot.tokens["00112233aabb"].uses_left, 3);
    assert_eq!(snapshot.enrolled.get("pi-1"), Some(&Role::Worker));
    let mut core =
        Coordinator::recover(CoordinatorConfig::default(), snapshot, now, t0 + 1000).unwrap();
    greet(&mut core);
    // A certificate issued before the revocation is refused; one issued after is not.
    let mut old = PeerIdentity::new(Role::Worker, "pi-lost");
    old.issued_ms = t0 - 5;
    core.handle_connected(now, ConnId(3), old);
    let mut new = PeerIdentity::new(Role::Worker, "pi-lost");
    new.issued_ms = t0 + 5;
    core.handle_connected(now, ConnId(4), new);
    core.handle_inbound(
        now,
        admin,
        Inbound::Client(ClientToCoord::ListTokens(RequestId(3))),
    );
    let out: Vec<Transmit> = std::iter::from_fn(|| core.poll_transmit(now)).collect();
    let closed: Vec<(ConnId, u32)> = out
        .iter()
        .filter_map(|t| match t {
            Transmit::Close(c, r) => Some((*c, r.code() as u32)),
            _ => None,
        })
        .collect();
    assert_eq!(closed, vec![(ConnId(3), CloseCode::Revoked as u32)]);
    let tokens: Vec<(String, u32)> = out
        .iter()
        .filter_map(|t| match t {
            Transmit::ToClient(_, CoordToClient::Tokens(_, list)) => Some(
                list.iter()
                    .map(|t| (t.id.clone(), t.uses_left))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(tokens, vec![("00112233aabb".to_string(), 3)]);
}

#[test]
#[ignore = "the body of a `picluster-worker` command process for the test below"]
fn worker_cli_process() {
    let Ok(args) = std::env::var("PICLUSTER_TEST_WORKER_ARGS") else {
        return;
    };
    let mut argv = vec!["picluster-worker".to_string()];
    argv.extend(args.split('\u{1f}').map(str::to_string));
    let code = picluster_worker::cli::main_from(picluster_worker::Registry::new(), argv);
    std::process::exit(if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        1
    });
}

fn picluster(args: &[&str]) -> (std::process::ExitCode, String) {
    let mut out = Vec::new();
    let mut argv = vec!["picluster"];
    argv.extend_from_slice(args);
    let code = match picluster_client::cli::run_from(argv, &mut out) {
        Ok(code) => code,
        Err(e) => {
            out.extend_from_slice(format!("error: {e}").as_bytes());
            std::process::ExitCode::FAILURE
        }
    };
    (code, String::from_utf8(out).unwrap())
}

/// The commands as an admin types them: `picluster token create`, the worker's
/// `--join` in its own process, `token list`, `revoke`, and `picluster join` for a
/// client token; a worker token is refused, unspent, to a client.
#[test]
fn the_token_commands_enroll_a_worker_process_and_a_client() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cluster = runtime.block_on(LocalCluster::start(0, 1)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let admin = tmp.path().join("admin.bundle");
    cluster
        .bundle(Role::Admin, "root")
        .unwrap()
        .save(&admin)
        .unwrap();
    let a = admin.to_str().unwrap();
    let (code, out) = picluster(&["token", "create", "--ttl", "10m", "--bundle", a, "--json"]);
    assert_eq!(code, std::process::ExitCode::SUCCESS, "{out}");
    let json: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let token = json["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("pcj1."), "{token}");
    assert_eq!(json["uses"], 1);

    // A client cannot spend a worker token.
    let wrong = runtime.block_on(picluster_client::join_as_client(
        &token.parse().unwrap(),
        "alice",
    ));
    match wrong {
        Err(ClientError::Net(NetError::JoinRefused(JoinRefusal::WrongRole { token, asked }))) => {
            assert_eq!((token, asked), (Role::Worker, Role::Client))
        }
        other => panic!("expected a wrong-role refusal, got {other:?}"),
    }

    let state = tmp.path().join("pi-cli");
    let args = [
        "--join",
        token.as_str(),
        "--name",
        "pi-cli",
        "--state-dir",
        state.to_str().unwrap(),
        "--threads",
        "1",
    ]
    .join("\u{1f}");
    let worker = crate::crash::spawn_self_with(
        "trust::worker_cli_process",
        &[("PICLUSTER_TEST_WORKER_ARGS", args.as_str())],
        std::process::Stdio::null,
    );
    runtime
        .block_on(cluster.wait_for_workers(1, Duration::from_secs(20)))
        .unwrap();
    assert!(enroll::state_bundle(&state).exists());
    let (_, out) = picluster(&["token", "list", "--bundle", a, "--json"]);
    let json: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(json["tokens"][0]["uses_left"], 0);
    let (_, out) = picluster(&["status", "--bundle", a, "--json"]);
    let json: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(json["workers"][0]["name"], "pi-cli");
    assert_eq!(json["certificates"].as_array().unwrap().len(), 2, "{json}");

    // Revoked: its process exits on its own (a revoked worker does not retry).
    let (code, out) = picluster(&["revoke", "pi-cli", "--bundle", a]);
    assert_eq!(code, std::process::ExitCode::SUCCESS, "{out}");
    assert!(
        out.starts_with("pi-cli revoked: certificates issued before "),
        "{out}"
    );
    assert!(out.contains("1 connection closed"), "{out}");
    let mut worker = worker;
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = worker.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the revoked worker kept running"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1));
    let (_, out) = picluster(&["status", "--bundle", a]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("pi-cli") && l.contains("revoked")),
        "{out}"
    );

    // A client token, and `picluster join`.
    let (_, out) = picluster(&[
        "token", "create", "--role", "client", "--bundle", a, "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let client_token = json["token"].as_str().unwrap();
    let alice = tmp.path().join("alice.bundle");
    let (code, out) = picluster(&[
        "join",
        client_token,
        "--name",
        "alice",
        "--out",
        alice.to_str().unwrap(),
    ]);
    assert_eq!(code, std::process::ExitCode::SUCCESS, "{out}");
    let (code, out) = picluster(&["jobs", "--bundle", alice.to_str().unwrap(), "--json"]);
    assert_eq!(code, std::process::ExitCode::SUCCESS, "{out}");
    // A client may not make tokens: one clear line, exit code 1.
    let (code, out) = picluster(&["token", "list", "--bundle", alice.to_str().unwrap()]);
    assert_eq!(code, std::process::ExitCode::FAILURE);
    assert!(
        out.contains("not permitted: client alice may not list join tokens"),
        "{out}"
    );
    runtime.block_on(cluster.shutdown());
}

/// A peer without a certificate that speaks the worker protocol (or anything but one
/// join request) is closed with a reason that says what it lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_certificate_gets_only_a_join() {
    use picluster_core::wire::{WorkerHello, WorkerToCoord, PROTOCOL_MINOR};
    let cluster = LocalCluster::start(1, 1).await.unwrap();
    let ca: rustls_pki_types::CertificateDer<'static> =
        rustls_pki_types::pem::PemObject::from_pem_slice(cluster.ca().cert_pem().as_bytes())
            .unwrap();
    let pin = picluster_core::trust::spki_sha256(&ca).unwrap();
    let (config, _) = picluster_core::net::join_config(pin).unwrap();
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = endpoint
        .connect_with(config, cluster.address(), "127.0.0.1")
        .unwrap()
        .await
        .unwrap();
    let (send, _recv) = conn.open_bi().await.unwrap();
    let mut writer = picluster_core::net::FrameWriter::new(send);
    writer
        .send(&WorkerToCoord::Hello(WorkerHello {
            minor: PROTOCOL_MINOR,
            agent_version: "x".into(),
            threads: 1,
            arch: "x86_64".into(),
            kernel_impl: "x".into(),
            bench_hps: 1,
            kernels: vec![],
        }))
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .unwrap()
    {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(
                c.error_code.into_inner() as u32,
                CloseCode::Unauthorized as u32
            );
            let reason = String::from_utf8_lossy(&c.reason).into_owned();
            assert!(
                reason.starts_with("no certificate was presented"),
                "{reason}"
            );
        }
        other => panic!("expected a close, got {other}"),
    }
    // The cluster still works.
    run_job(&cluster).await;
    cluster.shutdown().await;
}

/// Role confusion over real QUIC: a worker's credential used to submit, and a
/// client's used to take work, are each closed with a reason that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_credential_cannot_submit_and_a_client_credential_cannot_work() {
    use picluster_core::net;
    use picluster_core::wire::{CoordToWorker, WorkerHello, WorkerToCoord, PROTOCOL_MINOR};
    let cluster = LocalCluster::start(1, 1).await.unwrap();
    let worker_bundle = cluster.bundle(Role::Worker, "pi-9").unwrap();
    // The client library refuses it before connecting, naming it...
    match picluster_client::Client::connect(&worker_bundle).await {
        Err(ClientError::WorkerCredential(name)) => assert_eq!(name, "pi-9"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // ...and the coordinator closes one that speaks the client protocol anyway.
    let client_hello =
        picluster_core::wire::ClientToCoord::Hello(picluster_core::wire::ClientHello {
            minor: PROTOCOL_MINOR,
            client_version: "x".into(),
        });
    match net::connect::<picluster_core::wire::ClientToCoord, picluster_core::wire::CoordToClient>(
        &worker_bundle,
        &client_hello,
    )
    .await
    {
        Err(NetError::Closed { code, reason }) => {
            assert_eq!(code, CloseCode::Unauthorized as u32);
            assert!(
                reason.contains("a worker certificate may only take work"),
                "{reason}"
            );
        }
        other => panic!("expected a refusal, got {:?}", other.map(|s| s.welcome)),
    }
    let client_bundle = cluster.bundle(Role::Client, "alice").unwrap();
    let hello = WorkerToCoord::Hello(WorkerHello {
        minor: PROTOCOL_MINOR,
        agent_version: "x".into(),
        threads: 1,
        arch: "x86_64".into(),
        kernel_impl: "x".into(),
        bench_hps: 1,
        kernels: vec![],
    });
    match net::connect::<WorkerToCoord, CoordToWorker>(&client_bundle, &hello).await {
        Err(NetError::Closed { code, reason }) => {
            assert_eq!(code, CloseCode::Unauthorized as u32);
            assert!(
                reason.contains("a client or admin certificate may not"),
                "{reason}"
            );
        }
        other => panic!("expected a refusal, got {:?}", other.map(|s| s.welcome)),
    }
    // The worker library refuses a client bundle before dialling.
    match picluster_worker::run(client_bundle, options(), std::future::pending()).await {
        Err(WorkerError::NotAWorkerBundle(Role::Client)) => {}
        other => panic!("expected NotAWorkerBundle, got {other:?}"),
    }
    run_job(&cluster).await;
    cluster.shutdown().await;
}

#[test]
fn the_coordinator_warns_from_thirty_days_before_its_certificate_expires() {
    use picluster_core::service::expiry_notice;
    let day = 86_400_000u64;
    let expires = 1_900_000_000_000u64;
    assert_eq!(expiry_notice(expires, expires - 31 * day), None);
    assert_eq!(
        expiry_notice(expires, expires - 30 * day).unwrap(),
        "the coordinator's certificate expires in 30 days: run `picluster renew-coordinator` and restart the coordinator"
    );
    assert!(expiry_notice(expires, expires - day / 2)
        .unwrap()
        .contains("expires in 0 days"));
    assert!(expiry_notice(expires, expires)
        .unwrap()
        .starts_with("the coordinator's certificate has expired"));
    // `renew-coordinator` replaces the pair with one valid for the configured lifetime.
    let tmp = tempfile::tempdir().unwrap();
    let dir = picluster_core::trust::ClusterDir::init_with(
        &tmp.path().join("c"),
        "127.0.0.1:7878".parse().unwrap(),
        &[],
        picluster_core::trust::Lifetimes {
            ca_days: 100,
            coordinator_days: 20,
            peer_days: 10,
        },
    )
    .unwrap();
    let old = dir.coordinator_credential().unwrap();
    let renewed = dir.renew_coordinator().unwrap();
    assert_ne!(old.key_pem, renewed.key_pem);
    assert_eq!(dir.coordinator_credential().unwrap(), renewed);
    dir.check_private_keys().unwrap();
    let bundle = Bundle {
        cert: renewed.cert_pem,
        ..dir.admin_bundle().unwrap()
    };
    let id = bundle.identity().unwrap();
    assert_eq!(
        (id.role, id.name.as_str()),
        (Role::Coordinator, "coordinator")
    );
    assert_eq!(
        (id.expires_ms - id.not_before_ms) / day,
        21,
        "a day early, 20 ahead"
    );
    let admin = dir.admin_bundle().unwrap().identity().unwrap();
    assert_eq!((admin.expires_ms - admin.not_before_ms) / day, 11);
}

#[cfg(unix)]
#[test]
fn the_cluster_directory_and_the_job_store_are_their_owners_alone_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let tmp = tempfile::tempdir().unwrap();
    // An empty directory made beforehand, open to everyone (as under umask 000).
    let path = tmp.path().join("rack");
    std::fs::create_dir(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    picluster_core::trust::ClusterDir::init_with(
        &path,
        "127.0.0.1:7878".parse().unwrap(),
        &[],
        picluster_core::trust::Lifetimes {
            ca_days: 100,
            coordinator_days: 20,
            peer_days: 10,
        },
    )
    .unwrap();
    assert_eq!(mode(&path), 0o700);
    // The store, created under the test's umask (022 or laxer): 0600 all the same.
    let store = path.join(picluster_core::service::STORE_FILE);
    drop(picluster_core::service::RedbStore::open(&store).unwrap());
    assert_eq!(mode(&store), 0o600);
    // One found readable by others is made private when it is opened.
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o666)).unwrap();
    drop(picluster_core::service::RedbStore::open(&store).unwrap());
    assert_eq!(mode(&store), 0o600);
}
