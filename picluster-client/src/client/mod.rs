//! The async client: one QUIC connection to the coordinator with mutual TLS, several
//! requests in flight on it, and job watches that stream progress and the final
//! report. A background task reads replies and routes them by request id (replies)
//! or job id (pushed progress).
//!
//! Every request goes through one typed call (`Client::call`): the message, the
//! protocol minor version it needs, and which reply answers it; a refusal, a lost
//! connection, an old coordinator and a reply of the wrong kind are errors there,
//! once for all requests.
//!
//! # Layout
//! - this file: [`Client`] and its requests.
//! - `conn`: one connection (hello, the reader task, a request and its reply).
//! - `watch`: [`JobWatch`], [`JobEvent`], [`merge_outputs`].
//! - `error`: [`ClientError`], [`KernelError`].

mod conn;
mod error;
mod watch;

pub use error::{ClientError, KernelError};
pub use watch::{merge_outputs, JobEvent, JobWatch, KernelReport};

use conn::Inner;
use picluster_core::identity::Role;
use picluster_core::ids::{JobId, RequestId};
use picluster_core::job::{JobKind, JobSpec, SearchMode};
use picluster_core::kernel::custom::{CustomJob, Kernel};
use picluster_core::net;
use picluster_core::sync::lock;
use picluster_core::token::{secret_hash, JoinToken};
use picluster_core::trust::{Bundle, ClusterDir};
use picluster_core::wire::{
    ClientToCoord, CloseCode, ClusterStatus, CoordToClient, CreateToken, CredentialReport, Drain,
    JobDetail, JobProgress, JobReport, JobRequest, JobSummary, MinerReport, MinerStatus,
    Revocation, Submit, TokenInfo, TokenRequest, WorkSpec, WorkerRequest, WorkerStatus,
    MINOR_CREDENTIALS, MINOR_TEMPLATES,
};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

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

impl Client {
    /// Connects with a client (or admin) bundle; a worker's bundle is refused
    /// ([`ClientError::WorkerCredential`]).
    pub async fn connect(bundle: &Bundle) -> Result<Client, ClientError> {
        // A worker's certificate would be taken as a worker's by the coordinator,
        // and refused at the first client message with a protocol violation: say
        // what is wrong before connecting.
        if let Ok(id) = bundle.identity() {
            if id.role == Role::Worker {
                return Err(ClientError::WorkerCredential(id.name));
            }
        }
        let inner = conn::open(bundle).await?;
        Ok(Client {
            shared: Arc::new(Shared {
                bundle: bundle.clone(),
                current: Mutex::new(inner),
                reconnect_timeout: Mutex::new(DEFAULT_RECONNECT_TIMEOUT),
            }),
        })
    }

    /// Connects with the admin bundle of a cluster directory.
    pub async fn connect_cluster(dir: &Path) -> Result<Client, ClientError> {
        let bundle = ClusterDir::open(dir)?.admin_bundle()?;
        Self::connect(&bundle).await
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
        if !lost.is_lost() {
            return Ok(());
        }
        lost.connection
            .close((CloseCode::Normal as u32).into(), b"reconnecting");
        let fresh = conn::open(&self.shared.bundle).await?;
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

    /// The one way a request is made: on a new connection if the last one was
    /// closed (the coordinator closes sessions idle for ten minutes, and restarts);
    /// refused before it is sent if the coordinator's protocol is older than
    /// `minor`; `make` builds the message with its request id; `answer` takes what
    /// the expected reply carries (`None` for any other reply, named by `expected` in
    /// the error).
    async fn call<T>(
        &self,
        minor: u16,
        make: impl FnOnce(RequestId) -> ClientToCoord,
        expected: &'static str,
        answer: impl FnOnce(CoordToClient) -> Option<T>,
    ) -> Result<T, ClientError> {
        self.reconnect_if_lost().await?;
        let inner = self.inner();
        if inner.minor < minor {
            return Err(ClientError::CoordinatorTooOld {
                coordinator: inner.minor,
                needed: minor,
            });
        }
        let reply = inner.request(make).await?;
        answer(reply).ok_or(ClientError::UnexpectedReply(expected))
    }

    /// Reports a mining bridge's pool statistics (coordinator minor 6); the
    /// coordinator keeps the last report with this connection, for `picluster
    /// status` and the metrics.
    pub async fn report_miner(&self, report: MinerReport) -> Result<(), ClientError> {
        self.call(
            MINOR_TEMPLATES,
            |request| ClientToCoord::Miner(request, Box::new(report)),
            "expected MinerNoted",
            |reply| matches!(reply, CoordToClient::MinerNoted(_)).then_some(()),
        )
        .await
    }

    /// The mining bridges' last reports: every one for an admin, the client's own
    /// otherwise. Empty from a coordinator older than minor 6.
    pub async fn miners(&self) -> Result<Vec<MinerStatus>, ClientError> {
        match self
            .call(
                MINOR_TEMPLATES,
                ClientToCoord::Miners,
                "expected Miners",
                |reply| match reply {
                    CoordToClient::Miners(_, miners) => Some(miners),
                    _ => None,
                },
            )
            .await
        {
            Err(ClientError::CoordinatorTooOld { .. }) => Ok(Vec::new()),
            other => other,
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
        let (work, mode) = (WorkSpec::from(&spec.kind), spec.mode);
        let submit = |request| {
            ClientToCoord::Submit(Submit {
                request,
                work,
                mode,
                priority,
            })
        };
        self.call(0, submit, "expected Submitted", |reply| match reply {
            CoordToClient::Submitted(JobRequest { job, .. }) => Some(job),
            _ => None,
        })
        .await
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
        self.reconnect_if_lost().await?;
        let inner = self.inner();
        let (tx, events) = mpsc::channel(watch::WATCH_EVENTS);
        inner.watch(job, tx);
        let reply = inner
            .request(|request| ClientToCoord::Watch(JobRequest { request, job }))
            .await;
        match reply {
            Ok(CoordToClient::Watching(_, initial)) => Ok((initial, events)),
            Ok(_) => Err(ClientError::UnexpectedReply("expected Watching")),
            Err(e) => {
                inner.unwatch(job);
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
        let cancel = |request| ClientToCoord::Cancel(JobRequest { request, job });
        self.call(0, cancel, "expected Cancelled", |reply| match reply {
            CoordToClient::Cancelled(_, summary) => Some(summary),
            _ => None,
        })
        .await
    }

    /// Removes a finished job (its report, solutions and results) from the
    /// coordinator now, rather than when its retention limits drop it. A live job is
    /// refused ([`Refusal::NotFinished`](picluster_core::wire::Refusal::NotFinished)):
    /// cancel it first.
    pub async fn forget(&self, job: JobId) -> Result<(), ClientError> {
        let forget = |request| ClientToCoord::Forget(JobRequest { request, job });
        self.call(0, forget, "expected Forgotten", |reply| {
            matches!(reply, CoordToClient::Forgotten(_)).then_some(())
        })
        .await
    }

    /// Lets a quarantined worker (it claimed a false solution) connect again. Check
    /// the machine first: a worker that lies once may do it again.
    pub async fn release(&self, worker: &str) -> Result<(), ClientError> {
        let worker = worker.to_string();
        let release = |request| ClientToCoord::Release(WorkerRequest { request, worker });
        self.call(0, release, "expected ReleasedWorker", |reply| {
            matches!(reply, CoordToClient::ReleasedWorker(..)).then_some(())
        })
        .await
    }

    /// Revokes every certificate of `name` issued up to now (admin): its live
    /// connections close at once, and they are refused from now on. A machine given
    /// a new credential for the name afterwards is not affected.
    pub async fn revoke(&self, name: &str) -> Result<Revocation, ClientError> {
        let worker = name.to_string();
        let revoke = |request| ClientToCoord::Revoke(WorkerRequest { request, worker });
        self.call(
            MINOR_CREDENTIALS,
            revoke,
            "expected Revoked",
            |reply| match reply {
                CoordToClient::Revoked(_, revocation) => Some(revocation),
                _ => None,
            },
        )
        .await
    }

    /// The certificates of the connected workers and clients, and the revoked
    /// names. Empty from a coordinator too old to tell.
    pub async fn credentials(&self) -> Result<CredentialReport, ClientError> {
        let answer = |reply| match reply {
            CoordToClient::Credentials(_, report) => Some(report),
            _ => None,
        };
        match self
            .call(
                MINOR_CREDENTIALS,
                ClientToCoord::Credentials,
                "expected Credentials",
                answer,
            )
            .await
        {
            Err(ClientError::CoordinatorTooOld { .. }) => Ok(CredentialReport::default()),
            other => other,
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
        if self.inner().minor < MINOR_CREDENTIALS {
            // Refused before a token is made for nothing.
            return self
                .call(MINOR_CREDENTIALS, ClientToCoord::ListTokens, "", |_| None)
                .await;
        }
        let token = picluster_core::trust::new_join_token(&self.shared.bundle)?;
        let create = CreateToken {
            request: RequestId(0),
            id: token.id.clone(),
            secret_sha256: secret_hash(&token.secret),
            role,
            ttl_s: ttl.as_secs(),
            uses,
            replace,
        };
        let make = |request| ClientToCoord::CreateToken(CreateToken { request, ..create });
        let info = self
            .call(
                MINOR_CREDENTIALS,
                make,
                "expected TokenCreated",
                |reply| match reply {
                    CoordToClient::TokenCreated(_, info) => Some(info),
                    _ => None,
                },
            )
            .await?;
        Ok((token, info))
    }

    /// The join tokens (admin), without their secrets.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, ClientError> {
        let answer = |reply| match reply {
            CoordToClient::Tokens(_, tokens) => Some(tokens),
            _ => None,
        };
        self.call(
            MINOR_CREDENTIALS,
            ClientToCoord::ListTokens,
            "expected Tokens",
            answer,
        )
        .await
    }

    /// Withdraws a join token (admin).
    pub async fn revoke_token(&self, id: &str) -> Result<(), ClientError> {
        let id = id.to_string();
        let revoke = |request| ClientToCoord::RevokeToken(TokenRequest { request, id });
        self.call(
            MINOR_CREDENTIALS,
            revoke,
            "expected TokenRevoked",
            |reply| matches!(reply, CoordToClient::TokenRevoked(..)).then_some(()),
        )
        .await
    }

    /// Removes every finished job from the coordinator now; returns how many.
    pub async fn prune(&self) -> Result<u64, ClientError> {
        self.call(
            0,
            ClientToCoord::Prune,
            "expected Pruned",
            |reply| match reply {
                CoordToClient::Pruned(_, count) => Some(count),
                _ => None,
            },
        )
        .await
    }

    /// The jobs the coordinator keeps: every live one, and the newest finished ones
    /// (see [`MAX_LISTED_JOBS`](picluster_core::wire::MAX_LISTED_JOBS)), by id.
    pub async fn jobs(&self) -> Result<Vec<JobSummary>, ClientError> {
        self.call(
            0,
            ClientToCoord::ListJobs,
            "expected Jobs",
            |reply| match reply {
                CoordToClient::Jobs(_, jobs) => Some(jobs),
                _ => None,
            },
        )
        .await
    }

    /// Connected workers and all jobs.
    pub async fn status(&self) -> Result<ClusterStatus, ClientError> {
        self.call(
            0,
            ClientToCoord::Status,
            "expected Status",
            |reply| match reply {
                CoordToClient::Status(_, status) => Some(status),
                _ => None,
            },
        )
        .await
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
        let make = |request| {
            ClientToCoord::Drain(Drain {
                request,
                worker,
                drain,
                reason,
            })
        };
        self.call(0, make, "expected Drained", |reply| match reply {
            CoordToClient::Drained(_, status) => Some(status),
            _ => None,
        })
        .await
    }

    /// One job in detail: its workers (what each searched, its chunks, what it
    /// holds now), chunks reassigned and stolen, and the solutions so far.
    pub async fn show(&self, job: JobId) -> Result<JobDetail, ClientError> {
        let show = |request| ClientToCoord::Show(JobRequest { request, job });
        self.call(0, show, "expected Detail", |reply| match reply {
            CoordToClient::Detail(_, detail) => Some(*detail),
            _ => None,
        })
        .await
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

/// Enrolls as a client with a join token made for clients: makes a key here, checks
/// the coordinator's CA against the token's pin, and returns the bundle to save.
pub async fn join_as_client(token: &JoinToken, name: &str) -> Result<Bundle, ClientError> {
    let (key, csr) = picluster_core::trust::make_request(name)?;
    let joined = net::join(token, name, Role::Client, csr).await?;
    Ok(joined.into_bundle(token, key.serialize_pem()))
}
