//! The seed's network, for real: Pis on a home LAN behind a NAT router
//! (MASQUERADE), and the coordinators on another site behind a router that forwards
//! one UDP port to each (DNAT). Workers and the client dial out from the home LAN to
//! the forwarded ports; nothing is forwarded at home. A job completes, the leader is
//! killed, and the workers find the next leader through the same NAT.
//!
//! ```text
//!  home 10.1.0.2 -- 10.1.0.1 homegw 192.0.2.1 -- 192.0.2.2 sitegw 10.2.0.1 -- 10.2.0.2 site
//!  (workers, client)       (MASQUERADE)           (DNAT 7001-7003)          (etcd, coordinators)
//! ```

use super::net::Netns;
use super::{assert_exact, block_job, finish, have, Etcd, Ha, Place};
use picluster_suite::fixtures::vectors;
use std::time::{Duration, Instant};

#[test]
#[ignore = "makes network namespaces and NAT rules, as root: run alone (.ci/run does)"]
fn workers_behind_a_home_nat_reach_coordinators_behind_forwarded_ports_and_follow_a_failover() {
    let test = "ha::nat::workers_behind_a_home_nat";
    if !have("etcd", test) {
        return;
    }
    let nets = match Netns::make(&["pihome", "pihgw", "pisgw", "pisite"]) {
        Ok(n) => n,
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            return;
        }
    };
    let (home, hgw, sgw, site) = (
        nets.name("pihome"),
        nets.name("pihgw"),
        nets.name("pisgw"),
        nets.name("pisite"),
    );
    let wired = nets.link((&home, "lan0", "10.1.0.2/24"), (&hgw, "lan0", "10.1.0.1/24"))
        && nets.link((&hgw, "wan0", "192.0.2.1/24"), (&sgw, "wan0", "192.0.2.2/24"))
        && nets.link((&sgw, "lan0", "10.2.0.1/24"), (&site, "lan0", "10.2.0.2/24"))
        && nets.sh(&home, "ip route add default via 10.1.0.1")
        && nets.sh(&site, "ip route add default via 10.2.0.1")
        && nets.sh(
            &hgw,
            "sysctl -qw net.ipv4.ip_forward=1 && iptables -t nat -A POSTROUTING -o wan0 -j MASQUERADE",
        )
        && nets.sh(
            &sgw,
            "sysctl -qw net.ipv4.ip_forward=1 && for p in 7001 7002 7003; do iptables -t nat -A PREROUTING -i wan0 -p udp --dport $p -j DNAT --to-destination 10.2.0.2:$p || exit 1; done",
        )
        // The home router's WAN side takes nothing in: only answers to what went out.
        && nets.sh(
            &hgw,
            "iptables -A FORWARD -i wan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT && iptables -A FORWARD -i wan0 -j DROP",
        );
    if !wired {
        eprintln!("SKIPPED {test}: the test network could not be made");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let site_place = Place {
        netns: Some(site.clone()),
    };
    let home_place = Place {
        netns: Some(home.clone()),
    };
    let etcd = Etcd::start_in(tmp.path(), 3, site_place.clone());
    let listen: Vec<String> = (1..=3).map(|i| format!("10.2.0.2:700{i}")).collect();
    let advertise: Vec<String> = (1..=3).map(|i| format!("192.0.2.2:700{i}")).collect();
    let mut ha = Ha::start_with(tmp.path(), &etcd, &listen, &advertise, site_place, &[], 0);
    for name in ["w0", "w1"] {
        let bundle = ha.worker_bundle(name);
        ha.spawn_worker(&home_place, &bundle, name);
    }
    let leader = ha.wait_for_leader(&etcd, Duration::from_secs(30));
    let nonce = u64::from(vectors()[0].nonce);
    let job = block_job(0, nonce - (1 << 27), 1 << 28);
    let job: Vec<&str> = job.iter().map(String::as_str).collect();
    // A job from the home LAN, through both NATs.
    let (ok, report, stderr) = finish(ha.submit_from(&home_place, &job), Duration::from_secs(120));
    assert!(ok, "{stderr}");
    assert_exact(&report, 1 << 28, nonce, "through the NATs");
    let workers: Vec<&str> = report["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(workers.len(), 2, "both home workers took part: {report}");
    // The leader killed mid-job: the workers and the client follow the next one
    // through the NAT.
    let submit = ha.submit_from(&home_place, &job);
    std::thread::sleep(Duration::from_secs(3));
    ha.coordinators[leader].take().unwrap().kill9();
    let started = Instant::now();
    let (ok, report, stderr) = finish(submit, Duration::from_secs(120));
    assert!(ok, "{stderr}");
    assert_exact(&report, 1 << 28, nonce, "across a failover");
    let successor = ha.leader(&etcd);
    assert!(successor.is_some() && successor != Some(leader));
    eprintln!(
        "across the NATs: c{leader} killed, c{} took over; the job ended {:.1} s later",
        successor.unwrap(),
        started.elapsed().as_secs_f64()
    );
}
