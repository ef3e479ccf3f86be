//! etcd over TLS with certificates from the cluster CA (`picluster etcd-certs` for
//! the member and the operator's `root`, `init --etcd https://...` for the
//! coordinators), and etcd's users on: coordinators (common name
//! `picluster-coordinator`) may read and write the cluster's keys; a worker's
//! certificate, signed by the same CA, gets nothing from etcd.

use super::{assert_exact, block_job, finish, have, picluster, Ha, Place, Proc};
use picluster_suite::fixtures::vectors;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tls(dir: &std::path::Path, name: &str) -> etcd_client::ConnectOptions {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    etcd_client::ConnectOptions::new()
        .with_timeout(Duration::from_secs(3))
        .with_tls(
            etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(read("ca.pem")))
                .identity(etcd_client::Identity::from_pem(
                    read(&format!("{name}.pem")),
                    read(&format!("{name}.key")),
                )),
        )
}

#[test]
#[ignore = "starts etcd and coordinator processes: run alone (.ci/run does)"]
fn etcd_over_tls_with_the_cluster_ca_lets_coordinators_in_and_keeps_workers_out() {
    if !have("etcd", "ha::tls::etcd_over_tls") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (client_port, peer_port) = (super::free_tcp_port(), super::free_tcp_port());
    let url = format!("https://127.0.0.1:{client_port}");
    // The cluster first (its CA signs etcd's certificates); its coordinators are
    // made by Ha::start_with below, from the same `init --etcd https://...`.
    let ha_dir = tmp.path().join("ha");
    std::fs::create_dir(&ha_dir).unwrap();
    let addresses: Vec<String> = (0..2)
        .map(|_| format!("127.0.0.1:{}", crate::cli::free_udp_port()))
        .collect();
    let mut ha = Ha::init(
        &ha_dir,
        std::slice::from_ref(&url),
        &addresses,
        &addresses,
        Place::default(),
        &[],
    );
    let cluster = ha.dirs[0].to_str().unwrap().to_string();
    let member = tmp.path().join("member");
    let root = tmp.path().join("root");
    picluster(&[
        "etcd-certs",
        "--cluster",
        &cluster,
        "--member",
        "e0",
        "--host",
        "127.0.0.1",
        "--out",
        member.to_str().unwrap(),
    ]);
    picluster(&[
        "etcd-certs",
        "--cluster",
        &cluster,
        "--root",
        "--out",
        root.to_str().unwrap(),
    ]);
    let m = |f: &str| member.join(f).to_str().unwrap().to_string();
    let log = std::fs::File::create(tmp.path().join("etcd.log")).unwrap();
    let _etcd = Proc(
        Command::new("etcd")
            .args([
                "--name",
                "e0",
                "--data-dir",
                tmp.path().join("e0").to_str().unwrap(),
            ])
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &format!("https://127.0.0.1:{peer_port}"),
                "--initial-advertise-peer-urls",
                &format!("https://127.0.0.1:{peer_port}"),
                "--initial-cluster",
                &format!("e0=https://127.0.0.1:{peer_port}"),
            ])
            .args(["--cert-file", &m("e0.pem"), "--key-file", &m("e0.key")])
            .args(["--trusted-ca-file", &m("ca.pem"), "--client-cert-auth"])
            .args([
                "--peer-cert-file",
                &m("e0.pem"),
                "--peer-key-file",
                &m("e0.key"),
            ])
            .args([
                "--peer-trusted-ca-file",
                &m("ca.pem"),
                "--peer-client-cert-auth",
            ])
            .args(["--logger=zap", "--log-level=warn"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    // etcd's users, as deploy/HA.md sets them up with etcdctl and the root
    // certificate: root, and picluster-coordinator with read and write on
    // /picluster/.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let started = Instant::now();
        let mut admin = loop {
            let connected = etcd_client::Client::connect([&url], Some(tls(&root, "root"))).await;
            if let Ok(mut c) = connected {
                if c.status().await.is_ok() {
                    break c;
                }
            }
            {
                {
                    assert!(
                        started.elapsed() < Duration::from_secs(30),
                        "etcd over TLS did not answer: {}",
                        std::fs::read_to_string(tmp.path().join("etcd.log")).unwrap_or_default()
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let no_password = || Some(etcd_client::UserAddOptions::new().with_no_pwd());
        admin.user_add("root", "", no_password()).await.unwrap();
        admin.user_grant_role("root", "root").await.unwrap();
        admin.role_add("picluster").await.unwrap();
        admin
            .role_grant_permission(
                "picluster",
                etcd_client::Permission::read_write("/picluster/").with_prefix(),
            )
            .await
            .unwrap();
        admin
            .user_add(picluster_core::trust::ETCD_USER, "", no_password())
            .await
            .unwrap();
        admin
            .user_grant_role(picluster_core::trust::ETCD_USER, "picluster")
            .await
            .unwrap();
        admin.auth_enable().await.unwrap();
    });
    ha.start_all();
    let leader = ha.wait_for_leader_in_log(Duration::from_secs(30));
    ha.add_worker("w0");
    let nonce = u64::from(vectors()[0].nonce);
    let job = block_job(0, nonce - (1 << 23), 1 << 24);
    let (ok, report, stderr) = finish(
        ha.submit(&job.iter().map(String::as_str).collect::<Vec<_>>()),
        Duration::from_secs(120),
    );
    assert!(ok, "{stderr} {}", ha.all_logs());
    assert_exact(&report, 1 << 24, nonce, "over etcd with TLS");
    assert!(ha.all_logs().contains("leading"), "c{leader}");
    // A worker's certificate is the cluster CA's too, but no etcd user: refused.
    let w0: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("ha").join("w0.bundle")).unwrap(),
    )
    .unwrap();
    let worker_tls = etcd_client::ConnectOptions::new()
        .with_timeout(Duration::from_secs(3))
        .with_tls(
            etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(
                    w0["ca"].as_str().unwrap(),
                ))
                .identity(etcd_client::Identity::from_pem(
                    w0["cert"].as_str().unwrap(),
                    w0["key"].as_str().unwrap(),
                )),
        );
    let prefix = ha.leader_key.trim_end_matches("leader").to_string();
    let refused = rt.block_on(async {
        let mut c = etcd_client::Client::connect([&url], Some(worker_tls))
            .await
            .unwrap();
        c.get(
            prefix.clone(),
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .err()
        .map(|e| e.to_string())
    });
    let refused = refused.expect("a worker's certificate read the cluster's keys");
    eprintln!("a worker's certificate at etcd: {refused}");
    assert!(
        refused.contains("user name not found") || refused.contains("permission denied"),
        "{refused}"
    );
}
