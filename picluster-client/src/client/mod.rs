//! The async client: one QUIC connection to the coordinator with mutual TLS, several
//! requests in flight on it, and job watches that stream progress and the final
//! report. A background task reads replies and routes them by request id (replies)
//! or job id (pushed progress).

use picluster_core::identity::Role;
use picluster_core::ids::{JobId, RequestId};
use picluster_core::job::{JobKind, JobSpec, SearchMode};
use picluster_core::kernel::custom::{self, BindError, CustomJob, Kernel};
use picluster_core::net::{self, FrameReader, FrameWriter, NetError, Session};
use picluster_core::sync::lock;
use picluster_core::token::{secret_hash, JoinToken};
use picluster_core::trust::{Bundle, ClusterDir, ClusterError};
use picluster_core::wire::{
    ChunkOutput, ClientHello, ClientToCoord, CloseCode, ClusterStatus, CoordToClient, CreateToken,
    CredentialReport, Drain, JobDetail, JobProgress, JobReport, JobRequest, JobState, JobSummary,
    Refusal, Revocation, Submit, TokenInfo, TokenRequest, WorkSpec, WorkerRequest, WorkerStatus,
    MINOR_CLIENT_REPORTS, MINOR_CREDENTIALS, PROTOCOL_MINOR,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Why a client operation failed. [`ClientError::is_retryable`] says whether trying
/// again (after reconnecting) can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting or talking to the coordinator failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The cluster directory or bundle is unusable.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The coordinator refused the request.
    #[error("{0}")]
    Refused(Refusal),
    /// The connection ended while waiting for an answer.
    #[error("the connection to the coordinator was lost")]
    Disconnected,
    /// The coordinator runs an older protocol that lacks this request.
    #[error("the coordinator speaks protocol minor {coordinator}; this request needs {needed}: upgrade the coordinator")]
    CoordinatorTooOld {
        /// The minor version negotiated.
        coordinator: u16,
        /// The minor version the request needs.
        needed: u16,
    },
    /// The coordinator answered with a reply of the wrong kind.
    #[error("unexpected reply from the coordinator: {0}")]
    UnexpectedReply(&'static str),
    /// A custom kernel's parameters or results could not be encoded or decoded, or
    /// the results of a completed job do not cover its keyspace exactly.
    #[error("custom kernel: {0}")]
    Kernel(#[from] KernelError),
}

impl ClientError {
    /// Whether retrying (after reconnecting) can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Net(e) => e.is_retryable(),
            ClientError::Disconnected => true,
            ClientError::Cluster(_)
            | ClientError::Refused(_)
            | ClientError::CoordinatorTooOld { .. }
            | ClientError::UnexpectedReply(_)
            | ClientError::Kernel(_) => false,
        }
    }
}

/// Why a custom kernel's job or results could not be used. Not helped by retrying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// The parameters do not make a valid job.
    #[error(transparent)]
    Job(#[from] BindError),
    /// A range's result does not decode as the kernel's output.
    #[error("{start}..{end}: {source}")]
    Decode {
        /// First index of the range.
        start: u64,
        /// One past its last.
        end: u64,
        /// Why.
        source: BindError,
    },
    /// Two results overlap, or one covers nothing.
    #[error("results overlap or are empty at {start}..{end}")]
    Overlap {
        /// First index of the offending range.
        start: u64,
        /// One past its last.
        end: u64,
    },
    /// The merged result has no JSON form (a map with keys that are not strings).
    #[error("the merged result cannot be shown as JSON: {0}")]
    Json(String),
    /// A completed job's results do not cover its keyspace exactly.
    #[error("the results of completed job {job} cover {covered} of its {keyspace} indices")]
    Coverage {
        /// The job.
        job: JobId,
        /// Indices covered.
        covered: u64,
        /// Its keyspace.
        keyspace: u64,
    },
}

/// An update about a watched job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobEvent {
    /// The job progressed.
    Progress(JobProgress),
    /// Results of a custom job's committed ranges (all of them come before
    /// `Finished`; a new watch first gets every one so far).
    Outputs(Vec<ChunkOutput>),
    /// The job ended; no more events follow.
    Finished(Box<JobReport>),
    /// The connection to the coordinator was lost before the report: the watch is
    /// reconnecting (with backoff, up to [`Client::set_reconnect_timeout`]) and will
    /// go on where the coordinator's job stands. Results of a custom job are sent
    /// again from the start after it.
    Reconnecting,
}

type Pending = Mutex<HashMap<RequestId, oneshot::Sender<CoordToClient>>>;
type Watchers = Mutex<HashMap<JobId, Vec<mpsc::Sender<JobEvent>>>>;

/// Events a [`JobWatch`] holds before its reader falls behind. Then progress updates
/// are skipped (the next one supersedes them), and results and the report wait: the
/// connection stops being read, and the coordinator's flow control holds it back.
const WATCH_EVENTS: usize = 64;

struct Inner {
    _endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    writer: tokio::sync::Mutex<FrameWriter>,
    pending: Pending,
    watchers: Watchers,
    next_request: AtomicU32,
    /// The protocol minor version negotiated.
    minor: u16,
    /// The reader stopped: the stream or the connection is gone, whether or not QUIC
    /// has noticed yet.
    ended: AtomicBool,
}

/// How long a watch keeps trying to reconnect by default: long enough for a
/// coordinator to be restarted by hand or by systemd.
pub const DEFAULT_RECONNECT_TIMEOUT: Duration = Duration::from_secs(300);

/// A connection to a picluster coordinator. Cheap to clone; clones share it, and a
/// reconnection by one serves all.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    bundle: Bundle,
    current: Mutex<Arc<Inner>>,
    reconnect_timeout: Mutex<Duration>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("coordinator", &self.shared.bundle.coordinator)
            .finish()
    }
}

/// A watched job: progress events, then the final report. If the connection is lost
/// first, the watch reconnects and re-attaches to the job by itself.
#[derive(Debug)]
pub struct JobWatch {
    /// The job's state when the watch started.
    pub initial: JobProgress,
    events: mpsc::Receiver<JobEvent>,
    client: Client,
    job: JobId,
    /// Reconnecting has been announced for the current loss.
    announced: bool,
    /// The report arrived, or reconnecting failed.
    done: bool,
    /// Why reconnecting failed.
    error: Option<ClientError>,
}

impl JobWatch {
    /// The next event; `None` after `Finished`, or once reconnecting has failed
    /// ([`JobWatch::finish`] then says why).
    pub async fn next(&mut self) -> Option<JobEvent> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.events.recv().await {
                self.done = matches!(event, JobEvent::Finished(_));
                return Some(event);
            }
            if !self.announced {
                self.announced = true;
                return Some(JobEvent::Reconnecting);
            }
            match self.reattach().await {
                Ok(()) => self.announced = false,
                Err(e) => {
                    self.done = true;
                    self.error = Some(e);
                }
            }
        }
    }

    /// Reconnects (if no clone did already) and watches the job again, with backoff,
    /// until the client's reconnect timeout.
    async fn reattach(&mut self) -> Result<(), ClientError> {
        let deadline = Instant::now() + self.client.reconnect_timeout();
        let mut delay = Duration::from_millis(250);
        loop {
            let attempt = async {
                self.client.reconnect_if_lost().await?;
                self.client.attach(self.job).await
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let result = tokio::time::timeout(left, attempt)
                .await
                .unwrap_or(Err(ClientError::Net(NetError::Timeout(left))));
            match result {
                Ok((_, events)) => {
                    self.events = events;
                    return Ok(());
                }
                Err(e) if e.is_retryable() && Instant::now() + delay < deadline => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for the final report, passing every progress event to `on_progress`.
    pub async fn finish(
        mut self,
        mut on_progress: impl FnMut(&JobProgress),
    ) -> Result<JobReport, ClientError> {
        on_progress(&self.initial);
        while let Some(event) = self.next().await {
            match event {
                JobEvent::Progress(p) => on_progress(&p),
                JobEvent::Outputs(_) | JobEvent::Reconnecting => {}
                JobEvent::Finished(report) => return Ok(*report),
            }
        }
        Err(self.error.take().unwrap_or(ClientError::Disconnected))
    }

    /// Waits for the final report of a custom job of kernel `K`, merging its
    /// results in index order.
    pub async fn finish_kernel<K: Kernel>(
        mut self,
        params: &K::Params,
    ) -> Result<KernelReport<K::Output>, ClientError> {
        let mut outputs: Vec<ChunkOutput> = Vec::new();
        let report = loop {
            match self.next().await {
                Some(JobEvent::Progress(_)) => {}
                Some(JobEvent::Outputs(batch)) => outputs.extend(batch),
                // A new watch sends every result again.
                Some(JobEvent::Reconnecting) => outputs.clear(),
                Some(JobEvent::Finished(report)) => break *report,
                None => return Err(self.error.take().unwrap_or(ClientError::Disconnected)),
            }
        };
        merge_outputs::<K>(params, outputs, report)
    }
}

/// Merges a custom job's results (as [`JobEvent::Outputs`] delivered them, in any
/// order) in index order with kernel `K`, checking that they do not overlap and that
/// a completed job's cover its keyspace.
pub fn merge_outputs<K: Kernel>(
    params: &K::Params,
    mut outputs: Vec<ChunkOutput>,
    report: JobReport,
) -> Result<KernelReport<K::Output>, ClientError> {
    outputs.sort_by_key(|o| o.start);
    let mut covered = 0;
    let mut expected_start = 0;
    let mut gaps = false;
    let mut output: Option<K::Output> = None;
    for chunk in &outputs {
        if chunk.start < expected_start || chunk.end <= chunk.start {
            return Err(KernelError::Overlap {
                start: chunk.start,
                end: chunk.end,
            }
            .into());
        }
        gaps |= chunk.start != expected_start;
        expected_start = chunk.end;
        covered += chunk.end - chunk.start;
        let part =
            custom::decode_output::<K>(&chunk.data).map_err(|source| KernelError::Decode {
                start: chunk.start,
                end: chunk.end,
                source,
            })?;
        output = Some(match output {
            Some(earlier) => K::merge(params, earlier, part),
            None => part,
        });
    }
    if report.state == JobState::Completed
        && (gaps || covered != report.keyspace || expected_start != report.keyspace)
    {
        return Err(KernelError::Coverage {
            job: report.job,
            covered,
            keyspace: report.keyspace,
        }
        .into());
    }
    Ok(KernelReport {
        output,
        covered,
        report,
    })
}

/// The outcome of a custom job: its results merged in index order, and its report.
#[derive(Clone, Debug)]
pub struct KernelReport<T> {
    /// The merged result; `None` if no index was computed (a job cancelled or failed
    /// before any result).
    pub output: Option<T>,
    /// How many indices the result covers: the whole keyspace for a completed job.
    pub covered: u64,
    /// The job's report (its state, `error` if it failed, contributions).
    pub report: JobReport,
}

impl Client {
    /// Connects with a client bundle.
    pub async fn connect(bundle: &Bundle) -> Result<Client, ClientError> {
        let inner = Self::open(bundle).await?;
        Ok(Client {
            shared: Arc::new(Shared {
                bundle: bundle.clone(),
                current: Mutex::new(inner),
                reconnect_timeout: Mutex::new(DEFAULT_RECONNECT_TIMEOUT),
            }),
        })
    }

    async fn open(bundle: &Bundle) -> Result<Arc<Inner>, ClientError> {
        let hello = ClientToCoord::Hello(ClientHello {
            minor: PROTOCOL_MINOR,
            client_version: env!("CARGO_PKG_VERSION").to_string(),
        });
        let Session {
            endpoint,
            connection,
            reader,
            writer,
            welcome,
        } = net::connect::<ClientToCoord, CoordToClient>(bundle, &hello).await?;
        let CoordToClient::Welcome(welcome) = welcome else {
            connection.close((CloseCode::Protocol as u32).into(), b"expected a welcome");
            return Err(ClientError::UnexpectedReply("expected a welcome"));
        };
        if welcome.minor < MINOR_CLIENT_REPORTS {
            // Its replies have the older layout, which this build cannot decode.
            connection.close(
                (CloseCode::Protocol as u32).into(),
                b"client messages of minor 3 or later needed",
            );
            return Err(ClientError::CoordinatorTooOld {
                coordinator: welcome.minor,
                needed: MINOR_CLIENT_REPORTS,
            });
        }
        let inner = Arc::new(Inner {
            _endpoint: endpoint,
            connection,
            writer: tokio::sync::Mutex::new(writer),
            pending: Mutex::new(HashMap::new()),
            watchers: Mutex::new(HashMap::new()),
            next_request: AtomicU32::new(1),
            minor: welcome.minor,
            ended: AtomicBool::new(false),
        });
        tokio::spawn(read_loop(reader, Arc::downgrade(&inner)));
        Ok(inner)
    }

    /// The coordinator's address, as the bundle gives it.
    pub fn coordinator(&self) -> &str {
        &self.shared.bundle.coordinator
    }

    /// The connection in use.
    fn inner(&self) -> Arc<Inner> {
        lock(&self.shared.current).clone()
    }

    /// How long a [`JobWatch`] (and `wait`, `run`) tries to reconnect after losing the
    /// coordinator before it gives up with a retryable error
    /// ([`DEFAULT_RECONNECT_TIMEOUT`] unless set).
    pub fn set_reconnect_timeout(&self, timeout: Duration) {
        *lock(&self.shared.reconnect_timeout) = timeout;
    }

    fn reconnect_timeout(&self) -> Duration {
        *lock(&self.shared.reconnect_timeout)
    }

    /// Replaces the connection if it is closed (once, whichever clone asks first).
    async fn reconnect_if_lost(&self) -> Result<(), ClientError> {
        let lost = self.inner();
        if !lost.ended.load(Ordering::Acquire) && lost.connection.close_reason().is_none() {
            return Ok(());
        }
        lost.connection
            .close((CloseCode::Normal as u32).into(), b"reconnecting");
        let fresh = Self::open(&self.shared.bundle).await?;
        let mut current = lock(&self.shared.current);
        if Arc::ptr_eq(&current, &lost) {
            *current = fresh;
        } else {
            fresh
                .connection
                .close((CloseCode::Normal as u32).into(), b"client done");
        }
        Ok(())
    }

    /// Connects with the admin bundle of a cluster directory.
    pub async fn connect_cluster(dir: &Path) -> Result<Client, ClientError> {
        let bundle = ClusterDir::open(dir)?.admin_bundle()?;
        Self::connect(&bundle).await
    }

    async fn request(
        &self,
        make: impl FnOnce(RequestId) -> ClientToCoord,
    ) -> Result<CoordToClient, ClientError> {
        self.request_on(&self.inner(), make).await
    }

    async fn request_on(
        &self,
        inner: &Inner,
        make: impl FnOnce(RequestId) -> ClientToCoord,
    ) -> Result<CoordToClient, ClientError> {
        let id = RequestId(inner.next_request.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        lock(&inner.pending).insert(id, tx);
        inner.writer.lock().await.send(&make(id)).await?;
        match rx.await.map_err(|_| ClientError::Disconnected)? {
            CoordToClient::Refused(_, refusal) => Err(ClientError::Refused(refusal)),
            reply => Ok(reply),
        }
    }

    /// Submits a job at priority 0; returns its id at once.
    pub async fn submit(&self, spec: &JobSpec) -> Result<JobId, ClientError> {
        self.submit_with_priority(spec, 0).await
    }

    /// Submits a job; higher priorities run first, and jobs of equal priority share
    /// the cluster fairly among clients.
    pub async fn submit_with_priority(
        &self,
        spec: &JobSpec,
        priority: i32,
    ) -> Result<JobId, ClientError> {
        let work = WorkSpec::from(&spec.kind);
        match self
            .request(|request| {
                ClientToCoord::Submit(Submit {
                    request,
                    work,
                    mode: spec.mode,
                    priority,
                })
            })
            .await?
        {
            CoordToClient::Submitted(JobRequest { job, .. }) => Ok(job),
            _ => Err(ClientError::UnexpectedReply("expected Submitted")),
        }
    }

    /// Starts watching a job: its progress, then its report.
    pub async fn watch(&self, job: JobId) -> Result<JobWatch, ClientError> {
        let (initial, events) = self.attach(job).await?;
        Ok(JobWatch {
            initial,
            events,
            client: self.clone(),
            job,
            announced: false,
            done: false,
            error: None,
        })
    }

    /// Registers for a job's events on the current connection and asks for them.
    async fn attach(
        &self,
        job: JobId,
    ) -> Result<(JobProgress, mpsc::Receiver<JobEvent>), ClientError> {
        let inner = self.inner();
        let (tx, events) = mpsc::channel(WATCH_EVENTS);
        lock(&inner.watchers).entry(job).or_default().push(tx);
        let reply = self
            .request_on(&inner, |request| {
                ClientToCoord::Watch(JobRequest { request, job })
            })
            .await;
        match reply {
            Ok(CoordToClient::Watching(_, initial)) => Ok((initial, events)),
            Ok(_) => Err(ClientError::UnexpectedReply("expected Watching")),
            Err(e) => {
                lock(&inner.watchers).remove(&job);
                Err(e)
            }
        }
    }

    /// Waits until a job ends and returns its report.
    pub async fn wait(&self, job: JobId) -> Result<JobReport, ClientError> {
        self.watch(job).await?.finish(|_| {}).await
    }

    /// Submits a job and waits for its report.
    pub async fn run(&self, spec: &JobSpec) -> Result<JobReport, ClientError> {
        let job = self.submit(spec).await?;
        self.wait(job).await
    }

    /// Submits a job of custom kernel `K`. Only workers that registered `K` run it;
    /// it stays queued until one is connected.
    pub async fn submit_kernel<K: Kernel>(
        &self,
        params: &K::Params,
        priority: i32,
    ) -> Result<JobId, ClientError> {
        let job = CustomJob::of::<K>(params).map_err(KernelError::Job)?;
        let spec = JobSpec {
            kind: JobKind::Custom(job),
            mode: SearchMode::All,
        };
        self.submit_with_priority(&spec, priority).await
    }

    /// Waits for a custom job of kernel `K` and returns its merged result.
    pub async fn wait_kernel<K: Kernel>(
        &self,
        job: JobId,
        params: &K::Params,
    ) -> Result<KernelReport<K::Output>, ClientError> {
        self.watch(job).await?.finish_kernel::<K>(params).await
    }

    /// Runs a custom kernel over its whole keyspace across the cluster: submits,
    /// waits, and returns the results merged in index order.
    pub async fn run_kernel<K: Kernel>(
        &self,
        params: &K::Params,
    ) -> Result<KernelReport<K::Output>, ClientError> {
        let job = self.submit_kernel::<K>(params, 0).await?;
        self.wait_kernel::<K>(job, params).await
    }

    /// Cancels a job; returns its state afterwards (a job that had already ended
    /// keeps its final state).
    pub async fn cancel(&self, job: JobId) -> Result<JobSummary, ClientError> {
        match self
            .request(|request| ClientToCoord::Cancel(JobRequest { request, job }))
            .await?
        {
            CoordToClient::Cancelled(_, summary) => Ok(summary),
            _ => Err(ClientError::UnexpectedReply("expected Cancelled")),
        }
    }

    /// Removes a finished job (its report, solutions and results) from the
    /// coordinator now, rather than when its retention limits drop it. A live job is
    /// refused ([`Refusal::NotFinished`](picluster_core::wire::Refusal::NotFinished)):
    /// cancel it first.
    pub async fn forget(&self, job: JobId) -> Result<(), ClientError> {
        match self
            .request(|request| ClientToCoord::Forget(JobRequest { request, job }))
            .await?
        {
            CoordToClient::Forgotten(_) => Ok(()),
            _ => Err(ClientError::UnexpectedReply("expected Forgotten")),
        }
    }

    /// Lets a quarantined worker (it claimed a false solution) connect again. Check
    /// the machine first: a worker that lies once may do it again.
    pub async fn release(&self, worker: &str) -> Result<(), ClientError> {
        let worker = worker.to_string();
        match self
            .request(|request| ClientToCoord::Release(WorkerRequest { request, worker }))
            .await?
        {
            CoordToClient::ReleasedWorker(..) => Ok(()),
            _ => Err(ClientError::UnexpectedReply("expected ReleasedWorker")),
        }
    }

    /// Refuses requests the coordinator's protocol lacks.
    fn needs_minor(&self, needed: u16) -> Result<(), ClientError> {
        let coordinator = self.inner().minor;
        if coordinator < needed {
            return Err(ClientError::CoordinatorTooOld {
                coordinator,
                needed,
            });
        }
        Ok(())
    }

    /// Revokes every certificate of `name` issued up to now (admin): its live
    /// connections close at once, and they are refused from now on. A machine given
    /// a new credential for the name afterwards is not affected.
    pub async fn revoke(&self, name: &str) -> Result<Revocation, ClientError> {
        self.needs_minor(MINOR_CREDENTIALS)?;
        let worker = name.to_string();
        match self
            .request(|request| ClientToCoord::Revoke(WorkerRequest { request, worker }))
            .await?
        {
            CoordToClient::Revoked(_, revocation) => Ok(revocation),
            _ => Err(ClientError::UnexpectedReply("expected Revoked")),
        }
    }

    /// The certificates of the connected workers and clients, and the revoked
    /// names. Empty from a coordinator too old to tell.
    pub async fn credentials(&self) -> Result<CredentialReport, ClientError> {
        if self.needs_minor(MINOR_CREDENTIALS).is_err() {
            return Ok(CredentialReport::default());
        }
        match self.request(ClientToCoord::Credentials).await? {
            CoordToClient::Credentials(_, report) => Ok(report),
            _ => Err(ClientError::UnexpectedReply("expected Credentials")),
        }
    }

    /// Makes a join token (admin) for certificates of `role`, valid for `ttl`
    /// (at most a day) and `uses` enrollments; `replace` lets it enroll a name that
    /// is taken (revoking that name's certificates). Returns the token to give the
    /// new machine, and what the coordinator keeps of it.
    pub async fn create_token(
        &self,
        role: Role,
        ttl: Duration,
        uses: u32,
        replace: bool,
    ) -> Result<(JoinToken, TokenInfo), ClientError> {
        self.needs_minor(MINOR_CREDENTIALS)?;
        let token = picluster_core::trust::new_join_token(&self.shared.bundle)?;
        let secret = token.secret;
        let create = CreateToken {
            request: RequestId(0),
            id: token.id.clone(),
            secret_sha256: secret_hash(&secret),
            role,
            ttl_s: ttl.as_secs(),
            uses,
            replace,
        };
        match self
            .request(|request| ClientToCoord::CreateToken(CreateToken { request, ..create }))
            .await?
        {
            CoordToClient::TokenCreated(_, info) => Ok((token, info)),
            _ => Err(ClientError::UnexpectedReply("expected TokenCreated")),
        }
    }

    /// The join tokens (admin), without their secrets.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, ClientError> {
        self.needs_minor(MINOR_CREDENTIALS)?;
        match self.request(ClientToCoord::ListTokens).await? {
            CoordToClient::Tokens(_, tokens) => Ok(tokens),
            _ => Err(ClientError::UnexpectedReply("expected Tokens")),
        }
    }

    /// Withdraws a join token (admin).
    pub async fn revoke_token(&self, id: &str) -> Result<(), ClientError> {
        self.needs_minor(MINOR_CREDENTIALS)?;
        let id = id.to_string();
        match self
            .request(|request| ClientToCoord::RevokeToken(TokenRequest { request, id }))
            .await?
        {
            CoordToClient::TokenRevoked(..) => Ok(()),
            _ => Err(ClientError::UnexpectedReply("expected TokenRevoked")),
        }
    }

    /// Removes every finished job from the coordinator now; returns how many.
    pub async fn prune(&self) -> Result<u64, ClientError> {
        match self.request(ClientToCoord::Prune).await? {
            CoordToClient::Pruned(_, count) => Ok(count),
            _ => Err(ClientError::UnexpectedReply("expected Pruned")),
        }
    }

    /// The jobs the coordinator keeps: every live one, and the newest finished ones
    /// (see [`MAX_LISTED_JOBS`](picluster_core::wire::MAX_LISTED_JOBS)), by id.
    pub async fn jobs(&self) -> Result<Vec<JobSummary>, ClientError> {
        match self.request(ClientToCoord::ListJobs).await? {
            CoordToClient::Jobs(_, jobs) => Ok(jobs),
            _ => Err(ClientError::UnexpectedReply("expected Jobs")),
        }
    }

    /// Connected workers and all jobs.
    pub async fn status(&self) -> Result<ClusterStatus, ClientError> {
        match self.request(ClientToCoord::Status).await? {
            CoordToClient::Status(_, status) => Ok(status),
            _ => Err(ClientError::UnexpectedReply("expected Status")),
        }
    }

    /// Drains a worker (it finishes its current chunk and takes no more), or with
    /// `drain` false, lets it take work again. Returns the worker's status.
    pub async fn drain(&self, worker: &str, drain: bool) -> Result<WorkerStatus, ClientError> {
        self.drain_for(worker, drain, None).await
    }

    /// Drains a worker with a reason that `status` shows (maintenance, a hot board,
    /// ...). A worker that is not connected may be drained: it takes no work when it
    /// comes back. `drain` false undrains (the reason is then ignored).
    pub async fn drain_for(
        &self,
        worker: &str,
        drain: bool,
        reason: Option<&str>,
    ) -> Result<WorkerStatus, ClientError> {
        let worker = worker.to_string();
        let reason = reason.map(str::to_string);
        match self
            .request(|request| {
                ClientToCoord::Drain(Drain {
                    request,
                    worker,
                    drain,
                    reason,
                })
            })
            .await?
        {
            CoordToClient::Drained(_, status) => Ok(status),
            _ => Err(ClientError::UnexpectedReply("expected Drained")),
        }
    }

    /// One job in detail: its workers (what each searched, its chunks, what it
    /// holds now), chunks reassigned and stolen, and the solutions so far.
    pub async fn show(&self, job: JobId) -> Result<JobDetail, ClientError> {
        match self
            .request(|request| ClientToCoord::Show(JobRequest { request, job }))
            .await?
        {
            CoordToClient::Detail(_, detail) => Ok(*detail),
            _ => Err(ClientError::UnexpectedReply("expected Detail")),
        }
    }

    /// Closes the connection (the close is sent in the background; see
    /// [`Client::shutdown`] to wait for it).
    pub fn close(&self) {
        self.inner()
            .connection
            .close((CloseCode::Normal as u32).into(), b"client done");
    }

    /// Closes the connection and waits (at most a second) until the coordinator has
    /// been told, so that it sees a client that finished rather than one that went
    /// silent. Call it before a program exits.
    pub async fn shutdown(&self) {
        self.close();
        let inner = self.inner();
        let _ = tokio::time::timeout(Duration::from_secs(1), inner._endpoint.wait_idle()).await;
    }
}

async fn read_loop(mut reader: FrameReader, inner: std::sync::Weak<Inner>) {
    while let Ok(message) = reader.next::<CoordToClient>().await {
        let Some(inner) = inner.upgrade() else { return };
        let request = match &message {
            CoordToClient::Submitted(JobRequest { request, .. })
            | CoordToClient::Watching(request, _)
            | CoordToClient::Cancelled(request, _)
            | CoordToClient::Jobs(request, _)
            | CoordToClient::Status(request, _)
            | CoordToClient::Refused(request, _)
            | CoordToClient::Drained(request, _)
            | CoordToClient::Forgotten(JobRequest { request, .. })
            | CoordToClient::Pruned(request, _)
            | CoordToClient::ReleasedWorker(request, _)
            | CoordToClient::Revoked(request, _)
            | CoordToClient::Credentials(request, _)
            | CoordToClient::TokenCreated(request, _)
            | CoordToClient::Tokens(request, _)
            | CoordToClient::TokenRevoked(request, _)
            | CoordToClient::Detail(request, _) => Some(*request),
            CoordToClient::Welcome(_)
            | CoordToClient::Progress(_)
            | CoordToClient::Finished(_)
            | CoordToClient::Outputs(..) => None,
        };
        if let Some(request) = request {
            if let Some(tx) = lock(&inner.pending).remove(&request) {
                let _ = tx.send(message);
            }
            continue;
        }
        match message {
            CoordToClient::Progress(p) => {
                if let Some(list) = lock(&inner.watchers).get_mut(&p.job) {
                    list.retain(|tx| match tx.try_send(JobEvent::Progress(p)) {
                        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
                        Err(mpsc::error::TrySendError::Closed(_)) => false,
                    });
                }
            }
            CoordToClient::Outputs(job, outputs) => {
                let list = lock(&inner.watchers).get(&job).cloned().unwrap_or_default();
                for tx in list {
                    let _ = tx.send(JobEvent::Outputs(outputs.clone())).await;
                }
            }
            CoordToClient::Finished(report) => {
                let list = lock(&inner.watchers)
                    .remove(&report.job)
                    .unwrap_or_default();
                for tx in list {
                    let _ = tx.send(JobEvent::Finished(Box::new(report.clone()))).await;
                }
            }
            _ => {}
        }
    }
    // Connection gone: waking every waiter with a closed channel.
    if let Some(inner) = inner.upgrade() {
        inner.ended.store(true, Ordering::Release);
        lock(&inner.pending).clear();
        lock(&inner.watchers).clear();
    }
}

/// Enrolls as a client with a join token made for clients: makes a key here, checks
/// the coordinator's CA against the token's pin, and returns the bundle to save.
pub async fn join_as_client(token: &JoinToken, name: &str) -> Result<Bundle, ClientError> {
    let (key, csr) = picluster_core::trust::make_request(name)?;
    let joined = net::join(token, name, Role::Client, csr).await?;
    Ok(joined.into_bundle(&token.address, key.serialize_pem()))
}
