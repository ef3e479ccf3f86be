//! Coordinators sharing etcd, as real processes: three etcd members on loopback
//! ports (Debian's `etcd`), three `picluster coordinator` processes made by
//! `picluster init --etcd` and `picluster add-coordinator`, and real
//! `picluster-worker` processes. Each test starts its own and stops them.
//!
//! These tests measure takeovers and kill processes on purpose: they are ignored by
//! `cargo test --workspace` and run alone (`cargo test --test tests ha:: --
//! --ignored --test-threads=1`, a step of `.ci/run`), where a loaded machine does not
//! blur what they print. Without `etcd` on PATH they say SKIPPED.
//!
//! # Layout
//! - this file: [`Etcd`] (the members), [`Ha`] (the coordinators and workers), and
//!   the helpers they share.
//! - `failover`: kill -9 of the leader, 20 times, mid-job; SIGSTOP past the lease.
//! - `etcd_faults`: etcd's members, its leader and all of it lost under a job.
//! - `join`: a join token naming every coordinator; joining through a standby.
//! - `net`: network namespaces, veth links and iptables rules for the next two.
//! - `partition`: the leader cut off from etcd (an owner-match rule).
//! - `tls`: etcd over TLS with the cluster CA's certificates, and etcd's users on.
//! - `nat`: workers behind a home router's NAT, coordinators behind forwarded
//!   ports.

mod etcd_faults;
mod failover;
mod join;
mod nat;
mod net;
mod partition;
mod tls;

use crate::binaries::real_binary;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// Kills its process (SIGKILL) when dropped.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn kill9(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `program` is on PATH; says SKIPPED for `test` when it is not.
pub(crate) fn have(program: &str, test: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!(
            "SKIPPED {test}: no `{program}` on PATH (Debian: apt-get install etcd-server); .ci/run installs it"
        );
    }
    found
}

/// Where processes run: the test's own network namespace, or a named one (made by
/// `net::Netns`), entered by `ip netns exec` for programs and by `setns` for the
/// test's own etcd queries.
#[derive(Clone, Debug, Default)]
pub(crate) struct Place {
    pub(crate) netns: Option<String>,
}

impl Place {
    /// `program` to run there.
    pub(crate) fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match &self.netns {
            None => Command::new(program),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(program);
                c
            }
        }
    }

    /// Runs `f` on a thread inside the namespace, with a runtime of its own.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&tokio::runtime::Runtime) -> T + Send + 'static,
    ) -> T {
        let netns = self.netns.clone();
        std::thread::spawn(move || {
            if let Some(ns) = netns {
                let file = File::open(format!("/var/run/netns/{ns}")).unwrap();
                let done = unsafe {
                    libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET)
                };
                assert_eq!(done, 0, "setns into {ns}");
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            f(&runtime)
        })
        .join()
        .unwrap()
    }
}

/// One etcd member.
struct Member {
    name: String,
    client: u16,
    peer: u16,
    data: PathBuf,
    process: Option<Proc>,
}

/// An etcd cluster of members on loopback ports.
pub(crate) struct Etcd {
    members: Vec<Member>,
    initial: String,
    log: PathBuf,
    place: Place,
}

impl Etcd {
    /// Starts `n` members in `dir` and waits until they elect a leader.
    pub(crate) fn start(dir: &Path, n: usize) -> Etcd {
        Etcd::start_in(dir, n, Place::default())
    }

    /// [`Etcd::start`] in `place`.
    pub(crate) fn start_in(dir: &Path, n: usize, place: Place) -> Etcd {
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("e{i}"),
                client: free_tcp_port(),
                peer: free_tcp_port(),
                data: dir.join(format!("etcd-{i}")),
                process: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut etcd = Etcd {
            members,
            initial,
            log: dir.join("etcd.log"),
            place,
        };
        for i in 0..n {
            etcd.spawn(i);
        }
        etcd.wait_for_leader();
        etcd
    }

    fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = self
            .place
            .command("etcd")
            .args([
                "--name",
                &m.name,
                "--data-dir",
                m.data.to_str().unwrap(),
                "--listen-client-urls",
                &format!("http://127.0.0.1:{}", m.client),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{}", m.client),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{}", m.peer),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{}", m.peer),
                "--initial-cluster",
                &self.initial,
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                "picluster-test",
                // As deploy/etcd/etcd.env sets them.
                "--pre-vote=true",
                // Compaction on, as deploy/ sets it; the retention long enough
                // for a test's audit of the history.
                "--auto-compaction-mode=revision",
                "--auto-compaction-retention=100000",
                "--logger=zap",
                "--log-level=warn",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.members[i].process = Some(Proc(child));
    }

    /// Every member's client URL.
    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect()
    }

    /// SIGKILLs member `i`.
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(p) = self.members[i].process.take() {
            p.kill9();
        }
    }

    /// Starts member `i` again on its data directory.
    pub(crate) fn restart(&mut self, i: usize) {
        self.spawn(i);
    }

    /// The member that leads etcd's raft, as the members say.
    pub(crate) fn leader(&self) -> Option<usize> {
        let live = self.live_endpoints();
        self.place.run(move |rt| {
            rt.block_on(async {
                for url in &live {
                    let Ok(Ok(mut client)) = tokio::time::timeout(
                        Duration::from_secs(1),
                        etcd_client::Client::connect([url], None),
                    )
                    .await
                    else {
                        continue;
                    };
                    let Ok(Ok(status)) =
                        tokio::time::timeout(Duration::from_secs(1), client.status()).await
                    else {
                        continue;
                    };
                    let Ok(list) = client.member_list().await else {
                        continue;
                    };
                    let leader = status.leader();
                    if let Some(m) = list.members().iter().find(|m| m.id() == leader) {
                        let name = m.name().to_string();
                        return name.strip_prefix('e').and_then(|i| i.parse().ok());
                    }
                }
                None
            })
        })
    }

    fn wait_for_leader(&self) {
        let started = Instant::now();
        while self.leader().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "etcd elected no leader: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A key's value, from the first live member that answers.
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        let (endpoints, key) = (self.live_endpoints(), key.to_string());
        self.place.run(move |rt| {
            rt.block_on(async {
                for endpoint in endpoints {
                    let answer = tokio::time::timeout(Duration::from_secs(2), async {
                        let mut client = etcd_client::Client::connect([endpoint], None).await?;
                        client.get(key.clone(), None).await
                    })
                    .await;
                    if let Ok(Ok(got)) = answer {
                        return got
                            .kvs()
                            .first()
                            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
                    }
                }
                None
            })
        })
    }

    /// Every key under `prefix`, from the first live member that answers.
    pub(crate) fn keys(&self, prefix: &str) -> Vec<String> {
        let (endpoints, prefix) = (self.live_endpoints(), prefix.to_string());
        self.place.run(move |rt| {
            rt.block_on(async {
                for endpoint in endpoints {
                    let options = etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_keys_only();
                    let answer = tokio::time::timeout(Duration::from_secs(2), async {
                        let mut client = etcd_client::Client::connect([endpoint], None).await?;
                        client.get(prefix.clone(), Some(options)).await
                    })
                    .await;
                    if let Ok(Ok(got)) = answer {
                        return got
                            .kvs()
                            .iter()
                            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
                            .collect();
                    }
                }
                Vec::new()
            })
        })
    }

    fn live_endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.process.is_some())
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect()
    }

    /// Every value `key` has had, oldest first, with its revision (etcd's history,
    /// as a watch from revision 1 replays it).
    pub(crate) fn history(&self, key: &str) -> Vec<(i64, String)> {
        let (endpoints, key) = (self.endpoints(), key.to_string());
        self.place.run(move |rt| {
            rt.block_on(async {
                let mut client = etcd_client::Client::connect(endpoints, None).await.unwrap();
                let last = client
                    .get(key.clone(), None)
                    .await
                    .unwrap()
                    .kvs()
                    .first()
                    .map_or(0, |kv| kv.mod_revision());
                let options = etcd_client::WatchOptions::new().with_start_revision(1);
                let (_watcher, mut stream) = client.watch(key, Some(options)).await.unwrap();
                let mut seen = Vec::new();
                while seen.last().is_none_or(|(r, _)| *r < last) {
                    let Ok(Ok(Some(answer))) =
                        tokio::time::timeout(Duration::from_secs(5), stream.message()).await
                    else {
                        panic!(
                            "etcd's history ended at {:?}, before revision {last}",
                            seen.last()
                        );
                    };
                    for event in answer.events() {
                        if let Some(kv) = event.kv() {
                            seen.push((
                                kv.mod_revision(),
                                String::from_utf8_lossy(kv.value()).into_owned(),
                            ));
                        }
                    }
                }
                seen
            })
        })
    }
}

/// A cluster of coordinators sharing etcd, and its workers.
pub(crate) struct Ha {
    pub(crate) dirs: Vec<PathBuf>,
    pub(crate) addresses: Vec<String>,
    pub(crate) coordinators: Vec<Option<Proc>>,
    pub(crate) logs: Vec<PathBuf>,
    pub(crate) workers: Vec<Proc>,
    pub(crate) admin: PathBuf,
    pub(crate) leader_key: String,
    tmp: PathBuf,
    place: Place,
    /// Each coordinator's own user id, if it runs as one (for owner-match rules).
    uids: Vec<Option<u32>>,
    /// Each coordinator's metrics port on 127.0.0.1 (in its place).
    pub(crate) metrics: Vec<u16>,
}

/// Runs the real `picluster` with `args`, expecting success; its stdout.
pub(crate) fn picluster(args: &[&str]) -> String {
    let out = Command::new(real_binary("picluster"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "picluster {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Ha {
    /// `n` coordinators on loopback UDP ports (`init --etcd`, then
    /// `add-coordinator`), started, and `workers` one-thread worker processes
    /// with bundles naming every coordinator.
    pub(crate) fn start(tmp: &Path, etcd: &Etcd, n: usize, workers: usize) -> Ha {
        let addresses: Vec<String> = (0..n)
            .map(|_| format!("127.0.0.1:{}", crate::cli::free_udp_port()))
            .collect();
        Ha::start_with(
            tmp,
            etcd,
            &addresses,
            &addresses,
            Place::default(),
            &[],
            workers,
        )
    }

    /// [`Ha::start`] with coordinators listening on `listen` and advertising
    /// `advertise`, in `place`, coordinator `i` running as user `uids[i]` when given.
    pub(crate) fn start_with(
        tmp: &Path,
        etcd: &Etcd,
        listen: &[String],
        advertise: &[String],
        place: Place,
        uids: &[u32],
        workers: usize,
    ) -> Ha {
        let mut ha = Ha::init(tmp, &etcd.endpoints(), listen, advertise, place, uids);
        ha.start_all();
        for w in 0..workers {
            ha.add_worker(&format!("w{w}"));
        }
        ha
    }

    /// The coordinators' directories (`init --etcd`, then `add-coordinator`), none
    /// started.
    pub(crate) fn init(
        tmp: &Path,
        endpoints: &[String],
        listen: &[String],
        advertise: &[String],
        place: Place,
        uids: &[u32],
    ) -> Ha {
        let n = listen.len();
        let endpoints = endpoints.join(",");
        let addresses = advertise.to_vec();
        let dirs: Vec<PathBuf> = (0..n).map(|i| tmp.join(format!("c{i}"))).collect();
        let first = dirs[0].to_str().unwrap();
        picluster(&[
            "init",
            first,
            "--listen",
            &listen[0],
            "--advertise",
            &addresses[0],
            "--etcd",
            &endpoints,
        ]);
        for i in 1..n {
            picluster(&[
                "add-coordinator",
                &format!("pi{i}"),
                "--cluster",
                first,
                "--listen",
                &listen[i],
                "--advertise",
                &addresses[i],
                "--out",
                dirs[i].to_str().unwrap(),
            ]);
        }
        for (dir, uid) in dirs.iter().zip(uids) {
            let owner = format!("{uid}:{uid}");
            let chown = Command::new("chown")
                .args(["-R", &owner, dir.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(chown.success());
        }
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dirs[0].join("cluster.json")).unwrap())
                .unwrap();
        let id = config["etcd"]["cluster_id"].as_str().unwrap();
        Ha {
            logs: (0..n).map(|i| tmp.join(format!("c{i}.log"))).collect(),
            coordinators: (0..n).map(|_| None).collect(),
            dirs,
            addresses,
            workers: Vec::new(),
            admin: tmp.join("c0").join("admin.bundle"),
            leader_key: format!("/picluster/{id}/leader"),
            tmp: tmp.to_path_buf(),
            uids: (0..n).map(|i| uids.get(i).copied()).collect(),
            metrics: (0..n).map(|_| free_tcp_port()).collect(),
            place,
        }
    }

    /// Starts every coordinator.
    pub(crate) fn start_all(&mut self) {
        for i in 0..self.dirs.len() {
            self.start_coordinator(i);
        }
    }

    /// Waits (up to `within`) for a coordinator's log to say it leads; which.
    pub(crate) fn wait_for_leader_in_log(&self, within: Duration) -> usize {
        let started = Instant::now();
        loop {
            let leading = self.logs.iter().position(|l| {
                std::fs::read_to_string(l).is_ok_and(|t| t.contains("leading listen="))
            });
            if let Some(i) = leading {
                return i;
            }
            assert!(
                started.elapsed() < within,
                "no coordinator leads: {}",
                self.all_logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts coordinator `i` (again), its log appended to `logs[i]`.
    pub(crate) fn start_coordinator(&mut self, i: usize) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.logs[i])
            .unwrap();
        let mut command = match self.uids[i] {
            None => self.place.command(real_binary("picluster")),
            Some(uid) => {
                let mut c = self.place.command("setpriv");
                c.args([
                    &format!("--reuid={uid}"),
                    &format!("--regid={uid}"),
                    "--clear-groups",
                ])
                .arg(real_binary("picluster"));
                c
            }
        };
        let child = command
            .args(["coordinator", "--cluster", self.dirs[i].to_str().unwrap()])
            .args(["--metrics", &format!("127.0.0.1:{}", self.metrics[i])])
            .env("RUST_LOG", "picluster_core=info")
            .env_remove("PICLUSTER_CONFIG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.coordinators[i] = Some(Proc(child));
    }

    /// A worker process named `name`, one thread, its bundle from the first
    /// coordinator's directory.
    pub(crate) fn add_worker(&mut self, name: &str) {
        let bundle = self.worker_bundle(name);
        self.spawn_worker(&self.place.clone(), &bundle, name);
    }

    /// A worker bundle for `name` from the first coordinator's directory.
    pub(crate) fn worker_bundle(&self, name: &str) -> PathBuf {
        let bundle = self.tmp.join(format!("{name}.bundle"));
        picluster(&[
            "add-worker",
            name,
            "--cluster",
            self.dirs[0].to_str().unwrap(),
            "--out",
            bundle.to_str().unwrap(),
        ]);
        bundle
    }

    /// A worker process with `bundle`, in `place`.
    pub(crate) fn spawn_worker(&mut self, place: &Place, bundle: &Path, name: &str) {
        let log = File::create(self.tmp.join(format!("{name}.log"))).unwrap();
        let child = place
            .command(real_binary("picluster-worker"))
            .args(["--bundle", bundle.to_str().unwrap(), "--threads", "1"])
            .env("RUST_LOG", "picluster_worker=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.workers.push(Proc(child));
    }

    /// The coordinator etcd's leader key names, if any.
    pub(crate) fn leader(&self, etcd: &Etcd) -> Option<usize> {
        let address = etcd.get(&self.leader_key)?;
        self.addresses.iter().position(|a| *a == address)
    }

    /// Waits (up to `within`) for a coordinator to lead; which.
    pub(crate) fn wait_for_leader(&self, etcd: &Etcd, within: Duration) -> usize {
        let started = Instant::now();
        loop {
            if let Some(i) = self.leader(etcd) {
                return i;
            }
            assert!(started.elapsed() < within, "no coordinator leads");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Coordinator `i`'s metrics, as Prometheus would scrape them (empty when it
    /// does not answer).
    pub(crate) fn scrape(&self, i: usize) -> String {
        use std::io::{Read, Write};
        let port = self.metrics[i];
        self.place.run(move |_| {
            let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                return String::new();
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
            let mut text = String::new();
            let _ = s.read_to_string(&mut text);
            text
        })
    }

    /// `picluster status --json` on the first coordinator's directory.
    pub(crate) fn status(&self) -> serde_json::Value {
        let out = self
            .place
            .command(real_binary("picluster"))
            .args([
                "status",
                "--json",
                "--cluster",
                self.dirs[0].to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap_or_default()
    }

    /// Every coordinator's log so far.
    pub(crate) fn all_logs(&self) -> String {
        self.logs
            .iter()
            .map(|l| std::fs::read_to_string(l).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The earliest time after `after` at which a coordinator's log says it granted
    /// its first lease.
    pub(crate) fn first_lease_after(&self, after: SystemTime) -> Option<SystemTime> {
        self.all_logs()
            .lines()
            .filter(|l| l.contains("first lease granted since this coordinator started"))
            .filter_map(log_time)
            .filter(|t| *t > after)
            .min()
    }

    /// Starts `picluster submit ARGS --json` with the admin bundle, in the
    /// background.
    pub(crate) fn submit(&self, args: &[&str]) -> Child {
        self.submit_from(&self.place, args)
    }

    /// [`Ha::submit`] from `place`.
    pub(crate) fn submit_from(&self, place: &Place, args: &[&str]) -> Child {
        place
            .command(real_binary("picluster"))
            .arg("submit")
            .args(args)
            .args(["--json", "--bundle", self.admin.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// `picluster submit` arguments: vector `v`'s block header over `len` nonces from
/// `start`, every hash at or below the block's own hash (`--all`). A range around
/// the block's nonce has exactly that one answer: another nonce's hash that low
/// has odds of about `len` in 2^43 for the genesis block, 2^32 for block 1.
pub(crate) fn block_job(v: usize, start: u64, len: u64) -> Vec<String> {
    let v = &picluster_suite::fixtures::vectors()[v];
    vec![
        "sha256d".into(),
        "--header".into(),
        picluster_core::hex::encode(&v.header.0),
        "--target".into(),
        v.hash.clone(),
        "--nonce-range".into(),
        format!("{start}..{}", start + len),
        "--all".into(),
    ]
}

/// A report is exact: completed, every one of `keyspace` indices searched once
/// (the workers' counts add up to it), and `nonce` the one answer.
pub(crate) fn assert_exact(report: &serde_json::Value, keyspace: u64, nonce: u64, what: &str) {
    assert_eq!(report["state"], "completed", "{what}: {report}");
    assert_eq!(report["hashes"], keyspace, "{what}: {report}");
    assert_eq!(report["keyspace"], keyspace, "{what}: {report}");
    let by_workers: u64 = report["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["hashes"].as_u64().unwrap())
        .sum();
    assert_eq!(by_workers, keyspace, "{what}: counted twice? {report}");
    assert_eq!(
        crate::crash::solution_nonces(report),
        vec![nonce],
        "{what}: {report}"
    );
}

/// The time a tracing log line starts with (`2026-12-07T19:03:40.297208Z`).
pub(crate) fn log_time(line: &str) -> Option<SystemTime> {
    let stamp = line.split_whitespace().next()?;
    let t =
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(t.unix_timestamp_nanos() as u64))
}

/// Waits for a `picluster submit --json` to exit; its status and the report (the
/// last line of its stdout).
pub(crate) fn finish(mut submit: Child, within: Duration) -> (bool, serde_json::Value, String) {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = submit.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > within {
            let _ = submit.kill();
            let out = submit.wait_with_output().unwrap();
            panic!(
                "picluster submit did not finish in {within:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = submit.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(serde_json::Value::Null);
    (status.success(), report, stderr)
}
