//! A blocking wrapper around [`crate::Client`] for programs without an async runtime.
//! It owns a small runtime whose one thread keeps the connection alive between calls.

use crate::client::{Client as AsyncClient, ClientError};
use picluster_core::ids::JobId;
use picluster_core::job::JobSpec;
use picluster_core::runtime::background_runtime;
use picluster_core::trust::Bundle;
use picluster_core::wire::{ClusterStatus, JobProgress, JobReport, JobSummary, WorkerStatus};
use std::path::Path;

/// A blocking client. Every method blocks the calling thread until the answer.
#[derive(Debug)]
pub struct Client {
    runtime: tokio::runtime::Runtime,
    client: AsyncClient,
}

fn runtime() -> Result<tokio::runtime::Runtime, ClientError> {
    outside_runtime()?;
    background_runtime().map_err(|e| ClientError::Net(picluster_core::net::NetError::Socket(e)))
}

/// Blocking inside an async runtime would panic (a runtime cannot be started from
/// within one): an error that says what to use instead.
fn outside_runtime() -> Result<(), ClientError> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Err(ClientError::InsideRuntime),
        Err(_) => Ok(()),
    }
}

impl Client {
    /// Connects with a client bundle.
    pub fn connect(bundle: &Bundle) -> Result<Client, ClientError> {
        let runtime = runtime()?;
        let client = runtime.block_on(AsyncClient::connect(bundle))?;
        Ok(Client { runtime, client })
    }

    /// Connects with the admin bundle of a cluster directory.
    pub fn connect_cluster(dir: &Path) -> Result<Client, ClientError> {
        let runtime = runtime()?;
        let client = runtime.block_on(AsyncClient::connect_cluster(dir))?;
        Ok(Client { runtime, client })
    }

    /// Submits a job at priority 0; returns its id at once.
    pub fn submit(&self, spec: &JobSpec) -> Result<JobId, ClientError> {
        self.block_on(self.client.submit(spec))
    }

    /// Runs a custom kernel over its whole keyspace across the cluster and returns
    /// the results merged in index order.
    pub fn run_kernel<K: picluster_core::kernel::custom::Kernel>(
        &self,
        params: &K::Params,
    ) -> Result<crate::KernelReport<K::Output>, ClientError> {
        self.block_on(self.client.run_kernel::<K>(params))
    }

    /// Submits a job at `priority` (higher first).
    pub fn submit_with_priority(
        &self,
        spec: &JobSpec,
        priority: i32,
    ) -> Result<JobId, ClientError> {
        self.block_on(self.client.submit_with_priority(spec, priority))
    }

    /// Drains or undrains a worker.
    pub fn drain(&self, worker: &str, drain: bool) -> Result<WorkerStatus, ClientError> {
        self.block_on(self.client.drain(worker, drain))
    }

    /// Waits for a job's report, calling `on_progress` with each progress update.
    pub fn wait_with_progress(
        &self,
        job: JobId,
        on_progress: impl FnMut(&JobProgress),
    ) -> Result<JobReport, ClientError> {
        self.block_on(async { self.client.watch(job).await?.finish(on_progress).await })
    }

    /// Waits for a job's report.
    pub fn wait(&self, job: JobId) -> Result<JobReport, ClientError> {
        self.block_on(self.client.wait(job))
    }

    /// Submits a job and waits for its report.
    pub fn run(&self, spec: &JobSpec) -> Result<JobReport, ClientError> {
        self.block_on(self.client.run(spec))
    }

    /// Cancels a job.
    pub fn cancel(&self, job: JobId) -> Result<JobSummary, ClientError> {
        self.block_on(self.client.cancel(job))
    }

    /// Every job.
    pub fn jobs(&self) -> Result<Vec<JobSummary>, ClientError> {
        self.block_on(self.client.jobs())
    }

    /// Workers and jobs.
    pub fn status(&self) -> Result<ClusterStatus, ClientError> {
        self.block_on(self.client.status())
    }

    /// Runs `call` to its end on this client's runtime, unless the calling thread
    /// runs an async runtime itself.
    fn block_on<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        outside_runtime()?;
        self.runtime.block_on(call)
    }

    /// The async client inside.
    pub fn inner(&self) -> &AsyncClient {
        &self.client
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.client.close();
    }
}
