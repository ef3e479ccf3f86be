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
//!
//! A custom kernel's task ([`Work::Map`]) is cut into the kernel's own blocks; each
//! block's result is merged into the prefix's result in index order as the prefix
//! passes it, and each progress report carries the encoded result of the indices it
//! commits.
//!
//! A task can be trimmed (work stealing): it then ends at the requested index, or at
//! the end of the blocks already claimed if threads are past it. Claiming and trimming
//! take the same lock, so the end reported by [`ComputeEvent::Trimmed`] covers exactly
//! the blocks that will be searched.

use picluster_core::kernel::custom::{BindError, MapKernel, Partial};
use picluster_core::kernel::sha256d::{BlockHeader, Sha256dJob, Target};
use picluster_core::kernel::SearchKernel;
use picluster_core::sync::lock;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Indices per block of the built-in kernels: the granularity of work claiming,
/// progress and stop checks.
pub const BLOCK: u64 = picluster_core::wire::SEARCH_BLOCK;

/// Tasks queued or running at once. The agent never holds more leases than this
/// (it hands further ones straight back), so [`Compute::run`] never waits.
pub const MAX_TASKS: usize = 64;

/// What a task computes.
#[derive(Clone)]
pub enum Work {
    /// A built-in search kernel: solutions are reported as indices.
    Search(Arc<dyn SearchKernel>),
    /// A custom kernel: each range's result is reported with the progress.
    Map(Arc<dyn MapKernel>),
}

impl Work {
    fn block(&self) -> u64 {
        match self {
            Work::Search(_) => BLOCK,
            Work::Map(k) => k.block().max(1),
        }
    }
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Work::Search(k) => write!(f, "Search({})", k.implementation()),
            Work::Map(k) => write!(f, "Map({})", k.name()),
        }
    }
}

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
        /// For a custom kernel: the encoded result of the indices since the last
        /// report.
        output: Option<Vec<u8>>,
    },
    /// The task was trimmed: it now ends at `end` (at or after the requested index).
    /// Returned by [`Compute::trim`] rather than sent, and fed to the agent as an
    /// event like the others.
    Trimmed {
        /// The task.
        task: TaskId,
        /// Its new end.
        end: u64,
    },
    /// The task ended (completed, or stopped) at `position`.
    Finished {
        /// The task.
        task: TaskId,
        /// The contiguous prefix reached.
        position: u64,
        /// For a custom kernel: the encoded result of the indices since the last
        /// report, if any.
        output: Option<Vec<u8>>,
    },
    /// A custom kernel's result could not be encoded: the task stops (and still
    /// reports `Finished`, without that result).
    Failed {
        /// The task.
        task: TaskId,
        /// Why.
        reason: BindError,
    },
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    work: Work,
    range: Range<u64>,
    progress_interval: Duration,
    control: Arc<Control>,
}

/// What the driver can change about a queued or running task.
struct Control {
    stop: AtomicBool,
    claim: Mutex<Claim>,
}

/// The next block to claim and where claiming stops.
struct Claim {
    next: u64,
    limit: u64,
    block: u64,
}

/// What the engine counts and what throttles it, shared with the driver.
#[derive(Debug)]
pub(crate) struct Gauge {
    /// Threads that may claim blocks (the others wait): the thermal governor's
    /// lever. All of the pool's unless throttled.
    pub(crate) active: AtomicUsize,
    /// Indices searched in tasks (not the benchmark).
    pub(crate) computed: AtomicU64,
}

/// How long a thread beyond the active ones waits before it looks again.
const PAUSED_POLL: Duration = Duration::from_millis(20);

impl Control {
    /// Whether blocks are left to claim (and the task is not stopped).
    fn has_blocks(&self) -> bool {
        if self.stop.load(Ordering::Acquire) {
            return false;
        }
        let c = lock(&self.claim);
        c.next < c.limit
    }

    /// The next block, or `None` when the task is stopped or fully claimed.
    fn claim_block(&self) -> Option<Range<u64>> {
        if self.stop.load(Ordering::Acquire) {
            return None;
        }
        let mut c = lock(&self.claim);
        if c.next >= c.limit {
            return None;
        }
        let block = c.next..c.limit.min(c.next.saturating_add(c.block));
        c.next = block.end;
        Some(block)
    }
}

type Controls = Arc<Mutex<HashMap<TaskId, Arc<Control>>>>;

/// Handle to the engine. Dropping it lets the engine thread end after its queue.
pub struct Compute {
    queue: crossbeam_channel::Sender<Task>,
    controls: Controls,
    pool: Arc<rayon::ThreadPool>,
    threads: usize,
    gauge: Arc<Gauge>,
}

impl std::fmt::Debug for Compute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compute")
            .field("threads", &self.threads)
            .finish()
    }
}

/// The stack of the threads that run kernels. Built without optimisation (a
/// dependent crate's plain debug build), the vector kernels keep every temporary on
/// the stack: 3.4 MB for one AVX-512 batch, over the 2 MiB a thread gets by default.
/// Reserved, not used: only what is touched takes memory.
const COMPUTE_STACK_BYTES: usize = 16 << 20;

impl Compute {
    /// Starts an engine with `threads` compute threads; events go to `sink`.
    pub fn start(
        threads: usize,
        sink: impl Fn(ComputeEvent) + Send + Sync + 'static,
    ) -> Result<Compute, ComputeError> {
        picluster_core::kernel::warn_if_unoptimized();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("picluster-compute-{i}"))
            .stack_size(COMPUTE_STACK_BYTES)
            .build()
            .map_err(|source| ComputeError::Pool { threads, source })?;
        let pool = Arc::new(pool);
        let (queue, tasks) = crossbeam_channel::bounded::<Task>(MAX_TASKS);
        let controls: Controls = Arc::default();
        let sink: Sink = Arc::new(sink);
        let gauge = Arc::new(Gauge {
            active: AtomicUsize::new(threads),
            computed: AtomicU64::new(0),
        });
        let (engine_pool, engine_controls, engine_sink, engine_gauge) =
            (pool.clone(), controls.clone(), sink.clone(), gauge.clone());
        std::thread::Builder::new()
            .name("picluster-engine".to_string())
            .stack_size(COMPUTE_STACK_BYTES)
            .spawn(move || {
                for task in tasks {
                    let (position, output) =
                        run_task(&engine_pool, &task, &engine_sink, &engine_gauge);
                    lock(&engine_controls).remove(&task.id);
                    engine_sink(ComputeEvent::Finished {
                        task: task.id,
                        position,
                        output,
                    });
                }
            })
            .map_err(ComputeError::Thread)?;
        Ok(Compute {
            queue,
            controls,
            pool,
            threads,
            gauge,
        })
    }

    /// Number of compute threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Lets only `n` threads (at least one, at most all) claim work from now on; the
    /// others finish their block and wait.
    pub fn set_active(&self, n: usize) {
        self.gauge
            .active
            .store(n.clamp(1, self.threads), Ordering::Relaxed);
    }

    /// Threads that may claim work.
    pub fn active(&self) -> usize {
        self.gauge.active.load(Ordering::Relaxed)
    }

    /// Indices searched in tasks so far (not the benchmark).
    pub fn computed(&self) -> u64 {
        self.gauge.computed.load(Ordering::Relaxed)
    }

    /// Queues `range` of `work` as task `id`, after the tasks already queued. With
    /// [`MAX_TASKS`] tasks queued or running, this waits for one to finish.
    pub fn run(&self, id: TaskId, work: Work, range: Range<u64>, progress_interval: Duration) {
        let control = Arc::new(Control {
            stop: AtomicBool::new(false),
            claim: Mutex::new(Claim {
                next: range.start,
                limit: range.end,
                block: work.block(),
            }),
        });
        lock(&self.controls).insert(id, control.clone());
        let task = Task {
            id,
            work,
            range,
            progress_interval,
            control,
        };
        // The engine thread lives as long as this handle; a send cannot fail.
        let _ = self.queue.send(task);
    }

    /// Stops task `id` (running or queued); it still reports `Finished`.
    pub fn stop(&self, id: TaskId) {
        if let Some(control) = lock(&self.controls).get(&id) {
            control.stop.store(true, Ordering::Release);
        }
    }

    /// Ends task `id` at `end`, or where its threads have already claimed up to if
    /// that is further; returns the new end. A task that has already finished is not
    /// trimmed: `None`.
    pub fn trim(&self, id: TaskId, end: u64) -> Option<u64> {
        let control = lock(&self.controls).get(&id).cloned()?;
        let mut c = lock(&control.claim);
        c.limit = c.limit.min(end.max(c.next));
        Some(c.limit)
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

/// Completed blocks beyond the contiguous prefix, and for a custom kernel the merged
/// result of the prefix since the last report.
struct Prefix {
    position: u64,
    done: BTreeMap<u64, (u64, Option<Partial>)>,
    output: Option<Partial>,
    last_report: Instant,
    reported: u64,
    /// A result failed to encode: nothing past `reported` is committed.
    failed: bool,
}

impl Prefix {
    fn complete(&mut self, block: Range<u64>, partial: Option<Partial>, work: &Work) {
        if self.failed {
            return;
        }
        self.done.insert(block.start, (block.end, partial));
        while let Some((end, partial)) = self.done.remove(&self.position) {
            self.position = end;
            if let (Work::Map(kernel), Some(later)) = (work, partial) {
                self.output = Some(match self.output.take() {
                    Some(earlier) => kernel.merge(earlier, later),
                    None => later,
                });
            }
        }
    }

    /// The encoded result since the last report; `Err` if it does not encode.
    fn take_output(&mut self, work: &Work) -> Result<Option<Vec<u8>>, BindError> {
        match (work, self.output.take()) {
            (Work::Map(kernel), Some(output)) => kernel.encode(&output).map(Some),
            _ => Ok(None),
        }
    }
}

/// Runs one block of a task: solutions go to the sink at once (before the block
/// counts as done: solutions precede the progress that passes them); a custom
/// kernel's result is returned.
fn run_block(task: &Task, block: Range<u64>, hits: &mut Vec<u64>, sink: &Sink) -> Option<Partial> {
    match &task.work {
        Work::Search(kernel) => {
            kernel.scan(block, hits);
            if !hits.is_empty() {
                sink(ComputeEvent::Found {
                    task: task.id,
                    indices: std::mem::take(hits),
                });
            }
            None
        }
        Work::Map(kernel) => Some(kernel.run(block)),
    }
}

/// Runs one task on every thread of the pool; returns the prefix reached and the
/// result not yet reported. A task of at most one block runs right here: waking the
/// pool would cost more than it does.
fn run_task(
    pool: &rayon::ThreadPool,
    task: &Task,
    sink: &Sink,
    gauge: &Gauge,
) -> (u64, Option<Vec<u8>>) {
    let mut prefix = Prefix {
        position: task.range.start,
        done: BTreeMap::new(),
        output: None,
        last_report: Instant::now(),
        reported: task.range.start,
        failed: false,
    };
    let fail = |reason: BindError| {
        task.control.stop.store(true, Ordering::Release);
        sink(ComputeEvent::Failed {
            task: task.id,
            reason,
        });
    };
    if task.range.end - task.range.start <= task.work.block() {
        let Some(block) = task.control.claim_block() else {
            return (task.range.start, None);
        };
        let partial = run_block(task, block.clone(), &mut Vec::new(), sink);
        gauge
            .computed
            .fetch_add(block.end - block.start, Ordering::Relaxed);
        prefix.complete(block, partial, &task.work);
        return match prefix.take_output(&task.work) {
            Ok(output) => (prefix.position, output),
            Err(reason) => {
                fail(reason);
                (task.range.start, None)
            }
        };
    }
    let prefix = Mutex::new(prefix);
    pool.broadcast(|ctx| {
        let mut hits = Vec::new();
        loop {
            // A thread beyond the active ones (the board is hot) waits while there
            // is work for the others.
            while ctx.index() >= gauge.active.load(Ordering::Relaxed) && task.control.has_blocks() {
                std::thread::sleep(PAUSED_POLL);
            }
            let Some(block) = task.control.claim_block() else {
                break;
            };
            let partial = run_block(task, block.clone(), &mut hits, sink);
            gauge
                .computed
                .fetch_add(block.end - block.start, Ordering::Relaxed);
            let mut p = lock(&prefix);
            p.complete(block, partial, &task.work);
            // Report a moved prefix at most once an interval; the end is reported
            // by `Finished`.
            if p.position > p.reported
                && p.position < lock(&task.control.claim).limit
                && p.last_report.elapsed() >= task.progress_interval
            {
                match p.take_output(&task.work) {
                    Ok(output) => {
                        p.last_report = Instant::now();
                        p.reported = p.position;
                        sink(ComputeEvent::Progress {
                            task: task.id,
                            position: p.position,
                            output,
                        });
                    }
                    Err(reason) => {
                        fail(reason);
                        // Nothing past the last report may be committed now.
                        p.failed = true;
                        p.position = p.reported;
                        p.done.clear();
                        p.output = None;
                        return;
                    }
                }
            }
        }
    });
    let mut p = prefix
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if p.failed || (task.control.stop.load(Ordering::Acquire) && p.position == p.reported) {
        return (p.position, None);
    }
    match p.take_output(&task.work) {
        Ok(output) => (p.position, output),
        Err(reason) => {
            fail(reason);
            (p.reported, None)
        }
    }
}
