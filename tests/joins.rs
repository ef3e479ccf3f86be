//! Joining under a flood of connections without a certificate: the places for such
//! connections are shared out by address, and a joining worker retries with backoff
//! until it gets one.

use picluster_client::{LocalCluster, LocalClusterOptions};
use picluster_core::coordinator::CoordinatorConfig;
use picluster_core::identity::Role;
use picluster_worker::enroll;
use std::net::SocketAddr;
use std::time::Duration;

/// A cluster that takes 4 joining connections at once, 2 per address, with a 6 s
/// join timeout (long enough that a loaded machine sees the places still taken).
async fn cluster() -> LocalCluster {
    LocalCluster::start_with(LocalClusterOptions {
        coordinator: CoordinatorConfig {
            max_joining: 4,
            max_joining_per_address: 2,
            join_timeout: Duration::from_secs(6),
            ..CoordinatorConfig::default()
        },
        ..LocalClusterOptions::new(1, 1)
    })
    .await
    .unwrap()
}

/// A one-use worker token of `cluster`.
async fn worker_token(cluster: &LocalCluster) -> picluster_core::token::JoinToken {
    let client = cluster.client().await.unwrap();
    let (token, _) = client
        .create_token(Role::Worker, Duration::from_secs(600), 1, false)
        .await
        .unwrap();
    client.close();
    token
}

/// `n` connections without a certificate from `from` that never send a join
/// request: each holds a joining place until its join timeout, or is closed at once.
async fn flood(cluster: &LocalCluster, from: &str, n: usize) -> Vec<quinn::Connection> {
    let ca: rustls_pki_types::CertificateDer<'static> =
        rustls_pki_types::pem::PemObject::from_pem_slice(cluster.ca().cert_pem().as_bytes())
            .unwrap();
    let pin = picluster_core::trust::spki_sha256(&ca).unwrap();
    let (config, _) = picluster_core::net::join_config(pin).unwrap();
    let endpoint =
        quinn::Endpoint::client(format!("{from}:0").parse::<SocketAddr>().unwrap()).unwrap();
    let mut held = Vec::new();
    for _ in 0..n {
        let connection = endpoint
            .connect_with(config.clone(), cluster.address(), "127.0.0.1")
            .unwrap()
            .await
            .unwrap();
        held.push(connection);
    }
    held
}

/// How many of `connections` the coordinator closed within `within` as busy.
async fn refused_as_busy(connections: &[quinn::Connection], within: Duration) -> usize {
    let mut busy = 0;
    for c in connections {
        if let Ok(quinn::ConnectionError::ApplicationClosed(close)) =
            tokio::time::timeout(within, c.closed()).await
        {
            busy += usize::from(
                close.reason.as_ref() == b"too many joins in progress: try again shortly",
            );
        }
    }
    busy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_takes_at_most_its_share_of_the_joining_places() {
    let cluster = cluster().await;
    let flooding = flood(&cluster, "127.0.0.2", 10).await;
    assert_eq!(
        refused_as_busy(&flooding, Duration::from_millis(1500)).await,
        8,
        "two of ten are let in"
    );
    // A worker elsewhere joins at once, however long the flood goes on.
    let token = worker_token(&cluster).await;
    let dir = tempfile::tempdir().unwrap();
    let joined = enroll::join_with(&token, "pi-new", dir.path(), Duration::ZERO).await;
    assert_eq!(joined.unwrap().name, "pi-new");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_worker_retries_until_a_flood_leaves_it_a_place() {
    let cluster = cluster().await;
    let token = worker_token(&cluster).await;
    // Two addresses take all four places for 6 s.
    let a = flood(&cluster, "127.0.0.2", 2).await;
    let b = flood(&cluster, "127.0.0.3", 2).await;
    // A client's handshake ends before the coordinator's connection task takes its
    // place: give those tasks a moment (the places are held for 6 s).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dir = tempfile::tempdir().unwrap();
    // Without patience, the join is refused as busy...
    match enroll::join_with(&token, "pi-new", &dir.path().join("once"), Duration::ZERO).await {
        Err(e) => assert!(e.to_string().contains("too many joins in progress"), "{e}"),
        Ok(_) => panic!("the places are taken"),
    }
    // ...and with it, it gets in once the flood's places time out.
    let started = std::time::Instant::now();
    let bundle = enroll::join_with(
        &token,
        "pi-new",
        &dir.path().join("patient"),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(bundle.name, "pi-new");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it had to wait"
    );
    drop((a, b));
    cluster.shutdown().await;
}

/// The names picluster keeps for itself are refused before anything is sent, as
/// reserved (the coordinator said "already enrolled", which misleads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_name_is_refused_as_reserved() {
    let cluster = cluster().await;
    let token = worker_token(&cluster).await;
    let dir = tempfile::tempdir().unwrap();
    for name in ["admin", "coordinator"] {
        match enroll::join_with(&token, name, &dir.path().join(name), Duration::ZERO).await {
            Err(e) => assert_eq!(
                e.to_string(),
                format!("`{name}` is a reserved name (admin, coordinator): pick another")
            ),
            Ok(_) => panic!("{name} is reserved"),
        }
    }
    // The token was not spent.
    let joined = enroll::join_with(&token, "pi-new", &dir.path().join("pi-new"), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(joined.name, "pi-new");
    cluster.shutdown().await;
}
