//! The Stratum bridge against a scripted pool written here (two TCP listeners on
//! loopback, a cluster of two workers over QUIC): the pool checks every share it gets
//! with its own hashing and its own difficulty arithmetic, and scripts the hard
//! cases: shares held back until the authorize reply, `set_difficulty` and a clean
//! notify mid-job, rejections by reason, a dropped connection with a fallback pool,
//! the return to the first pool, and `client.reconnect`. A client job submitted
//! while the cluster mines runs first, and mining carries on after it.

use crate::template::{dsha, merkle_tree, two_workers};
use picluster_client::mine::{mine, MineError, MineOptions, PoolStats, PoolUrl};
use picluster_client::Client;
use picluster_client::{JobKind, JobSpec, JobState, SearchMode};
use picluster_core::coordinator::CoordinatorConfig;
use picluster_core::hex;
use picluster_core::kernel::sha256d::Sha256dJob;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// A pool job as this pool made it.
#[derive(Clone)]
struct PoolJob {
    id: String,
    version: u32,
    prevhash: [u8; 32],
    coinbase1: Vec<u8>,
    coinbase2: Vec<u8>,
    branch: Vec<[u8; 32]>,
    bits: u32,
    ntime: u32,
    /// Leading zero bits of the share target beyond difficulty 1's 32: a difficulty
    /// of 2^-k has target 0xffff << (208 + k).
    easier_by: u32,
}

impl PoolJob {
    fn new(id: &str, txs: u8, easier_by: u32) -> PoolJob {
        let others: Vec<[u8; 32]> = (1..txs).map(|k| dsha(&[k, txs])).collect();
        let leaves: Vec<[u8; 32]> = std::iter::once([0; 32]).chain(others).collect();
        PoolJob {
            id: id.to_string(),
            version: 0x2000_0000,
            prevhash: dsha(id.as_bytes()),
            coinbase1: format!("coinbase of {id}, part one").into_bytes(),
            coinbase2: format!("part two of {id}'s coinbase").into_bytes(),
            branch: merkle_tree(&leaves).1,
            bits: 0x207f_ffff,
            ntime: 1_700_000_000,
            easier_by,
        }
    }

    fn notify(&self, clean: bool) -> Value {
        // The prevhash goes out as eight byte-swapped words.
        let mut words = self.prevhash;
        for w in words.chunks_exact_mut(4) {
            w.reverse();
        }
        json!({"id": null, "method": "mining.notify", "params": [
            self.id, hex::encode(&words), hex::encode(&self.coinbase1), hex::encode(&self.coinbase2),
            self.branch.iter().map(|b| hex::encode(b)).collect::<Vec<_>>(),
            format!("{:08x}", self.version), format!("{:08x}", self.bits),
            format!("{:08x}", self.ntime), clean]})
    }

    fn difficulty(&self) -> Value {
        json!({"id": null, "method": "mining.set_difficulty", "params": [1.0 / f64::from(1u32 << self.easier_by)]})
    }

    /// Whether a submit's header meets this job's share target; its version.
    fn check(&self, extranonce1: &[u8], params: &[Value]) -> (bool, u32) {
        let s = |k: usize| params[k].as_str().unwrap();
        let extranonce2 = hex::decode(s(2)).unwrap();
        assert_eq!(extranonce2.len(), 4, "extranonce2 of the subscribed size");
        let ntime = u32::from_str_radix(s(3), 16).unwrap();
        let nonce = u32::from_str_radix(s(4), 16).unwrap();
        // Without version bits (a job before the configure reply), the job's version.
        let version = match params.get(5) {
            Some(_) => {
                let bits = u32::from_str_radix(s(5), 16).unwrap();
                assert_eq!(bits & !0x1fff_e000, 0, "version bits outside the mask");
                (self.version & !0x1fff_e000) | bits
            }
            None => self.version,
        };
        let coinbase = [
            &self.coinbase1[..],
            extranonce1,
            &extranonce2,
            &self.coinbase2,
        ]
        .concat();
        let mut root = dsha(&coinbase);
        for b in &self.branch {
            root = dsha(&[root, *b].concat());
        }
        let header = [
            &version.to_le_bytes()[..],
            &self.prevhash,
            &root,
            &ntime.to_le_bytes(),
            &self.bits.to_le_bytes(),
            &nonce.to_le_bytes(),
        ]
        .concat();
        let mut hash = dsha(&header);
        hash.reverse();
        // Target 0xffff << (208 + k), most significant byte first.
        let shift = 208 + self.easier_by;
        let mut target = [0u8; 32];
        let value: u128 = 0xffff << (shift % 8);
        let low_byte = 31 - (shift / 8) as usize;
        for k in 0..16 {
            if let Some(i) = low_byte.checked_sub(k) {
                target[i] = (value >> (8 * k)) as u8;
            }
        }
        (hash <= target, version)
    }
}

/// One pool connection, seen from the pool.
struct Conn {
    lines: Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
    extranonce1: Vec<u8>,
    /// The first line, read to tell a connection from a probe.
    first: Option<String>,
    /// The bridge's subscribe parameters.
    subscribe_params: Option<Value>,
}

impl Conn {
    /// The next connection that says something (the bridge's probes of the first
    /// pool connect and close at once).
    async fn accept(listener: &TcpListener) -> Conn {
        loop {
            let (stream, _) = tokio::time::timeout(Duration::from_secs(60), listener.accept())
                .await
                .expect("the bridge connects")
                .unwrap();
            let mut conn = Conn::of(stream);
            if let Ok(Ok(Some(line))) =
                tokio::time::timeout(Duration::from_secs(10), conn.lines.next_line()).await
            {
                conn.first = Some(line);
                return conn;
            }
        }
    }

    fn of(stream: TcpStream) -> Conn {
        let (read, write) = stream.into_split();
        Conn {
            lines: BufReader::new(read).lines(),
            write,
            extranonce1: Vec::new(),
            first: None,
            subscribe_params: None,
        }
    }

    async fn send(&mut self, v: Value) {
        let mut line = v.to_string();
        line.push('\n');
        self.write.write_all(line.as_bytes()).await.unwrap();
    }

    async fn next(&mut self) -> Value {
        if let Some(line) = self.first.take() {
            return serde_json::from_str(&line).unwrap();
        }
        let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("the bridge says something")
            .unwrap()
            .expect("the bridge keeps the connection");
        serde_json::from_str(&line).unwrap()
    }

    /// Answers configure and subscribe; holds the authorize reply for `hold`, sending
    /// `before` (difficulty, a notify) meanwhile: no submit may come before the reply.
    async fn handshake(&mut self, extranonce1: &[u8], hold: Duration, before: Vec<Value>) {
        self.extranonce1 = extranonce1.to_vec();
        let mut authorize = None;
        while authorize.is_none() {
            let m = self.next().await;
            let id = m["id"].clone();
            match m["method"].as_str().unwrap() {
                "mining.subscribe" => {
                    self.subscribe_params = Some(m["params"].clone());
                    self.send(json!({"id": id, "error": null, "result": [[["mining.notify", "s1"]], hex::encode(extranonce1), 4]})).await;
                    for v in &before {
                        self.send(v.clone()).await;
                    }
                }
                "mining.authorize" => {
                    assert_eq!(m["params"], json!(["miner.one", "secret"]));
                    authorize = Some(id);
                }
                other => panic!("{other} before the authorize reply"),
            }
        }
        let held = Instant::now();
        while held.elapsed() < hold {
            let left = hold.saturating_sub(held.elapsed());
            if let Ok(line) = tokio::time::timeout(left, self.lines.next_line()).await {
                let m: Value = serde_json::from_str(&line.unwrap().unwrap()).unwrap();
                // Nothing but subscribe and authorize before the authorize reply:
                // no share, and no configure (an old ckpool drops the connection).
                panic!("{m} before the authorize reply");
            }
        }
        self.send(json!({"id": authorize, "error": null, "result": true}))
            .await;
    }

    /// Serves submits until `wanted` shares of `job` are accepted, answering each
    /// with `answer` (None: check and accept); shares of other jobs are stale.
    /// Returns the versions of the accepted shares.
    async fn shares(
        &mut self,
        log: &Log,
        job: &PoolJob,
        wanted: usize,
        mut answer: impl FnMut(usize) -> Option<Value>,
    ) -> Vec<u32> {
        let mut versions = Vec::new();
        let mut seen = 0;
        while versions.len() < wanted {
            let m = self.next().await;
            let id = m["id"].clone();
            match m["method"].as_str() {
                Some("mining.submit") => {}
                Some("mining.configure") => {
                    assert_eq!(m["params"][1]["version-rolling.mask"], "1fffe000");
                    self.send(json!({"id": id, "error": null, "result": {"version-rolling": true, "version-rolling.mask": "1fffe000"}})).await;
                    continue;
                }
                Some("mining.extranonce.subscribe") => {
                    self.send(
                        json!({"id": id, "error": [20, "Not supported", null], "result": null}),
                    )
                    .await;
                    continue;
                }
                other => panic!("unexpected {other:?}: {m}"),
            }
            let params = m["params"].as_array().unwrap().clone();
            assert_eq!(params[0], "miner.one");
            let key = params
                .iter()
                .skip(1)
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",");
            assert!(
                log.lock().unwrap().keys.insert(key),
                "a share sent twice: {m}"
            );
            if params[1] != json!(job.id) {
                log.lock().unwrap().stale += 1;
                self.send(json!({"id": id, "error": [21, "Stale", null], "result": null}))
                    .await;
                continue;
            }
            let (meets, version) = job.check(&self.extranonce1, &params);
            assert!(meets, "a share under the difficulty of {}: {m}", job.id);
            seen += 1;
            match answer(seen) {
                Some(error) => {
                    // A reason that names the job counts as stale (cpuminer-opt's rule).
                    {
                        let mut l = log.lock().unwrap();
                        if error[1].as_str().unwrap().contains("Job") {
                            l.stale += 1;
                        } else {
                            l.rejected += 1;
                        }
                    }
                    self.send(json!({"id": id, "error": error, "result": null}))
                        .await;
                }
                None => {
                    log.lock().unwrap().accepted += 1;
                    versions.push(version);
                    self.send(json!({"id": id, "error": null, "result": true}))
                        .await;
                }
            }
        }
        versions
    }
}

/// A bridge mining in this process on pools at these loopback ports, in order.
pub(crate) struct Bridge {
    pub(crate) stats: Arc<Mutex<PoolStats>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), MineError>>,
}

impl Bridge {
    pub(crate) fn start(client: Client, ports: &[u16], user: &str, probe: Duration) -> Bridge {
        let options = MineOptions {
            pools: ports
                .iter()
                .map(|&port| PoolUrl {
                    host: "127.0.0.1".into(),
                    port,
                })
                .collect(),
            user: user.into(),
            password: "secret".into(),
            priority: -100,
            probe_primary: probe,
        };
        let stats = Arc::new(Mutex::new(PoolStats::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(mine(client, options, stats.clone(), async {
            let _ = stopped.await;
        }));
        Bridge { stats, stop, task }
    }

    /// Stops it and waits (30 s at most) for its end.
    pub(crate) async fn stop(self) -> Result<(), MineError> {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the bridge stops within 30 s")
            .expect("the bridge's task")
    }
}

#[derive(Default)]
struct Counts {
    accepted: u64,
    rejected: u64,
    stale: u64,
    keys: BTreeSet<String>,
}

type Log = Arc<Mutex<Counts>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_mines_through_every_pool_fault_and_gives_way_to_a_client_job() {
    let cluster = two_workers(CoordinatorConfig {
        max_chunk: 1 << 22,
        ..CoordinatorConfig::default()
    })
    .await;
    let client = cluster.client().await.unwrap();
    let first = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fallback = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = |l: &TcpListener| l.local_addr().unwrap().port();
    let bridge = Bridge::start(
        client.clone(),
        &[port(&first), port(&fallback)],
        "miner.one",
        Duration::from_secs(3),
    );
    let stats = bridge.stats.clone();
    let log: Log = Arc::default();

    // 1. Work before the authorize reply; shares wait for it. Difficulty 2^-12.
    let mut a = Conn::accept(&first).await;
    let j1 = PoolJob::new("j1", 5, 12);
    a.handshake(
        b"\xa1\xa1\xa1\xa1",
        Duration::from_millis(500),
        vec![j1.difficulty(), j1.notify(true)],
    )
    .await;
    assert_eq!(a.subscribe_params, Some(json!(["picluster/0.1.0"])));
    a.shares(&log, &j1, 6, |_| None).await;

    // 2. A new difficulty, then a clean notify: j1's shares are stale from now on;
    //    j2's meet the harder target; the pool rejects two for their reasons.
    let j2 = PoolJob::new("j2", 3, 11);
    a.send(j2.difficulty()).await;
    let notified = Instant::now();
    a.send(j2.notify(true)).await;
    let versions = a
        .shares(&log, &j2, 10, |k| match k {
            2 => Some(json!([23, "Low difficulty share", null])),
            4 => Some(json!([22, "Duplicate share", null])),
            6 => Some(json!([20, "Invalid JobID", null])),
            8 => Some(json!([20, "Ntime out of range", null])),
            _ => None,
        })
        .await;
    eprintln!("ten shares of the clean job in {:?}", notified.elapsed());
    assert!(
        versions.iter().any(|v| *v != j2.version),
        "no rolled version among {versions:x?}"
    );

    // 3. A client job while the cluster mines: it runs first and completes.
    let v = &picluster_suite::fixtures::vectors()[0];
    let start = u64::from(v.nonce) - (1 << 25);
    let job = Sha256dJob::new(v.header, None, start..start + (1 << 26), 0).unwrap();
    let report = client
        .run(&JobSpec {
            kind: JobKind::Sha256d(job),
            mode: SearchMode::All,
        })
        .await
        .unwrap();
    assert_eq!(report.state, JobState::Completed);
    eprintln!(
        "the client job started {} ms after it was submitted, while the cluster mined",
        report.times.started_ms.unwrap() - report.times.submitted_ms
    );
    assert_eq!(report.hashes, 1 << 26);
    assert_eq!(report.solutions.len(), 1);
    // Mining carries on by itself.
    a.shares(&log, &j2, 2, |_| None).await;

    // 4. The connection drops: the bridge goes to the fallback, and every job of
    //    the old connection is cancelled.
    drop(a);
    let mut b = Conn::accept(&fallback).await;
    let j3 = PoolJob::new("j3", 2, 12);
    b.handshake(
        b"\xb2\xb2\xb2\xb2",
        Duration::ZERO,
        vec![j3.difficulty(), j3.notify(true)],
    )
    .await;
    assert_eq!(b.subscribe_params, Some(json!(["picluster/0.1.0"])));
    b.shares(&log, &j3, 3, |_| None).await;

    // 5. The first pool answers again (it always listened): the bridge returns to it
    //    by itself within the probe interval.
    let mut a = Conn::accept(&first).await;
    let j4 = PoolJob::new("j4", 1, 12);
    a.handshake(
        b"\xa4\xa4\xa4\xa4",
        Duration::ZERO,
        vec![j4.difficulty(), j4.notify(true)],
    )
    .await;
    // Back at the first pool, the bridge asks to resume its session there.
    assert_eq!(a.subscribe_params, Some(json!(["picluster/0.1.0", "s1"])));
    a.shares(&log, &j4, 3, |_| None).await;

    // 6. client.reconnect to the fallback's port.
    let port = fallback.local_addr().unwrap().port();
    a.send(json!({"id": null, "method": "client.reconnect", "params": ["127.0.0.1", port, 0]}))
        .await;
    let mut b = Conn::accept(&fallback).await;
    let j5 = PoolJob::new("j5", 7, 12);
    b.handshake(
        b"\xb5\xb5\xb5\xb5",
        Duration::ZERO,
        vec![j5.difficulty(), j5.notify(false)],
    )
    .await;
    b.shares(&log, &j5, 3, |_| None).await;
    // The bridge has read the last answers before it stops, and told the
    // coordinator (every 5 s), which `picluster status` shows.
    let accepted = log.lock().unwrap().accepted;
    let waiting = Instant::now();
    let seen = loop {
        let miners = client.miners().await.unwrap();
        if stats.lock().unwrap().accepted == accepted
            && miners
                .first()
                .is_some_and(|m| m.report.accepted == accepted)
        {
            break miners;
        }
        assert!(waiting.elapsed() < Duration::from_secs(15), "{miners:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(seen.len(), 1);
    let m = &seen[0];
    assert_eq!(m.client, "local-admin");
    assert_eq!(m.report.pool, format!("stratum+tcp://127.0.0.1:{port}"));
    assert_eq!(m.report.state, "mining");
    assert_eq!(m.report.job.as_deref(), Some("j5"));
    assert_eq!(m.report.difficulty, "0.000244140625");
    assert_eq!(m.report.connections, 4);
    assert!(m
        .report
        .rejected
        .contains(&("Low difficulty share".to_string(), 1)));
    assert!(m.age_ms < 6000, "{m:?}");
    bridge.stop().await.unwrap();
    // What the bridge counted is what the pool answered (shares answered after the
    // pool stopped reading are neither).
    let st = stats.lock().unwrap().clone();
    let (accepted, stale, rejected) = {
        let c = log.lock().unwrap();
        (c.accepted, c.stale, c.rejected)
    };
    assert_eq!(st.accepted, accepted, "{st:?}");
    assert_eq!(st.stale, stale, "{st:?}");
    assert_eq!(st.rejected_total(), rejected);
    assert_eq!(st.rejected.get("Low difficulty share"), Some(&1));
    assert_eq!(st.rejected.get("Duplicate share"), Some(&1));
    assert_eq!(st.rejected.get("Ntime out of range"), Some(&1));
    assert_eq!(st.rejected.get("Invalid JobID"), None, "a stale share");
    // Regtest's nBits: every share is a block too.
    assert!(st.blocks >= st.accepted, "{st:?}");
    assert_eq!(st.connections, 4);
    let p50 = st.latency_quantile(0.5).unwrap();
    eprintln!(
        "{} shares accepted, {} stale, {} rejected; notify to work on the cluster: p50 {p50} ms, max {} ms over {} jobs",
        st.accepted,
        st.stale,
        st.rejected_total(),
        st.latency_quantile(1.0).unwrap(),
        st.latencies_ms.len()
    );
    // No mining job is left running on the cluster.
    let running = client
        .jobs()
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.kind == "template" && !j.progress.state.is_final())
        .count();
    assert_eq!(running, 0);
}

/// `picluster mine` with bad settings says which, before it connects to anything.
#[test]
fn bad_mine_settings_are_refused_naming_the_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let err = |args: &[&str]| {
        let mut argv = vec!["picluster", "mine", "--cluster", "/nonexistent"];
        argv.extend_from_slice(args);
        picluster_client::cli::run_from(argv, &mut Vec::new())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(&["--pool", "http://pool:3333", "--user", "u"]),
        "pool `http://pool:3333` is not a stratum+tcp://HOST:PORT address (TLS pools are not supported)"
    );
    assert_eq!(
        err(&["--pool", "stratum+tcp://pool", "--user", "u"]),
        "pool `stratum+tcp://pool` has no :PORT"
    );
    assert_eq!(
        err(&["--pool", "stratum+tcp://pool:0", "--user", "u"]),
        "pool `stratum+tcp://pool:0`: `0` is not a port number"
    );
    assert_eq!(
        err(&[
            "--pool",
            "stratum+tcp://pool:1",
            "--fallback",
            "stratum+tcp://:2",
            "--user",
            "u"
        ]),
        "pool `stratum+tcp://:2` has no host"
    );
    assert_eq!(
        err(&["--pool", "stratum+tcp://pool:1"]),
        "no pool user: give --user NAME (or `user` in a --config file)"
    );
    let config = tmp.path().join("mine.toml");
    std::fs::write(&config, "pool = \"stratum+tcp://pool:1\"\nusr = \"typo\"\n").unwrap();
    let c = config.to_str().unwrap();
    let e = err(&["--config", c]);
    assert!(
        e.starts_with(&format!("mine settings {c}: unknown field `usr`")),
        "{e}"
    );
    std::fs::write(&config, "user = \"me\"\n").unwrap();
    assert_eq!(
        err(&["--config", c]),
        format!("no pool: give --pool stratum+tcp://HOST:PORT (or `pool` in {c})")
    );
    assert_eq!(
        err(&[
            "--config",
            "/nonexistent/mine.toml",
            "--pool",
            "stratum+tcp://p:1"
        ]),
        "mine settings /nonexistent/mine.toml: No such file or directory (os error 2)"
    );
}

/// The coordinator's metrics carry each connected bridge's pool statistics.
#[test]
fn the_metrics_show_each_bridges_pool() {
    use picluster_core::coordinator::MetricsSnapshot;
    use picluster_core::service::{encode_coordinator, DriverMetrics};
    use picluster_core::wire::MinerReport;
    let report = MinerReport {
        pool: "stratum+tcp://pool:3333".into(),
        state: "mining".into(),
        difficulty: "0.5".into(),
        accepted: 7,
        stale: 2,
        rejected: vec![("Duplicate".into(), 1), ("Low difficulty share".into(), 3)],
        blocks: 1,
        latency_p50_ms: Some(12),
        ..MinerReport::default()
    };
    let snapshot = MetricsSnapshot {
        miners: vec![("miner".into(), report)],
        ..MetricsSnapshot::default()
    };
    let text = encode_coordinator(&snapshot, &DriverMetrics::default());
    let labels = r#"client="miner",pool="stratum+tcp://pool:3333""#;
    for line in [
        format!(r#"picluster_pool_shares_total{{{labels},verdict="accepted"}} 7"#),
        format!(r#"picluster_pool_shares_total{{{labels},verdict="stale"}} 2"#),
        format!(r#"picluster_pool_shares_total{{{labels},verdict="rejected"}} 4"#),
        format!(r#"picluster_pool_shares_total{{{labels},verdict="unanswered"}} 0"#),
        format!("picluster_pool_blocks_total{{{labels}}} 1"),
        format!("picluster_pool_up{{{labels}}} 1"),
        format!("picluster_pool_difficulty{{{labels}}} 0.5"),
        format!("picluster_pool_notify_to_work_seconds{{{labels}}} 0.012"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
}

/// A primary pool that is down from the start: the bridge mines on the fallback, and
/// stays there while the primary stays down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_leaves_the_bridge_on_the_live_fallback() {
    let cluster = two_workers(CoordinatorConfig::default()).await;
    let client = cluster.client().await.unwrap();
    // A port nothing listens on.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let live = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let live_port = live.local_addr().unwrap().port();
    let bridge = Bridge::start(
        client,
        &[dead_port, live_port],
        "miner.one",
        Duration::from_millis(500),
    );
    let stats = bridge.stats.clone();
    let log: Log = Arc::default();
    let mut b = Conn::accept(&live).await;
    let job = PoolJob::new("only", 3, 12);
    b.handshake(
        b"\x0b\x0b\x0b\x0b",
        Duration::ZERO,
        vec![job.difficulty(), job.notify(true)],
    )
    .await;
    // Probes of the dead primary (every 0.5 s) fail; the session goes on.
    b.shares(&log, &job, 5, |_| None).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.shares(&log, &job, 2, |_| None).await;
    bridge.stop().await.unwrap();
    let st = stats.lock().unwrap().clone();
    assert_eq!(st.connections, 1, "{st:?}");
    assert!(
        st.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("connecting: ")),
        "{st:?}"
    );
}

/// A pool that does not answer: a share's request times out as a verdict; a
/// subscribe or authorize that times out ends the session (retryable); a refused
/// user ends it for good.
#[test]
fn requests_time_out_and_a_refused_user_is_final() {
    use picluster_client::mine::session::{Event, Session, SessionError, Share, Verdict};
    let t0 = Instant::now();
    let mut s = Session::new(t0, "u", "p", "agent", None);
    let sent: Vec<String> = std::iter::from_fn(|| s.poll_transmit()).collect();
    assert_eq!(sent.len(), 2, "subscribe and authorize: {sent:?}");
    assert!(sent[0].contains("mining.subscribe") && sent[1].contains("mining.authorize"));
    // A share before the replies waits; nothing is sent.
    let share = Share {
        job_id: "j".into(),
        extranonce2: vec![0; 4],
        ntime: 1,
        nonce: 2,
        version: 0x2000_0000,
    };
    s.submit(t0, share.clone());
    assert_eq!(s.poll_transmit(), None);
    assert_eq!(s.handle_timeout(t0 + Duration::from_secs(29)), Ok(()));
    let err = s.handle_timeout(t0 + Duration::from_secs(30)).unwrap_err();
    assert_eq!(err, SessionError::TimedOut("mining.subscribe"));
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        "the pool did not answer mining.subscribe within 30 s"
    );

    // Subscribed and authorized: the waiting share goes out; unanswered, it times out.
    let mut s = Session::new(t0, "u", "p", "agent", Some("s9"));
    let sent: Vec<String> = std::iter::from_fn(|| s.poll_transmit()).collect();
    assert!(sent[0].contains(r#""params":["agent","s9"]"#), "{sent:?}");
    s.submit(t0, share.clone());
    s.handle_line(
        t0,
        r#"{"id":1,"result":[[["mining.notify","s10"]],"aabbccdd",4],"error":null}"#,
    )
    .unwrap();
    assert_eq!(
        s.poll_transmit(),
        None,
        "no share before the authorize reply"
    );
    s.handle_line(t0, r#"{"id":2,"result":true,"error":null}"#)
        .unwrap();
    assert_eq!(s.subscription(), Some("s10"));
    let sent: Vec<String> = std::iter::from_fn(|| s.poll_transmit()).collect();
    assert!(sent[0].contains("mining.configure"), "{sent:?}");
    assert!(sent[1].contains("mining.extranonce.subscribe"), "{sent:?}");
    assert!(
        sent[2].contains(r#""params":["u","j","00000000","00000001","00000002"]"#),
        "{sent:?}"
    );
    assert_eq!(s.poll_event(), Some(Event::Ready));
    let later = t0 + Duration::from_secs(31);
    // The configure's timeout means no rolling; the share's is its verdict.
    assert_eq!(s.handle_timeout(later), Ok(()));
    assert_eq!(
        s.poll_event(),
        Some(Event::Verdict(share, Verdict::TimedOut))
    );

    // A refused user is final.
    let mut s = Session::new(t0, "u", "p", "agent", None);
    s.handle_line(
        t0,
        r#"{"id":2,"result":null,"error":[24,"Unauthorized worker",null]}"#,
    )
    .map(|_| ())
    .unwrap_err();
    let mut s = Session::new(t0, "who", "p", "agent", None);
    let err = s
        .handle_line(t0, r#"{"id":2,"result":false,"error":null}"#)
        .unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        "the pool refused user who: it answered false"
    );
    // Garbage from the pool names itself.
    let mut s = Session::new(t0, "u", "p", "agent", None);
    let err = s.handle_line(t0, "{not json").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("pool sent a line that is not JSON"),
        "{err}"
    );
    let err = s
        .handle_line(
            t0,
            r#"{"id":null,"method":"mining.notify","params":["j","zz"]}"#,
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("pool sent a notify with fewer than 9 parameters"),
        "{err}"
    );
}
