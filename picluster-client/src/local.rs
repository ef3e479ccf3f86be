//! A whole cluster in one process: a coordinator and N workers talking real QUIC with
//! mutual TLS over loopback, with credentials made in memory. For tests, examples,
//! benchmarks and single-machine use.

use crate::client::{Client, ClientError};
use picluster_core::coordinator::CoordinatorConfig;
use picluster_core::identity::Role;
use picluster_core::net::NetError;
use picluster_core::service::CoordinatorService;
use picluster_core::trust::{Bundle, ClusterCa, ClusterError};
use picluster_worker::WorkerOptions;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How to build a [`LocalCluster`].
#[derive(Clone, Debug)]
pub struct LocalClusterOptions {
    /// Number of workers.
    pub workers: usize,
    /// Options of every worker (threads, benchmark length, backoff).
    pub worker: WorkerOptions,
    /// The coordinator's tunables.
    pub coordinator: CoordinatorConfig,
}

impl LocalClusterOptions {
    /// `workers` workers with `threads` threads each and default tunables.
    pub fn new(workers: usize, threads: usize) -> Self {
        LocalClusterOptions {
            workers,
            worker: WorkerOptions {
                threads,
                ..WorkerOptions::default()
            },
            coordinator: CoordinatorConfig::default(),
        }
    }

    /// These options with custom kernel `K` registered in every worker.
    pub fn with_kernel<K: picluster_core::kernel::custom::Kernel>(mut self) -> Self {
        self.worker.kernels.register::<K>();
        self
    }
}

/// Why a local cluster could not start.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum LocalClusterError {
    /// Making credentials failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The coordinator could not bind.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The admin client could not connect.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The job store could not be opened.
    #[error(transparent)]
    Store(#[from] picluster_core::service::StoreError),
    /// Not every worker joined in time.
    #[error("only {joined} of {expected} workers joined within {timeout:?}")]
    WorkersMissing {
        /// Workers connected.
        joined: usize,
        /// Workers started.
        expected: usize,
        /// How long we waited.
        timeout: Duration,
    },
}

/// A running in-process cluster. Dropping it stops everything abruptly;
/// [`LocalCluster::shutdown`] stops the workers first, so they leave cleanly.
#[derive(Debug)]
pub struct LocalCluster {
    ca: ClusterCa,
    address: SocketAddr,
    stop_workers: watch::Sender<bool>,
    stop_coordinator: watch::Sender<bool>,
    coordinator: JoinHandle<Result<(), picluster_core::service::StoreError>>,
    workers: Vec<JoinHandle<Result<(), picluster_worker::WorkerError>>>,
    worker_options: WorkerOptions,
}

impl LocalCluster {
    /// Starts a coordinator and `workers` workers of `threads` threads each, and
    /// returns once every worker has joined.
    pub async fn start(workers: usize, threads: usize) -> Result<LocalCluster, LocalClusterError> {
        Self::start_with(LocalClusterOptions::new(workers, threads)).await
    }

    /// Starts a cluster as `options` say; its jobs live in memory.
    pub async fn start_with(
        options: LocalClusterOptions,
    ) -> Result<LocalCluster, LocalClusterError> {
        Self::start_inner::<picluster_core::service::RedbStore>(options, None).await
    }

    /// Starts a cluster as `options` say, its coordinator journaling to the job
    /// store at `store` (a redb file, created if missing): jobs in it are resumed,
    /// and replies wait for their records to be durable, as in a real coordinator.
    pub async fn start_durable(
        options: LocalClusterOptions,
        store: &std::path::Path,
    ) -> Result<LocalCluster, LocalClusterError> {
        let store = picluster_core::service::RedbStore::open(store)?;
        Self::start_inner(options, Some(store)).await
    }

    /// Starts a cluster as `options` say, its coordinator journaling to `store` (any
    /// [`Store`](picluster_core::service::Store): a benchmark's etcd, say).
    pub async fn start_with_store(
        options: LocalClusterOptions,
        store: impl picluster_core::service::Store,
    ) -> Result<LocalCluster, LocalClusterError> {
        Self::start_inner(options, Some(store)).await
    }

    async fn start_inner<S: picluster_core::service::Store>(
        options: LocalClusterOptions,
        store: Option<S>,
    ) -> Result<LocalCluster, LocalClusterError> {
        let ca = ClusterCa::generate("local")?;
        let credential = ca.issue(
            Role::Coordinator,
            "coordinator",
            &["127.0.0.1".to_string(), "localhost".to_string()],
        )?;
        let service = CoordinatorService::bind(
            (Ipv4Addr::LOCALHOST, 0).into(),
            ca.cert_pem(),
            &credential,
            options.coordinator.clone(),
        )?;
        let address = service.local_addr()?;
        let service = service.with_issuer(
            ClusterCa::from_pem(ca.cert_pem(), &ca.key_pem())?,
            picluster_core::trust::Lifetimes::default().peer_days,
        );
        let service = match store {
            Some(store) => service.with_store(store),
            None => service,
        };
        let (stop_coordinator, stopped) = watch::channel(false);
        let coordinator = tokio::spawn(service.run(wait_for(stopped)));
        let mut cluster = LocalCluster {
            ca,
            address,
            stop_workers: watch::channel(false).0,
            stop_coordinator,
            coordinator,
            workers: Vec::new(),
            worker_options: options.worker.clone(),
        };
        for i in 0..options.workers {
            cluster.add_worker(&format!("worker-{}", i + 1))?;
        }
        cluster
            .wait_for_workers(options.workers, Duration::from_secs(20))
            .await?;
        Ok(cluster)
    }

    /// The coordinator's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The cluster CA (to issue more bundles).
    pub fn ca(&self) -> &ClusterCa {
        &self.ca
    }

    /// A bundle for `name` in `role`, pointing at this coordinator.
    pub fn bundle(&self, role: Role, name: &str) -> Result<Bundle, ClusterError> {
        self.ca.bundle(role, name, &self.address.to_string())
    }

    /// Starts one more worker named `name`.
    pub fn add_worker(&mut self, name: &str) -> Result<(), ClusterError> {
        self.add_worker_with(name, self.worker_options.clone())
    }

    /// Starts one more worker named `name` with its own options (for instance other
    /// custom kernels than the rest).
    pub fn add_worker_with(
        &mut self,
        name: &str,
        options: WorkerOptions,
    ) -> Result<(), ClusterError> {
        let bundle = self.bundle(Role::Worker, name)?;
        let stopped = self.stop_workers.subscribe();
        self.workers.push(tokio::spawn(picluster_worker::run(
            bundle,
            options,
            wait_for(stopped),
        )));
        Ok(())
    }

    /// Connects a client with a fresh client certificate.
    pub async fn client(&self) -> Result<Client, ClientError> {
        Client::connect(&self.bundle(Role::Admin, "local-admin")?).await
    }

    /// Waits until `count` workers are connected.
    pub async fn wait_for_workers(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<(), LocalClusterError> {
        let client = self.client().await?;
        let started = Instant::now();
        loop {
            let joined = client.status().await?.workers.len();
            if joined >= count {
                client.close();
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(LocalClusterError::WorkersMissing {
                    joined,
                    expected: count,
                    timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the workers (they hand back their work and leave), then the coordinator.
    pub async fn shutdown(self) {
        let _ = self.stop_workers.send(true);
        for worker in self.workers {
            let _ = worker.await;
        }
        let _ = self.stop_coordinator.send(true);
        let _ = self.coordinator.await;
    }
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

picluster_core::debug_as_display!(LocalClusterError);
