//! The coordinator service: the async driver around [`Coordinator`]. One task accepts
//! connections; per connection, one task reads and decodes frames into the input
//! channel and one writes frames out; one task owns the state machine, feeding it
//! inputs and timer expiries and carrying out every [`Transmit`] it returns. No
//! decision is made here: a decision in this file belongs in `coordinator`.
//!
//! # Layout
//! - this file: [`CoordinatorService`], the accept loop and per-connection tasks.
//! - `process`: what every picluster binary needs around a service (a shutdown
//!   signal, a small runtime).
//! - `metrics`: the HTTP endpoint Prometheus scrapes, and the coordinator's metrics.
//! - `store`: the job store (the `Store` trait, `RedbStore`).

mod metrics;
mod process;
mod store;

pub use metrics::{bind_metrics, encode_coordinator, serve_metrics, DriverMetrics, OPENMETRICS};
pub use process::{
    background_runtime, eprint_lossy, shutdown_signal, LossyStderr, EXIT_BROKEN_PIPE,
};
pub use store::{RedbStore, Store, StoreError, STORE_FILE};

use crate::coordinator::Issue;
use crate::coordinator::{Coordinator, CoordinatorConfig, Inbound, Overflow, Transmit};
use crate::identity::{PeerIdentity, Role};
use crate::ids::ConnId;
use crate::net::{self, FrameReader, FrameWriter, NetError};
use crate::trust::{ClusterCa, ClusterDir, Credential};
use crate::wire::{
    self, ClientToCoord, CloseCode, CoordToJoin, CoordToWorker, Enrolled, JoinRefusal, JoinToCoord,
    Renewed, WorkerToCoord,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

/// How long a connected peer has to open its session stream.
const STREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// Events from connection tasks waiting for the state machine. When it is full, the
/// connection tasks wait, and so QUIC's flow control holds their peers back.
const EVENT_QUEUE: usize = 1024;
/// Frames queued for one peer's writer, besides the byte limit of
/// [`CoordinatorConfig::peer_queue_bytes`].
const PEER_QUEUE_FRAMES: usize = 4096;

enum Event {
    Connected {
        conn: ConnId,
        /// `None`: no certificate; the peer may only join.
        identity: Option<PeerIdentity>,
        peer: Peer,
    },
    Inbound(ConnId, Inbound),
    BadFrame(ConnId, wire::FrameError),
    Disconnected(ConnId),
}

enum WriterCommand {
    Frame(Vec<u8>),
    Close(CloseCode, String),
}

/// The driver's handle on one connection: its writer's queue, bounded in frames and
/// in bytes, and the connection itself, to close it when the queue is full.
struct Peer {
    writer: mpsc::Sender<WriterCommand>,
    /// Bytes queued and not yet written.
    queued: Arc<AtomicUsize>,
    connection: quinn::Connection,
}

impl Peer {
    /// Queues a frame if it fits within `limit` queued bytes.
    fn try_queue(&self, frame: Vec<u8>, limit: usize) -> bool {
        let len = frame.len();
        // Only the driver adds: the check and the add cannot race with another add.
        if self.queued.load(Ordering::Acquire) + len > limit {
            return false;
        }
        self.queued.fetch_add(len, Ordering::AcqRel);
        match self.writer.try_send(WriterCommand::Frame(frame)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                false
            }
            // The connection is gone and its Disconnected event follows: nothing to do.
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                true
            }
        }
    }

    /// Closes after what is queued, or at once if the queue is full.
    fn close(&self, code: CloseCode, reason: String) {
        if let Err(mpsc::error::TrySendError::Full(WriterCommand::Close(code, reason))) =
            self.writer.try_send(WriterCommand::Close(code, reason))
        {
            self.connection
                .close((code as u32).into(), reason.as_bytes());
        }
    }
}

/// A bound coordinator, ready to [`run`](CoordinatorService::run).
pub struct CoordinatorService {
    endpoint: quinn::Endpoint,
    config: CoordinatorConfig,
    store: Option<Box<dyn Store>>,
    issuer: Option<Arc<Issuer>>,
    metrics: Option<std::net::TcpListener>,
}

/// The cluster CA, for signing the certificates of joining and renewing workers.
struct Issuer {
    ca: ClusterCa,
    /// Lifetime of the certificates it signs.
    days: u32,
}

impl std::fmt::Debug for CoordinatorService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorService")
            .field("endpoint", &self.endpoint.local_addr().ok())
            .field("store", &self.store.as_ref().map(|s| s.name()))
            .finish()
    }
}

impl CoordinatorService {
    /// Binds the QUIC endpoint on `listen` with the coordinator's credential.
    pub fn bind(
        listen: SocketAddr,
        ca_pem: &str,
        credential: &Credential,
        config: CoordinatorConfig,
    ) -> Result<CoordinatorService, NetError> {
        let server = net::server_config(ca_pem, credential)?;
        // The key behind stateless resets comes from the coordinator's own key, so a
        // coordinator restarted after a crash can tell its old connections' peers at
        // their next packet that they are gone, rather than leave them to time out.
        let secret = <sha2::Sha256 as sha2::Digest>::digest(
            [
                b"picluster stateless reset 1\n".as_slice(),
                credential.key_pem.as_bytes(),
            ]
            .concat(),
        );
        // Connection ids are signed with a key from the same secret: a restarted
        // coordinator recognises its predecessor's, which it must to answer them.
        let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
        let cid_key = u64::from_le_bytes(secret[..8].try_into().expect("32 bytes"));
        let mut endpoint_config = quinn::EndpointConfig::new(std::sync::Arc::new(reset_key));
        endpoint_config.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        let socket = std::net::UdpSocket::bind(listen).map_err(|source| NetError::Bind {
            address: listen,
            source,
        })?;
        let runtime = quinn::default_runtime()
            .ok_or_else(|| NetError::Socket(std::io::Error::other("no async runtime")))?;
        let endpoint = quinn::Endpoint::new(endpoint_config, Some(server), socket, runtime)
            .map_err(NetError::Socket)?;
        Ok(CoordinatorService {
            endpoint,
            config,
            store: None,
            issuer: None,
            metrics: None,
        })
    }

    /// Lets the coordinator sign certificates with `ca` (valid for `days`): for
    /// workers that join with a token and workers that renew theirs. Without it,
    /// both are refused ([`JoinRefusal::CannotIssue`]).
    pub fn with_issuer(mut self, ca: ClusterCa, days: u32) -> CoordinatorService {
        self.issuer = Some(Arc::new(Issuer { ca, days }));
        self
    }

    /// Serves metrics for Prometheus at `http://ADDRESS/metrics` while it runs.
    pub fn with_metrics(mut self, address: SocketAddr) -> Result<CoordinatorService, NetError> {
        let listener = std::net::TcpListener::bind(address)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| NetError::Bind { address, source })?;
        self.metrics = Some(listener);
        Ok(self)
    }

    /// The address the metrics endpoint is bound to, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Journals every job to `store` and starts from what it holds. Without a store
    /// the coordinator keeps its jobs in memory only.
    pub fn with_store(mut self, store: impl Store) -> CoordinatorService {
        self.store = Some(Box::new(store));
        self
    }

    /// Binds the coordinator of a cluster directory on its configured address.
    pub fn from_cluster(
        dir: &ClusterDir,
        config: CoordinatorConfig,
    ) -> Result<CoordinatorService, NetError> {
        dir.check_private_keys()?;
        let credential = dir.coordinator_credential()?;
        let ca = dir.ca_cert_pem().map_err(NetError::from)?;
        let issuer = dir.ca().map_err(NetError::from)?;
        Ok(Self::bind(dir.config().listen, &ca, &credential, config)?
            .with_issuer(issuer, dir.config().lifetimes.peer_days))
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.endpoint.local_addr().map_err(NetError::Socket)
    }

    /// Serves until `shutdown` completes, then writes what is left to the store and
    /// closes every connection with [`CloseCode::ShuttingDown`] so workers reconnect
    /// later. With a store, it first rebuilds the jobs the store holds; it stops with
    /// an error if the store cannot be read or a write fails.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), StoreError> {
        let queue_limit = self.config.peer_queue_bytes;
        let limits = ConnectionLimits {
            hello_timeout: self.config.hello_timeout,
            frame_timeout: self.config.frame_timeout,
            max_connections: self.config.max_connections,
            max_joining: self.config.max_joining,
            max_handshakes: self.config.max_handshakes,
            join_timeout: self.config.join_timeout,
            max_per_address: self.config.max_connections_per_address,
            handshakes_per_second: self.config.handshakes_per_second,
            handshake_burst: self.config.handshake_burst,
        };
        let now = Instant::now();
        let (mut core, mut journal) = match self.store.take() {
            Some(mut store) => {
                let snapshot = store.load()?;
                let jobs = snapshot.jobs.len();
                let core = Coordinator::recover(self.config, snapshot, now, unix_ms()).map_err(
                    |source| StoreError::Recover {
                        store: store.name(),
                        source,
                    },
                )?;
                info!(store = %store.name(), jobs, "job store opened");
                (core, Some(Journal::start(store)))
            }
            None => (Coordinator::new(self.config, Instant::now()), None),
        };
        let (events, mut inbox) = mpsc::channel(EVENT_QUEUE);
        // Dropping this future (a task aborted) stops the connections too.
        let accept = AbortOnDrop(tokio::spawn(accept_loop(
            self.endpoint.clone(),
            events,
            limits,
        )));
        // Scrapes ask the event loop for a snapshot; the HTTP task encodes it.
        type Scrape =
            tokio::sync::oneshot::Sender<(crate::coordinator::MetricsSnapshot, DriverMetrics)>;
        let (scrapes, mut scrape_requests) = mpsc::channel::<Scrape>(8);
        let _metrics = match self.metrics.take() {
            Some(listener) => match tokio::net::TcpListener::from_std(listener) {
                Err(e) => {
                    error!(error = %e, "cannot serve metrics");
                    None
                }
                Ok(listener) => {
                    let scrapes = scrapes.clone();
                    Some(AbortOnDrop(tokio::spawn(serve_metrics(
                        listener,
                        move || {
                            let scrapes = scrapes.clone();
                            async move {
                                let (reply, answer) = tokio::sync::oneshot::channel();
                                scrapes.send(reply).await.ok()?;
                                let (snapshot, driver) = answer.await.ok()?;
                                Some(encode_coordinator(&snapshot, &driver))
                            }
                        },
                    ))))
                }
            },
            None => None,
        };
        let mut driver = DriverMetrics {
            journal: journal.as_ref().map(|_| (0, 0)),
            ..DriverMetrics::default()
        };
        let mut peers: BTreeMap<ConnId, Peer> = BTreeMap::new();
        // Connections that ended in this batch; their writers go after the batch's
        // transmits, so a close queued for them still carries its code and reason.
        let mut gone = Vec::new();
        let mut result = Ok(());
        tokio::pin!(shutdown);
        loop {
            let deadline = core.poll_timeout();
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                done = written(&mut journal) => {
                    match done {
                        Some(Ok(seq)) => core.handle_durable(Instant::now(), seq),
                        Some(Err(e)) => {
                            error!(error = %e, "cannot write the job store: stopping");
                            result = Err(e);
                            break;
                        }
                        None => break,
                    }
                }
                event = inbox.recv() => {
                    let Some(event) = event else { break };
                    apply(&mut core, &mut peers, &mut gone, event);
                    // Take the whole batch before scheduling.
                    while let Ok(event) = inbox.try_recv() {
                        apply(&mut core, &mut peers, &mut gone, event);
                    }
                }
                () = sleep_until(deadline) => core.handle_timeout(Instant::now()),
                Some(reply) = scrape_requests.recv() => {
                    if let Some(j) = journal.as_ref() {
                        driver.journal = Some((j.commits, j.records));
                    }
                    let _ = reply.send((core.metrics(Instant::now()), driver.clone()));
                    continue;
                }
            }
            let now = Instant::now();
            core.handle_wall_clock(now, unix_ms());
            if let Some(j) = journal.as_mut() {
                j.write(&mut core);
            }
            while let Some(transmit) = core.poll_transmit(now) {
                carry_out(
                    &mut core,
                    &peers,
                    self.issuer.as_deref(),
                    queue_limit,
                    now,
                    transmit,
                );
            }
            for conn in gone.drain(..) {
                peers.remove(&conn);
            }
            driver.turns += 1;
            driver.busy_seconds += now.elapsed().as_secs_f64();
        }
        drop(scrapes);
        info!("coordinator shutting down");
        drop(accept);
        if let (Some(mut j), Ok(())) = (journal, &result) {
            core.handle_shutdown(Instant::now());
            result = j.finish(&mut core).await;
        }
        self.endpoint.close(
            (CloseCode::ShuttingDown as u32).into(),
            b"coordinator shutting down",
        );
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
        result
    }
}

/// The store's writer: a thread that commits one batch of records at a time (group
/// commit: while one is written, the next accumulates in the state machine).
struct Journal {
    batches: std::sync::mpsc::SyncSender<(u64, Vec<crate::coordinator::Record>)>,
    done: mpsc::Receiver<Result<u64, StoreError>>,
    in_flight: bool,
    /// Batches handed to the writer, and their records (for the metrics).
    commits: u64,
    records: u64,
}

impl Journal {
    fn start(mut store: Box<dyn Store>) -> Journal {
        let (batches, to_write) = std::sync::mpsc::sync_channel::<(u64, Vec<_>)>(1);
        let (done_tx, done) = mpsc::channel(1);
        std::thread::Builder::new()
            .name("picluster-journal".into())
            .spawn(move || {
                for (seq, records) in to_write {
                    let result = store.commit(&records).map(|()| seq);
                    if done_tx.blocking_send(result).is_err() {
                        return;
                    }
                }
            })
            .expect("the OS starts the journal thread");
        Journal {
            batches,
            done,
            in_flight: false,
            commits: 0,
            records: 0,
        }
    }

    /// Hands the state machine's records to the writer unless a batch is being written.
    fn write(&mut self, core: &mut Coordinator) {
        if self.in_flight {
            return;
        }
        if let Some(batch) = core.poll_records() {
            let records = batch.1.len() as u64;
            self.in_flight = self.batches.send(batch).is_ok();
            if self.in_flight {
                self.commits += 1;
                self.records += records;
            }
        }
    }

    /// Writes everything still pending and waits for it.
    async fn finish(&mut self, core: &mut Coordinator) -> Result<(), StoreError> {
        loop {
            if self.in_flight {
                match self.done.recv().await {
                    Some(Ok(seq)) => core.handle_durable(Instant::now(), seq),
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                }
                self.in_flight = false;
            }
            self.write(core);
            if !self.in_flight {
                return Ok(());
            }
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The writer's next answer, when a batch is being written; never otherwise.
async fn written(journal: &mut Option<Journal>) -> Option<Result<u64, StoreError>> {
    match journal {
        Some(j) if j.in_flight => {
            let done = j.done.recv().await;
            j.in_flight = false;
            done
        }
        _ => std::future::pending().await,
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Why a coordinator could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The cluster directory is unusable.
    #[error(transparent)]
    Cluster(#[from] crate::trust::ClusterError),
    /// Binding the endpoint failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The job store cannot be opened, read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Opens a cluster directory and serves its coordinator until `shutdown`, journaling
/// jobs to the store in that directory ([`STORE_FILE`]).
pub async fn serve_cluster(
    dir: &std::path::Path,
    config: CoordinatorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_cluster_with(dir, config, None, shutdown).await
}

/// Like [`serve_cluster`], serving metrics for Prometheus at `metrics` too.
pub async fn serve_cluster_with(
    dir: &std::path::Path,
    config: CoordinatorConfig,
    metrics: Option<SocketAddr>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let dir = ClusterDir::open(dir).map_err(ServeError::from)?;
    dir.check_private_keys().map_err(ServeError::from)?;
    let store = RedbStore::open(&dir.path().join(STORE_FILE))?;
    let mut service = CoordinatorService::from_cluster(&dir, config)?.with_store(store);
    if let Some(address) = metrics {
        service = service.with_metrics(address)?;
    }
    info!(address = %service.local_addr()?, "coordinator listening");
    if let Some(address) = service.metrics_addr() {
        info!(%address, "metrics at http://{address}/metrics");
    }
    let own = dir
        .coordinator_credential()
        .ok()
        .and_then(|c| own_certificate_expiry(&c.cert_pem));
    // Checked at start and twice a day after.
    let _watch = own.map(|expires_ms| {
        AbortOnDrop(tokio::spawn(async move {
            loop {
                warn_if_expiring(expires_ms);
                tokio::time::sleep(Duration::from_secs(12 * 3600)).await;
            }
        }))
    });
    service.run(shutdown).await?;
    Ok(())
}

/// How long before its certificate expires the coordinator starts warning.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

fn own_certificate_expiry(cert_pem: &str) -> Option<u64> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).ok()?;
    crate::trust::identity_of(&der).ok().map(|id| id.expires_ms)
}

fn warn_if_expiring(expires_ms: u64) {
    if let Some(notice) = expiry_notice(expires_ms, unix_ms()) {
        if expires_ms <= unix_ms() {
            error!("{notice}");
        } else {
            warn!("{notice}");
        }
    }
}

/// What the coordinator logs about its own certificate at `now_ms`: nothing until
/// [`EXPIRY_WARNING`] before it expires, then a warning naming the days left and the
/// fix, and an error once it has expired.
pub fn expiry_notice(expires_ms: u64, now_ms: u64) -> Option<String> {
    if expires_ms <= now_ms {
        return Some("the coordinator's certificate has expired: workers and clients cannot connect; run `picluster renew-coordinator` and restart the coordinator".into());
    }
    let left = expires_ms - now_ms;
    (u128::from(left) <= EXPIRY_WARNING.as_millis()).then(|| {
        format!(
            "the coordinator's certificate expires in {} days: run `picluster renew-coordinator` and restart the coordinator",
            left / 86_400_000
        )
    })
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

fn apply(
    core: &mut Coordinator,
    peers: &mut BTreeMap<ConnId, Peer>,
    gone: &mut Vec<ConnId>,
    event: Event,
) {
    let now = Instant::now();
    match event {
        Event::Connected {
            conn,
            identity,
            peer,
        } => {
            peers.insert(conn, peer);
            match identity {
                Some(identity) => core.handle_connected(now, conn, identity),
                None => core.handle_joining(now, conn),
            }
        }
        Event::Inbound(conn, message) => core.handle_inbound(now, conn, message),
        Event::BadFrame(conn, error) => core.handle_bad_frame(now, conn, error),
        Event::Disconnected(conn) => {
            gone.push(conn);
            core.handle_disconnected(now, conn);
        }
    }
}

/// Carries out one effect. What happens when the peer's queue is full is the core's
/// decision ([`Transmit::overflow`]); a message that cannot be encoded goes back to
/// the core too, which closes that connection rather than leave it waiting.
fn carry_out(
    core: &mut Coordinator,
    peers: &BTreeMap<ConnId, Peer>,
    issuer: Option<&Issuer>,
    queue_limit: usize,
    now: Instant,
    transmit: Transmit,
) {
    let conn = transmit.conn();
    let Some(peer) = peers.get(&conn) else {
        return;
    };
    let overflow = transmit.overflow();
    let frame = match &transmit {
        Transmit::ToWorker(_, message) => wire::encode_frame(message),
        Transmit::ToClient(_, message) => wire::encode_frame(message),
        Transmit::ToJoiner(_, message) => wire::encode_frame(message),
        Transmit::Issue(_, issue) => {
            let signed = issue_certificate(issuer, issue);
            match &signed {
                Ok(_) => info!(%conn, name = %issue.name, role = %issue.role,
                    renewal = issue.renewal, "certificate issued"),
                Err(refusal) => warn!(%conn, name = %issue.name, %refusal,
                    "certificate not issued"),
            }
            if issue.renewal {
                wire::encode_frame(&match signed {
                    Ok(cert_pem) => CoordToWorker::Renewed(Renewed { cert_pem }),
                    Err(refusal) => CoordToWorker::RenewRefused(refusal),
                })
            } else {
                wire::encode_frame(&match signed {
                    Ok(cert_pem) => CoordToJoin::Enrolled(Enrolled {
                        role: issue.role,
                        name: issue.name.clone(),
                        cert_pem,
                    }),
                    Err(refusal) => CoordToJoin::Refused(refusal),
                })
            }
        }
        Transmit::Close(_, reason) => {
            info!(%conn, code = ?reason.code(), %reason, "closing connection");
            peer.close(reason.code(), reason.to_string());
            return;
        }
    };
    let frame = match frame {
        Ok(frame) => frame,
        Err(error) => {
            error!(%conn, %error, message = ?transmit, "cannot encode a message");
            core.handle_unsendable(now, conn, error);
            return;
        }
    };
    if !peer.try_queue(frame, queue_limit) {
        match overflow {
            Overflow::Skip => debug!(%conn, "peer's queue is full: progress update skipped"),
            Overflow::CutOff => {
                warn!(%conn, "peer does not read what it is sent: cutting it off");
                core.handle_backlogged(now, conn);
            }
        }
    }
}

/// Signs what the core decided to issue.
fn issue_certificate(issuer: Option<&Issuer>, issue: &Issue) -> Result<String, JoinRefusal> {
    let issuer = issuer.ok_or(JoinRefusal::CannotIssue)?;
    issuer
        .ca
        .sign_request(
            issue.role,
            &issue.name,
            &issue.csr,
            issuer.days,
            issue.issued_ms,
        )
        .map_err(|e| match e {
            crate::trust::ClusterError::BadRequest(why) => JoinRefusal::BadRequest(why),
            other => JoinRefusal::BadRequest(other.to_string()),
        })
}

/// What the accept loop and each connection task enforce.
#[derive(Clone, Copy)]
struct ConnectionLimits {
    hello_timeout: Duration,
    frame_timeout: Duration,
    max_connections: usize,
    max_joining: usize,
    max_handshakes: usize,
    join_timeout: Duration,
    max_per_address: usize,
    handshakes_per_second: f64,
    handshake_burst: u32,
}

/// Connections open and handshake budgets, per IP address.
#[derive(Default)]
struct Admission {
    open: std::collections::HashMap<std::net::IpAddr, usize>,
    total: usize,
    /// Token buckets: (tokens, when last filled).
    buckets: std::collections::HashMap<std::net::IpAddr, (f64, Instant)>,
}

impl Admission {
    /// Whether a new connection from `ip` may start its handshake now (it is then
    /// counted until [`Admission::closed`]); the reason if not.
    fn admit(
        &mut self,
        ip: std::net::IpAddr,
        now: Instant,
        limits: &ConnectionLimits,
    ) -> Result<(), &'static str> {
        let burst = f64::from(limits.handshake_burst.max(1));
        if self.buckets.len() > 65_536 {
            // Forget addresses whose bucket has refilled: they are as if new.
            self.buckets.retain(|_, (tokens, at)| {
                *tokens
                    + now.saturating_duration_since(*at).as_secs_f64()
                        * limits.handshakes_per_second
                    < burst
            });
        }
        let (tokens, at) = self.buckets.entry(ip).or_insert((burst, now));
        *tokens = (*tokens
            + now.saturating_duration_since(*at).as_secs_f64() * limits.handshakes_per_second)
            .min(burst);
        *at = now;
        if *tokens < 1.0 {
            return Err("too many handshakes from this address");
        }
        if self.total >= limits.max_connections {
            return Err("too many connections");
        }
        let open = self.open.entry(ip).or_default();
        if *open >= limits.max_per_address {
            return Err("too many connections from this address");
        }
        *tokens -= 1.0;
        *open += 1;
        self.total += 1;
        Ok(())
    }

    /// A connection from `ip` ended.
    fn closed(&mut self, ip: std::net::IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(open) = self.open.get_mut(&ip) {
            *open -= 1;
            if *open == 0 {
                self.open.remove(&ip);
            }
        }
    }
}

/// Accepts connections. The connection tasks belong to this task: when the service
/// stops and aborts it, they go too, and with them every handle on the endpoint.
async fn accept_loop(
    endpoint: quinn::Endpoint,
    events: mpsc::Sender<Event>,
    limits: ConnectionLimits,
) {
    let mut next_conn = 1u64;
    let mut connections = tokio::task::JoinSet::new();
    let joining = Arc::new(AtomicUsize::new(0));
    let handshaking = Arc::new(AtomicUsize::new(0));
    let mut admission = Admission::default();
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break,
            },
            Some(done) = connections.join_next() => {
                if let Ok(ip) = done {
                    admission.closed(ip);
                }
                continue;
            }
        };
        let ip = incoming.remote_address().ip();
        if handshaking.load(Ordering::Acquire) >= limits.max_handshakes {
            debug!(remote = %incoming.remote_address(), "refused connection: too many handshakes in progress");
            incoming.refuse();
            continue;
        }
        if let Err(why) = admission.admit(ip, Instant::now(), &limits) {
            debug!(remote = %incoming.remote_address(), why, "refused connection");
            incoming.refuse();
            continue;
        }
        let conn = ConnId(next_conn);
        next_conn += 1;
        let events = events.clone();
        let joining = joining.clone();
        handshaking.fetch_add(1, Ordering::AcqRel);
        let handshake = Counted::owned(handshaking.clone());
        connections.spawn(async move {
            connection(incoming, conn, events, limits, &joining, handshake).await;
            ip
        });
    }
}

async fn connection(
    incoming: quinn::Incoming,
    conn: ConnId,
    events: mpsc::Sender<Event>,
    limits: ConnectionLimits,
    joining: &AtomicUsize,
    handshake: OwnedCount,
) {
    let remote = incoming.remote_address();
    let handshaken = incoming.await;
    drop(handshake);
    let connection = match handshaken {
        Ok(c) => c,
        Err(e) => {
            info!(%remote, error = %e, "refused connection: TLS handshake failed");
            return;
        }
    };
    let identity = match net::peer_identity(&connection) {
        Ok(id) => Some(id),
        // No certificate: a worker joining with a token.
        Err(crate::trust::CertificateError::Missing) => None,
        Err(e) => {
            info!(%remote, error = %e, "refused connection");
            connection.close(
                (CloseCode::Unauthorized as u32).into(),
                e.to_string().as_bytes(),
            );
            return;
        }
    };
    // Certificate-less peers are counted apart, and few at a time.
    let _joining = match &identity {
        Some(id) => {
            info!(%remote, %conn, role = ?id.role, name = %id.name, "peer connected");
            None
        }
        None => {
            if joining.fetch_add(1, Ordering::AcqRel) >= limits.max_joining {
                joining.fetch_sub(1, Ordering::AcqRel);
                debug!(%remote, "refused connection: too many joins in progress");
                connection.close(
                    (CloseCode::Normal as u32).into(),
                    b"too many joins in progress: try again shortly",
                );
                return;
            }
            debug!(%remote, %conn, "joining peer connected (no certificate)");
            Some(Counted(joining))
        }
    };
    let hello_timeout = if identity.is_some() {
        limits.hello_timeout
    } else {
        limits.join_timeout
    };
    // A certificate-less peer has proven nothing: it gets less time for everything.
    let stream_timeout = if identity.is_some() {
        STREAM_TIMEOUT
    } else {
        limits.join_timeout
    };
    let (send, recv) = match tokio::time::timeout(stream_timeout, connection.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(e)) => {
            debug!(%remote, error = %e, "connection ended before its session stream");
            return;
        }
        Err(_) => {
            info!(%remote, "closing connection: no session stream within {stream_timeout:?}");
            connection.close(
                (CloseCode::Protocol as u32).into(),
                b"no session stream opened",
            );
            return;
        }
    };
    let role = identity.as_ref().map(|id| id.role);
    let (writer_tx, writer_rx) = mpsc::channel(PEER_QUEUE_FRAMES);
    let queued = Arc::new(AtomicUsize::new(0));
    let peer = Peer {
        writer: writer_tx,
        queued: queued.clone(),
        connection: connection.clone(),
    };
    if events
        .send(Event::Connected {
            conn,
            identity,
            peer,
        })
        .await
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(write_loop(
        connection.clone(),
        FrameWriter::new(send),
        writer_rx,
        queued,
    ));
    let mut reader = FrameReader::new(recv).with_body_timeout(limits.frame_timeout);
    let mut greeted = false;
    loop {
        let next = if greeted {
            reader.next_body().await
        } else {
            greeted = true;
            match tokio::time::timeout(hello_timeout, reader.next_body()).await {
                Ok(next) => next,
                Err(_) => Err(NetError::Timeout(hello_timeout)),
            }
        };
        let event = match next {
            Ok(body) => match decode(role, body) {
                Ok(message) => Event::Inbound(conn, message),
                Err(e) => {
                    warn!(%remote, %conn, error = %e, "malformed frame");
                    Event::BadFrame(conn, e)
                }
            },
            Err(NetError::BadFrame(e)) => {
                warn!(%remote, %conn, error = %e, "malformed frame");
                Event::BadFrame(conn, e)
            }
            Err(NetError::Timeout(after)) => {
                info!(%remote, %conn, "closing connection: no hello, or a frame left half-sent, for {after:?}");
                connection.close(
                    (CloseCode::Protocol as u32).into(),
                    format!("no hello, or a frame left half-sent, for {after:?}").as_bytes(),
                );
                break;
            }
            Err(e) => {
                info!(%remote, %conn, reason = %e, "peer disconnected");
                break;
            }
        };
        let stop = matches!(event, Event::BadFrame(..));
        // A full queue makes this wait: the peer is held back by flow control.
        if events.send(event).await.is_err() || stop {
            break;
        }
    }
    let _ = events.send(Event::Disconnected(conn)).await;
    // The writer still carries out what the core queued (a close with its reason);
    // it ends when the core drops its sender.
    let _ = writer.await;
}

/// Holds one place in a shared counter until dropped.
struct OwnedCount(Arc<AtomicUsize>);

impl Drop for OwnedCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Counted<'_> {
    fn owned(counter: Arc<AtomicUsize>) -> OwnedCount {
        OwnedCount(counter)
    }
}

/// Holds one place in a counter until dropped.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Decodes a frame in the protocol of the peer's role. The coordinator has already
/// closed a connection whose role speaks neither (its own certificate); any frame
/// still arriving on one is decoded as a client's and ignored there.
fn decode(role: Option<Role>, body: &[u8]) -> Result<Inbound, wire::FrameError> {
    // A frame of the other role's protocol is passed on as such (the core refuses it
    // for the role it is), so the peer learns what is wrong rather than "malformed".
    Ok(match role {
        Some(Role::Worker) => match wire::decode_body::<WorkerToCoord>(body) {
            Ok(m) => Inbound::Worker(m),
            Err(e) => Inbound::Client(wire::decode_body::<ClientToCoord>(body).map_err(|_| e)?),
        },
        Some(Role::Client | Role::Admin | Role::Coordinator) => {
            match wire::decode_body::<ClientToCoord>(body) {
                Ok(m) => Inbound::Client(m),
                Err(e) => Inbound::Worker(wire::decode_body::<WorkerToCoord>(body).map_err(|_| e)?),
            }
        }
        None => {
            let JoinToCoord::Join(request) = wire::decode_body::<JoinToCoord>(body)?;
            let checked = crate::trust::verify_request(&request.csr)
                .map(|_| ())
                .map_err(|e| match e {
                    crate::trust::ClusterError::BadRequest(why) => why,
                    other => other.to_string(),
                });
            Inbound::Join(request, checked)
        }
    })
}

async fn write_loop(
    connection: quinn::Connection,
    mut writer: FrameWriter,
    mut commands: mpsc::Receiver<WriterCommand>,
    queued: Arc<AtomicUsize>,
) {
    let mut batch = Vec::new();
    while let Some(command) = commands.recv().await {
        // Coalesce whatever else is queued into one write.
        let mut next = Some(command);
        let mut close = None;
        while let Some(command) = next.take() {
            match command {
                WriterCommand::Frame(frame) => batch.extend_from_slice(&frame),
                WriterCommand::Close(code, reason) => {
                    close = Some((code, reason));
                    break;
                }
            }
            next = commands.try_recv().ok();
        }
        if !batch.is_empty() {
            if writer.send_frame(&batch).await.is_err() {
                return;
            }
            queued.fetch_sub(batch.len(), Ordering::AcqRel);
            batch.clear();
        }
        if let Some((code, reason)) = close {
            connection.close((code as u32).into(), reason.as_bytes());
            return;
        }
    }
}
