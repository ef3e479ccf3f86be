//! The `picluster` command line, run in-process through the real argument parser.

use picluster_client::cli::{run_from, CliError};
use picluster_core::coordinator::CoordinatorConfig;
use picluster_core::hex;
use picluster_core::identity::Role;
use picluster_core::trust::{Bundle, ClusterDir};
use picluster_suite::fixtures::vectors;
use picluster_worker::WorkerOptions;
use serde_json::Value;
use sha2::Digest;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

fn cli(args: &[&str]) -> (Result<ExitCode, CliError>, String) {
    let mut out = Vec::new();
    let mut argv = vec!["picluster"];
    argv.extend_from_slice(args);
    let result = run_from(argv, &mut out);
    (result, String::from_utf8(out).unwrap())
}

fn cli_ok(args: &[&str]) -> String {
    let (result, out) = cli(args);
    assert_eq!(result.unwrap(), ExitCode::SUCCESS, "{args:?}: {out}");
    out
}

fn cli_err(args: &[&str]) -> String {
    let (result, _) = cli(args);
    let message = result.expect_err("the command fails").to_string();
    assert!(!message.trim_end().contains('\n'), "one line: {message}");
    message
}

fn json_last_line(out: &str) -> Value {
    serde_json::from_str(out.lines().last().expect("output")).expect("JSON")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

pub(crate) fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn init_creates_a_cluster_with_private_keys_and_refuses_to_overwrite_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let d = dir.to_str().unwrap();
    let out = cli_ok(&[
        "init",
        d,
        "--listen",
        "0.0.0.0:7878",
        "--advertise",
        "pi-coord.local:7878",
        "--advertise",
        "203.0.113.7:17878",
    ]);
    assert!(
        out.contains("reached at pi-coord.local:7878, 203.0.113.7:17878"),
        "{out}"
    );
    for f in ["ca.key", "coordinator.key", "admin.bundle"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    let admin = Bundle::load(&dir.join("admin.bundle")).unwrap();
    assert_eq!(admin.coordinator, "pi-coord.local:7878");
    assert_eq!(admin.role, Role::Admin);

    let message = cli_err(&["init", d, "--listen", "0.0.0.0:7878", "--advertise", "x:1"]);
    assert!(
        message.contains("already exists and is not empty"),
        "{message}"
    );

    let other = tmp.path().join("d");
    let message = cli_err(&["init", other.to_str().unwrap(), "--listen", "0.0.0.0:7878"]);
    assert!(message.contains("pass --advertise HOST:PORT"), "{message}");
    assert!(!other.join("cluster.json").exists());
    let message = cli_err(&[
        "init",
        other.to_str().unwrap(),
        "--listen",
        "127.0.0.1:7878",
        "--advertise",
        "no-port",
    ]);
    assert_eq!(
        message,
        "invalid address `no-port`: expected HOST:PORT (IPv6 as [ADDR]:PORT)"
    );
    // A name to listen on is resolved, and peers reach the coordinator by it.
    let named = tmp.path().join("named");
    cli_ok(&[
        "init",
        named.to_str().unwrap(),
        "--listen",
        "localhost:7878",
    ]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(named.join("cluster.json")).unwrap())
            .unwrap();
    assert_eq!(config["listen"], "127.0.0.1:7878");
    let admin = Bundle::load(&named.join("admin.bundle")).unwrap();
    assert_eq!(admin.coordinator, "localhost:7878");
    for (bad, why) in [
        ("7878", "`7878` is not an address and port"),
        (
            "localhost:http",
            "`localhost:http`: `http` is not a port number",
        ),
        (
            "no-such-host.invalid:7878",
            "`no-such-host.invalid:7878` does not resolve",
        ),
    ] {
        let Err(CliError::Usage(e)) = cli(&["init", other.to_str().unwrap(), "--listen", bad]).0
        else {
            panic!("{bad} accepted")
        };
        let text = e.to_string();
        assert!(text.contains(why), "{text}");
        assert!(
            text.contains("e.g. 0.0.0.0:7878 (every interface)"),
            "{text}"
        );
    }

    // A CA key others can read: the coordinator refuses to start, naming the fix,
    // before it creates or opens anything.
    for key in ["ca.key", "coordinator.key"] {
        let path = dir.join(key);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            cli_err(&["coordinator", "--cluster", d]),
            format!(
                "{p} is readable by group or others (mode 644): a private key must be private; run `chmod 600 {p}`, and make new credentials if others may have read it",
                p = path.display()
            )
        );
        assert!(!dir.join("coordinator.redb").exists());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn a_worker_bundle_used_for_a_client_command_is_named_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("c");
    let d = d.to_str().unwrap();
    cli_ok(&["init", d, "--listen", "127.0.0.1:9"]);
    let file = tmp.path().join("pi-1.bundle");
    let f = file.to_str().unwrap();
    cli_ok(&["add-worker", "pi-1", "--cluster", d, "--out", f]);
    // Refused before any connection (nothing listens at the address), saying what
    // the credential is and which one to use.
    let message = cli_err(&["status", "--bundle", f]);
    assert!(
        message.contains("the bundle holds the credential of worker pi-1, which may only take work: a client needs a client or admin credential"),
        "{message}"
    );
}

#[test]
fn add_worker_writes_a_private_bundle_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("c");
    let d = d.to_str().unwrap();
    cli_ok(&["init", d, "--listen", "127.0.0.1:7878"]);
    let file = tmp.path().join("pi-1.bundle");
    let f = file.to_str().unwrap();
    let out = cli_ok(&["add-worker", "pi-1", "--cluster", d, "--out", f]);
    assert!(
        out.contains("picluster-worker --bundle pi-1.bundle"),
        "{out}"
    );
    assert_eq!(mode(&file), 0o600);
    let bundle = Bundle::load(&file).unwrap();
    assert_eq!(
        (
            bundle.role,
            bundle.name.as_str(),
            bundle.coordinator.as_str()
        ),
        (Role::Worker, "pi-1", "127.0.0.1:7878")
    );

    assert!(cli_err(&["add-worker", "pi-1", "--cluster", d, "--out", f]).contains("already exists"));
    // The name is taken once issued, in any role, unless replaced on purpose.
    let other = tmp.path().join("other.bundle");
    let o = other.to_str().unwrap();
    assert_eq!(
        cli_err(&["add-worker", "pi-1", "--cluster", d, "--out", o]),
        "a worker named pi-1 already has a credential from this cluster: pick another name, or pass --replace to issue a new one for it (then revoke the old one: `picluster revoke pi-1`)"
    );
    assert!(cli_err(&["add-client", "pi-1", "--cluster", d, "--out", o])
        .contains("a worker named pi-1"));
    assert!(!other.exists());
    for reserved in ["admin", "coordinator"] {
        assert_eq!(
            cli_err(&["add-worker", reserved, "--cluster", d, "--out", o]),
            format!("`{reserved}` is a reserved name (admin, coordinator): pick another")
        );
    }
    cli_ok(&[
        "add-worker",
        "pi-1",
        "--replace",
        "--cluster",
        d,
        "--out",
        o,
    ]);
    assert_ne!(Bundle::load(&other).unwrap().cert, bundle.cert);
    assert_eq!(
        cli_err(&["add-worker", "pi 1", "--cluster", d, "--out", "/tmp/x"]),
        "invalid name `pi 1`: use 1-63 characters from A-Z a-z 0-9 . _ -"
    );
    let missing = tmp.path().join("nope");
    let message = cli_err(&[
        "add-worker",
        "pi-2",
        "--cluster",
        missing.to_str().unwrap(),
        "--out",
        "/tmp/y",
    ]);
    assert!(message.contains("is not a cluster directory"), "{message}");
}

#[test]
fn bad_submissions_fail_with_one_line_before_anything_is_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("c");
    let d = d.to_str().unwrap();
    // No coordinator runs: an error that needed the network would take seconds.
    cli_ok(&["init", d, "--listen", "127.0.0.1:9"]);
    let genesis = hex::encode(&vectors()[0].header.0);
    let submit = |kind: &str, extra: &[&str]| {
        let mut args = vec!["submit", kind, "--cluster", d];
        args.extend_from_slice(extra);
        let started = std::time::Instant::now();
        let message = cli_err(&args);
        assert!(started.elapsed() < Duration::from_secs(1), "{message}");
        message
    };
    assert_eq!(
        submit("sha256d", &["--header", "abc"]),
        "header: odd-length hex (3 digits): every byte takes two hex digits"
    );
    let target = "00".repeat(32);
    let cases: [(&str, &[&str], &str); 21] = [
        (
            "hashcash",
            &["--data", "x", "--bits", "0"],
            "difficulty of 0 bits is outside 1..=256",
        ),
        (
            "hashcash",
            &["--data-hex", "0g", "--bits", "8"],
            "--data-hex: invalid hex character 'g' at position 1",
        ),
        (
            "hashcash",
            &["--data", "x", "--bits", "8", "--all"],
            "--all needs --counter-range: the default range of 2^64 counters never ends",
        ),
        (
            "hashcash",
            &["--data", "x", "--bits", "8", "--counter-range", "9..3"],
            "--counter-range 9..3: the range is empty or reversed (END is exclusive)",
        ),
        (
            "hashcash",
            &["--data", "x", "--bits", "8", "--counter-range", "0..2^64"],
            "--counter-range 0..2^64: END is beyond 18446744073709551615 (2^64-1)",
        ),
        (
            "hashcash",
            &["--data", "x", "--bits", "8", "--counter-range", "0..lots"],
            "--counter-range 0..lots: END `lots` is not a number (decimal, 0x hex, or 2^N)",
        ),
        (
            "preimage",
            &["--mask", "ab?x", "--target", &target],
            "--mask: position 2: unknown charset ?x (known: ?l ?u ?d ?h ?H ?s ?a ?b ?1-?4 ??)",
        ),
        (
            "preimage",
            &["--mask", "?1?d", "-1", "ab?x", "--target", &target],
            "-1: custom charset 1: position 2: unknown charset ?x (known: ?l ?u ?d ?h ?H ?s ?a ?b ?1-?4 ??)",
        ),
        (
            "preimage",
            &["--mask", "?1?2", "-1", "ab", "-2", "?1", "--target", &target],
            "-2: custom charset 2 may not use ?1-?4",
        ),
        (
            "preimage",
            &["--mask", "?1", "--target", &target],
            "--mask: mask uses ?1 but custom charset 1 is not defined",
        ),
        (
            "preimage",
            &["--mask", "?d", "--target", "abcd"],
            "--target #1: 2 bytes, expected 32 (64 hex digits)",
        ),
        (
            "preimage",
            &["--mask", "?d?d", "--target", &target, "--skip", "100"],
            "candidate range 100..100 is empty or beyond the mask's 100 candidates",
        ),
        (
            "sha256d",
            &["--header", "00ff"],
            "header is 2 bytes, expected 80",
        ),
        (
            "sha256d",
            &["--header", "zz"],
            "header: invalid hex character 'z' at position 0",
        ),
        (
            "sha256d",
            &["--header", &genesis, "--nonce-range", "10..10"],
            "--nonce-range 10..10: the range is empty or reversed (END is exclusive)",
        ),
        (
            "sha256d",
            &["--header", &genesis, "--nonce-range", "20..10"],
            "--nonce-range 20..10: the range is empty or reversed (END is exclusive)",
        ),
        (
            "sha256d",
            &["--header", &genesis, "--nonce-range", "0..4294967297"],
            "--nonce-range 0..4294967297: END is beyond 4294967296 (2^32)",
        ),
        (
            "sha256d",
            &["--header", &genesis, "--nonce-range", "5"],
            "--nonce-range 5: expected START..END",
        ),
        (
            "sha256d",
            &["--header", &genesis, "--target", "00ff"],
            "target is 2 bytes, expected 32 (64 hex digits, most significant first)",
        ),
        (
            "sha256d",
            &["--header", &genesis, "--version-mask", "ffffffff"],
            "version mask 0xffffffff has bits outside BIP 320's 0x1fffe000",
        ),
        (
            "sha256d",
            &["--header", &genesis, "--version-mask", "xyz"],
            "--version-mask: `xyz` is not hex",
        ),
    ];
    for (kind, extra, message) in cases {
        assert_eq!(submit(kind, extra), message, "{kind} {extra:?}");
    }
    let missing = tmp.path().join("missing");
    let message = cli_err(&[
        "submit",
        "sha256d",
        "--cluster",
        missing.to_str().unwrap(),
        "--header",
        &genesis,
    ]);
    assert_eq!(
        message,
        format!(
            "{} is not a cluster directory (no cluster.json): create one with `picluster init`",
            missing.display()
        )
    );
    assert!(matches!(
        cli(&["submit", "sha256d", "--cluster", d]).0,
        Err(CliError::Usage(_))
    ));
    assert!(matches!(
        cli(&["wait", "x7", "--cluster", d]).0,
        Err(CliError::Usage(_))
    ));
}

/// A coordinator served from a cluster directory and one worker from its bundle,
/// each on its own runtime thread, as the two daemons would run.
struct Daemons {
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Daemons {
    fn start(dir: &Path, bundle: &Path) -> Daemons {
        let mut d = Daemons {
            stop: Vec::new(),
            threads: Vec::new(),
        };
        let dir = dir.to_path_buf();
        d.spawn(move |stop| async move {
            picluster_core::service::serve_cluster(&dir, CoordinatorConfig::default(), async {
                let _ = stop.await;
            })
            .await
            .unwrap();
        });
        let bundle = Bundle::load(bundle).unwrap();
        d.spawn(move |stop| async move {
            let options = WorkerOptions {
                threads: 2,
                benchmark: Duration::from_millis(20),
                ..WorkerOptions::default()
            };
            picluster_worker::run(bundle, options, async {
                let _ = stop.await;
            })
            .await
            .unwrap();
        });
        d
    }

    fn spawn<F, Fut>(&mut self, f: F)
    where
        F: FnOnce(tokio::sync::oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.stop.push(tx);
        self.threads.push(std::thread::spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap()
                .block_on(f(rx));
        }));
    }

    /// Stops the worker first (it leaves cleanly), then the coordinator.
    fn stop(mut self) {
        while let Some(tx) = self.stop.pop() {
            let _ = tx.send(());
            self.threads.pop().unwrap().join().unwrap();
        }
    }
}

#[test]
fn command_line_drives_a_cluster_from_init_to_results() {
    // A coordinator on a port picked by binding and releasing it: tests that do so
    // take turns, or another one's client may take the port first.
    let _alone = crate::crash::one_coordinator_process_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let d = dir.to_str().unwrap();
    let port = free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let advertise = format!("localhost:{port}");
    // Advertised by name: the coordinator's certificate must carry it.
    cli_ok(&["init", d, "--listen", &listen, "--advertise", &advertise]);
    let bundle = tmp.path().join("pi-1.bundle");
    cli_ok(&[
        "add-worker",
        "pi-1",
        "--cluster",
        d,
        "--out",
        bundle.to_str().unwrap(),
    ]);
    let daemons = Daemons::start(&dir, &bundle);

    // Wait for the worker to join.
    let mut joined = false;
    for _ in 0..200 {
        let (result, out) = cli(&["status", "--cluster", d, "--json"]);
        if result.is_ok()
            && json_last_line(&out)["workers"]
                .as_array()
                .is_some_and(|w| w.len() == 1)
        {
            joined = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(joined, "worker joined");
    let status = json_last_line(&cli_ok(&["status", "--cluster", d, "--json"]));
    let w = &status["workers"][0];
    assert_eq!(w["name"], "pi-1");
    assert_eq!(w["threads"], 2);
    assert_eq!(w["arch"], std::env::consts::ARCH);
    assert!(w["mhs"].as_f64().unwrap() > 0.0);

    let v = &vectors()[2];
    let header = hex::encode(&v.header.0);
    let start = u64::from(v.nonce) - 500_000;
    let range = format!("{start}..{}", start + 1_000_000);
    let out = cli_ok(&[
        "submit",
        "sha256d",
        "--cluster",
        d,
        "--header",
        &header,
        "--nonce-range",
        &range,
        "--all",
        "--json",
    ]);
    let report = json_last_line(&out);
    assert_eq!(report["job"], "j1");
    assert_eq!(report["state"], "completed");
    assert_eq!(report["hashes"], 1_000_000);
    assert_eq!(report["solutions"].as_array().unwrap().len(), 1);
    assert_eq!(report["solutions"][0]["nonce"], u64::from(v.nonce));
    assert_eq!(
        report["solutions"][0]["version"],
        u64::from(v.header.version())
    );
    assert_eq!(report["solutions"][0]["hash"], v.hash);
    assert!(report["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(report["workers"][0]["name"], "pi-1");
    assert_eq!(report["workers"][0]["hashes"], 1_000_000);

    // Detach, then wait; human output names the solution.
    let out = cli_ok(&[
        "submit",
        "sha256d",
        "--cluster",
        d,
        "--header",
        &header,
        "--nonce-range",
        &range,
        "--detach",
    ]);
    assert_eq!(out.trim(), "j2");
    let out = cli_ok(&["wait", "j2", "--cluster", d]);
    assert!(out.starts_with("j2 completed: 1 solution\n"), "{out}");
    assert!(out.contains(&format!("nonce {}", v.nonce)), "{out}");

    // A whole-space job, cancelled: exit code 3 from wait.
    let out = cli_ok(&[
        "submit",
        "sha256d",
        "--cluster",
        d,
        "--header",
        &header,
        "--all",
        "--detach",
        "--json",
    ]);
    assert_eq!(
        json_last_line(&out),
        serde_json::json!({"job": "j3", "state": "queued"})
    );
    let out = cli_ok(&["cancel", "3", "--cluster", d, "--json"]);
    assert_eq!(
        json_last_line(&out),
        serde_json::json!({"job": "j3", "state": "cancelled"})
    );
    let (result, out) = cli(&["wait", "j3", "--cluster", d, "--json"]);
    assert_eq!(result.unwrap(), ExitCode::from(3));
    assert_eq!(json_last_line(&out)["state"], "cancelled");

    let jobs = json_last_line(&cli_ok(&["jobs", "--all", "--cluster", d, "--json"]));
    let states: Vec<&str> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["completed", "completed", "cancelled"]);
    let human = cli_ok(&["jobs", "--all", "--cluster", d]);
    assert!(
        human
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .take(2)
            .eq(["j1", "completed"]),
        "{human}"
    );
    assert_eq!(cli_err(&["wait", "j9", "--cluster", d]), "no job j9");

    // Hashcash: every counter with 12 leading zero bits, as the sha2 crate finds them.
    let expected: Vec<u64> = (0..40_000u64)
        .filter(|c| {
            let mut h = sha2::Sha256::new();
            h.update(b"picluster");
            h.update(c.to_be_bytes());
            let digest = h.finalize();
            digest[0] == 0 && digest[1] >> 4 == 0
        })
        .collect();
    let out = cli_ok(&[
        "submit",
        "hashcash",
        "--cluster",
        d,
        "--data",
        "picluster",
        "--bits",
        "12",
        "--counter-range",
        "0..40000",
        "--all",
        "--json",
    ]);
    let report = json_last_line(&out);
    assert_eq!(report["state"], "completed");
    assert_eq!(report["hashes"], 40_000);
    let counters: Vec<u64> = report["solutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["counter"].as_u64().unwrap())
        .collect();
    assert_eq!(counters, expected);
    let human = cli_ok(&[
        "submit",
        "hashcash",
        "--cluster",
        d,
        "--data",
        "picluster",
        "--bits",
        "12",
    ]);
    // First mode reports the lowest counter found before the job stopped.
    assert!(human.starts_with("j5 completed: "), "{human}");
    assert!(human.contains("counter "), "{human}");

    // Preimage: two SHA-256 digests of candidates of the mask, found and the job
    // done as soon as both are.
    let digest = |text: &str| hex::encode(&sha2::Sha256::digest(text.as_bytes()));
    let out = cli_ok(&[
        "submit",
        "preimage",
        "--cluster",
        d,
        "--mask",
        "pi?d?d?d?1",
        "-1",
        "!??",
        "--target",
        &digest("pi314!"),
        "--target",
        &digest("pi999?"),
        "--json",
    ]);
    let report = json_last_line(&out);
    assert_eq!(report["state"], "completed");
    let mut found: Vec<&str> = report["solutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["preimage"].as_str().unwrap())
        .collect();
    found.sort();
    assert_eq!(found, vec!["pi314!", "pi999?"]);
    assert_eq!(report["solutions"][0]["hash"].as_str().unwrap().len(), 64);
    let jobs = json_last_line(&cli_ok(&["jobs", "--all", "--cluster", d, "--json"]));
    let kinds: Vec<&str> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["sha256d", "sha256d", "sha256d", "hashcash", "hashcash", "preimage"]
    );

    // Maintenance: drain, then undrain.
    // An idle worker has no chunk to finish: it is drained at once.
    let out = cli_ok(&[
        "drain",
        "pi-1",
        "--reason",
        "new fan",
        "--cluster",
        d,
        "--json",
    ]);
    assert_eq!(json_last_line(&out)["state"], "drained");
    assert_eq!(json_last_line(&out)["reason"], "new fan");
    let status = json_last_line(&cli_ok(&["status", "--cluster", d, "--json"]));
    assert_eq!(status["workers"][0]["state"], "drained");
    assert_eq!(status["workers"][0]["drain_reason"], "new fan");
    let human = cli_ok(&["status", "--cluster", d]);
    assert!(
        human.starts_with("1 worker connected, 0 taking work: 0.00 MH/s\n"),
        "a drained worker is left out of the total: {human}"
    );
    assert!(human.contains("new fan"), "{human}");
    assert_eq!(
        cli_ok(&["undrain", "pi-1", "--cluster", d]).trim(),
        "pi-1 idle"
    );
    assert_eq!(
        cli_err(&["drain", "pi-9", "--cluster", d]),
        "no worker named pi-9 is connected or has ever connected"
    );
    let out = cli_ok(&[
        "submit",
        "sha256d",
        "--cluster",
        d,
        "--header",
        &header,
        "--nonce-range",
        &range,
        "--priority",
        "-3",
        "--json",
    ]);
    assert_eq!(json_last_line(&out)["state"], "completed");
    let jobs = json_last_line(&cli_ok(&["jobs", "--all", "--cluster", d, "--json"]));
    assert_eq!(jobs["jobs"][6]["priority"], -3);
    assert_eq!(jobs["jobs"][6]["client"], "admin");

    // Retention by hand: the default listing shows live jobs only.
    assert_eq!(
        cli_ok(&["jobs", "--cluster", d]),
        "no queued or running jobs\n7 finished jobs kept: `picluster jobs --all` lists them\n"
    );
    assert_eq!(
        json_last_line(&cli_ok(&["jobs", "--cluster", d, "--json"])),
        serde_json::json!({"jobs": []})
    );
    assert_eq!(
        cli_ok(&["forget", "j1", "2", "--cluster", d]),
        "forgot j1 j2\n"
    );
    assert_eq!(cli_err(&["forget", "j1", "--cluster", d]), "no job j1");
    assert_eq!(cli_err(&["wait", "j2", "--cluster", d]), "no job j2");
    let jobs = json_last_line(&cli_ok(&["jobs", "--all", "--cluster", d, "--json"]));
    let ids: Vec<&str> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["j3", "j4", "j5", "j6", "j7"]);
    assert_eq!(
        json_last_line(&cli_ok(&["jobs", "--prune", "--cluster", d, "--json"])),
        serde_json::json!({"jobs": [], "pruned": 5})
    );
    assert_eq!(cli_ok(&["jobs", "--all", "--cluster", d]), "no jobs\n");
    assert_eq!(
        cli_ok(&["jobs", "--prune", "--cluster", d]),
        "removed 0 finished jobs\nno queued or running jobs\n"
    );

    // A client credential: its own jobs, nothing of the cluster's management.
    let alice = tmp.path().join("alice.bundle");
    let a = alice.to_str().unwrap();
    let out = cli_ok(&["add-client", "alice", "--cluster", d, "--out", a]);
    assert!(
        out.starts_with(&format!("wrote {a} for client alice")),
        "{out}"
    );
    // Issuing works on the cluster directory: it takes no --bundle at all.
    match cli(&["add-client", "alice", "--bundle", a, "--out", "x.bundle"]).0 {
        Err(CliError::Usage(e)) => assert!(
            e.to_string()
                .contains("unexpected argument '--bundle' found"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    let header = hex::encode(&vectors()[0].header.0);
    let out = cli_ok(&[
        "submit",
        "sha256d",
        "--bundle",
        a,
        "--header",
        &header,
        "--nonce-range",
        "0..1000",
        "--json",
    ]);
    assert_eq!(json_last_line(&out)["state"], "completed");
    let mine = json_last_line(&cli_ok(&["jobs", "--all", "--bundle", a, "--json"]));
    assert_eq!(mine["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(mine["jobs"][0]["client"], "alice");
    let job = mine["jobs"][0]["job"].as_str().unwrap().to_string();
    // The admin's job is not alice's to see or touch.
    let out = cli_ok(&[
        "submit",
        "sha256d",
        "--cluster",
        d,
        "--header",
        &header,
        "--nonce-range",
        "0..1000",
        "--detach",
        "--json",
    ]);
    let admins = json_last_line(&out)["job"].as_str().unwrap().to_string();
    assert_eq!(
        cli_err(&["cancel", &admins, "--bundle", a]),
        format!("not permitted: job {admins} belongs to another client: client alice may not cancel it (an admin credential may)")
    );
    assert_eq!(
        cli_err(&["drain", "pi-1", "--bundle", a]),
        "not permitted: client alice may not drain or undrain workers: that takes an admin credential"
    );
    assert_eq!(
        json_last_line(&cli_ok(&["jobs", "--all", "--bundle", a, "--json"]))["jobs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        json_last_line(&cli_ok(&["status", "--bundle", a, "--json"]))["workers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        cli_ok(&["forget", &job, "--bundle", a]),
        format!("forgot {job}\n")
    );

    daemons.stop();
}

#[test]
fn coordinator_retention_options_are_checked_before_anything_starts() {
    for (args, wanted) in [
        (
            ["--keep-finished", "0"],
            "invalid value '0' for '--keep-finished <N>': 0 is not in 1..=1000000",
        ),
        (
            ["--keep-finished-for", "0"],
            "invalid value '0' for '--keep-finished-for <SECONDS>': 0 is not in 1..18446744073709551615",
        ),
    ] {
        let mut argv = vec!["coordinator", "--cluster", "/nonexistent"];
        argv.extend(args);
        let (result, _) = cli(&argv);
        let Err(CliError::Usage(e)) = result else {
            panic!("{argv:?}: a usage error")
        };
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains(wanted), "{e}");
    }
}

/// What a newcomer meets first: honest reports (work up to a first-mode solution,
/// who found it, rates in the job's own unit), one solution in first mode, filters,
/// one job in detail, and cancel/wait over several jobs.
#[test]
fn reports_filters_and_bulk_operations_tell_the_truth() {
    // A coordinator on a port picked by binding and releasing it: tests that do so
    // take turns, or another one's client may take the port first.
    let _alone = crate::crash::one_coordinator_process_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let d = dir.to_str().unwrap();
    let listen = format!("127.0.0.1:{}", free_udp_port());
    cli_ok(&["init", d, "--listen", &listen]);
    let bundle = tmp.path().join("pi-1.bundle");
    let b = bundle.to_str().unwrap();
    cli_ok(&["add-worker", "pi-1", "--cluster", d, "--out", b]);
    let daemons = Daemons::start(&dir, &bundle);
    for _ in 0..200 {
        let (result, out) = cli(&["status", "--cluster", d, "--json"]);
        if result.is_ok() && json_last_line(&out)["workers"][0]["state"] == "idle" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // First mode, the block's nonce half a million into the range: at least that
    // much was searched, by pi-1, which found it.
    let v = &vectors()[2];
    let header = hex::encode(&v.header.0);
    let start = u64::from(v.nonce) - 500_000;
    let range = format!("{start}..{}", start + 1_000_000);
    let report = json_last_line(&cli_ok(&[
        "submit",
        "sha256d",
        "--cluster",
        d,
        "--header",
        &header,
        "--nonce-range",
        &range,
        "--json",
    ]));
    assert_eq!(report["job"], "j1");
    assert_eq!(report["solutions"][0]["nonce"], u64::from(v.nonce));
    assert_eq!(report["solutions"][0]["worker"], "pi-1");
    assert_eq!(report["others"], 0);
    let searched = report["hashes"].as_u64().unwrap();
    assert!(
        (500_001..=1_000_000).contains(&searched),
        "searched {searched}"
    );
    assert_eq!(report["workers"][0]["name"], "pi-1");
    assert_eq!(report["workers"][0]["hashes"], searched);
    assert_eq!(report["rate_unit"], "H/s");
    assert!(report["rate"].as_f64().unwrap() > 0.0);
    let human = cli_ok(&["wait", "j1", "--cluster", d]);
    assert!(human.starts_with("j1 completed: 1 solution\n"), "{human}");
    assert!(human.contains(&format!("nonce {}", v.nonce)), "{human}");
    assert!(human.contains("  by pi-1\n"), "{human}");
    assert!(human.contains(" MH/s\n"), "{human}");

    // Hashcash at 4 bits: thousands of hits in a block, one reported (the lowest
    // found) with the count of the others; the rate is in indices/s.
    let out = cli_ok(&[
        "submit",
        "hashcash",
        "--data",
        "picluster",
        "--bits",
        "4",
        "--counter-range",
        "0..1000000",
        "--cluster",
        d,
    ]);
    let first = out.lines().next().unwrap();
    assert!(
        first.starts_with("j2 completed: 1 solution (the lowest of "),
        "{out}"
    );
    assert_eq!(out.lines().filter(|l| l.contains("counter ")).count(), 1);
    assert!(
        out.contains(" indices/s\n") && !out.contains("MH/s"),
        "{out}"
    );
    let report = json_last_line(&cli_ok(&["wait", "j2", "--cluster", d, "--json"]));
    assert!(report["others"].as_u64().unwrap() >= 1000, "{report}");
    assert_eq!(report["rate_unit"], "indices/s");
    let counter = report["solutions"][0]["counter"].as_u64().unwrap();
    let digest = sha2::Sha256::new()
        .chain_update(b"picluster")
        .chain_update(counter.to_be_bytes())
        .finalize();
    assert_eq!(digest[0] >> 4, 0, "a real solution");

    // Three long jobs, detached; then several at once.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let out = cli_ok(&[
            "submit",
            "sha256d",
            "--cluster",
            d,
            "--header",
            &header,
            "--nonce-range",
            "0..4294967296",
            "--all",
            "--detach",
        ]);
        ids.push(out.trim().to_string());
    }
    assert_eq!(ids, vec!["j3", "j4", "j5"]);
    let live = json_last_line(&cli_ok(&[
        "jobs",
        "--state",
        "live",
        "--cluster",
        d,
        "--json",
    ]));
    assert_eq!(live["jobs"].as_array().unwrap().len(), 3);
    let detail = json_last_line(&cli_ok(&["show", "last", "--cluster", d, "--json"]));
    assert_eq!(detail["job"], "j5");
    assert!(detail["times"]["submitted_ms"].as_u64().unwrap() > 0);
    let detail = json_last_line(&cli_ok(&["jobs", "j1", "--cluster", d, "--json"]));
    assert_eq!(detail["workers"][0]["name"], "pi-1");
    assert_eq!(detail["workers"][0]["hashes"], searched);
    assert_eq!(detail["workers"][0]["solutions"], 1);
    assert_eq!(detail["solutions"][0]["worker"], "pi-1");
    let human = cli_ok(&["show", "j1", "--cluster", d]);
    assert!(human.starts_with("j1 completed (sha256d first"), "{human}");
    assert!(human.contains("WORKER"), "{human}");

    assert_eq!(
        cli_err(&["cancel", "90-95", "--cluster", d]),
        "no job from j90 to j95 is kept by the coordinator: nothing to cancel"
    );
    // A job that does not exist does not stop the others.
    let (result, out) = cli(&["cancel", "4-5", "j99", "3", "--cluster", d, "--json"]);
    assert_eq!(
        result.expect_err("j99 does not exist").to_string(),
        "no job j99 (the coordinator keeps no such job); 3 others were cancelled"
    );
    let cancelled = json_last_line(&out);
    assert_eq!(
        cancelled,
        serde_json::json!({"jobs": [
            {"job": "j4", "state": "cancelled"},
            {"job": "j5", "state": "cancelled"},
            {"job": "j3", "state": "cancelled"},
        ]})
    );
    assert_eq!(
        cli_ok(&["cancel", "all", "--cluster", d]),
        "no jobs to cancel\n"
    );
    let (result, out) = cli(&["wait", "j3-j5", "--cluster", d, "--json"]);
    assert_eq!(result.unwrap(), ExitCode::from(3), "the worst: cancelled");
    let reports = json_last_line(&out);
    let states: Vec<&str> = reports["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["cancelled"; 3]);

    // Filters.
    let listed = |args: &[&str]| -> Vec<String> {
        let mut argv = vec!["jobs", "--cluster", d, "--json"];
        argv.extend_from_slice(args);
        json_last_line(&cli_ok(&argv))["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["job"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(listed(&["--state", "completed"]), vec!["j1", "j2"]);
    assert_eq!(
        listed(&["--state", "done", "--last", "2"]),
        vec!["j4", "j5"]
    );
    assert_eq!(
        listed(&["--all", "--client", "admin", "--last", "1"]),
        vec!["j5"]
    );
    assert!(listed(&["--all", "--client", "bob"]).is_empty());
    assert_eq!(
        cli_ok(&["jobs", "--state", "running", "--cluster", d]),
        "no jobs match\n"
    );
    assert!(matches!(
        cli(&["jobs", "--state", "sleeping", "--cluster", d]).0,
        Err(CliError::Usage(_))
    ));
    assert!(matches!(
        cli(&["cancel", "7-3", "--cluster", d]).0,
        Err(CliError::Usage(_))
    ));

    // Live status: snapshots off a terminal, one JSON object per line with --json.
    let out = cli_ok(&[
        "status",
        "--watch",
        "--interval",
        "0.2",
        "--count",
        "3",
        "--cluster",
        d,
        "--json",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for line in lines {
        let snapshot: Value = serde_json::from_str(line).unwrap();
        assert_eq!(snapshot["workers"][0]["name"], "pi-1");
    }
    let out = cli_ok(&[
        "status",
        "-w",
        "--interval",
        "0.2",
        "--count",
        "2",
        "--cluster",
        d,
    ]);
    assert_eq!(
        out.matches("  every 0.2 s, Ctrl-C stops\n1 worker connected")
            .count(),
        2,
        "{out}"
    );
    assert!(matches!(
        cli(&["status", "--interval", "1", "--cluster", d]).0,
        Err(CliError::Usage(_))
    ));

    // Batch submission: one job per line, comments and blank lines skipped, all
    // waited for; a bad line names the file and line, and nothing is submitted.
    let headers = tmp.path().join("headers.txt");
    let other = hex::encode(&vectors()[0].header.0);
    std::fs::write(
        &headers,
        format!("# blocks to check\n{header}\n\n  {other}  \n"),
    )
    .unwrap();
    let h = headers.to_str().unwrap();
    let bad = tmp.path().join("bad.txt");
    std::fs::write(&bad, format!("{header}\n# fine so far\nzz\n")).unwrap();
    let message = cli_err(&[
        "submit",
        "sha256d",
        "--headers-file",
        bad.to_str().unwrap(),
        "--cluster",
        d,
    ]);
    assert!(
        message.starts_with(&format!("--headers-file {} line 3: ", bad.display())),
        "{message}"
    );
    assert_eq!(listed(&["--all"]).len(), 5, "nothing submitted");
    let (result, out) = cli(&[
        "submit",
        "sha256d",
        "--headers-file",
        h,
        "--nonce-range",
        &range,
        "--all",
        "--cluster",
        d,
        "--json",
    ]);
    assert_eq!(result.unwrap(), ExitCode::SUCCESS);
    let batch = json_last_line(&out);
    let summary: Vec<(String, usize, u64)> = batch["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["job"].as_str().unwrap().to_string(),
                r["solutions"].as_array().unwrap().len(),
                r["hashes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("j6".to_string(), 1, 1_000_000),
            ("j7".to_string(), 0, 1_000_000)
        ]
    );
    let masks = tmp.path().join("masks.txt");
    std::fs::write(&masks, "pi?d?d?d!\npi?d?d?d??\n").unwrap();
    let digest = |text: &str| hex::encode(&sha2::Sha256::digest(text.as_bytes()));
    let out = cli_ok(&[
        "submit",
        "preimage",
        "--masks-file",
        masks.to_str().unwrap(),
        "--target",
        &digest("pi314!"),
        "--target",
        &digest("pi999?"),
        "--detach",
        "--cluster",
        d,
    ]);
    assert_eq!(out, "j8\nj9\n");
    let batch = json_last_line(&cli_ok(&["wait", "j8", "j9", "--cluster", d, "--json"]));
    let found: Vec<&str> = batch["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["solutions"][0]["preimage"].as_str().unwrap())
        .collect();
    assert_eq!(found, vec!["pi314!", "pi999?"]);
    daemons.stop();
}

/// `--help` of every command shows an example; the top-level help, the environment
/// (RUST_LOG) and the exit codes.
#[test]
fn every_command_s_help_shows_examples() {
    let help = |path: &[&str]| {
        let mut args = path.to_vec();
        args.push("--help");
        match cli(&args).0 {
            Err(CliError::Usage(e)) => e.to_string(),
            other => panic!("{path:?}: {other:?}"),
        }
    };
    let top = help(&[]);
    for needle in [
        "RUST_LOG",
        "Examples:",
        "Exit status: 0 success",
        "-v, --verbose",
        "-q, --quiet",
    ] {
        assert!(top.contains(needle), "{needle}: {top}");
    }
    // Every command the top-level help lists, and the subcommands of the groups.
    let commands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .filter(|c| c != "help")
        .collect();
    assert_eq!(commands.len(), 23, "{commands:?}");
    // Using the cluster first, then running it, then the shell's helpers.
    assert_eq!(
        commands,
        [
            "submit",
            "wait",
            "show",
            "jobs",
            "cancel",
            "forget",
            "status",
            "mine",
            "init",
            "coordinator",
            "add-coordinator",
            "add-worker",
            "add-client",
            "etcd-certs",
            "token",
            "join",
            "drain",
            "undrain",
            "release",
            "revoke",
            "renew-coordinator",
            "completions",
            "manpages"
        ]
    );
    // The commands that work on the cluster directory offer no --bundle.
    for command in [
        "add-coordinator",
        "etcd-certs",
        "add-worker",
        "add-client",
        "renew-coordinator",
    ] {
        let text = help(&[command]);
        assert!(
            text.contains("--cluster <DIR>") && !text.contains("--bundle"),
            "picluster {command} --help:\n{text}"
        );
    }
    assert!(help(&["token", "create"]).contains("a bare number is seconds"));
    for command in &commands {
        let text = help(&[command]);
        assert!(
            text.contains("Example"),
            "picluster {command} --help:\n{text}"
        );
    }
    for sub in [
        ["submit", "sha256d"],
        ["submit", "hashcash"],
        ["submit", "preimage"],
    ]
    .iter()
    .chain(&[["token", "create"], ["token", "list"], ["token", "revoke"]])
    {
        let text = help(sub);
        assert!(
            text.contains("Example"),
            "picluster {sub:?} --help:\n{text}"
        );
    }
    let worker = std::process::Command::new(crate::binaries::real_binary("picluster-worker"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&worker.stdout);
    assert!(
        text.contains("Examples:") && text.contains("RUST_LOG"),
        "{text}"
    );
    // One -v/-q scheme for both programs: a level per flag.
    for program in [top.as_str(), &*text] {
        assert!(
            program.contains("More log output on stderr, a level per -v")
                && program.contains("Less log output on stderr, a level per -q"),
            "{program}"
        );
    }
}

#[test]
fn a_coordinator_whose_store_went_missing_refuses_to_start_without_new_store() {
    // A coordinator on a port picked by binding and releasing it: tests that do so
    // take turns, or another one's client may take the port first.
    let _alone = crate::crash::one_coordinator_process_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let d = dir.to_str().unwrap();
    let listen = format!("127.0.0.1:{}", free_udp_port());
    cli_ok(&["init", d, "--listen", &listen]);
    let serve = |options: picluster_core::service::ServeOptions| {
        let dir = dir.clone();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(picluster_core::service::serve_cluster_with(
                &dir,
                CoordinatorConfig::default(),
                options,
                async {},
            ))
    };
    // The first start makes the store and notes that it did.
    serve(Default::default()).unwrap();
    let store = dir.join(picluster_core::service::STORE_FILE);
    assert!(store.exists());
    assert!(dir.join(picluster_core::service::STORE_MARKER).exists());
    // Lost: refused, naming the file and what went with it.
    std::fs::remove_file(&store).unwrap();
    let err = serve(Default::default()).unwrap_err();
    assert!(
        matches!(&err, picluster_core::service::ServeError::StoreMissing { store: s } if *s == store),
        "{err:?}"
    );
    assert_eq!(
        cli_err(&["coordinator", "--cluster", d]),
        format!(
            "{} is missing, but this cluster's coordinator has run before: its revocations, quarantines, drains, enrolled names, join tokens and jobs were in it. Restore it from a backup, or start with --new-store to begin with an empty one (revoked and quarantined workers are then let in again)",
            store.display()
        )
    );
    assert!(!store.exists(), "nothing was made");
    // Told to, it starts with an empty store.
    serve(picluster_core::service::ServeOptions {
        new_store: true,
        ..Default::default()
    })
    .unwrap();
    assert!(store.exists());
}

/// A name enrolled with a join token is noted in the cluster directory, so that
/// `add-worker` refuses to issue it a second credential, as it refuses a name it
/// issued itself (it used to issue one: issued.json knew only bundle names).
#[test]
fn add_worker_refuses_a_name_enrolled_with_a_join_token() {
    // A coordinator on a port picked by binding and releasing it: tests that do so
    // take turns, or another one's client may take the port first.
    let _alone = crate::crash::one_coordinator_process_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let d = dir.to_str().unwrap();
    let listen = format!("127.0.0.1:{}", free_udp_port());
    cli_ok(&["init", d, "--listen", &listen]);
    let bundle = tmp.path().join("pi-1.bundle");
    let b = bundle.to_str().unwrap();
    cli_ok(&["add-worker", "pi-1", "--cluster", d, "--out", b]);
    let daemons = Daemons::start(&dir, &bundle);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let admin = picluster_core::trust::ClusterDir::open(&dir)
            .unwrap()
            .admin_bundle()
            .unwrap();
        let mut client = None;
        for _ in 0..200 {
            if let Ok(c) = picluster_client::Client::connect(&admin).await {
                client = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let client = client.expect("the coordinator answers");
        let (token, _) = client
            .create_token(Role::Worker, Duration::from_secs(600), 1, false)
            .await
            .unwrap();
        client.close();
        let state = tmp.path().join("pi-7-state");
        let joined = picluster_worker::enroll::join_with(&token, "pi-7", &state, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(joined.name, "pi-7");
    });
    daemons.stop();
    let out = tmp.path().join("pi-7.bundle");
    let o = out.to_str().unwrap();
    assert_eq!(
        cli_err(&["add-worker", "pi-7", "--cluster", d, "--out", o]),
        "a worker named pi-7 already has a credential from this cluster: pick another name, or pass --replace to issue a new one for it (then revoke the old one: `picluster revoke pi-7`)"
    );
    assert!(!out.exists());
    cli_ok(&[
        "add-worker",
        "pi-7",
        "--cluster",
        d,
        "--out",
        o,
        "--replace",
    ]);
    // Names it issued itself are still known.
    let again = tmp.path().join("pi-1-again.bundle");
    let message = cli_err(&[
        "add-worker",
        "pi-1",
        "--cluster",
        d,
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(
        message.starts_with("a worker named pi-1 already"),
        "{message}"
    );
}

#[test]
fn coordinators_sharing_etcd_are_set_up_from_the_cluster_directory_and_bad_input_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let d = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    // An etcd URL that is not one.
    let bad = cli_err(&[
        "init",
        &d("x"),
        "--listen",
        "127.0.0.1:7001",
        "--etcd",
        "ftp://e:2379",
    ]);
    assert!(
        bad.contains("--etcd ftp://e:2379") && bad.contains("http://"),
        "{bad}"
    );
    // A cluster on redb takes no second coordinator.
    cli_ok(&["init", &d("solo"), "--listen", "127.0.0.1:7002"]);
    let bad = cli_err(&[
        "add-coordinator",
        "pi2",
        "--cluster",
        &d("solo"),
        "--listen",
        "127.0.0.1:7003",
        "--out",
        &d("solo2"),
    ]);
    assert!(bad.contains("init --etcd"), "{bad}");
    assert!(!tmp.path().join("solo2").exists());
    // With etcd over TLS: each coordinator directory has its etcd client certificate.
    cli_ok(&[
        "init",
        &d("rack"),
        "--listen",
        "127.0.0.1:7004",
        "--etcd",
        "https://127.0.0.1:2379,https://127.0.0.2:2379",
    ]);
    cli_ok(&[
        "add-coordinator",
        "pi2",
        "--cluster",
        &d("rack"),
        "--listen",
        "127.0.0.1:7005",
        "--out",
        &d("rack2"),
    ]);
    let bad = cli_err(&[
        "add-coordinator",
        "pi3",
        "--cluster",
        &d("rack"),
        "--listen",
        "127.0.0.1:7005",
        "--out",
        &d("rack3"),
    ]);
    assert!(bad.contains("already at 127.0.0.1:7005"), "{bad}");
    for dir in ["rack", "rack2"] {
        let dir = ClusterDir::open(&tmp.path().join(dir)).unwrap();
        let credential = dir
            .etcd_client_credential()
            .unwrap()
            .expect("etcd client certificate");
        let identity = picluster_core::trust::identity_of(
            &rustls_pki_types::pem::PemObject::from_pem_slice(credential.cert_pem.as_bytes())
                .unwrap(),
        );
        // Not a picluster role: no worker, client or coordinator certificate.
        assert!(identity.is_err(), "{identity:?}");
        assert_eq!(
            dir.config().coordinators,
            ["127.0.0.1:7004", "127.0.0.1:7005"]
        );
    }
    // Bundles made after the add-coordinator name both.
    cli_ok(&[
        "add-worker",
        "w1",
        "--cluster",
        &d("rack"),
        "--out",
        &d("w1.bundle"),
    ]);
    let bundle = Bundle::load(&tmp.path().join("w1.bundle")).unwrap();
    assert_eq!(bundle.addresses(), ["127.0.0.1:7004", "127.0.0.1:7005"]);
    // etcd's certificates: a member needs its hosts.
    let bad = cli_err(&[
        "etcd-certs",
        "--cluster",
        &d("rack"),
        "--member",
        "e1",
        "--out",
        &d("e1"),
    ]);
    assert!(bad.contains("--host"), "{bad}");
    cli_ok(&[
        "etcd-certs",
        "--cluster",
        &d("rack"),
        "--member",
        "e1",
        "--host",
        "10.0.0.1",
        "--out",
        &d("e1"),
    ]);
    for file in ["ca.pem", "e1.pem", "e1.key"] {
        assert!(tmp.path().join("e1").join(file).is_file(), "{file}");
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(tmp.path().join("e1").join("e1.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let bad = cli_err(&[
        "etcd-certs",
        "--cluster",
        &d("rack"),
        "--member",
        "e1",
        "--host",
        "10.0.0.1",
        "--out",
        &d("e1"),
    ]);
    assert!(bad.contains("already exists"), "{bad}");
}
