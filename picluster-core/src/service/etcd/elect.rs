//! The election's driver: a thread of its own, with its own runtime, carrying out
//! the [`Election`] state machine's requests against etcd and publishing what it
//! decides. Its own thread, so that nothing the coordinator does (a long batch, a
//! slow disk, a busy event loop) delays a renewal or the fence.
//!
//! Two outputs: [`Leadership`] (who leads, for the standby's answers and the switch
//! between standing by and leading) and the [`Fence`]: the instant past which the
//! leader must not act, moved forward only by renewals etcd acknowledged. The
//! coordinator's event loop reads the fence with its own clock before it carries out
//! anything, so even an election thread that is never scheduled cannot keep a
//! deposed leader acting.

use super::EtcdOptions;
use crate::election::{
    Campaigned, Election, ElectionAction, ElectionConfig, ElectionEvent, StoreLease,
};
use crate::service::Fence;
use etcd_client::{Client, Compare, CompareOp, PutOptions};
use etcd_client::{Txn, TxnOp, TxnOpResponse};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// Who leads, as this coordinator's election last learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// Another coordinator leads (its address), or none is known to.
    Standby {
        /// The leader's address.
        leader: Option<String>,
    },
    /// This coordinator leads, every write guarded by the leader key's creation
    /// revision.
    Leader {
        /// The fencing token.
        revision: i64,
    },
}

/// The running election.
pub(super) struct ElectionHandle {
    pub(super) leadership: watch::Receiver<Leadership>,
    pub(super) fence: Fence,
    commands: mpsc::UnboundedSender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the coordinator asks of its election.
enum Command {
    /// Give up the leadership and campaign again.
    StepDown,
    /// Give up the leadership and stop.
    Stop,
}

impl ElectionHandle {
    /// Resigns (the lease revoked, so a standby takes over at once) and waits for
    /// the thread.
    pub(super) fn resign(mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Gives up the leadership (its lease revoked) and campaigns again.
    pub(super) fn step_down(&self) {
        let _ = self.commands.send(Command::StepDown);
    }
}

/// What a request's task reports back.
enum Answer {
    Granted {
        sent: Instant,
        lease: StoreLease,
        ttl: Duration,
    },
    Renewed {
        lease: StoreLease,
        sent: Instant,
        ttl: Duration,
    },
    Campaigned(StoreLease, Campaigned),
    Failed(ElectionAction, String),
}

/// Starts the election for the coordinator reachable at `address`.
pub(super) fn start(
    options: EtcdOptions,
    address: String,
    config: ElectionConfig,
) -> std::io::Result<ElectionHandle> {
    let (leadership_tx, leadership) = watch::channel(Leadership::Standby { leader: None });
    let fence = Fence::new();
    let (commands, inbox) = mpsc::unbounded_channel();
    let thread_fence = fence.clone();
    let thread = std::thread::Builder::new()
        .name("picluster-election".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime builds");
            runtime.block_on(run(
                options,
                address,
                config,
                leadership_tx,
                thread_fence,
                inbox,
            ));
        })?;
    Ok(ElectionHandle {
        leadership,
        fence,
        commands,
        thread: Some(thread),
    })
}

async fn run(
    options: EtcdOptions,
    address: String,
    config: ElectionConfig,
    leadership: watch::Sender<Leadership>,
    fence: Fence,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let key = options.leader_key();
    let mut election = Election::new(config, Instant::now());
    let (answers_tx, mut answers) = mpsc::unbounded_channel::<Answer>();
    let mut client: Option<Client> = None;
    loop {
        // Carry out what the machine asked for, each request on a task of its own.
        while let Some(action) = election.poll_action() {
            let c = match &client {
                Some(c) => c.clone(),
                None => match options.connect().await {
                    Ok(c) => {
                        client = Some(c.clone());
                        c
                    }
                    Err(e) => {
                        election.handle_failed(Instant::now(), &action);
                        warn!(error = %e, "etcd unreachable");
                        continue;
                    }
                },
            };
            let answers = answers_tx.clone();
            let key = key.clone();
            let address = address.clone();
            tokio::spawn(async move {
                let answer = carry_out(c, &key, &address, action).await;
                let _ = answers.send(answer);
            });
        }
        while let Some(event) = election.poll_event() {
            match event {
                ElectionEvent::Elected { revision } => {
                    info!(revision, "elected the leading coordinator");
                    // The deadline first: the coordinator reads it as soon as it
                    // learns it leads.
                    fence.set(election.fence_deadline());
                    let _ = leadership.send(Leadership::Leader { revision });
                }
                ElectionEvent::Fenced { cause } => {
                    fence.set(None);
                    warn!(%cause, "no longer the leading coordinator: stopping at once");
                    let _ = leadership.send(Leadership::Standby { leader: None });
                }
                ElectionEvent::Leader(leader) => {
                    let _ = leadership.send(Leadership::Standby { leader });
                }
            }
        }
        fence.set(election.fence_deadline());
        let deadline = election.poll_timeout();
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::StepDown) => election.handle_step_down(Instant::now()),
                Some(Command::Stop) | None => break,
            },
            Some(answer) = answers.recv() => {
                let now = Instant::now();
                match answer {
                    Answer::Granted { sent, lease, ttl } => election.handle_granted(now, sent, lease, ttl),
                    Answer::Renewed { lease, sent, ttl } => election.handle_renewed(now, lease, sent, ttl),
                    Answer::Campaigned(lease, answer) => election.handle_campaigned(now, lease, answer),
                    Answer::Failed(action, error) => {
                        if !matches!(action, ElectionAction::Campaign { .. } | ElectionAction::Revoke { .. }) {
                            warn!(%error, ?action, "etcd request failed");
                        }
                        election.handle_failed(now, &action);
                    }
                }
            }
            () = sleep_until(deadline) => election.handle_timeout(Instant::now()),
        }
    }
    // Resigning: stop acting first, then let a standby take over at once.
    fence.set(None);
    election.handle_resign();
    while let Some(action) = election.poll_action() {
        if let (ElectionAction::Revoke { lease }, Some(c)) = (action, client.as_mut()) {
            let _ = tokio::time::timeout(Duration::from_secs(1), c.lease_revoke(lease)).await;
        }
    }
    let _ = leadership.send(Leadership::Standby { leader: None });
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// One request against etcd, with a timeout of its own.
async fn carry_out(mut client: Client, key: &str, address: &str, action: ElectionAction) -> Answer {
    let timeout = Duration::from_millis(1500);
    let failed = |e: String| Answer::Failed(action.clone(), e);
    match &action {
        ElectionAction::Grant { ttl } => {
            let sent = Instant::now();
            match tokio::time::timeout(timeout, client.lease_grant(ttl.as_secs() as i64, None))
                .await
            {
                Ok(Ok(granted)) => Answer::Granted {
                    sent,
                    lease: granted.id(),
                    ttl: Duration::from_secs(granted.ttl().max(0) as u64),
                },
                Ok(Err(e)) => failed(e.to_string()),
                Err(_) => failed("timed out".into()),
            }
        }
        ElectionAction::Renew { lease, sent } => {
            let (lease, sent) = (*lease, *sent);
            // A stream of its own for each renewal: one that hangs (its etcd member
            // gone, etcd electing a leader) holds up none of the next ones, which go
            // out on schedule and are answered as soon as etcd can.
            let renewal = async {
                let (mut keeper, mut stream) = client.lease_keep_alive(lease).await?;
                keeper.keep_alive().await?;
                stream.message().await
            };
            match tokio::time::timeout(timeout, renewal).await {
                Ok(Ok(Some(answer))) => Answer::Renewed {
                    lease,
                    sent,
                    ttl: Duration::from_secs(answer.ttl().max(0) as u64),
                },
                Ok(Ok(None)) => failed("keep-alive stream ended".into()),
                Ok(Err(e)) => failed(e.to_string()),
                Err(_) => failed("timed out".into()),
            }
        }
        ElectionAction::Campaign { lease } => {
            let lease = *lease;
            let txn = Txn::new()
                .when([Compare::create_revision(key, CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    key,
                    address,
                    Some(PutOptions::new().with_lease(lease)),
                )])
                .or_else([TxnOp::get(key, None)]);
            match tokio::time::timeout(timeout, client.txn(txn)).await {
                Ok(Ok(answer)) if answer.succeeded() => {
                    let revision = answer.header().map_or(0, |h| h.revision());
                    Answer::Campaigned(lease, Campaigned::Won { revision })
                }
                Ok(Ok(answer)) => {
                    let held = answer.op_responses().into_iter().find_map(|r| match r {
                        TxnOpResponse::Get(get) => get.kvs().first().map(|kv| Campaigned::Held {
                            leader: String::from_utf8_lossy(kv.value()).into_owned(),
                            lease: kv.lease(),
                            revision: kv.create_revision(),
                        }),
                        _ => None,
                    });
                    match held {
                        Some(held) => Answer::Campaigned(lease, held),
                        // Deleted between the compare and the get: campaign again.
                        None => failed("the leader key went away".into()),
                    }
                }
                Ok(Err(e)) => failed(e.to_string()),
                Err(_) => failed("timed out".into()),
            }
        }
        ElectionAction::Revoke { lease } => {
            let _ = tokio::time::timeout(timeout, client.lease_revoke(*lease)).await;
            failed("revoked".into())
        }
    }
}
