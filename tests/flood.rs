//! The coordinator as a real process under a flood while a legitimate job runs:
//! handshakes without a certificate that then never speak, handshakes with another
//! cluster's certificate, and certificate-less connections that announce a 1 MiB
//! frame and send ten bytes of it, from eight loopback addresses at once. The job
//! must complete exactly, the coordinator must stay under 128 MiB (its peak resident
//! set, VmHWM) and answer a new client afterwards. The job's rate with and without
//! the flood is printed (speed is a benchmark's business, not a test's; BENCHMARKS.md
//! has the figures).
//!
//! A second flood comes from a valid client credential, over eight loopback
//! addresses: sessions that leave a 1 MiB frame ten bytes short, sessions that ask
//! for listings and never read the replies, and sessions that say hello and then
//! nothing. The limits per credential (sessions, reply memory) must hold it under the
//! same 128 MiB, while an admin is served and a new worker gets in. A third comes
//! from eight client credentials, one per address, each filling its sessions with
//! half-sent 1 MiB frames: the clients' shared frame budget must hold it (each
//! credential alone is within its limits). After each flood, once its connections
//! have timed out, the coordinator's resident set is printed, to show what memory
//! came back.
//!
//! The attackers run in their own process at the lowest priority (`nice -n 19`), as
//! if they were on other machines: on this two-core machine they would otherwise take
//! the workers' CPU, and the rate would measure them rather than the coordinator.

use crate::crash::{
    cluster_with_two_worker_processes, one_coordinator_process_at_a_time, spawn_self_with, Process,
};
use picluster_client::{Client, JobKind, JobSpec, JobState, SearchMode};
use picluster_core::kernel::sha256d::Sha256dJob;
use picluster_core::trust::{Bundle, ClusterCa, ClusterDir};
use picluster_suite::fixtures::vectors;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The coordinator's peak resident set, in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// CPU seconds the process has used (user and system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which ends with ')'): utime is the 12th, stime
    // the 13th, in clock ticks (100 per second on Linux).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[derive(Default)]
struct Counts {
    silent: AtomicU64,
    foreign: AtomicU64,
    half_frames: AtomicU64,
    refused: AtomicU64,
    unread: AtomicU64,
    idle: AtomicU64,
}

/// What a client attacker's sessions do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientFlood {
    /// Round after round: a half-sent frame, unread listings, an idle session.
    Mixed,
    /// Half-sent frames only.
    HalfFrames,
}

/// One attacker at `source` with a client credential: round after round a session
/// that says hello and leaves a 1 MiB frame ten bytes short, or one that asks for
/// listing after listing and never reads them (each kept open until the coordinator
/// closes it).
async fn client_attacker(
    source: std::net::IpAddr,
    target: SocketAddr,
    bundle: Bundle,
    mode: ClientFlood,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
) {
    use picluster_core::ids::RequestId;
    use picluster_core::wire::{ClientHello, ClientToCoord, PROTOCOL_MINOR};
    let endpoint = quinn::Endpoint::client(SocketAddr::new(source, 0)).unwrap();
    let config = picluster_core::net::client_config(&bundle).unwrap();
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let Ok(connecting) = endpoint.connect_with(config.clone(), target, "127.0.0.1") else {
            break;
        };
        let counts = counts.clone();
        let kind = match mode {
            ClientFlood::HalfFrames => 0,
            ClientFlood::Mixed => round % 3,
        };
        tokio::spawn(async move {
            let Ok(conn) = connecting.await else {
                counts.refused.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let attack = async {
                let (send, _never_read) = conn.open_bi().await.ok()?;
                let mut writer = picluster_core::net::FrameWriter::new(send);
                writer
                    .send(&ClientToCoord::Hello(ClientHello {
                        minor: PROTOCOL_MINOR,
                        client_version: "flood".into(),
                    }))
                    .await
                    .ok()?;
                if kind == 0 {
                    // Counted once begun: past the clients' frame budget, the rest
                    // of it waits in QUIC's window and the send never completes.
                    counts.half_frames.fetch_add(1, Ordering::Relaxed);
                    let mut frame = (1u32 << 20).to_le_bytes().to_vec();
                    frame.resize(4 + (1 << 20) - 10, 7);
                    writer.send_frame(&frame).await.ok()?;
                } else if kind == 2 {
                    // Hello, then nothing: it holds one of the credential's sessions.
                    counts.idle.fetch_add(1, Ordering::Relaxed);
                } else {
                    counts.unread.fetch_add(1, Ordering::Relaxed);
                    for n in 0..100_000 {
                        writer
                            .send(&ClientToCoord::ListJobs(RequestId(n)))
                            .await
                            .ok()?;
                        if n.is_multiple_of(64) {
                            tokio::task::yield_now().await;
                        }
                    }
                }
                conn.closed().await;
                Some(())
            };
            let _ = tokio::time::timeout(Duration::from_secs(60), attack).await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One attacker at `source`: round after round, a silent certificate-less connection
/// (kept open until the coordinator closes it), a foreign-certificate handshake, and
/// a half-sent frame.
async fn attacker(
    source: std::net::IpAddr,
    target: SocketAddr,
    ca_pin: [u8; 32],
    foreign: Bundle,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
) {
    let endpoint = quinn::Endpoint::client(SocketAddr::new(source, 0)).unwrap();
    let foreign = picluster_core::net::client_config(&foreign).unwrap();
    while !stop.load(Ordering::Relaxed) {
        let (anonymous, _) = picluster_core::net::join_config(ca_pin).unwrap();
        match endpoint.connect_with(anonymous.clone(), target, "127.0.0.1") {
            Ok(connecting) => {
                let counts = counts.clone();
                tokio::spawn(async move {
                    match connecting.await {
                        Ok(conn) => {
                            counts.silent.fetch_add(1, Ordering::Relaxed);
                            // Say nothing; wait to be closed.
                            conn.closed().await;
                        }
                        Err(_) => {
                            counts.refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            Err(_) => break,
        }
        if let Ok(connecting) = endpoint.connect_with(foreign.clone(), target, "127.0.0.1") {
            let counts = counts.clone();
            tokio::spawn(async move {
                let attempt = async {
                    let conn = connecting.await.ok()?;
                    // TLS 1.3: the refusal of our certificate shows at first use.
                    let (mut send, _) = conn.open_bi().await.ok()?;
                    send.write_all(&[0; 8]).await.ok()?;
                    conn.closed().await;
                    Some(())
                };
                let _ = tokio::time::timeout(Duration::from_secs(5), attempt).await;
                counts.foreign.fetch_add(1, Ordering::Relaxed);
            });
        }
        if let Ok(connecting) = endpoint.connect_with(anonymous, target, "127.0.0.1") {
            let counts = counts.clone();
            tokio::spawn(async move {
                if let Ok(conn) = connecting.await {
                    if let Ok((mut send, _)) = conn.open_bi().await {
                        let mut half = (1u32 << 20).to_le_bytes().to_vec();
                        half.extend_from_slice(&[7; 10]);
                        if send.write_all(&half).await.is_ok() {
                            counts.half_frames.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    conn.closed().await;
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn timed_job(client: &Client, offset: u64) -> f64 {
    let v = &vectors()[1];
    let keyspace = 1u64 << 26;
    let start = u64::from(v.nonce) - (1 << 25) + offset;
    let job = Sha256dJob::new(v.header, None, start..start + keyspace, 0).unwrap();
    let started = Instant::now();
    let report = client
        .run(&JobSpec {
            kind: JobKind::Sha256d(job),
            mode: SearchMode::All,
        })
        .await
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(report.state, JobState::Completed);
    assert_eq!(report.hashes, keyspace);
    let nonces: Vec<u32> = report
        .solutions
        .iter()
        .map(|s| s.nonce().unwrap())
        .collect();
    assert_eq!(nonces, vec![v.nonce]);
    keyspace as f64 / seconds
}

#[test]
#[ignore = "the body of the attackers' process for the test below"]
fn attacker_process() {
    let Ok(spec) = std::env::var("PICLUSTER_TEST_FLOOD") else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let target: SocketAddr = parts[0].parse().unwrap();
    let pin: [u8; 32] = picluster_core::hex::decode(parts[1])
        .unwrap()
        .try_into()
        .unwrap();
    let stop_file = std::path::PathBuf::from(parts[2]);
    // One client credential for every address, or one per address (a list).
    let client_bundles: Option<Vec<Bundle>> = parts.get(3).map(|list| {
        list.split(',')
            .map(|p| Bundle::load(std::path::Path::new(p)).unwrap())
            .collect()
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let counts = runtime.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let foreign = ClusterCa::generate("other")
            .unwrap()
            .bundle(
                picluster_core::identity::Role::Worker,
                "intruder",
                &target.to_string(),
            )
            .unwrap();
        let attackers: Vec<_> = (2..10u8)
            .map(|last| {
                let source = std::net::IpAddr::from([127, 0, 0, last]);
                let (stop, counts) = (stop.clone(), counts.clone());
                match &client_bundles {
                    Some(bundles) => {
                        let (bundle, mode) = if bundles.len() == 1 {
                            (bundles[0].clone(), ClientFlood::Mixed)
                        } else {
                            let i = usize::from(last - 2) % bundles.len();
                            (bundles[i].clone(), ClientFlood::HalfFrames)
                        };
                        tokio::spawn(client_attacker(source, target, bundle, mode, stop, counts))
                    }
                    None => {
                        tokio::spawn(attacker(source, target, pin, foreign.clone(), stop, counts))
                    }
                }
            })
            .collect();
        while !stop_file.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for a in attackers {
            a.await.unwrap();
        }
        counts
    });
    println!(
        "FLOOD {} {} {} {} {} {}",
        counts.silent.load(Ordering::Relaxed),
        counts.foreign.load(Ordering::Relaxed),
        counts.half_frames.load(Ordering::Relaxed),
        counts.refused.load(Ordering::Relaxed),
        counts.unread.load(Ordering::Relaxed),
        counts.idle.load(Ordering::Relaxed)
    );
    std::process::exit(0);
}

#[test]
fn a_flood_of_handshakes_and_silent_connections_leaves_the_coordinator_small_and_working() {
    let _alone = one_coordinator_process_at_a_time();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(flood(Flood::Anonymous));
}

#[test]
fn a_flood_from_one_client_credential_leaves_the_coordinator_small_and_working() {
    let _alone = one_coordinator_process_at_a_time();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(flood(Flood::OneCredential));
}

#[test]
fn a_flood_of_half_sent_frames_from_many_client_credentials_leaves_the_coordinator_small() {
    let _alone = one_coordinator_process_at_a_time();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(flood(Flood::ManyCredentials));
}

/// Who floods.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flood {
    /// Certificate-less and foreign-certificate connections.
    Anonymous,
    /// One client credential (mallory) from eight addresses.
    OneCredential,
    /// Eight client credentials, one per address.
    ManyCredentials,
}

/// The process's resident set now, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A job timed quiet and then through a flood.
async fn flood(kind: Flood) {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, port, workers) = cluster_with_two_worker_processes(tmp.path());
    let d = dir.to_str().unwrap();
    let coordinator = spawn_self_with(
        "crash::coordinator_process",
        &[("PICLUSTER_TEST_CLUSTER", d)],
        Stdio::null,
    );
    let pid = coordinator.0.id();
    let cluster = ClusterDir::open(&dir).unwrap();
    let admin = cluster.admin_bundle().unwrap();
    let mut coordinator = coordinator;
    let waiting = Instant::now();
    let client = loop {
        assert!(
            coordinator.0.try_wait().unwrap().is_none(),
            "the coordinator process exited (port {port} taken?)"
        );
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "no coordinator with two workers within 30 s"
        );
        if let Ok(c) = Client::connect(&admin).await {
            let status = c.status().await.unwrap();
            if status.workers.len() == 2 {
                break c;
            }
            c.close();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let quiet = timed_job(&client, 0).await;
    let quiet_cpu = (cpu_seconds(pid) - cpu_before) / started.elapsed().as_secs_f64();
    let before_kib = peak_kib(pid);

    let ca: rustls_pki_types::CertificateDer<'static> =
        rustls_pki_types::pem::PemObject::from_pem_slice(admin.ca.as_bytes()).unwrap();
    let pin = picluster_core::trust::spki_sha256(&ca).unwrap();
    let stop_file = tmp.path().join("stop-flood");
    let mut spec = format!(
        "127.0.0.1:{port}|{}|{}",
        picluster_core::hex::encode(&pin),
        stop_file.display()
    );
    if kind == Flood::ManyCredentials {
        let paths: Vec<String> = (2..10)
            .map(|i| {
                let path = tmp.path().join(format!("client-{i}.bundle"));
                let name = format!("client-{i}");
                cluster.client_bundle(&name).unwrap().save(&path).unwrap();
                path.display().to_string()
            })
            .collect();
        spec = format!("{spec}|{}", paths.join(","));
    }
    if kind == Flood::OneCredential {
        // Mallory has jobs of her own, so that her listings are not empty.
        let mallory = cluster.client_bundle("mallory").unwrap();
        let path = tmp.path().join("mallory.bundle");
        mallory.save(&path).unwrap();
        let hers = Client::connect(&mallory).await.unwrap();
        let v = &vectors()[0];
        for n in 0..300 {
            let job = Sha256dJob::new(v.header, None, n..n + 1, 0).unwrap();
            hers.submit(&JobSpec {
                kind: JobKind::Sha256d(job),
                mode: SearchMode::All,
            })
            .await
            .unwrap();
        }
        hers.close();
        spec = format!("{spec}|{}", path.display());
    }
    let flood_started = Instant::now();
    let attackers = Process(
        std::process::Command::new("nice")
            .args(["-n", "19"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "flood::attacker_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PICLUSTER_TEST_FLOOD", &spec)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Let the flood build up, then run the same job through it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let flooded = timed_job(&client, 1).await;
    let flood_cpu = (cpu_seconds(pid) - cpu_before) / started.elapsed().as_secs_f64();
    // A new worker gets in while it goes on.
    let newcomer = tmp.path().join("w3.bundle");
    cluster
        .worker_bundle("w3")
        .unwrap()
        .save(&newcomer)
        .unwrap();
    let _w3 = crate::processes::spawn_worker(&newcomer);
    let waiting = Instant::now();
    while client.status().await.unwrap().workers.len() < 3 {
        assert!(
            waiting.elapsed() < Duration::from_secs(20),
            "a new worker within 20 s of the flood"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::fs::write(&stop_file, b"").unwrap();
    let flood_seconds = flood_started.elapsed().as_secs_f64();
    let mut attackers = attackers;
    let mut printed = String::new();
    std::io::Read::read_to_string(attackers.0.stdout.as_mut().unwrap(), &mut printed).unwrap();
    // The test harness prints `test NAME ... ` before the line, on the same line.
    let counts: Vec<u64> = printed
        .split("FLOOD ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect("the attackers report what they did")
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    let peak = peak_kib(pid);
    // The attackers are gone: their connections time out (QUIC's idle timeout),
    // and what they held is freed.
    let _ = attackers.0.wait();
    tokio::time::sleep(picluster_core::net::IDLE_TIMEOUT + Duration::from_secs(2)).await;
    let after = resident_kib(pid);
    println!(
        "flood: {} silent, {} foreign-certificate, {} half-frame connections, {} refused, \
         {} sessions not reading, {} idle ({:.0} attempts/s for {:.1} s); \
         job {:.2} MH/s quiet, {:.2} MH/s flooded ({:.0} %); coordinator peak {} KiB \
         ({} KiB before the flood, {} KiB resident {} s after it), coordinator CPU \
         {:.0} % of a core quiet, {:.0} % flooded",
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4],
        counts[5],
        counts.iter().sum::<u64>() as f64 / flood_seconds,
        flood_seconds,
        quiet / 1e6,
        flooded / 1e6,
        100.0 * flooded / quiet,
        peak,
        before_kib,
        after,
        picluster_core::net::IDLE_TIMEOUT.as_secs() + 2,
        quiet_cpu * 100.0,
        flood_cpu * 100.0,
    );
    match kind {
        Flood::OneCredential => {
            assert!(
                counts[2] + counts[4] + counts[5] > 16,
                "the flood did not happen"
            )
        }
        // Each of the eight credentials filled its 16 sessions.
        Flood::ManyCredentials => assert!(counts[2] >= 8 * 16, "the flood did not happen"),
        Flood::Anonymous => assert!(counts[0] > 100, "the flood did not happen"),
    }
    assert!(peak < 128 * 1024, "coordinator peak {peak} KiB");
    // What the flood took came back (the heap is trimmed after connections close):
    // a coordinator that kept it stayed 43 MiB above where it began.
    assert!(
        after < before_kib + 32 * 1024,
        "{after} KiB resident after the flood, {before_kib} KiB before"
    );
    // Still answering, to a new client.
    client.close();
    let fresh = Client::connect(&admin).await.unwrap();
    assert_eq!(fresh.status().await.unwrap().workers.len(), 3);
    fresh.close();
    drop(workers);
}
