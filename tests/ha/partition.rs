//! The leader cut off from etcd but not from its workers: a network namespace of
//! its own for the test, each coordinator running as its own user, and an iptables
//! owner-match rule dropping the leader's packets to etcd. It must stop acting
//! before its lease can expire, a standby takes over, and etcd's history shows no
//! write of the old leader accepted after the new one's first.

use super::net::Netns;
use super::{assert_exact, block_job, finish, have, log_time, Etcd, Ha, Place};
use picluster_suite::fixtures::vectors;
use std::time::{Duration, Instant, SystemTime};

#[test]
#[ignore = "makes a network namespace and iptables rules, as root: run alone (.ci/run does)"]
fn a_leader_cut_off_from_etcd_fences_itself_before_its_lease_expires_and_etcd_takes_no_write_of_it_after(
) {
    let test = "ha::partition::a_leader_cut_off_from_etcd";
    if !have("etcd", test) {
        return;
    }
    let nets = match Netns::make(&["pich"]) {
        Ok(n) => n,
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            return;
        }
    };
    let place = Place {
        netns: Some(nets.name("pich")),
    };
    let tmp = tempfile::tempdir().unwrap();
    // The coordinators run as users 6101 and 6102: they must reach their directories.
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let etcd = Etcd::start_in(tmp.path(), 3, place.clone());
    // A namespace of its own: every port is free.
    let listen = ["127.0.0.1:17101".to_string(), "127.0.0.1:17102".to_string()];
    let uids = [6101, 6102];
    let ha = Ha::start_with(tmp.path(), &etcd, &listen, &listen, place, &uids, 2);
    let leader = ha.wait_for_leader(&etcd, Duration::from_secs(30));
    let nonce = u64::from(vectors()[0].nonce);
    let job = block_job(0, nonce - (1 << 28), 1 << 29);
    let submit = ha.submit(&job.iter().map(String::as_str).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_secs(3));
    // The leader's packets to etcd's client ports are dropped from now on.
    let cut_at = SystemTime::now();
    let rules: Vec<String> = etcd
        .endpoints()
        .iter()
        .map(|url| {
            let port = url.rsplit(':').next().unwrap();
            format!(
                "iptables -A OUTPUT -m owner --uid-owner {} -p tcp --dport {port} -j DROP",
                uids[leader]
            )
        })
        .collect();
    assert!(nets.sh(&nets.name("pich"), &rules.join(" && ")));
    let started = Instant::now();
    let successor = loop {
        if let Some(l) = ha.leader(&etcd).filter(|l| *l != leader) {
            break l;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no standby took over: {}",
            ha.all_logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let (ok, report, stderr) = finish(submit, Duration::from_secs(180));
    assert!(ok, "picluster submit failed: {stderr}");
    assert_exact(&report, 1 << 29, nonce, "the job");
    // The cut-off leader stopped before its successor was elected.
    let line_time = |i: usize, needle: &str| {
        std::fs::read_to_string(&ha.logs[i])
            .unwrap()
            .lines()
            .filter(|l| l.contains(needle))
            .filter_map(log_time)
            .find(|t| *t > cut_at)
    };
    let fenced = line_time(leader, "no longer the leading coordinator").expect("it fenced itself");
    let elected = line_time(successor, "elected the leading coordinator").expect("a successor");
    let secs = |t: SystemTime| t.duration_since(cut_at).unwrap().as_secs_f64();
    eprintln!(
        "cut off at 0 s: the old leader stopped at {:.2} s, its successor was elected at {:.2} s",
        secs(fenced),
        secs(elected)
    );
    assert!(fenced < elected, "{}", ha.all_logs());
    // etcd's history of the writer key: the leaders' fencing revisions never go
    // back, so no write of the old leader came after one of the new.
    let key = ha
        .leader_key
        .replace("leader", picluster_core::service::etcd::WRITER_KEY);
    let writers: Vec<i64> = etcd
        .history(&key)
        .into_iter()
        .map(|(_, w)| w.parse().unwrap())
        .collect();
    let distinct: std::collections::BTreeSet<i64> = writers.iter().copied().collect();
    eprintln!(
        "{} writes audited in etcd's history, by {} leaders",
        writers.len(),
        distinct.len()
    );
    assert!(distinct.len() >= 2, "{writers:?}");
    assert!(
        writers.windows(2).all(|w| w[0] <= w[1]),
        "a deposed leader's write was accepted after its successor's: {writers:?}"
    );
}
