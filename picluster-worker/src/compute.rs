//! The compute engine: runs leases on a rayon pool, one lease at a time, every thread
//! of the pool on it. Owns threads and the order of blocks; knows nothing of the
//! network or the protocol.
//!
//! A lease is cut into blocks of [`BLOCK`] indices that threads claim in order from a
//! shared counter, so fast and slow cores stay busy until the end. Progress is the
//! contiguous prefix of completed blocks, which is what the coordinator may commit:
//! a block finished out of order counts only once everything before it is done.
//! Solutions are reported before the prefix passes them, so a report of progress
//! never hides a solution. A stop flag is checked before every block, so a stop takes
//! effect within one block per thread.

use picluster_core::kernel::Kernel;
use picluster_core::sha256d::{BlockHeader, Sha256dJob, Target};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Indices per block: the granularity of work claiming, progress and stop checks.
pub const BLOCK: u64 = 1 << 16;

/// Identifies one run of a lease inside this process (lease ids are the
/// coordinator's and may repeat after it restarts; task ids never repeat).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub u64);

/// What the engine reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComputeEvent {
    /// Solutions found in a task.
    Found {
        /// The task.
        task: TaskId,
        /// Keyspace indices that are solutions.
        indices: Vec<u64>,
    },
    /// Everything below `position` is searched.
    Progress {
        /// The task.
        task: TaskId,
        /// The contiguous prefix reached.
        position: u64,
    },
    /// The task ended (completed, or stopped) at `position`.
    Finished {
        /// The task.
        task: TaskId,
        /// The contiguous prefix reached.
        position: u64,
    },
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// rayon could not create the pool (not retryable: usually too many threads).
    #[error("cannot start {threads} compute threads: {source}")]
    Pool {
        /// Threads requested.
        threads: usize,
        /// The cause.
        source: rayon::ThreadPoolBuildError,
    },
    /// The OS refused to start the engine's thread.
    #[error("cannot start the compute thread: {0}")]
    Thread(std::io::Error),
}

type Sink = Arc<dyn Fn(ComputeEvent) + Send + Sync>;

struct Task {
    id: TaskId,
    kernel: Arc<dyn Kernel>,
    range: Range<u64>,
    progress_interval: Duration,
    stop: Arc<AtomicBool>,
}

/// Handle to the engine. Dropping it lets the engine thread end after its queue.
pub struct Compute {
    queue: crossbeam_channel::Sender<Task>,
    stops: Arc<Mutex<HashMap<TaskId, Arc<AtomicBool>>>>,
    pool: Arc<rayon::ThreadPool>,
    threads: usize,
}

impl std::fmt::Debug for Compute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compute")
            .field("threads", &self.threads)
            .finish()
    }
}

impl Compute {
    /// Starts an engine with `threads` compute threads; events go to `sink`.
    pub fn start(
        threads: usize,
        sink: impl Fn(ComputeEvent) + Send + Sync + 'static,
    ) -> Result<Compute, ComputeError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("picluster-compute-{i}"))
            .build()
            .map_err(|source| ComputeError::Pool { threads, source })?;
        let pool = Arc::new(pool);
        let (queue, tasks) = crossbeam_channel::unbounded::<Task>();
        let stops: Arc<Mutex<HashMap<TaskId, Arc<AtomicBool>>>> = Arc::default();
        let sink: Sink = Arc::new(sink);
        let (engine_pool, engine_stops) = (pool.clone(), stops.clone());
        std::thread::Builder::new()
            .name("picluster-engine".to_string())
            .spawn(move || {
                for task in tasks {
                    let position = if task.stop.load(Ordering::Acquire) {
                        task.range.start
                    } else {
                        run_task(&engine_pool, &task, &sink)
                    };
                    lock(&engine_stops).remove(&task.id);
                    sink(ComputeEvent::Finished {
                        task: task.id,
                        position,
                    });
                }
            })
            .map_err(ComputeError::Thread)?;
        Ok(Compute {
            queue,
            stops,
            pool,
            threads,
        })
    }

    /// Number of compute threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Queues `range` of `kernel` as task `id`, after the tasks already queued.
    pub fn run(
        &self,
        id: TaskId,
        kernel: Arc<dyn Kernel>,
        range: Range<u64>,
        progress_interval: Duration,
    ) {
        let stop = Arc::new(AtomicBool::new(false));
        lock(&self.stops).insert(id, stop.clone());
        let task = Task {
            id,
            kernel,
            range,
            progress_interval,
            stop,
        };
        // The engine thread lives as long as this handle; a send cannot fail.
        let _ = self.queue.send(task);
    }

    /// Stops task `id` (running or queued); it still reports `Finished`.
    pub fn stop(&self, id: TaskId) {
        if let Some(flag) = lock(&self.stops).get(&id) {
            flag.store(true, Ordering::Release);
        }
    }

    /// Measures the hash rate of all threads together on a SHA-256d scan for about
    /// `duration`, in hashes per second.
    pub fn benchmark(&self, duration: Duration) -> u64 {
        let header = BlockHeader([0x5a; 80]);
        let mut target = [0u8; 32];
        target[31] = 1; // practically never met
        let job = Sha256dJob::new(header, Some(Target(target)), 0..1 << 32, 0)
            .expect("a valid benchmark job");
        let kernel = job.kernel();
        let counter = AtomicU64::new(0);
        let started = Instant::now();
        self.pool.broadcast(|_| {
            let mut hits = Vec::new();
            while started.elapsed() < duration {
                let b = counter.fetch_add(1 << 13, Ordering::Relaxed);
                kernel.scan(b..b + (1 << 13), &mut hits);
            }
        });
        let hashes = counter.load(Ordering::Relaxed);
        (hashes as f64 / started.elapsed().as_secs_f64()) as u64
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent (plain maps).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Completed blocks beyond the contiguous prefix.
struct Prefix {
    position: u64,
    done: BTreeMap<u64, u64>,
    last_report: Instant,
    reported: u64,
}

impl Prefix {
    fn complete(&mut self, block: Range<u64>) {
        self.done.insert(block.start, block.end);
        while let Some(end) = self.done.remove(&self.position) {
            self.position = end;
        }
    }
}

/// Runs one task on every thread of the pool; returns the prefix reached.
fn run_task(pool: &rayon::ThreadPool, task: &Task, sink: &Sink) -> u64 {
    let next = AtomicU64::new(task.range.start);
    let prefix = Mutex::new(Prefix {
        position: task.range.start,
        done: BTreeMap::new(),
        last_report: Instant::now(),
        reported: task.range.start,
    });
    pool.broadcast(|_| {
        let mut hits = Vec::new();
        while !task.stop.load(Ordering::Acquire) {
            let start = next.fetch_add(BLOCK, Ordering::Relaxed);
            if start >= task.range.end {
                break;
            }
            let block = start..task.range.end.min(start + BLOCK);
            task.kernel.scan(block.clone(), &mut hits);
            if !hits.is_empty() {
                // Before the block counts as done: solutions precede the progress
                // that passes them.
                sink(ComputeEvent::Found {
                    task: task.id,
                    indices: std::mem::take(&mut hits),
                });
            }
            let mut p = lock(&prefix);
            p.complete(block);
            // Report a moved prefix at most once an interval; the end is reported
            // by `Finished`.
            if p.position > p.reported
                && p.position < task.range.end
                && p.last_report.elapsed() >= task.progress_interval
            {
                p.last_report = Instant::now();
                p.reported = p.position;
                sink(ComputeEvent::Progress {
                    task: task.id,
                    position: p.position,
                });
            }
        }
    });
    let position = lock(&prefix).position;
    position
}
