//! The bridge's async driver: the pool connection (TCP, failover, backoff,
//! `client.reconnect`), the cluster jobs each notify becomes, and the shares their
//! solutions become. Decisions about the protocol are the [`Session`]'s; this file
//! moves lines, jobs and solutions between it, the socket and the cluster.
//!
//! Pools are tried in order (the first, then each `--fallback`); a failed connection
//! or a session that ends moves to the next one after a backoff that starts at 1 s and
//! doubles to 30 s (reset once a pool authorizes). While on a fallback, the first pool
//! is probed every 30 s and the bridge returns to it once it answers. A reconnection
//! makes every job stale: they are cancelled on the cluster.

use super::session::{Event, Session, SessionError, Share, Verdict, Work};
use super::stats::PoolStats;
use crate::client::{Client, ClientError, JobEvent};
use picluster_core::ids::JobId;
use picluster_core::job::{JobKind, JobSpec, SearchMode};
use picluster_core::kernel::sha256d::NONCE_SPACE;
use picluster_core::kernel::template::{TemplateError, TemplateJob, TemplateParts};
use picluster_core::kernel::{Solution, SolutionDetail};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// A pool's address, from `stratum+tcp://HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolUrl {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl std::fmt::Display for PoolUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stratum+tcp://{}:{}", self.host, self.port)
    }
}

impl std::str::FromStr for PoolUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<PoolUrl, String> {
        let rest = s.strip_prefix("stratum+tcp://").ok_or_else(|| {
            format!(
                "pool `{s}` is not a stratum+tcp://HOST:PORT address (TLS pools are not supported)"
            )
        })?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("pool `{s}` has no :PORT"))?;
        let port = port
            .trim_end_matches('/')
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("pool `{s}`: `{port}` is not a port number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("pool `{s}` has no host"));
        }
        Ok(PoolUrl {
            host: host.to_string(),
            port,
        })
    }
}

/// What the bridge mines with.
#[derive(Clone, Debug)]
pub struct MineOptions {
    /// Pools in order: the first, then the fallbacks.
    pub pools: Vec<PoolUrl>,
    /// The pool user (often an address, or `account.worker`).
    pub user: String,
    /// The pool password (most pools ignore it).
    pub password: String,
    /// The priority of the mining jobs (below clients' jobs, so they give way).
    pub priority: i32,
    /// How often the first pool is probed while on a fallback
    /// ([`PROBE_PRIMARY`]).
    pub probe_primary: Duration,
}

/// The priority of mining jobs unless configured: below every client job at the
/// default priority 0.
pub const MINING_PRIORITY: i32 = -100;

/// Backoff between connection attempts: from 1 s, doubling, to 30 s.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often the first pool is probed while on a fallback, unless configured.
pub const PROBE_PRIMARY: Duration = Duration::from_secs(30);
/// How long a TCP connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the statistics are logged.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Why the bridge stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MineError {
    /// A pool refused the user: retrying cannot help.
    #[error(transparent)]
    Session(SessionError),
    /// The cluster refused a job or went away for good.
    #[error("the cluster: {0}")]
    Cluster(#[from] ClientError),
}

/// A cluster job mining one pool job.
struct Active {
    id: JobId,
    pool_job: String,
    /// Its shares are no longer wanted (a clean notify or a new connection came).
    stale: bool,
    /// A newer job replaced it (it is kept until its report, for the latency).
    cancelled: bool,
    /// When its notify came (wall clock, milliseconds), to measure how soon the
    /// cluster worked on it.
    notified_ms: u64,
    measured: bool,
}

/// Mines on the pools until `shutdown` completes; returns early only when a pool
/// refuses the user or the cluster fails for good.
pub async fn mine(
    client: Client,
    options: MineOptions,
    stats: Arc<Mutex<PoolStats>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MineError> {
    tokio::pin!(shutdown);
    let reporter = tokio::spawn(report_every(client.clone(), stats.clone()));
    let _stop_reporting = AbortOnDrop(reporter);
    let (tx, mut rx) = mpsc::channel::<(JobId, JobEvent)>(1024);
    let mut jobs: Vec<Active> = Vec::new();
    let mut pool = 0usize;
    let mut backoff = BACKOFF_MIN;
    let mut redirect: Option<PoolUrl> = None;
    // The last subscription id of each pool, to resume the session there.
    let mut resume: std::collections::HashMap<PoolUrl, String> = Default::default();
    loop {
        let url = redirect
            .take()
            .unwrap_or_else(|| options.pools[pool].clone());
        lock(&stats).connecting(&url.to_string());
        let ended = tokio::select! {
            () = &mut shutdown => None,
            ended = session(&client, &options, &url, pool, &stats, &tx, &mut rx, &mut jobs, &mut backoff, &mut resume) => Some(ended),
        };
        // Whatever ended the session, its jobs are stale now.
        for job in jobs.drain(..).filter(|j| !j.cancelled) {
            let _ = client.cancel(job.id).await;
        }
        let Some(ended) = ended else {
            return Ok(());
        };
        let wait = match ended {
            Ended::Fatal(e) => return Err(e),
            Ended::Redirect { url, wait } => {
                info!(pool = %url, wait_s = wait.as_secs(), "the pool asks to reconnect");
                redirect = Some(url);
                wait
            }
            Ended::BackToPrimary => {
                info!(pool = %options.pools[0], "the first pool answers again: back to it");
                pool = 0;
                Duration::ZERO
            }
            Ended::Lost(why) => {
                let next = (pool + 1) % options.pools.len();
                warn!(pool = %url, error = %why, retry_in = ?backoff, next = %options.pools[next], "pool connection lost");
                lock(&stats).lost(&why);
                pool = next;
                let wait = backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                wait
            }
        };
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// How often the bridge tells the coordinator its statistics.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Tells the coordinator the statistics every [`REPORT_EVERY`] (a coordinator older
/// than minor 6 is not told).
async fn report_every(client: Client, stats: Arc<Mutex<PoolStats>>) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(REPORT_EVERY);
    loop {
        tick.tick().await;
        let report = lock(&stats).report(started.elapsed());
        if let Err(ClientError::CoordinatorTooOld { .. }) = client.report_miner(report).await {
            return;
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Ended {
    Fatal(MineError),
    Lost(String),
    Redirect { url: PoolUrl, wait: Duration },
    BackToPrimary,
}

#[allow(clippy::too_many_arguments)]
async fn session(
    client: &Client,
    options: &MineOptions,
    url: &PoolUrl,
    pool: usize,
    stats: &Arc<Mutex<PoolStats>>,
    tx: &mpsc::Sender<(JobId, JobEvent)>,
    rx: &mut mpsc::Receiver<(JobId, JobEvent)>,
    jobs: &mut Vec<Active>,
    backoff: &mut Duration,
    resume: &mut std::collections::HashMap<PoolUrl, String>,
) -> Ended {
    let stream = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((url.host.as_str(), url.port)),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Ended::Lost(format!("connecting: {e}")),
        Err(_) => return Ended::Lost("connecting: no answer within 10 s".into()),
    };
    let _ = stream.set_nodelay(true);
    info!(pool = %url, user = %options.user, "connected to the pool");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let agent = format!("picluster/{}", env!("CARGO_PKG_VERSION"));
    let mut s = Session::new(
        Instant::now(),
        &options.user,
        &options.password,
        &agent,
        resume.get(url).map(String::as_str),
    );
    let mut probe = tokio::time::interval_at(
        tokio::time::Instant::now() + options.probe_primary,
        options.probe_primary,
    );
    let mut summary =
        tokio::time::interval_at(tokio::time::Instant::now() + SUMMARY_EVERY, SUMMARY_EVERY);
    // When a share's answer was last logged, and those answered since.
    let (mut said, mut unsaid): (Option<Instant>, u64) = (None, 0);
    loop {
        while let Some(line) = s.poll_transmit() {
            let mut bytes = line.into_bytes();
            bytes.push(b'\n');
            if let Err(e) = write.write_all(&bytes).await {
                return Ended::Lost(format!("writing: {e}"));
            }
        }
        while let Some(event) = s.poll_event() {
            match event {
                Event::Ready => {
                    *backoff = BACKOFF_MIN;
                    if let Some(id) = s.subscription() {
                        resume.insert(url.clone(), id.to_string());
                    }
                    info!(pool = %url, difficulty = s.difficulty(), version_mask = format_args!("{:08x}", s.version_mask()), "authorized");
                    lock(stats).ready(&url.to_string());
                }
                Event::Work(work) => {
                    if let Err(e) = new_work(client, options, stats, tx, jobs, *work).await {
                        return Ended::Fatal(e);
                    }
                }
                Event::Verdict(share, verdict) => {
                    lock(stats).verdict(&verdict);
                    // One line a second at most: a pool at a low difficulty answers
                    // hundreds a second; the rest are counted into the next line.
                    let now = Instant::now();
                    if said.is_some_and(|at| now.duration_since(at) < Duration::from_secs(1)) {
                        unsaid += 1;
                    } else {
                        said = Some(now);
                        let more = std::mem::take(&mut unsaid);
                        match &verdict {
                            Verdict::Accepted => {
                                info!(pool_job = %share.job_id, nonce = format_args!("{:08x}", share.nonce), more_answers = more, "share accepted")
                            }
                            other => {
                                info!(pool_job = %share.job_id, verdict = ?other, more_answers = more, "share not accepted")
                            }
                        }
                    }
                }
                Event::Reconnect { host, port, wait_s } => {
                    return Ended::Redirect {
                        url: PoolUrl {
                            host: host.unwrap_or_else(|| url.host.clone()),
                            port: port.unwrap_or(url.port),
                        },
                        wait: Duration::from_secs(wait_s),
                    }
                }
            }
        }
        let timeout = s.next_timeout();
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    if let Err(e) = s.handle_line(Instant::now(), &line) {
                        return session_error(e);
                    }
                }
                Ok(None) => return Ended::Lost("the pool closed the connection".into()),
                Err(e) => return Ended::Lost(format!("reading: {e}")),
            },
            Some((id, event)) = rx.recv() => {
                on_job_event(client, stats, &mut s, jobs, id, event);
            }
            () = sleep_until(timeout) => {
                if let Err(e) = s.handle_timeout(Instant::now()) {
                    return session_error(e);
                }
            }
            _ = probe.tick(), if pool != 0 => {
                let first = &options.pools[0];
                let answered = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    TcpStream::connect((first.host.as_str(), first.port)),
                ).await.is_ok_and(|r| r.is_ok());
                if answered {
                    return Ended::BackToPrimary;
                }
            }
            _ = summary.tick() => {
                let st = lock(stats).clone();
                info!(pool = %url, accepted = st.accepted, rejected = st.rejected_total(), stale = st.stale, blocks = st.blocks, difficulty = s.difficulty(), "pool statistics");
            }
        }
    }
}

fn session_error(e: SessionError) -> Ended {
    if e.is_retryable() {
        Ended::Lost(e.to_string())
    } else {
        Ended::Fatal(MineError::Session(e))
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn lock(stats: &Arc<Mutex<PoolStats>>) -> std::sync::MutexGuard<'_, PoolStats> {
    stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn cancel(client: &Client, id: JobId) {
    let client = client.clone();
    tokio::spawn(async move {
        let _ = client.cancel(id).await;
    });
}

/// The template job of a pool's work: every extranonce2 value its size allows, as
/// many as fit a keyspace of 2^64 with the version bits rolled.
pub fn template_job(work: &Work) -> Result<TemplateJob, TemplateError> {
    let n = &work.notify;
    let versions = 1u64 << work.version_mask.count_ones();
    let by_size = if work.extranonce2_size >= 8 {
        u64::MAX
    } else {
        1u64 << (8 * u32::from(work.extranonce2_size))
    };
    let count = by_size.min(u64::MAX / (versions * NONCE_SPACE));
    TemplateJob::new(
        TemplateParts {
            version: n.version,
            prevhash: n.prevhash,
            coinbase1: n.coinbase1.clone(),
            extranonce1: work.extranonce1.clone(),
            extranonce2_size: work.extranonce2_size,
            coinbase2: n.coinbase2.clone(),
            merkle_branch: n.merkle_branch.clone(),
            ntime: n.ntime,
            bits: n.bits,
        },
        0..count,
        work.version_mask,
        work.target,
    )
}

async fn new_work(
    client: &Client,
    options: &MineOptions,
    stats: &Arc<Mutex<PoolStats>>,
    tx: &mpsc::Sender<(JobId, JobEvent)>,
    jobs: &mut Vec<Active>,
    work: Work,
) -> Result<(), MineError> {
    let notified_ms = wall_ms();
    let clean = work.notify.clean_jobs;
    // A clean notify voids the earlier jobs at once; otherwise the new job follows
    // the current one, whose late shares still go to the pool.
    for job in jobs.iter_mut() {
        job.stale |= clean;
        if !job.cancelled {
            job.cancelled = true;
            cancel(client, job.id);
        }
    }
    let template = match template_job(&work) {
        Ok(t) => t,
        Err(e) => {
            warn!(pool_job = %work.notify.job_id, error = %e, "the pool's job cannot be mined");
            return Ok(());
        }
    };
    let spec = JobSpec {
        kind: JobKind::Template(Box::new(template)),
        mode: SearchMode::All,
    };
    // The coordinator away (restarting, unreachable) costs this job, not the
    // bridge: the client reconnects by itself, and the next notify tries again.
    let id = match client.submit_with_priority(&spec, options.priority).await {
        Ok(id) => id,
        Err(e) if e.is_retryable() => {
            warn!(pool_job = %work.notify.job_id, error = %e, "the cluster did not take the pool's job; the next one is tried");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    info!(pool_job = %work.notify.job_id, job = %id, clean, difficulty = work.difficulty, "new work from the pool");
    lock(stats).work(&work.notify.job_id, work.difficulty);
    jobs.push(Active {
        id,
        pool_job: work.notify.job_id.clone(),
        stale: false,
        cancelled: false,
        notified_ms,
        measured: false,
    });
    let mut watch = match client.watch(id).await {
        Ok(watch) => watch,
        Err(e) if e.is_retryable() => {
            warn!(job = %id, error = %e, "cannot follow the job's shares; the next job is tried");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let tx = tx.clone();
    tokio::spawn(async move {
        while let Some(event) = watch.next().await {
            let end = matches!(event, JobEvent::Finished(_));
            if tx.send((id, event)).await.is_err() || end {
                break;
            }
        }
    });
    Ok(())
}

fn on_job_event(
    client: &Client,
    stats: &Arc<Mutex<PoolStats>>,
    s: &mut Session,
    jobs: &mut Vec<Active>,
    id: JobId,
    event: JobEvent,
) {
    let Some(job) = jobs.iter_mut().find(|j| j.id == id) else {
        return; // a job of an earlier session, or one that went stale
    };
    match event {
        JobEvent::Solutions(_) if job.stale => {}
        JobEvent::Solutions(solutions) => {
            for solution in solutions {
                if let Some(share) = share_of(&job.pool_job, &solution) {
                    if solution.is_block() {
                        info!(pool_job = %job.pool_job, hash = %picluster_core::hex::encode(&solution.hash), "a block: its share goes to the pool");
                        lock(stats).block(&solution.hash);
                    }
                    lock(stats).submitted();
                    s.submit(Instant::now(), share);
                }
            }
        }
        JobEvent::Progress(p) if !job.measured && p.workers > 0 => {
            // The first word that workers hold it: how soon after the notify the
            // cluster started on it, from the coordinator's own clock.
            job.measured = true;
            let (client, stats, notified) = (client.clone(), stats.clone(), job.notified_ms);
            tokio::spawn(async move {
                if let Ok(detail) = client.show(id).await {
                    if let Some(started) = detail.summary.times.started_ms {
                        lock(&stats).latency(started.saturating_sub(notified));
                    }
                }
            });
        }
        JobEvent::Finished(report) => {
            // A job cancelled before its first progress word: its report says when
            // it started.
            if let (false, Some(started)) = (job.measured, report.times.started_ms) {
                lock(stats).latency(started.saturating_sub(job.notified_ms));
            }
            jobs.retain(|j| j.id != id);
        }
        _ => {}
    }
}

/// The share a template solution stands for.
fn share_of(pool_job: &str, solution: &Solution) -> Option<Share> {
    match &solution.detail {
        SolutionDetail::Template {
            extranonce2,
            ntime,
            version,
            nonce,
            ..
        } => Some(Share {
            job_id: pool_job.to_string(),
            extranonce2: extranonce2.clone(),
            ntime: *ntime,
            nonce: *nonce,
            version: *version,
        }),
        _ => None,
    }
}
