//! Joining a cluster of coordinators sharing etcd: a join token names every
//! coordinator, and a worker whose token sends it to a standby first is pointed to
//! the leader, enrolls there, and gets a bundle naming every coordinator.

use super::{assert_exact, block_job, finish, have, picluster, Etcd, Ha};
use crate::binaries::real_binary;
use picluster_suite::fixtures::vectors;
use std::process::Stdio;
use std::time::Duration;

#[test]
#[ignore = "starts etcd and coordinator processes: run alone (.ci/run does)"]
fn a_token_names_every_coordinator_and_a_worker_joining_at_a_standby_enrolls_with_the_leader() {
    if !have("etcd", "ha::join::a_token_names_every_coordinator") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(tmp.path(), 3);
    let mut ha = Ha::start(tmp.path(), &etcd, 2, 0);
    let leader = ha.wait_for_leader(&etcd, Duration::from_secs(30));
    let standby = 1 - leader;
    let created: serde_json::Value = serde_json::from_str(
        picluster(&[
            "token",
            "create",
            "--json",
            "--cluster",
            ha.dirs[0].to_str().unwrap(),
        ])
        .lines()
        .last()
        .unwrap(),
    )
    .unwrap();
    let token = created["token"].as_str().unwrap();
    let (secret, addresses) = token.split_once('@').unwrap();
    assert_eq!(addresses, ha.addresses.join(","), "{token}");
    // The standby first: it answers "not the leader", naming it.
    let reordered = format!(
        "{secret}@{},{}",
        ha.addresses[standby], ha.addresses[leader]
    );
    let state = tmp.path().join("joined");
    let log = std::fs::File::create(tmp.path().join("joined.log")).unwrap();
    let worker = std::process::Command::new(real_binary("picluster-worker"))
        .args(["--join", &reordered, "--name", "joined", "--threads", "1"])
        .args(["--state-dir", state.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    ha.workers.push(super::Proc(worker));
    let nonce = u64::from(vectors()[0].nonce);
    let job = block_job(0, nonce - (1 << 23), 1 << 24);
    let (ok, report, stderr) = finish(
        ha.submit(&job.iter().map(String::as_str).collect::<Vec<_>>()),
        Duration::from_secs(120),
    );
    assert!(
        ok,
        "{stderr} {}",
        std::fs::read_to_string(tmp.path().join("joined.log")).unwrap_or_default()
    );
    assert_exact(&report, 1 << 24, nonce, "with the joined worker");
    assert_eq!(report["workers"][0]["name"], "joined", "{report}");
    let bundle: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("worker.bundle")).unwrap())
            .unwrap();
    let named: Vec<&str> = bundle["coordinators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(named.len(), 2, "{bundle}");
    assert!(ha.addresses.iter().all(|a| named.contains(&a.as_str())));
    // The job's rows are in etcd until it is forgotten; then none is left.
    let prefix = ha.leader_key.trim_end_matches("leader").to_string();
    let rows = |etcd: &Etcd| -> Vec<String> {
        etcd.keys(&prefix)
            .into_iter()
            .filter(|k| !k.starts_with(&format!("{prefix}meta/")) && !k.ends_with("/leader"))
            .filter(|k| !k.contains("/tokens/") && !k.contains("/enrolled/"))
            .collect()
    };
    let before = rows(&etcd);
    assert!(
        before.iter().any(|k| k.contains("/jobs/"))
            && before.iter().any(|k| k.contains("/solutions/")),
        "{before:?}"
    );
    picluster(&["forget", "j1", "--cluster", ha.dirs[0].to_str().unwrap()]);
    assert_eq!(
        rows(&etcd),
        Vec::<String>::new(),
        "rows left of a forgotten job"
    );
}
