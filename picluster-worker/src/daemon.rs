//! The worker daemon: the async driver that connects to the coordinator, feeds the
//! [`Agent`] with messages and compute events, carries out its commands, and
//! reconnects with backoff when the coordinator goes away. While it has no
//! connection, compute events still go to the agent (leases run on through a
//! coordinator restart, to be claimed after the next welcome). Decisions belong in
//! the agent; this file only moves data.

use crate::agent::{Agent, AgentError, ComputeCommand, WorkerInfo};
use crate::compute::{Compute, ComputeError, ComputeEvent};
use crate::registry::Registry;
use picluster_core::identity::Role;
use picluster_core::kernel::sha256d::Sha256dImpl;
use picluster_core::net::{self, FrameReader, NetError, Session};
use picluster_core::trust::Bundle;
use picluster_core::wire::{self, CloseCode, CoordToWorker, WorkerToCoord};
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// How the worker runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Compute threads (default: all cores).
    pub threads: usize,
    /// How long the start-up benchmark runs.
    pub benchmark: Duration,
    /// First reconnection delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest reconnection delay.
    pub max_backoff: Duration,
    /// Custom kernels this worker runs besides the built-in ones.
    pub kernels: Registry,
    /// How long to keep trying while the coordinator refuses this worker because a
    /// connection of its name is live elsewhere, before giving up with
    /// [`WorkerError::NameInUse`]: longer than a dead connection of its own takes to
    /// time out (a worker restarted at once may find its previous one still there).
    pub name_in_use_give_up: Duration,
    /// Where the bundle lives: a renewed certificate is written there (replacing
    /// the file). Without it, or when a replacement cannot be written there, the
    /// certificate is not renewed (the coordinator retires a renewed certificate's
    /// predecessor, so a renewal the next start could not read would lock the
    /// worker out).
    pub credential_file: Option<std::path::PathBuf>,
    /// Serve the worker's metrics for Prometheus at `http://ADDRESS/metrics`.
    pub metrics: Option<std::net::SocketAddr>,
    /// Run fewer threads while the CPU is at or above this temperature (°C), and
    /// more again once it is 5 °C below; `None`: never throttle.
    pub max_temp: Option<f64>,
    /// Where the thermal zones are (`/sys/class/thermal`).
    pub thermal_dir: std::path::PathBuf,
    /// How often the governor reads the temperature.
    pub thermal_interval: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            benchmark: Duration::from_millis(300),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            kernels: Registry::new(),
            name_in_use_give_up: Duration::from_secs(30),
            credential_file: None,
            metrics: None,
            max_temp: None,
            thermal_dir: crate::thermal::SYSTEM_THERMAL_DIR.into(),
            thermal_interval: Duration::from_secs(2),
        }
    }
}

/// Why the worker stopped on its own. Transient network trouble never ends it: it
/// reconnects. These need a person.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The bundle is for a client, not a worker.
    #[error("this bundle is for a {}, not a worker: create one with `picluster add-worker`", .0.as_str())]
    NotAWorkerBundle(Role),
    /// The compute engine could not start.
    #[error(transparent)]
    Compute(#[from] ComputeError),
    /// The coordinator cannot be used with this bundle (refused certificate, a
    /// connection it closed for good): retrying would not help.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The coordinator broke the protocol (this worker closed the connection): its
    /// software and this worker's disagree, and retrying would not help.
    #[error("the coordinator broke the protocol: {0}")]
    Protocol(AgentError),
    /// The credential could not be read, made or stored.
    #[error(transparent)]
    Credentials(picluster_core::trust::ClusterError),
    /// The coordinator kept refusing this worker because another connection with
    /// the same name is live and working.
    #[error("the coordinator refused this worker for {seconds} s: another machine is connected and working as worker {name}, with the same credential (a copied bundle or SD card?). Give each machine its own: `picluster add-worker NEW-NAME --out FILE` on the coordinator")]
    NameInUse {
        /// The worker's name.
        name: String,
        /// How long it was refused.
        seconds: u64,
    },
}

/// Compute events waiting for the daemon; beyond this the compute threads wait.
const COMPUTE_EVENTS: usize = 1024;
/// Coordinator messages waiting for the daemon; beyond this the reader waits, and
/// QUIC's flow control holds the coordinator back.
const INBOUND_MESSAGES: usize = 1024;

enum SessionEnd {
    /// Shutdown complete.
    Left,
    /// The connection failed; reconnect unless the error says otherwise.
    Lost(NetError),
    /// The coordinator broke the protocol: this worker closed the connection.
    Broken(AgentError),
}

/// Runs a worker until `shutdown` completes (then hands back unfinished work and
/// leaves) or an error that retrying cannot fix.
pub async fn run(
    mut bundle: Bundle,
    options: WorkerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    if bundle.role != Role::Worker {
        return Err(WorkerError::NotAWorkerBundle(bundle.role));
    }
    // Compute threads wait when the daemon falls behind (push back): a worker should
    // not run ahead of what it can report. Only rayon's and the engine's threads send,
    // never a runtime thread, so blocking there is allowed.
    let (events_tx, mut events) = mpsc::channel(COMPUTE_EVENTS);
    let compute = Compute::start(options.threads, move |e: ComputeEvent| {
        let _ = events_tx.blocking_send(e);
    })?;
    let bench_compute = std::sync::Arc::new(compute);
    let compute = bench_compute.clone();
    let bench_duration = options.benchmark;
    let bench_hps = tokio::task::spawn_blocking(move || bench_compute.benchmark(bench_duration))
        .await
        .unwrap_or(0);
    let kernel = Sha256dImpl::selected().label();
    info!(
        threads = options.threads,
        kernel,
        mhs = bench_hps as f64 / 1e6,
        "benchmarked"
    );
    let mut agent = Agent::new(
        WorkerInfo {
            threads: options.threads as u32,
            kernel_impl: kernel.to_string(),
            bench_hps,
        },
        std::sync::Arc::new(options.kernels.clone()),
    );
    let thermal = crate::thermal::Thermal::new(&options.thermal_dir);
    let state = std::sync::Arc::new(crate::metrics::WorkerState {
        compute: compute.clone(),
        kernel_impl: kernel.to_string(),
        bench_hps,
        thermal: thermal.clone(),
        max_temp: options.max_temp,
        connected: std::sync::atomic::AtomicBool::new(false),
        reconnects: std::sync::atomic::AtomicU64::new(0),
    });
    let _metrics = match options.metrics {
        Some(address) => {
            let listener = picluster_core::runtime::bind_metrics(address).await?;
            info!(%address, "metrics at http://{address}/metrics");
            let state = state.clone();
            Some(Aborting(tokio::spawn(
                picluster_core::runtime::serve_metrics(listener, move || {
                    let state = state.clone();
                    async move { Some(crate::metrics::encode_worker(&state)) }
                }),
            )))
        }
        None => None,
    };
    // Every interval: the temperature and throttling flags, and with --max-temp the
    // governor's threads; the session tells the coordinator.
    let (heat_tx, mut heat_rx) = tokio::sync::watch::channel(Heat {
        active: options.threads as u32,
        health: wire::Health {
            millicelsius: None,
            throttled: None,
        },
    });
    let _governor = {
        let compute = compute.clone();
        let interval = options.thermal_interval;
        let max_temp = options.max_temp;
        Aborting(tokio::spawn(async move {
            let mut governor =
                max_temp.map(|max| crate::thermal::Governor::new(max, compute.threads() as u32));
            let mut warned = false;
            let mut firmware = true;
            loop {
                let celsius = thermal.celsius();
                let throttled = if firmware {
                    let flags = crate::thermal::throttled_flags();
                    // No vcgencmd here: not asked again.
                    firmware = flags.is_some();
                    flags
                } else {
                    None
                };
                let mut heat = *heat_tx.borrow();
                heat.health = wire::Health {
                    millicelsius: celsius.map(|c| (c * 1000.0).round() as i32),
                    throttled,
                };
                match (celsius, governor.as_mut()) {
                    (Some(celsius), Some(governor)) => {
                        if let Some(active) = governor.update(celsius) {
                            info!(
                                celsius,
                                threads = active,
                                "temperature: running {active} thread(s)"
                            );
                            compute.set_active(active as usize);
                            heat.active = active;
                        }
                    }
                    (None, Some(_)) if !warned => {
                        warned = true;
                        warn!(dir = %thermal.dir().display(), "cannot read the CPU temperature there: --max-temp has no effect");
                    }
                    _ => {}
                }
                heat_tx.send_if_modified(|h| {
                    let changed = *h != heat;
                    *h = heat;
                    changed
                });
                tokio::time::sleep(interval).await;
            }
        }))
    };
    tokio::pin!(shutdown);
    let mut backoff = Backoff::new(options.min_backoff, options.max_backoff);
    let mut refused_since: Option<std::time::Instant> = None;
    loop {
        let heat = *heat_rx.borrow_and_update();
        agent.handle_active_threads(heat.active);
        agent.handle_health(heat.health);
        let hello = agent.hello();
        // The session may renew the certificate: dial with this one's copy.
        let dial = bundle.clone();
        let connect = net::connect::<WorkerToCoord, CoordToWorker>(&dial, &hello);
        tokio::pin!(connect);
        let session = loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                session = &mut connect => break session,
                Some(event) = events.recv() => {
                    agent.handle_compute(event);
                    drain_compute(&mut agent, &compute);
                }
            }
        };
        let end = match session {
            Ok(session) => {
                info!(coordinator = %session.connection.remote_address(), "connected");
                backoff.reset();
                refused_since = None;
                state
                    .connected
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                let mut ctx = SessionContext {
                    agent: &mut agent,
                    compute: &compute,
                    events: &mut events,
                    bundle: &mut bundle,
                    credential_file: options.credential_file.as_deref(),
                    heat: &mut heat_rx,
                };
                let end = run_session(session, &mut ctx, &mut shutdown).await;
                state
                    .connected
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                end
            }
            Err(e) => SessionEnd::Lost(e),
        };
        agent.handle_disconnected();
        drain_compute(&mut agent, &compute);
        match end {
            SessionEnd::Left => {
                info!("left the cluster");
                return Ok(());
            }
            SessionEnd::Broken(e) => return Err(WorkerError::Protocol(e)),
            SessionEnd::Lost(e) if !e.is_retryable() => return Err(e.into()),
            SessionEnd::Lost(e) => {
                if agent.is_shutting_down() {
                    return Ok(());
                }
                let held = agent.leases_to_offer();
                // A worker holding chunks through the outage tries often: a restarted
                // coordinator holds them for it only a while (`adoption_window`).
                let delay = match backoff.next() {
                    // No coordinator leads yet (an election under way): it will
                    // within seconds, so ask again soon.
                    _ if matches!(e, NetError::NotLeader { .. }) => NOT_LEADER_RETRY,
                    d if held > 0 => d.min(HOLDING_RECONNECT),
                    d => d,
                };
                state
                    .reconnects
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let name_in_use = matches!(
                    &e,
                    NetError::Closed { code, .. } if *code == CloseCode::NameInUse as u32
                );
                if name_in_use {
                    let since = *refused_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() >= options.name_in_use_give_up {
                        return Err(WorkerError::NameInUse {
                            name: bundle.name.clone(),
                            seconds: since.elapsed().as_secs(),
                        });
                    }
                    warn!(retry_in = ?delay, "refused: another connection of this worker's name is live; retrying in case it is this worker's own dead one");
                } else {
                    refused_since = None;
                    warn!(error = %e, retry_in = ?delay, leases_held = held, "coordinator unreachable");
                }
                let sleep = tokio::time::sleep(delay);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        () = &mut shutdown => return Ok(()),
                        () = &mut sleep => break,
                        Some(event) = events.recv() => {
                            agent.handle_compute(event);
                            drain_compute(&mut agent, &compute);
                        }
                    }
                }
            }
        }
    }
}

/// How soon a worker dials again when no coordinator leads (an election under way).
const NOT_LEADER_RETRY: Duration = Duration::from_millis(200);

/// The longest wait between reconnection attempts while the worker holds chunks it
/// computed through a lost connection.
const HOLDING_RECONNECT: Duration = Duration::from_secs(2);

/// What a session works with besides its connection.
struct SessionContext<'a> {
    agent: &'a mut Agent,
    compute: &'a Compute,
    events: &'a mut mpsc::Receiver<ComputeEvent>,
    bundle: &'a mut Bundle,
    credential_file: Option<&'a std::path::Path>,
    /// The board's heat and the threads the thermal governor lets run.
    heat: &'a mut tokio::sync::watch::Receiver<Heat>,
}

/// What the thermal task last read and decided.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Heat {
    active: u32,
    health: wire::Health,
}

async fn run_session(
    session: Session<CoordToWorker>,
    ctx: &mut SessionContext<'_>,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> SessionEnd {
    let SessionContext {
        agent,
        compute,
        events,
        bundle,
        credential_file,
        heat,
    } = ctx;
    let compute: &Compute = compute;
    let Session {
        endpoint: _endpoint,
        connection,
        reader,
        mut writer,
        welcome,
    } = session;
    let CoordToWorker::Welcome(welcome) = welcome else {
        connection.close((CloseCode::Protocol as u32).into(), b"expected a welcome");
        return SessionEnd::Broken(AgentError::ExpectedWelcome);
    };
    let minor = welcome.minor;
    agent.handle_welcome(welcome);
    drain_compute(agent, compute);
    // A certificate two thirds through its life is renewed, once per session.
    let mut renewal = None;
    let storable = match credential_file {
        None => Err("no credential file to keep it in".to_string()),
        Some(file) => crate::enroll::can_store_renewal(file)
            .map_err(|e| format!("{} cannot be replaced: {e}", file.display())),
    };
    let due = minor >= wire::MINOR_CREDENTIALS && crate::enroll::renewal_due(bundle, unix_ms());
    if let (true, Err(why)) = (due, &storable) {
        warn!(%why, "certificate past two thirds of its lifetime, but a renewed one could not be kept: not renewed; give this worker a new bundle before it expires");
    }
    if due && storable.is_ok() {
        match crate::enroll::start_renewal(bundle) {
            Ok((pending, csr)) => {
                let frame = wire::encode_frame(&WorkerToCoord::Renew(wire::Renew { csr }));
                match frame {
                    Ok(frame) => {
                        if let Err(e) = writer.send_frame(&frame).await {
                            return SessionEnd::Lost(e);
                        }
                        info!("certificate past two thirds of its lifetime: renewal requested");
                        renewal = Some(pending);
                    }
                    Err(e) => warn!(error = %e, "cannot encode a renewal request"),
                }
            }
            Err(e) => warn!(error = %e, "cannot make a renewal request"),
        }
    }
    // The leases kept through the lost connection, before anything else.
    if let Err(e) = flush(agent, &mut writer).await {
        return SessionEnd::Lost(e);
    }
    // Reading is not cancel-safe inside select!, so it gets its own task.
    let (inbound_tx, mut inbound) = mpsc::channel(INBOUND_MESSAGES);
    let read_task = tokio::spawn(read_loop(reader, inbound_tx));
    let mut shutdown_seen = agent.is_shutting_down();
    let end = loop {
        tokio::select! {
            () = shutdown.as_mut(), if !shutdown_seen => {
                shutdown_seen = true;
                info!("shutting down: handing back unfinished work");
                agent.handle_shutdown();
            }
            message = inbound.recv() => match message {
                Some(Ok(CoordToWorker::Renewed(renewed))) => {
                    if let Some(pending) = renewal.take() {
                        renew(bundle, *credential_file, pending, renewed.cert_pem);
                    }
                }
                Some(Ok(CoordToWorker::RenewRefused(refusal))) => {
                    renewal = None;
                    warn!(%refusal, "certificate renewal refused; going on with the current one");
                }
                Some(Ok(message)) => {
                    if let Err(e) = agent.handle_message(message) {
                        warn!(error = %e, "coordinator broke the protocol");
                        connection.close((CloseCode::Protocol as u32).into(), e.to_string().as_bytes());
                        break SessionEnd::Broken(e);
                    }
                }
                Some(Err(e)) => break SessionEnd::Lost(e),
                None => break SessionEnd::Lost(connection.closed().await.into()),
            },
            Some(event) = events.recv() => agent.handle_compute(event),
            Ok(()) = heat.changed() => {
                let now = *heat.borrow_and_update();
                agent.handle_active_threads(now.active);
                agent.handle_health(now.health);
            }
        }
        drain_compute(agent, compute);
        if let Err(e) = flush(agent, &mut writer).await {
            break SessionEnd::Lost(e);
        }
        if agent.has_left() {
            // The coordinator closes the connection once it has processed `Leaving`.
            let _ = tokio::time::timeout(Duration::from_secs(3), connection.closed()).await;
            break SessionEnd::Left;
        }
    };
    read_task.abort();
    end
}

/// Takes a renewed certificate into use: for the next connection, and in the
/// credential file when there is one.
fn renew(
    bundle: &mut Bundle,
    file: Option<&std::path::Path>,
    pending: crate::enroll::PendingRenewal,
    cert_pem: String,
) {
    let renewed = Bundle {
        cert: cert_pem,
        key: pending.key_pem,
        ..bundle.clone()
    };
    let identity = match renewed.identity() {
        Ok(identity) if identity.name == bundle.name && identity.role == Role::Worker => identity,
        Ok(identity) => {
            warn!(name = %identity.name, role = %identity.role, "renewed certificate is not for this worker: ignored");
            return;
        }
        Err(e) => {
            warn!(error = %e, "renewed certificate does not parse: ignored");
            return;
        }
    };
    if let Some(file) = file {
        if let Err(e) = renewed.save_replacing(file) {
            warn!(error = %e, "cannot store the renewed certificate; using it until this process ends");
        }
    }
    info!(
        expires_in_days = identity.expires_ms.saturating_sub(unix_ms()) / 86_400_000,
        "certificate renewed"
    );
    *bundle = renewed;
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Sends everything the agent has to say, in one write.
async fn flush(agent: &mut Agent, writer: &mut net::FrameWriter) -> Result<(), NetError> {
    let mut batch = Vec::new();
    while let Some(message) = agent.poll_transmit() {
        batch.extend_from_slice(&wire::encode_frame(&message).map_err(NetError::BadFrame)?);
    }
    if batch.is_empty() {
        return Ok(());
    }
    writer.send_frame(&batch).await
}

async fn read_loop(
    mut reader: FrameReader,
    inbound: mpsc::Sender<Result<CoordToWorker, NetError>>,
) {
    loop {
        let message = reader.next::<CoordToWorker>().await;
        let stop = message.is_err();
        if inbound.send(message).await.is_err() || stop {
            return;
        }
    }
}

fn drain_compute(agent: &mut Agent, compute: &Compute) {
    while let Some(command) = agent.poll_compute() {
        match command {
            ComputeCommand::Run {
                task,
                work,
                range,
                progress_interval,
            } => compute.run(task, work, range, progress_interval),
            ComputeCommand::Stop(task) => compute.stop(task),
            ComputeCommand::Trim(task, end) => {
                if let Some(end) = compute.trim(task, end) {
                    agent.handle_compute(ComputeEvent::Trimmed { task, end });
                }
            }
        }
    }
}

/// Aborts a task when dropped.
struct Aborting(tokio::task::JoinHandle<()>);

impl Drop for Aborting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Exponential backoff with jitter, so a rack of Pis does not reconnect in lockstep
/// when the coordinator restarts.
struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
    seed: u64,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32)
            | 1;
        Backoff {
            min,
            max,
            current: min,
            seed,
        }
    }

    fn reset(&mut self) {
        self.current = self.min;
    }

    fn next(&mut self) -> Duration {
        // xorshift64: plenty for jitter.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter = 0.75 + (self.seed % 1000) as f64 / 2000.0; // 0.75 .. 1.25
        let delay = self.current.mul_f64(jitter);
        self.current = (self.current * 2).min(self.max);
        delay
    }
}
