//! The driver's loop: one task owns the [`Coordinator`], feeds it connection events
//! and timer expiries, hands its records to the store's writer thread and reports
//! them durable, and carries out every [`Transmit`] it returns (encoding frames for
//! the peers' writers, signing certificates, closing connections). A decision made
//! here belongs in `coordinator`.

use super::cluster::{issue_certificate, Issuer};
use super::conn::{accept_loop, ConnectionLimits, Event, EVENT_QUEUE};
use super::peers::{Peers, QueueLimits, Queued};
use super::{encode_coordinator, CoordinatorService, DriverMetrics, Fence, Store, StoreError};
use crate::coordinator::{CloseReason, Coordinator, Overflow, Transmit};
use crate::identity::Role;
use crate::ids::ConnId;
use crate::runtime::serve_metrics;
use crate::wire::{self, CloseCode, CoordToJoin, CoordToWorker, Enrolled, Renewed};
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

impl CoordinatorService {
    /// Serves until `shutdown` completes, then writes what is left to the store and
    /// closes every connection with [`CloseCode::ShuttingDown`] so workers reconnect
    /// later. With a store, it first rebuilds the jobs the store holds; it stops with
    /// an error if the store cannot be read or a write fails.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), StoreError> {
        self.run_fenced(shutdown, None).await.map(|_| ())
    }

    /// Like [`CoordinatorService::run`], for a leader among several coordinators:
    /// past `fence`'s deadline (read with this loop's own clock before anything is
    /// carried out) it stops at once, acknowledging nothing more and writing
    /// nothing more, and closes every connection so that workers and clients find
    /// the next leader ([`Ended::Fenced`]).
    pub async fn run_fenced(
        mut self,
        shutdown: impl Future<Output = ()>,
        fence: Option<Fence>,
    ) -> Result<Ended, StoreError> {
        let queue_limits = QueueLimits::of(&self.config);
        let limits = ConnectionLimits::of(&self.config);
        // Which leases are audited must be unpredictable to workers: a fresh secret
        // each run (the state machine itself is deterministic in it).
        self.config.audit_seed = secret_seed();
        let epoch = self.config.epoch;
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
            term: (epoch > 0).then_some(epoch),
            ..DriverMetrics::default()
        };
        let mut peers = Peers::new(queue_limits);
        // Connections that ended in this batch; their writers go after the batch's
        // transmits, so a close queued for them still carries its code and reason.
        let mut gone = Vec::new();
        let mut result = Ok(());
        let mut fenced = false;
        let mut first_lease = false;
        tokio::pin!(shutdown);
        loop {
            let deadline = core.poll_timeout();
            let fence_deadline = fence
                .as_ref()
                .map(|f| f.deadline().unwrap_or_else(Instant::now));
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = sleep_until(fence_deadline) => {
                    // The deadline may have moved on since this sleep began.
                    if fence.as_ref().is_some_and(|f| !f.is_open(Instant::now())) {
                        fenced = true;
                        break;
                    }
                    continue;
                }
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
            if fence.as_ref().is_some_and(|f| !f.is_open(now)) {
                fenced = true;
                break;
            }
            core.handle_wall_clock(now, unix_ms());
            if let Some(j) = journal.as_mut() {
                j.write(&mut core);
            }
            while let Some(transmit) = core.poll_transmit(now) {
                if !first_lease {
                    if let Transmit::ToWorker(conn, CoordToWorker::Assign(assign)) = &transmit {
                        // Takeover is measured to this line (kill to the first lease
                        // a new leader grants).
                        info!(%conn, lease = %assign.lease, "first lease granted since this coordinator started");
                        first_lease = true;
                    }
                }
                carry_out(&mut core, &peers, self.issuer.as_deref(), now, transmit);
            }
            for conn in gone.drain(..) {
                peers.remove(conn);
            }
            driver.turns += 1;
            driver.busy_seconds += now.elapsed().as_secs_f64();
        }
        drop(scrapes);
        drop(accept);
        if fenced {
            // Nothing more is written or acknowledged: what was not durable is
            // redone under the next leader.
            warn!("fenced: no longer the leading coordinator; closing every connection");
            self.endpoint.close(
                (CloseCode::ShuttingDown as u32).into(),
                b"coordinator lost its leadership",
            );
            return result.map(|()| Ended::Fenced);
        }
        info!("coordinator shutting down");
        if let (Some(mut j), Ok(())) = (journal, &result) {
            core.handle_shutdown(Instant::now());
            result = j.finish(&mut core).await;
        }
        self.endpoint.close(
            (CloseCode::ShuttingDown as u32).into(),
            b"coordinator shutting down",
        );
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
        result.map(|()| Ended::Shutdown)
    }
}

/// How [`CoordinatorService::run_fenced`] ended, when it did without a store error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The shutdown future completed: everything was written and every connection
    /// closed.
    Shutdown,
    /// The fence's deadline passed: the coordinator stopped at once.
    Fenced,
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
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

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

pub(super) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

fn apply(core: &mut Coordinator, peers: &mut Peers, gone: &mut Vec<ConnId>, event: Event) {
    let now = Instant::now();
    match event {
        Event::Connected {
            conn,
            identity,
            peer,
        } => {
            let client = identity
                .as_ref()
                .filter(|id| matches!(id.role, Role::Client | Role::Admin))
                .map(|id| id.name.clone());
            peers.insert(conn, peer, client);
            match identity {
                Some(identity) => core.handle_connected(now, conn, identity),
                None => core.handle_joining(now, conn),
            }
        }
        // The request's place among its client's in flight is given back here.
        Event::Inbound(conn, message, _ticket) => core.handle_inbound(now, conn, message),
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
    peers: &Peers,
    issuer: Option<&Issuer>,
    now: Instant,
    transmit: Transmit,
) {
    let conn = transmit.conn();
    let Some(peer) = peers.get(conn) else {
        return;
    };
    let overflow = transmit.overflow();
    let frame = match &transmit {
        Transmit::ToWorker(_, message) => wire::encode_frame(message),
        Transmit::ToClient(_, message) => wire::encode_frame(message),
        Transmit::ToJoiner(_, message) => {
            if let CoordToJoin::Refused(refusal) = message {
                // A wrong token is worth an operator's look: a typo, or someone
                // guessing.
                let remote = peer.connection.remote_address();
                warn!(%conn, %remote, %refusal, "join refused");
            }
            wire::encode_frame(message)
        }
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
            if matches!(reason, CloseReason::Backlogged) {
                // At once: behind the unsent replies it would wait for a peer that
                // does not read, holding them.
                peer.connection
                    .close((reason.code() as u32).into(), reason.to_string().as_bytes());
            } else {
                peer.close(reason.code(), reason.to_string());
            }
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
    match peers.queue(conn, frame) {
        Queued::Yes => {}
        Queued::Full => match overflow {
            Overflow::Skip => debug!(%conn, "peer's queue is full: progress update skipped"),
            Overflow::CutOff => {
                warn!(%conn, "peer does not read what it is sent: cutting it off");
                core.handle_backlogged(now, conn);
            }
        },
        Queued::CutOff(hog) => {
            warn!(%conn, %hog, "the clients' replies waiting to be sent fill their memory: cutting off the client holding the most");
            core.handle_backlogged(now, hog);
        }
    }
}

/// 64 bits from the operating system's randomness (std seeds its hash maps from it
/// per process; each `RandomState` draws afresh).
fn secret_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0x70_69_63_6c_75_73_74_72);
    hasher.finish()
}
