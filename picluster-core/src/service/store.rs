//! Where the coordinator's journal goes: the [`Store`] trait (what the driver needs
//! of any backend, so a replicated one can come later without touching the state
//! machine) and [`RedbStore`], an embedded, crash-safe file in the cluster directory
//! (redb: pure Rust, ACID, copy-on-write B-trees). Each batch of records is one
//! transaction, fsynced before the driver reports it durable. The store holds the
//! folded state ([`Snapshot`]): rows are replaced, so the file does not grow with the
//! number of progress reports.
//!
//! A file damaged by a crash, a torn write or a failing SD card opens to the last
//! commit that is whole (redb keeps two commit slots with checksums) or is refused
//! with [`StoreError`]; some damage makes redb 4.1 fail an internal assertion rather
//! than return an error, so every call into it is contained ([`contained`]) and such
//! a failure is reported as [`StoreError::Damaged`].

use crate::coordinator::{Record, RecoverError, Snapshot, StoredJob, StoredToken, JOURNAL_FORMAT};
use crate::identity::Role;
use crate::ids::JobId;
use crate::kernel::Solution;
use crate::wire::ChunkOutput;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};

/// The store's file in a cluster directory.
pub const STORE_FILE: &str = "coordinator.redb";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
const SOLUTIONS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("solutions");
const OUTPUTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("outputs");
const DRAINED: TableDefinition<&str, ()> = TableDefinition::new("drained");
const QUARANTINED: TableDefinition<&str, ()> = TableDefinition::new("quarantined");
const REVOKED: TableDefinition<&str, u64> = TableDefinition::new("revoked");
const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");
const ENROLLED: TableDefinition<&str, &str> = TableDefinition::new("enrolled");
// Added after format 2 without changing it: a store without these tables reads as
// one with them empty.
const FINDERS: TableDefinition<(u64, u64), &str> = TableDefinition::new("finders");
const DRAIN_REASONS: TableDefinition<&str, &str> = TableDefinition::new("drain_reasons");
const RENEWED: TableDefinition<&str, u64> = TableDefinition::new("renewed");
/// When each job's first chunk was handed out (Unix ms).
const STARTED: TableDefinition<u64, u64> = TableDefinition::new("started");
const REJECTED: TableDefinition<&str, u64> = TableDefinition::new("rejected");
const SHARE_BITS: TableDefinition<(u64, u64), u8> = TableDefinition::new("share_bits");
/// (job, lease, index) of each share verified in a lease the job's row lists.
const LEASE_SHARES: TableDefinition<(u64, u64, u64), ()> = TableDefinition::new("lease_shares");

/// A durable home for the coordinator's journal.
pub trait Store: Send + 'static {
    /// Everything stored, folded.
    fn load(&mut self) -> Result<Snapshot, StoreError>;
    /// Makes `records` durable, all or none.
    fn commit(&mut self, records: &[Record]) -> Result<(), StoreError>;
    /// What to call it in messages (a file's path).
    fn name(&self) -> String;
}

/// Why the store could not be used. Opening errors need a person (another coordinator
/// holds the file, it is damaged, or it is from a newer version); the coordinator
/// refuses to start rather than start empty over it. A failed commit may pass (a full
/// disk freed), but the coordinator stops: it cannot promise what it acknowledges.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file could not be opened or created: held by another process, not
    /// permitted, or damaged (the message says which, and what to do).
    #[error("{path}: {}", open_advice(source))]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: redb::DatabaseError,
    },
    /// The file was written by a pre-release build whose format this one does not read.
    #[error("{path}: job store format {found} is from a pre-release build and cannot be read (this build writes {JOURNAL_FORMAT}): move the file aside to start with no jobs")]
    OlderFormat {
        /// The file.
        path: PathBuf,
        /// The format found.
        found: u64,
    },
    /// The file was written by a newer picluster.
    #[error("{path}: job store format {found} is newer than this build reads ({JOURNAL_FORMAT}): run the picluster version that wrote it")]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// The format found.
        found: u64,
    },
    /// Reading or writing failed.
    #[error("{path}: job store: {source}")]
    Storage {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: redb::Error,
    },
    /// A stored row does not decode.
    #[error("{path}: stored {what} does not decode: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Which row.
        what: String,
        /// The cause.
        source: postcard::Error,
    },
    /// The file is damaged in a way the storage engine could not report as an error
    /// (it failed an internal check).
    #[error("{path}: the job store is damaged ({detail}). Move it aside and start with `picluster coordinator --new-store` (its jobs, revocations, quarantines, drains, enrolled names and join tokens are then lost)")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What the storage engine said.
        detail: String,
    },
    /// etcd did not answer, or refused a request (the message names the endpoints
    /// and etcd's reason). Retrying can help once etcd is back.
    #[cfg(feature = "etcd")]
    #[error("etcd at {endpoints}: {source} (is etcd running and reachable from this host?)")]
    Etcd {
        /// etcd's client URLs.
        endpoints: String,
        /// What the client said.
        source: etcd_client::Error,
    },
    /// A write guarded by the leader key was refused: another coordinator was
    /// elected since this one was. This one stops acting; nothing it had not made
    /// durable was acknowledged.
    #[error(
        "{store}: this coordinator is no longer the leader (another was elected): it stops acting"
    )]
    Deposed {
        /// The store.
        store: String,
    },
    /// A key in etcd does not decode.
    #[error("etcd key {key}: stored value does not decode: {source}")]
    EtcdDecode {
        /// The key.
        key: String,
        /// The cause.
        source: postcard::Error,
    },
    /// The journal in etcd was written by another version.
    #[error("etcd key {key}: journal format {found}, but this build reads {JOURNAL_FORMAT}: run the picluster version that wrote it")]
    EtcdFormat {
        /// The key.
        key: String,
        /// The format found.
        found: u32,
    },
    /// The thread that talks to etcd could not start.
    #[error("cannot start the etcd client's thread: {0}")]
    EtcdRuntime(std::io::Error),
    /// The thread that talks to etcd is gone.
    #[error("the etcd client's thread has stopped")]
    EtcdGone,
    /// The stored jobs do not make a valid state.
    #[error("{store}: {source}. Move it aside and start with `picluster coordinator --new-store` (its jobs, revocations, quarantines, drains, enrolled names and join tokens are then lost)")]
    Recover {
        /// The store.
        store: String,
        /// The cause.
        source: RecoverError,
    },
}

/// What an opening error means for the operator. Only damage calls for moving the
/// file aside: a file held by another coordinator, or not permitted, is fine, and
/// moving it would lose its jobs.
fn open_advice(error: &redb::DatabaseError) -> String {
    use redb::{DatabaseError, StorageError};
    use std::io::ErrorKind;
    const LOST: &str = "move it aside and start with `picluster coordinator --new-store` (its jobs, revocations, quarantines, drains, enrolled names and join tokens are then lost)";
    match error {
        DatabaseError::DatabaseAlreadyOpen => "the job store is in use by another process: another coordinator runs on this cluster directory; stop it first (the file is fine: do not move it)".into(),
        DatabaseError::Storage(StorageError::Io(e)) if e.kind() == ErrorKind::PermissionDenied => format!("cannot open the job store: {e}: run the coordinator as the user that owns the cluster directory (the package's unit runs it as picluster), or give that user the file (the file is fine: do not move it)"),
        DatabaseError::Storage(StorageError::Io(e)) if e.kind() == ErrorKind::InvalidData => format!("the job store is damaged ({e}): {LOST}"),
        DatabaseError::Storage(StorageError::Corrupted(_)) => format!("the job store is damaged ({error}): {LOST}"),
        DatabaseError::UpgradeRequired(_) => format!("the job store's file format is older than this build reads ({error}): run the picluster version that wrote it"),
        other => format!("cannot open the coordinator's job store: {other}"),
    }
}

/// The journal in one redb file.
pub struct RedbStore {
    path: PathBuf,
    db: Database,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish()
    }
}

impl RedbStore {
    /// Opens the store at `path`, creating it (and nothing else) if no file is there.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        contained(path, || RedbStore::open_inner(path))
    }

    fn open_inner(path: &Path) -> Result<RedbStore, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let db = if path.exists() {
            Database::open(path).map_err(open_error)?
        } else {
            Database::create(path).map_err(open_error)?
        };
        // Job parameters and cracked preimages: the coordinator's alone, whatever the
        // umask it was created under.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let private = std::fs::Permissions::from_mode(0o600);
            std::fs::set_permissions(path, private).map_err(|e| StoreError::Storage {
                path: path.to_path_buf(),
                source: redb::Error::Io(e),
            })?;
        }
        let store = RedbStore {
            path: path.to_path_buf(),
            db,
        };
        store.init()?;
        Ok(store)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn st<E: Into<redb::Error>>(&self, e: E) -> StoreError {
        StoreError::Storage {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    /// Creates the tables and stamps the format of a new store; checks an old one's.
    fn init(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.st(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.st(e))?;
            let found = meta
                .get("format")
                .map_err(|e| self.st(e))?
                .map(|v| v.value());
            match found {
                Some(found) if found > u64::from(JOURNAL_FORMAT) => {
                    return Err(StoreError::NewerFormat {
                        path: self.path.clone(),
                        found,
                    })
                }
                Some(found) if found < u64::from(JOURNAL_FORMAT) => {
                    return Err(StoreError::OlderFormat {
                        path: self.path.clone(),
                        found,
                    })
                }
                Some(_) => {}
                None => {
                    meta.insert("format", u64::from(JOURNAL_FORMAT))
                        .map_err(|e| self.st(e))?;
                }
            }
            txn.open_table(JOBS).map_err(|e| self.st(e))?;
            txn.open_table(SOLUTIONS).map_err(|e| self.st(e))?;
            txn.open_table(OUTPUTS).map_err(|e| self.st(e))?;
            txn.open_table(DRAINED).map_err(|e| self.st(e))?;
            txn.open_table(QUARANTINED).map_err(|e| self.st(e))?;
            txn.open_table(REVOKED).map_err(|e| self.st(e))?;
            txn.open_table(TOKENS).map_err(|e| self.st(e))?;
            txn.open_table(ENROLLED).map_err(|e| self.st(e))?;
            txn.open_table(FINDERS).map_err(|e| self.st(e))?;
            txn.open_table(DRAIN_REASONS).map_err(|e| self.st(e))?;
            txn.open_table(RENEWED).map_err(|e| self.st(e))?;
            txn.open_table(STARTED).map_err(|e| self.st(e))?;
            txn.open_table(REJECTED).map_err(|e| self.st(e))?;
            txn.open_table(SHARE_BITS).map_err(|e| self.st(e))?;
            txn.open_table(LEASE_SHARES).map_err(|e| self.st(e))?;
        }
        txn.commit().map_err(|e| self.st(e))
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        bytes: &[u8],
    ) -> Result<T, StoreError> {
        postcard::from_bytes(bytes).map_err(|source| StoreError::Decode {
            path: self.path.clone(),
            what: what.to_string(),
            source,
        })
    }
}

impl Store for RedbStore {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn load(&mut self) -> Result<Snapshot, StoreError> {
        let path = self.path.clone();
        contained(&path, || self.load_inner())
    }

    fn commit(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let path = self.path.clone();
        contained(&path, || self.commit_inner(records))
    }
}

/// Runs a call into redb, turning a failed internal assertion (some damaged files
/// trigger one in redb 4.1: a truncated one does) into [`StoreError::Damaged`]: the
/// coordinator then refuses the file with a clear message instead of crashing, and
/// without the panic message and backtrace note the default hook would print first
/// (an operator reads those as a crash). Whatever the call had opened is dropped with
/// it.
fn contained<T>(
    path: &Path,
    call: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    quiet_panics_in_store_calls();
    IN_STORE_CALL.with(|f| f.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call));
    IN_STORE_CALL.with(|f| f.set(false));
    result.unwrap_or_else(|payload| {
        let detail = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "an internal check of the storage engine failed".into());
        Err(StoreError::Damaged {
            path: path.to_path_buf(),
            detail,
        })
    })
}

thread_local! {
    /// This thread is inside [`contained`]: a panic here is reported as damage.
    static IN_STORE_CALL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Wraps the panic hook, once, so that a panic inside [`contained`] prints nothing;
/// every other panic goes to the hook that was there before.
fn quiet_panics_in_store_calls() {
    static WRAPPED: std::sync::Once = std::sync::Once::new();
    WRAPPED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_STORE_CALL.with(|f| f.get()) {
                previous(info);
            }
        }));
    });
}

impl RedbStore {
    fn load_inner(&mut self) -> Result<Snapshot, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.st(e))?;
        let mut snapshot = Snapshot::default();
        let meta = txn.open_table(META).map_err(|e| self.st(e))?;
        snapshot.next_job = meta
            .get("next_job")
            .map_err(|e| self.st(e))?
            .map_or(0, |v| v.value());
        snapshot.next_lease = meta
            .get("next_lease")
            .map_err(|e| self.st(e))?
            .map_or(0, |v| v.value());
        for row in txn
            .open_table(JOBS)
            .map_err(|e| self.st(e))?
            .iter()
            .map_err(|e| self.st(e))?
        {
            let (id, bytes) = row.map_err(|e| self.st(e))?;
            let id = JobId(id.value());
            let job: StoredJob = self.decode(&format!("job {id}"), bytes.value())?;
            snapshot.jobs.insert(id, job);
        }
        for row in txn
            .open_table(SOLUTIONS)
            .map_err(|e| self.st(e))?
            .iter()
            .map_err(|e| self.st(e))?
        {
            let (key, bytes) = row.map_err(|e| self.st(e))?;
            let (id, index) = key.value();
            let solution: Solution =
                self.decode(&format!("solution {index} of j{id}"), bytes.value())?;
            snapshot.apply(Record::Solution(JobId(id), solution));
        }
        for row in txn
            .open_table(OUTPUTS)
            .map_err(|e| self.st(e))?
            .iter()
            .map_err(|e| self.st(e))?
        {
            let (key, bytes) = row.map_err(|e| self.st(e))?;
            let (id, n) = key.value();
            let output: ChunkOutput =
                self.decode(&format!("result {n} of j{id}"), bytes.value())?;
            snapshot.apply(Record::Output(JobId(id), n, output));
        }
        for row in txn
            .open_table(DRAINED)
            .map_err(|e| self.st(e))?
            .iter()
            .map_err(|e| self.st(e))?
        {
            let (name, ()) = row.map_err(|e| self.st(e)).map(|(k, v)| (k, v.value()))?;
            snapshot.drained.insert(name.value().to_string());
        }
        for row in txn
            .open_table(QUARANTINED)
            .map_err(|e| self.st(e))?
            .iter()
            .map_err(|e| self.st(e))?
        {
            let (name, ()) = row.map_err(|e| self.st(e)).map(|(k, v)| (k, v.value()))?;
            snapshot.quarantined.insert(name.value().to_string());
        }
        for row in txn
            .open_table(REVOKED)
            .map_err(|e| self.st(e))?
            .iter()
            .map_err(|e| self.st(e))?
        {
            let (name, at) = row.map_err(|e| self.st(e))?;
            snapshot
                .revoked
                .insert(name.value().to_string(), at.value());
        }
        for row in txn
            .open_table(SHARE_BITS)
            .map_err(|e| self.st(e))?
            .iter()
            .map_err(|e| self.st(e))?
        {
            let (key, bits) = row.map_err(|e| self.st(e))?;
            let (job, lease) = key.value();
            snapshot
                .share_bits
                .entry(JobId(job))
                .or_default()
                .insert(lease, bits.value());
        }
        for row in txn
            .open_table(LEASE_SHARES)
            .map_err(|e| self.st(e))?
            .iter()
            .map_err(|e| self.st(e))?
        {
            let (key, _) = row.map_err(|e| self.st(e))?;
            let (job, lease, index) = key.value();
            snapshot
                .lease_shares
                .entry(JobId(job))
                .or_default()
                .entry(lease)
                .or_default()
                .insert(index);
        }
        for row in txn
            .open_table(REJECTED)
            .map_err(|e| self.st(e))?
            .iter()
            .map_err(|e| self.st(e))?
        {
            let (name, n) = row.map_err(|e| self.st(e))?;
            snapshot
                .rejected
                .insert(name.value().to_string(), n.value());
        }
        for row in txn
            .open_table(STARTED)
            .map_err(|e| self.st(e))?
            .iter()
            .map_err(|e| self.st(e))?
        {
            let (job, at) = row.map_err(|e| self.st(e))?;
            snapshot.started.insert(JobId(job.value()), at.value());
        }
        for row in txn
            .open_table(RENEWED)
            .map_err(|e| self.st(e))?
            .iter()
            .map_err(|e| self.st(e))?
        {
            let (name, at) = row.map_err(|e| self.st(e))?;
            snapshot
                .renewed
                .insert(name.value().to_string(), at.value());
        }
        for row in txn
            .open_table(TOKENS)
            .map_err(|e| self.st(e))?
            .iter()
            .map_err(|e| self.st(e))?
        {
            let (id, bytes) = row.map_err(|e| self.st(e))?;
            let id = id.value().to_string();
            let token: StoredToken = self.decode(&format!("join token {id}"), bytes.value())?;
            snapshot.tokens.insert(id, token);
        }
        for row in txn
            .open_table(ENROLLED)
            .map_err(|e| self.st(e))?
            .iter()
            .map_err(|e| self.st(e))?
        {
            let (name, role) = row.map_err(|e| self.st(e))?;
            let role = Role::from_unit(role.value()).ok_or_else(|| StoreError::Decode {
                path: self.path.clone(),
                what: format!("role of enrolled name {}", name.value()),
                source: postcard::Error::DeserializeBadEnum,
            })?;
            snapshot.enrolled.insert(name.value().to_string(), role);
        }
        for row in txn
            .open_table(FINDERS)
            .map_err(|e| self.st(e))?
            .iter()
            .map_err(|e| self.st(e))?
        {
            let (key, worker) = row.map_err(|e| self.st(e))?;
            let (id, index) = key.value();
            snapshot.apply(Record::Finder(JobId(id), index, worker.value().to_string()));
        }
        for row in txn
            .open_table(DRAIN_REASONS)
            .map_err(|e| self.st(e))?
            .iter()
            .map_err(|e| self.st(e))?
        {
            let (name, reason) = row.map_err(|e| self.st(e))?;
            snapshot
                .drain_reasons
                .insert(name.value().to_string(), reason.value().to_string());
        }
        Ok(snapshot)
    }

    fn commit_inner(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.st(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.st(e))?;
            let mut jobs = txn.open_table(JOBS).map_err(|e| self.st(e))?;
            let mut solutions = txn.open_table(SOLUTIONS).map_err(|e| self.st(e))?;
            let mut outputs = txn.open_table(OUTPUTS).map_err(|e| self.st(e))?;
            let mut drained = txn.open_table(DRAINED).map_err(|e| self.st(e))?;
            let mut quarantined = txn.open_table(QUARANTINED).map_err(|e| self.st(e))?;
            let mut revoked = txn.open_table(REVOKED).map_err(|e| self.st(e))?;
            let mut renewed = txn.open_table(RENEWED).map_err(|e| self.st(e))?;
            let mut started = txn.open_table(STARTED).map_err(|e| self.st(e))?;
            let mut rejected = txn.open_table(REJECTED).map_err(|e| self.st(e))?;
            let mut share_bits = txn.open_table(SHARE_BITS).map_err(|e| self.st(e))?;
            let mut lease_shares = txn.open_table(LEASE_SHARES).map_err(|e| self.st(e))?;
            let mut tokens = txn.open_table(TOKENS).map_err(|e| self.st(e))?;
            let mut enrolled = txn.open_table(ENROLLED).map_err(|e| self.st(e))?;
            let mut finders = txn.open_table(FINDERS).map_err(|e| self.st(e))?;
            let mut reasons = txn.open_table(DRAIN_REASONS).map_err(|e| self.st(e))?;
            for record in records {
                match record {
                    Record::NextJob(next) => {
                        meta.insert("next_job", *next).map_err(|e| self.st(e))?;
                    }
                    Record::NextLease(next) => {
                        meta.insert("next_lease", *next).map_err(|e| self.st(e))?;
                    }
                    Record::Job(id, job) => {
                        jobs.insert(id.0, encode(job).as_slice())
                            .map_err(|e| self.st(e))?;
                    }
                    Record::Solution(id, solution) => {
                        solutions
                            .insert((id.0, solution.index), encode(solution).as_slice())
                            .map_err(|e| self.st(e))?;
                    }
                    Record::Output(id, n, output) => {
                        outputs
                            .insert((id.0, *n), encode(output).as_slice())
                            .map_err(|e| self.st(e))?;
                    }
                    Record::Forget(id) => {
                        jobs.remove(id.0).map_err(|e| self.st(e))?;
                        solutions
                            .retain_in((id.0, 0)..=(id.0, u64::MAX), |_, _| false)
                            .map_err(|e| self.st(e))?;
                        outputs
                            .retain_in((id.0, 0)..=(id.0, u64::MAX), |_, _| false)
                            .map_err(|e| self.st(e))?;
                        finders
                            .retain_in((id.0, 0)..=(id.0, u64::MAX), |_, _| false)
                            .map_err(|e| self.st(e))?;
                        share_bits
                            .retain_in((id.0, 0)..=(id.0, u64::MAX), |_, _| false)
                            .map_err(|e| self.st(e))?;
                        lease_shares
                            .retain_in((id.0, 0, 0)..=(id.0, u64::MAX, u64::MAX), |_, _| false)
                            .map_err(|e| self.st(e))?;
                        started.remove(id.0).map_err(|e| self.st(e))?;
                    }
                    Record::Drained(name, true) => {
                        drained.insert(name.as_str(), ()).map_err(|e| self.st(e))?;
                    }
                    Record::Drained(name, false) => {
                        drained.remove(name.as_str()).map_err(|e| self.st(e))?;
                        reasons.remove(name.as_str()).map_err(|e| self.st(e))?;
                    }
                    Record::Quarantined(name, true) => {
                        quarantined
                            .insert(name.as_str(), ())
                            .map_err(|e| self.st(e))?;
                    }
                    Record::Quarantined(name, false) => {
                        quarantined.remove(name.as_str()).map_err(|e| self.st(e))?;
                    }
                    Record::Revoked(name, at) => {
                        revoked.insert(name.as_str(), *at).map_err(|e| self.st(e))?;
                    }
                    Record::Renewed(name, at) => {
                        renewed.insert(name.as_str(), *at).map_err(|e| self.st(e))?;
                    }
                    Record::Started(id, at) => {
                        started.insert(id.0, *at).map_err(|e| self.st(e))?;
                    }
                    Record::Rejected(name, n) => {
                        rejected.insert(name.as_str(), *n).map_err(|e| self.st(e))?;
                    }
                    Record::ShareBits(id, bits) => {
                        share_bits
                            .retain_in((id.0, 0)..=(id.0, u64::MAX), |_, _| false)
                            .map_err(|e| self.st(e))?;
                        for (lease, b) in bits {
                            share_bits
                                .insert((id.0, *lease), *b)
                                .map_err(|e| self.st(e))?;
                        }
                    }
                    Record::LeaseShares(id, shares) => {
                        lease_shares
                            .retain_in((id.0, 0, 0)..=(id.0, u64::MAX, u64::MAX), |_, _| false)
                            .map_err(|e| self.st(e))?;
                        for (lease, indices) in shares {
                            for index in indices {
                                lease_shares
                                    .insert((id.0, *lease, *index), ())
                                    .map_err(|e| self.st(e))?;
                            }
                        }
                    }
                    Record::Token(id, token) => {
                        tokens
                            .insert(id.as_str(), encode(token).as_slice())
                            .map_err(|e| self.st(e))?;
                    }
                    Record::TokenGone(id) => {
                        tokens.remove(id.as_str()).map_err(|e| self.st(e))?;
                    }
                    Record::Enrolled(name, role) => {
                        enrolled
                            .insert(name.as_str(), role.as_str())
                            .map_err(|e| self.st(e))?;
                    }
                    Record::Finder(id, index, worker) => {
                        finders
                            .insert((id.0, *index), worker.as_str())
                            .map_err(|e| self.st(e))?;
                    }
                    Record::DrainReason(name, reason) => {
                        reasons
                            .insert(name.as_str(), reason.as_str())
                            .map_err(|e| self.st(e))?;
                    }
                }
            }
        }
        txn.commit().map_err(|e| self.st(e))
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Records hold plain data (no maps with non-string keys, no unsized sequences):
    // postcard encodes them without fail.
    postcard::to_stdvec(value).expect("a record always encodes")
}
