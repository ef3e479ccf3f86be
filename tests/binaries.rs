//! The real `picluster` and `picluster-worker` binaries, run as a user runs them:
//! a coordinator whose standard error is a pipe whose reader died (`2>&1 | tee log`
//! and `tee` killed first), `picluster ... | head` whose reader stops early, the
//! story the coordinator's log tells, JSON errors and exit codes, and the connection
//! errors a newcomer meets.

use crate::crash::one_coordinator_process_at_a_time;
use picluster_client::{JobKind, JobSpec, JobState, SearchMode};
use picluster_core::kernel::sha256d::Sha256dJob;
use picluster_core::trust::ClusterDir;
use picluster_suite::fixtures::vectors;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A binary cargo built for this workspace (`picluster`, `picluster-worker`): the
/// real programs, as installed. `cargo test --workspace` builds them with the tests.
pub(crate) fn real_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/tests-HASH -> target/<profile>/NAME
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo test --workspace` (or `cargo build --bins` first)",
        path.display()
    );
    let built = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if built(&path) < built(&exe) {
        eprintln!(
            "note: {} is older than this test binary; `cargo build --bins` if it is stale",
            path.display()
        );
    }
    path
}

/// A new cluster in `parent/c` whose coordinator listens on a free loopback port.
fn loopback_cluster(parent: &std::path::Path) -> (std::path::PathBuf, ClusterDir) {
    let dir = parent.join("c");
    let address = format!("127.0.0.1:{}", crate::cli::free_udp_port());
    let cluster = ClusterDir::init(&dir, address.parse().unwrap(), &[]).unwrap();
    (dir, cluster)
}

/// Runs a real program (`args[0]` names it) with stdout and stderr piped; the pipes
/// named in `cut` have their reading end closed before the program writes anything.
fn program(args: &[&str], cut_stdout: bool, cut_stderr: bool) -> std::process::Child {
    let mut child = Command::new(real_binary(args[0]))
        .args(&args[1..])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if cut_stdout {
        drop(child.stdout.take());
    }
    if cut_stderr {
        drop(child.stderr.take());
    }
    child
}

#[test]
fn a_coordinator_whose_stderr_reader_died_keeps_serving() {
    let _alone = one_coordinator_process_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, cluster) = loopback_cluster(tmp.path());
    let mut coordinator = program(
        &[
            "picluster",
            "coordinator",
            "--cluster",
            dir.to_str().unwrap(),
        ],
        false,
        true,
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // Every connection is logged at INFO, into the dead pipe.
        let worker = tokio::spawn(picluster_worker::run(
            cluster.worker_bundle("pi-1").unwrap(),
            picluster_worker::WorkerOptions {
                threads: 1,
                benchmark: Duration::from_millis(10),
                min_backoff: Duration::from_millis(50),
                ..picluster_worker::WorkerOptions::default()
            },
            std::future::pending(),
        ));
        let started = Instant::now();
        let client = loop {
            assert!(
                coordinator.try_wait().unwrap().is_none(),
                "the coordinator died with its log sink"
            );
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no coordinator"
            );
            if let Ok(c) = picluster_client::Client::connect(&cluster.admin_bundle().unwrap()).await
            {
                if c.status().await.unwrap().workers.len() == 1 {
                    break c;
                }
                c.close();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let v = &vectors()[0];
        let start = u64::from(v.nonce) - 1000;
        let job = Sha256dJob::new(v.header, None, start..start + (1 << 20), 0).unwrap();
        let report = client
            .run(&JobSpec {
                kind: JobKind::Sha256d(job),
                mode: SearchMode::All,
            })
            .await
            .unwrap();
        assert_eq!(report.state, JobState::Completed);
        assert_eq!(report.solutions.len(), 1);
        client.close();
        worker.abort();
    });
    assert!(coordinator.try_wait().unwrap().is_none(), "still serving");
    let _ = coordinator.kill();
    let _ = coordinator.wait();
}

/// Runs a real program whose stdout is a pipe with no reader left (as `picluster
/// status | head` leaves it once `head` has what it wanted).
fn cut_output(args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(real_binary(args[0]))
        .args(&args[1..])
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn output_cut_off_by_its_reader_ends_the_commands_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    // `picluster init` prints its summary into the closed pipe.
    let out = cut_output(&[
        "picluster",
        "init",
        dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:7878",
    ]);
    assert_eq!(out.status.code(), Some(141), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "nothing on stderr"
    );
    assert!(dir.join("cluster.json").exists(), "the command itself ran");
    // `picluster-worker bench` likewise.
    let out = cut_output(&[
        "picluster-worker",
        "bench",
        "--seconds",
        "0.05",
        "--threads",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(141), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{out:?}"
    );
    // An error with standard error gone too: one exit code, no panic.
    let child = program(
        &["picluster", "status", "--cluster", "/nonexistent/cluster"],
        false,
        true,
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// Connection errors name the address: a coordinator that is not running, and a
/// coordinator whose port is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_name_the_address() {
    use picluster_core::identity::Role;
    use picluster_core::net::NetError;
    use picluster_core::trust::ClusterCa;
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let ca = ClusterCa::generate("t").unwrap();
    let credential = ca
        .issue(Role::Coordinator, "coordinator", &["127.0.0.1".to_string()])
        .unwrap();
    let error = picluster_core::service::CoordinatorService::bind(
        address,
        ca.cert_pem(),
        &credential,
        picluster_core::coordinator::CoordinatorConfig::default(),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "cannot listen on {address}: Address already in use (os error 98) (is another coordinator running? stop it, or change --listen with a new cluster)"
        )
    );
    // Nothing answers there (a bare UDP socket): the client says where it looked.
    let bundle = ca
        .bundle(Role::Admin, "admin", &address.to_string())
        .unwrap();
    match picluster_client::Client::connect(&bundle).await {
        Err(picluster_client::ClientError::Net(e @ NetError::NoAnswer { .. })) => {
            assert!(e.is_retryable());
            assert_eq!(
                e.to_string(),
                format!(
                    "cannot reach the coordinator at {address}: no answer within 10s (is it running, and is UDP port {} open on that machine?)",
                    address.port()
                )
            );
        }
        other => panic!("expected no answer, got {other:?}"),
    }
    // Nothing bound there at all: the OS says so, and the client says it at once.
    drop(taken);
    let started = std::time::Instant::now();
    match picluster_client::Client::connect(&bundle).await {
        Err(picluster_client::ClientError::Net(e @ NetError::Refused { .. })) => {
            assert!(started.elapsed() < std::time::Duration::from_secs(3));
            assert_eq!(
                e.to_string(),
                format!(
                    "cannot reach the coordinator at {address}: nothing listens on UDP port {} there (Connection refused (os error 111)); is the coordinator running?",
                    address.port()
                )
            );
        }
        other => panic!("expected refused, got {other:?}"),
    }
    // A coordinator whose certificate does not carry the name the bundle dials.
    let service = picluster_core::service::CoordinatorService::bind(
        "127.0.0.1:0".parse().unwrap(),
        ca.cert_pem(),
        &credential,
        picluster_core::coordinator::CoordinatorConfig::default(),
    )
    .unwrap();
    let port = service.local_addr().unwrap().port();
    let serving = tokio::spawn(service.run(std::future::pending()));
    let bundle = ca
        .bundle(Role::Admin, "admin", &format!("localhost:{port}"))
        .unwrap();
    let error = picluster_client::Client::connect(&bundle)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the coordinator's certificate is valid for 127.0.0.1, not for \"localhost\", the name this bundle dials (localhost:{port}): dial one of those (the bundle's \"coordinator\"), or give the certificate this name: add \"localhost:{port}\" to \"advertise\" in the cluster's cluster.json, run `picluster renew-coordinator`, and restart the coordinator"
        )
    );
    assert!(!error.is_retryable());
    serving.abort();
}

/// The coordinator's log at INFO tells what happened, one line per event with the
/// job and worker as fields, and a client that finishes is not logged as timed out.
#[test]
fn the_coordinator_log_tells_the_story_of_jobs_and_workers() {
    let _alone = one_coordinator_process_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, cluster) = loopback_cluster(tmp.path());
    let mut coordinator = program(
        &[
            "picluster",
            "coordinator",
            "--cluster",
            dir.to_str().unwrap(),
        ],
        false,
        false,
    );
    let mut stderr = coordinator.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bundle = tmp.path().join("pi-1.bundle");
    cluster
        .worker_bundle("pi-1")
        .unwrap()
        .save(&bundle)
        .unwrap();
    let mut worker = Command::new(real_binary("picluster-worker"))
        .args(["--bundle", bundle.to_str().unwrap(), "--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    runtime.block_on(async {
        let started = Instant::now();
        let client = loop {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no coordinator"
            );
            if let Ok(c) = picluster_client::Client::connect(&cluster.admin_bundle().unwrap()).await
            {
                if c.status().await.unwrap().workers.len() == 1 {
                    break c;
                }
                c.shutdown().await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let v = &vectors()[0];
        let start = u64::from(v.nonce) - 1000;
        let job = Sha256dJob::new(v.header, None, start..start + (1 << 20), 0).unwrap();
        let report = client
            .run(&JobSpec {
                kind: JobKind::Sha256d(job),
                mode: SearchMode::First,
            })
            .await
            .unwrap();
        assert_eq!(report.state, JobState::Completed);
        let whole = Sha256dJob::new(v.header, None, 0..1 << 32, 0).unwrap();
        let long = client
            .submit(&JobSpec {
                kind: JobKind::Sha256d(whole),
                mode: SearchMode::All,
            })
            .await
            .unwrap();
        client.cancel(long).await.unwrap();
        client.shutdown().await;
    });
    // SIGTERM: the worker says goodbye before it exits.
    let stopped = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(worker.wait().unwrap().success(), "the worker exits cleanly");
    std::thread::sleep(Duration::from_millis(300));
    let _ = coordinator.kill();
    let _ = coordinator.wait();
    let log = log.join().unwrap();
    let line = |needle: &[&str]| {
        log.lines()
            .find(|l| l.contains(" INFO ") && needle.iter().all(|n| l.contains(n)))
            .unwrap_or_else(|| panic!("no INFO line with {needle:?} in:\n{log}"))
            .to_string()
    };
    line(&["worker joined", "worker=pi-1", "threads=1"]);
    line(&[
        "job submitted",
        "job=j1",
        "client=admin",
        "kind=sha256d",
        "keyspace=1048576",
    ]);
    line(&["job started", "job=j1", "worker=pi-1"]);
    line(&["solution found", "job=j1", "worker=pi-1", "index=1000"]);
    let done = line(&["job completed", "job=j1", "solutions=1"]);
    assert!(done.contains("searched="), "{done}");
    line(&["job cancelled", "job=j2"]);
    line(&["worker left", "worker=pi-1"]);
    assert!(
        !log.contains("timed out"),
        "every peer ended normally, none timed out:\n{log}"
    );
}

/// With `--json`, an error is a JSON object on stdout too, with its kind; invalid
/// input exits 2 (nothing was sent), other errors 1.
#[test]
fn json_errors_carry_their_kind_and_invalid_input_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    ClusterDir::init(&dir, "127.0.0.1:9".parse().unwrap(), &[]).unwrap();
    let d = dir.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = program(args, false, false).wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let last = stdout.lines().last().unwrap_or_default();
        let json: serde_json::Value =
            serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        (
            out.status.code(),
            json,
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, json, stderr) = run(&[
        "picluster",
        "submit",
        "sha256d",
        "--header",
        "zz",
        "--cluster",
        d,
        "--json",
    ]);
    assert_eq!(code, Some(2));
    assert_eq!(json["kind"], "input");
    assert_eq!(json["retryable"], false);
    assert!(json["error"].as_str().unwrap().contains("header"), "{json}");
    assert!(stderr.starts_with("picluster: "), "{stderr}");
    let (code, json, _) = run(&[
        "picluster",
        "jobs",
        "--state",
        "asleep",
        "--cluster",
        d,
        "--json",
    ]);
    assert_eq!(code, Some(2));
    assert_eq!(json["kind"], "usage");
    assert!(json["error"].as_str().unwrap().contains("asleep"), "{json}");
    let (code, json, _) = run(&[
        "picluster",
        "status",
        "--cluster",
        "/nonexistent/c",
        "--json",
    ]);
    // A directory that is not a cluster is input to fix too.
    assert_eq!(code, Some(2));
    assert_eq!(json["kind"], "input");
    assert_eq!(
        json["error"],
        "/nonexistent/c is not a cluster directory (no cluster.json): create one with `picluster init`"
    );
    // A runtime failure: nothing listens at the cluster's address.
    let (code, json, _) = run(&["picluster", "jobs", "--cluster", d, "--json"]);
    assert_eq!(code, Some(1));
    assert_eq!(json["kind"], "connection");
    assert_eq!(json["retryable"], true);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot reach the coordinator at 127.0.0.1:9: "),
        "{json}"
    );
}

/// `submit` off a terminal names its job at once; Ctrl-C leaves the job running and
/// says how to follow or cancel it (exit 130). `-q` keeps the coordinator's INFO
/// lines out of its standard error.
#[test]
fn ctrl_c_leaves_the_job_running_and_says_how_to_get_back_to_it() {
    let _alone = one_coordinator_process_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = loopback_cluster(tmp.path());
    let d = dir.to_str().unwrap();
    let mut coordinator = Command::new(real_binary("picluster"))
        .args(["-q", "coordinator", "--cluster", d])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !Command::new(real_binary("picluster"))
        .args(["jobs", "--cluster", d])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no coordinator"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let header = picluster_core::hex::encode(&vectors()[0].header.0);
    // No workers: the job stays queued while `submit` follows it.
    let mut submit = Command::new(real_binary("picluster"))
        .args(["submit", "sha256d", "--header", &header, "--cluster", d])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(submit.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    assert_eq!(first, "picluster: submitted j1\n");
    std::thread::sleep(Duration::from_millis(300));
    let sent = Command::new("kill")
        .args(["-INT", &submit.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = submit.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert_eq!(
        rest,
        "j1 keeps running: picluster wait j1 to follow it, picluster cancel j1 to stop it\n"
    );
    // It does: still queued.
    let out = Command::new(real_binary("picluster"))
        .args(["jobs", "--cluster", d, "--json"])
        .output()
        .unwrap();
    let jobs: serde_json::Value =
        serde_json::from_slice(out.stdout.split(|b| *b == b'\n').rev().nth(1).unwrap()).unwrap();
    assert_eq!(jobs["jobs"][0]["job"], "j1");
    assert_eq!(jobs["jobs"][0]["state"], "queued");
    assert_eq!(jobs["jobs"][0]["waiting"], "no workers connected");
    let _ = coordinator.kill();
    let out = coordinator.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "-q: nothing below errors"
    );
}

/// Configuration files: the coordinator and the worker read theirs (`--config`),
/// options and `PICLUSTER_*` variables win over them, and an unknown key is refused
/// with its name, the file's and exit 2.
#[test]
fn configuration_files_are_read_overridden_and_checked() {
    let _alone = one_coordinator_process_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, cluster) = loopback_cluster(tmp.path());
    let tcp = crate::metrics::free_tcp_port;
    let (from_file, from_env, worker_port) = (tcp(), tcp(), tcp());
    let config = tmp.path().join("coordinator.toml");
    std::fs::write(
        &config,
        format!(
            "cluster = \"{}\"\nmetrics = \"127.0.0.1:{from_file}\"\nkeep_finished = 5\n",
            dir.display()
        ),
    )
    .unwrap();
    let answers = |port: u16| {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Some((200, body)) = crate::metrics::http_get(port, "/metrics") {
                return Some(body);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    };
    let spawn = |env: &[(&str, String)]| {
        let mut command = Command::new(real_binary("picluster"));
        command
            .args(["-q", "coordinator", "--config", config.to_str().unwrap()])
            .env_remove("PICLUSTER_CLUSTER")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        command.spawn().unwrap()
    };
    let mut coordinator = spawn(&[]);
    assert!(answers(from_file).is_some(), "metrics where the file says");
    let _ = coordinator.kill();
    let _ = coordinator.wait();
    // The environment wins over the file.
    let mut coordinator = spawn(&[("PICLUSTER_METRICS", format!("127.0.0.1:{from_env}"))]);
    assert!(
        answers(from_env).is_some(),
        "metrics where PICLUSTER_METRICS says"
    );
    assert!(crate::metrics::http_get(from_file, "/metrics").is_none());

    // The worker, from its file: its bundle, one thread, metrics.
    let bundle = tmp.path().join("pi-1.bundle");
    cluster
        .worker_bundle("pi-1")
        .unwrap()
        .save(&bundle)
        .unwrap();
    let worker_config = tmp.path().join("worker.toml");
    std::fs::write(
        &worker_config,
        format!(
            "bundle = \"{}\"\nthreads = 1\nmetrics = \"127.0.0.1:{worker_port}\"\n",
            bundle.display()
        ),
    )
    .unwrap();
    let mut worker = Command::new(real_binary("picluster-worker"))
        .args(["-q", "--config", worker_config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let body = answers(worker_port).expect("the worker's metrics");
    assert!(
        body.contains("picluster_worker_configured_threads 1\n"),
        "{body}"
    );
    let started = Instant::now();
    loop {
        let body = crate::metrics::http_get(worker_port, "/metrics").unwrap().1;
        if body.contains("picluster_worker_connected 1\n") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = worker.kill();
    let _ = worker.wait();
    let _ = coordinator.kill();
    let _ = coordinator.wait();

    // Unknown keys: refused by name, with the file's.
    std::fs::write(
        &config,
        "cluster = \"/x\"\nlisten_address = \"0.0.0.0:1\"\n",
    )
    .unwrap();
    let out = Command::new(real_binary("picluster"))
        .args(["coordinator", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("picluster: {}: ", config.display()))
            && stderr.contains("unknown field `listen_address`"),
        "{stderr}"
    );
    // A value out of range: refused, naming the file and the key.
    std::fs::write(&config, "cluster = \"/x\"\naudit_percent = 150.0\n").unwrap();
    let out = Command::new(real_binary("picluster"))
        .args(["coordinator", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "picluster: {}: audit_percent: 150 is not a percentage from 0 to 100",
            config.display()
        )
    );
    std::fs::write(&worker_config, "bundle = \"/x\"\nthread = 2\n").unwrap();
    let out = Command::new(real_binary("picluster-worker"))
        .args(["--config", worker_config.to_str().unwrap()])
        .output()
        .unwrap();
    // Invalid input: 2, as for the coordinator (it was 1).
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: ", worker_config.display()))
            && stderr.contains("unknown field `thread`"),
        "{stderr}"
    );

    // `--join` takes its state directory from the file when the command line has
    // none (the package's worker.toml names /var/lib/picluster-worker), and says
    // what is missing when neither has one.
    let join = |config_text: &str| {
        std::fs::write(&worker_config, config_text).unwrap();
        let out = Command::new(real_binary("picluster-worker"))
            .args(["--config", worker_config.to_str().unwrap()])
            .args(["--join", "pcj1.not-a-token", "--name", "pi-9"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = join("threads = 1\n");
    assert_eq!(
        stderr.trim_end(),
        "picluster-worker: --join needs a directory to keep the credential in: pass --state-dir DIR, or set state_dir in the configuration file (/etc/picluster/worker.toml)"
    );
    let state = tmp.path().join("state");
    let stderr = join(&format!("state_dir = \"{}\"\n", state.display()));
    assert_eq!(
        stderr.trim_end(),
        "picluster-worker: not a join token (no @HOST:PORT): expected pcj1.ID.SECRET.PIN@HOST:PORT as printed by `picluster token create`",
        "the token is read once the file gave the directory"
    );

    // A state directory that holds pi-1's credential does not run as pi-4b: it
    // would fight the real pi-1.
    let held = tmp.path().join("held");
    std::fs::create_dir_all(&held).unwrap();
    let cluster = picluster_core::trust::ClusterDir::init(
        &tmp.path().join("another-cluster"),
        "127.0.0.1:9".parse().unwrap(),
        &[],
    )
    .unwrap();
    cluster
        .worker_bundle("pi-1")
        .unwrap()
        .save(&picluster_worker::enroll::state_bundle(&held))
        .unwrap();
    let out = Command::new(real_binary("picluster-worker"))
        .args(["--state-dir", held.to_str().unwrap(), "--name", "pi-4b"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!(
            "picluster-worker: {} holds the credential of worker pi-1, not pi-4b: give pi-4b its own --state-dir (each worker keeps its own), or leave --name out to run as pi-1",
            held.display()
        )
    );
}

/// A damaged job store is refused in one line that says so, with no panic message
/// or backtrace note (redb asserts on a truncated file), and the file is left as it
/// was; a store held by another process is named as such, without the advice to
/// move it aside (which would lose its jobs).
#[test]
fn a_damaged_or_busy_job_store_is_refused_in_one_line_that_says_which() {
    let _alone = one_coordinator_process_at_a_time();
    use picluster_core::service::{RedbStore, Store};
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _cluster) = loopback_cluster(tmp.path());
    let path = dir.join("coordinator.redb");
    {
        let mut store = RedbStore::open(&path).unwrap();
        store
            .commit(&[picluster_core::coordinator::Record::NextJob(7)])
            .unwrap();
    }
    let run = || {
        Command::new(real_binary("picluster"))
            .args(["coordinator", "--cluster", dir.to_str().unwrap()])
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap()
    };

    // Held by another process (this one).
    let held = RedbStore::open(&path).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "picluster: {}: the job store is in use by another process: another coordinator runs on this cluster directory; stop it first (the file is fine: do not move it)",
            path.display()
        )
    );
    drop(held);

    // Truncated to a third.
    let whole = std::fs::read(&path).unwrap();
    let damaged = &whole[..whole.len() / 3];
    std::fs::write(&path, damaged).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "picluster: {}: the job store is damaged (",
            path.display()
        )) && stderr.trim_end().ends_with("(its jobs, revocations, quarantines, drains, enrolled names and join tokens are then lost)")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        damaged,
        "the file is untouched"
    );
}

/// A metrics port already taken is named as the metrics port, with the option that
/// moves it (not `--listen`, which is the cluster's QUIC address).
#[test]
fn a_metrics_port_in_use_is_named_as_the_metrics_port() {
    let _alone = one_coordinator_process_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _cluster) = loopback_cluster(tmp.path());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out = Command::new(real_binary("picluster"))
        .args(["coordinator", "--cluster", dir.to_str().unwrap()])
        .args(["--metrics", &address])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().last().unwrap_or("");
    assert!(
        line.starts_with(&format!("picluster: cannot serve metrics on {address}: "))
            && line.ends_with("(another program serves there, perhaps another picluster coordinator or worker on this machine: give this one another port with --metrics, or metrics in its configuration file)"),
        "{stderr}"
    );
    assert!(!stderr.contains("--listen"), "{stderr}");
}
