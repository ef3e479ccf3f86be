//! The journal in etcd ([`EtcdStore`]): the same records as the redb store, one key
//! per row under `/picluster/<cluster-id>/`, each key holding the last [`Record`]
//! written for its row (postcard), so loading is folding every key's record with
//! [`Snapshot::apply`], exactly as the records were meant. A `Forget` deletes the
//! job's keys, so the store's size follows the jobs kept, not the jobs ever run.
//!
//! Fencing happens here, at the store: every transaction compares the leader key's
//! creation revision with the one this coordinator was elected under. A leader
//! deposed while it was not looking (frozen, partitioned) has its first write
//! refused ([`StoreError::Deposed`]) and stops, the same path as a failed commit.
//!
//! Transactions are sized to etcd's defaults (`--max-txn-ops 128`,
//! `--max-request-bytes 1.5 MiB`): a batch is folded by key (the last record of a row
//! wins) and written in as few guarded transactions as fit [`MAX_TXN_OPS`] and
//! [`MAX_TXN_BYTES`]. A batch too big for one transaction is written in order, so a
//! crash between two leaves the store as the records up to a row boundary made it;
//! the replies that wait for the batch are sent only when all of it is written.
//!
//! etcd's client is async; the store runs it on a thread of its own with its own
//! runtime, so the coordinator's journal thread (which calls [`Store::commit`]) and
//! its event loop (which calls [`Store::load`] once) only wait on a channel.

use super::EtcdOptions;
use crate::coordinator::{Record, Snapshot, JOURNAL_FORMAT};
use crate::service::{Store, StoreError};
use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use std::collections::BTreeMap;
use std::sync::mpsc;

/// Operations per transaction (etcd's default `--max-txn-ops` is 128; the guard's
/// compare is counted apart, the writer key is one more).
pub const MAX_TXN_OPS: usize = 120;
/// Bytes of keys and values per transaction (etcd's default `--max-request-bytes`
/// is 1.5 MiB, which the request's framing shares).
pub const MAX_TXN_BYTES: usize = 1 << 20;
/// Under the prefix: the leader key's creation revision of the last write, put by
/// every write.
pub const WRITER_KEY: &str = "meta/writer";
/// Retries of a transaction that failed in transport (its answer lost, or the
/// client's balancer still picking a member that just died), 150 ms apart: about as
/// long as etcd takes to elect a new leader of its own.
const COMMIT_RETRIES: u32 = 10;
/// Keys read per request while loading.
const PAGE: i64 = 1000;

/// What one record does to the keys.
#[derive(Debug, PartialEq, Eq)]
enum Op {
    Put(String, Vec<u8>),
    Delete(String),
    DeletePrefix(String),
}

/// The key of each row a record writes, and the ops that carry it out.
fn ops_of(prefix: &str, record: &Record) -> Vec<Op> {
    let job = |table: &str, id: u64| format!("{prefix}{table}/{id:020}");
    let row = |table: &str, id: u64, n: u64| format!("{prefix}{table}/{id:020}/{n:020}");
    let named = |table: &str, name: &str| format!("{prefix}{table}/{name}");
    let put = |key: String| vec![Op::Put(key, encode(record))];
    match record {
        Record::NextJob(_) => put(format!("{prefix}meta/next_job")),
        Record::NextLease(_) => put(format!("{prefix}meta/next_lease")),
        Record::Job(id, _) => put(job("jobs", id.0)),
        Record::Solution(id, s) => put(row("solutions", id.0, s.index)),
        Record::Output(id, n, _) => put(row("outputs", id.0, *n)),
        Record::Finder(id, index, _) => put(row("finders", id.0, *index)),
        Record::Started(id, _) => put(job("started", id.0)),
        Record::ShareBits(id, bits) if bits.is_empty() => vec![Op::Delete(job("share_bits", id.0))],
        Record::ShareBits(id, _) => put(job("share_bits", id.0)),
        Record::LeaseShares(id, s) if s.is_empty() => {
            vec![Op::Delete(job("lease_shares", id.0))]
        }
        Record::LeaseShares(id, _) => put(job("lease_shares", id.0)),
        Record::Forget(id) => vec![
            Op::Delete(job("jobs", id.0)),
            Op::Delete(job("started", id.0)),
            Op::Delete(job("share_bits", id.0)),
            Op::Delete(job("lease_shares", id.0)),
            Op::DeletePrefix(format!("{}/", job("solutions", id.0))),
            Op::DeletePrefix(format!("{}/", job("outputs", id.0))),
            Op::DeletePrefix(format!("{}/", job("finders", id.0))),
        ],
        Record::Drained(name, true) => put(named("drained", name)),
        Record::Drained(name, false) => vec![
            Op::Delete(named("drained", name)),
            Op::Delete(named("drain_reasons", name)),
        ],
        Record::DrainReason(name, _) => put(named("drain_reasons", name)),
        Record::Quarantined(name, true) => put(named("quarantined", name)),
        Record::Quarantined(name, false) => vec![Op::Delete(named("quarantined", name))],
        Record::Revoked(name, _) => put(named("revoked", name)),
        Record::Renewed(name, _) => put(named("renewed", name)),
        Record::Rejected(name, _) => put(named("rejected", name)),
        Record::Token(id, _) => put(named("tokens", id)),
        Record::TokenGone(id) => vec![Op::Delete(named("tokens", id))],
        Record::Enrolled(name, _) => put(named("enrolled", name)),
    }
}

fn encode(record: &Record) -> Vec<u8> {
    // Records hold plain data: postcard encodes them without fail.
    postcard::to_stdvec(record).expect("a record always encodes")
}

/// One transaction's worth of ops, folded by key: etcd refuses a transaction that
/// names a key twice (or a key inside a range it deletes).
#[derive(Default)]
struct Group {
    keys: BTreeMap<String, Option<Vec<u8>>>,
    prefixes: Vec<String>,
    bytes: usize,
}

impl Group {
    fn len(&self) -> usize {
        self.keys.len() + self.prefixes.len()
    }

    /// Adds `op`, or gives it back when it must go in the next transaction: this
    /// one is full, or deletes a range the key is in.
    fn add(&mut self, op: Op) -> Result<(), Op> {
        let size = match &op {
            Op::Put(k, v) => k.len() + v.len(),
            Op::Delete(k) | Op::DeletePrefix(k) => k.len(),
        };
        let full = self.len() >= MAX_TXN_OPS || self.bytes + size > MAX_TXN_BYTES;
        let inside = |k: &str| self.prefixes.iter().any(|p| k.starts_with(p.as_str()));
        let refused = match &op {
            Op::Put(k, _) | Op::Delete(k) => inside(k),
            Op::DeletePrefix(_) => false,
        };
        if refused || (full && self.len() > 0) {
            return Err(op);
        }
        self.bytes += size;
        match op {
            Op::Put(k, v) => {
                self.keys.insert(k, Some(v));
            }
            Op::Delete(k) => {
                self.keys.insert(k, None);
            }
            Op::DeletePrefix(p) => {
                // Earlier writes under it are deleted by it anyway.
                self.keys.retain(|k, _| !k.starts_with(&p));
                self.prefixes.push(p);
            }
        }
        Ok(())
    }

    fn ops(self) -> Vec<TxnOp> {
        let mut ops: Vec<TxnOp> = self
            .prefixes
            .into_iter()
            .map(|p| TxnOp::delete(p, Some(etcd_client::DeleteOptions::new().with_prefix())))
            .collect();
        for (key, value) in self.keys {
            ops.push(match value {
                Some(v) => TxnOp::put(key, v, None),
                None => TxnOp::delete(key, None),
            });
        }
        ops
    }
}

/// Splits `records` into folded groups, each one transaction, in order.
fn groups(prefix: &str, records: &[Record]) -> Vec<Group> {
    let mut out = vec![Group::default()];
    for record in records {
        for op in ops_of(prefix, record) {
            if let Err(op) = out.last_mut().expect("never empty").add(op) {
                let mut next = Group::default();
                // An empty group takes any op (one too big for etcd is refused there,
                // with etcd's reason).
                let _ = next.add(op);
                out.push(next);
            }
        }
    }
    out.retain(|g| g.len() > 0);
    out
}

/// The journal in etcd. See the module's documentation.
#[derive(Debug)]
pub struct EtcdStore {
    name: String,
    requests: mpsc::Sender<Request>,
}

enum Request {
    Load(mpsc::SyncSender<Result<Snapshot, StoreError>>),
    Commit(Vec<Record>, mpsc::SyncSender<Result<(), StoreError>>),
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Request::Load(_) => "Load",
            Request::Commit(..) => "Commit",
        })
    }
}

/// What every write is guarded by: the leader key and the creation revision this
/// coordinator was elected under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guard {
    /// The leader key.
    pub key: String,
    /// Its creation revision when this coordinator created it.
    pub revision: i64,
}

impl EtcdStore {
    /// Connects to etcd for cluster `options.cluster_id`, every write guarded by
    /// `guard`.
    pub fn open(options: &EtcdOptions, guard: Guard) -> Result<EtcdStore, StoreError> {
        let name = format!(
            "etcd {} ({})",
            options.endpoints.join(","),
            options.prefix()
        );
        let (requests, inbox) = mpsc::channel::<Request>();
        let (ready_tx, ready) = mpsc::sync_channel(1);
        let options = options.clone();
        std::thread::Builder::new()
            .name("picluster-etcd-store".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(StoreError::EtcdRuntime(e)));
                        return;
                    }
                };
                let client = match runtime.block_on(options.connect()) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut inner = Inner {
                    client,
                    prefix: options.prefix(),
                    endpoints: options.endpoints.join(","),
                    guard,
                };
                for request in inbox {
                    match request {
                        Request::Load(reply) => {
                            let _ = reply.send(runtime.block_on(inner.load()));
                        }
                        Request::Commit(records, reply) => {
                            let _ = reply.send(runtime.block_on(inner.commit(&records)));
                        }
                    }
                }
            })
            .map_err(StoreError::EtcdRuntime)?;
        ready.recv().map_err(|_| StoreError::EtcdGone)??;
        Ok(EtcdStore { name, requests })
    }

    fn ask<T>(
        &self,
        request: impl FnOnce(mpsc::SyncSender<Result<T, StoreError>>) -> Request,
    ) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests
            .send(request(reply))
            .map_err(|_| StoreError::EtcdGone)?;
        answer.recv().map_err(|_| StoreError::EtcdGone)?
    }
}

impl Store for EtcdStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        self.ask(Request::Load)
    }

    fn commit(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let records = records.to_vec();
        self.ask(|reply| Request::Commit(records, reply))
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

/// The store's thread's state.
struct Inner {
    client: Client,
    prefix: String,
    endpoints: String,
    guard: Guard,
}

impl Inner {
    fn etcd(&self, source: etcd_client::Error) -> StoreError {
        StoreError::Etcd {
            endpoints: self.endpoints.clone(),
            source,
        }
    }

    fn writer_key(&self) -> String {
        format!("{}{WRITER_KEY}", self.prefix)
    }

    fn guard(&self) -> Compare {
        Compare::create_revision(
            self.guard.key.clone(),
            CompareOp::Equal,
            self.guard.revision,
        )
    }

    /// Every key under the prefix, a page at a time, folded.
    async fn load(&mut self) -> Result<Snapshot, StoreError> {
        let mut snapshot = Snapshot::default();
        let end = prefix_end(&self.prefix);
        let mut from = self.prefix.clone().into_bytes();
        let format_key = format!("{}meta/format", self.prefix);
        loop {
            let options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            let page = self
                .client
                .get(from.clone(), Some(options))
                .await
                .map_err(|e| self.etcd(e))?;
            for kv in page.kvs() {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let bookkeeping = [format!("{}meta/term", self.prefix), self.writer_key()];
                if key == self.guard.key || bookkeeping.contains(&key) {
                    continue;
                }
                if key == format_key {
                    let found: u32 = postcard::from_bytes(kv.value()).map_err(|source| {
                        StoreError::EtcdDecode {
                            key: key.clone(),
                            source,
                        }
                    })?;
                    if found != JOURNAL_FORMAT {
                        return Err(StoreError::EtcdFormat { key, found });
                    }
                    continue;
                }
                let record: Record = postcard::from_bytes(kv.value())
                    .map_err(|source| StoreError::EtcdDecode { key, source })?;
                snapshot.apply(record);
            }
            match page.kvs().last() {
                Some(last) if page.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok(snapshot)
    }

    async fn commit(&mut self, records: &[Record]) -> Result<(), StoreError> {
        for group in groups(&self.prefix, records) {
            let mut ops = group.ops();
            // Who wrote it: an audit of etcd's history (the revisions of this key)
            // shows every accepted write's leader, in order.
            ops.push(TxnOp::put(
                self.writer_key(),
                self.guard.revision.to_string(),
                None,
            ));
            // A transaction whose answer was lost may have been applied: writing the
            // same rows again is harmless (each key holds its row's last record),
            // so a transport failure is retried a few times before it counts.
            let mut tries = 0;
            let answer = loop {
                let txn = Txn::new().when([self.guard()]).and_then(ops.clone());
                match self.client.txn(txn).await {
                    Ok(answer) => break answer,
                    Err(e) if tries < COMMIT_RETRIES => {
                        tries += 1;
                        tracing::warn!(error = %e, "etcd transaction failed: retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                    }
                    Err(e) => return Err(self.etcd(e)),
                }
            };
            if !answer.succeeded() {
                return Err(StoreError::Deposed {
                    store: format!("etcd {}", self.endpoints),
                });
            }
        }
        Ok(())
    }
}

/// The first key after every key that starts with `prefix`.
pub(super) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    // The prefix ends in '/', never 0xff.
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// Starts this leader's term: stamps the journal format in a new store, checks an
/// old one's, and counts the term up, all guarded. The term is the epoch that the
/// leader's lease ids carry.
pub(super) async fn begin_term(
    client: &mut Client,
    options: &EtcdOptions,
    guard: &Guard,
) -> Result<u64, StoreError> {
    let prefix = options.prefix();
    let etcd = |source| StoreError::Etcd {
        endpoints: options.endpoints.join(","),
        source,
    };
    let term_key = format!("{prefix}meta/term");
    let format_key = format!("{prefix}meta/format");
    let read = client
        .txn(Txn::new().and_then([
            TxnOp::get(term_key.clone(), None),
            TxnOp::get(format_key.clone(), None),
        ]))
        .await
        .map_err(etcd)?;
    let mut term = (0u64, 0i64);
    let mut format = None;
    for response in read.op_responses() {
        if let etcd_client::TxnOpResponse::Get(get) = response {
            for kv in get.kvs() {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                if key == term_key {
                    let value = postcard::from_bytes(kv.value()).map_err(|source| {
                        StoreError::EtcdDecode {
                            key: key.clone(),
                            source,
                        }
                    })?;
                    term = (value, kv.mod_revision());
                } else {
                    let found: u32 = postcard::from_bytes(kv.value()).map_err(|source| {
                        StoreError::EtcdDecode {
                            key: key.clone(),
                            source,
                        }
                    })?;
                    format = Some(found);
                }
            }
        }
    }
    if let Some(found) = format.filter(|f| *f != JOURNAL_FORMAT) {
        return Err(StoreError::EtcdFormat {
            key: format_key,
            found,
        });
    }
    let next = term.0 + 1;
    let mut writes = vec![TxnOp::put(
        term_key.clone(),
        postcard::to_stdvec(&next).expect("a u64 encodes"),
        None,
    )];
    if format.is_none() {
        writes.push(TxnOp::put(
            format_key,
            postcard::to_stdvec(&JOURNAL_FORMAT).expect("a u32 encodes"),
            None,
        ));
    }
    let answer = client
        .txn(
            Txn::new()
                .when([
                    Compare::create_revision(guard.key.clone(), CompareOp::Equal, guard.revision),
                    Compare::mod_revision(term_key, CompareOp::Equal, term.1),
                ])
                .and_then(writes),
        )
        .await
        .map_err(etcd)?;
    if !answer.succeeded() {
        return Err(StoreError::Deposed {
            store: format!("etcd {}", options.endpoints.join(",")),
        });
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;

    #[test]
    fn a_batch_is_folded_by_key_and_a_forget_drops_earlier_rows_of_its_job() {
        let p = "/picluster/c/";
        let records = vec![
            Record::NextJob(2),
            Record::NextJob(3),
            Record::Finder(JobId(1), 5, "w".into()),
            Record::Forget(JobId(1)),
            Record::Drained("w".into(), true),
        ];
        let split = groups(p, &records);
        assert_eq!(split.len(), 1);
        let g = &split[0];
        // next_job once (the last), the finder dropped (its prefix is deleted), four
        // single-key deletes of the forget, drained.
        assert_eq!(g.keys.len(), 6);
        assert_eq!(
            g.keys.get("/picluster/c/meta/next_job"),
            Some(&Some(encode(&Record::NextJob(3))))
        );
        assert_eq!(g.prefixes.len(), 3);
        assert!(!g.keys.keys().any(|k| k.contains("finders")));
    }

    #[test]
    fn a_write_under_a_range_deleted_in_the_same_batch_goes_in_the_next_transaction() {
        let p = "/picluster/c/";
        let records = vec![
            Record::Forget(JobId(1)),
            Record::Finder(JobId(1), 5, "w".into()),
        ];
        let split = groups(p, &records);
        assert_eq!(split.len(), 2);
        assert_eq!(split[1].keys.len(), 1);
    }

    #[test]
    fn big_batches_split_at_the_op_and_byte_limits() {
        let p = "/picluster/c/";
        let records: Vec<Record> = (0..300)
            .map(|i| Record::Drained(format!("w{i}"), true))
            .collect();
        let split = groups(p, &records);
        assert_eq!(
            split.iter().map(Group::len).collect::<Vec<_>>(),
            vec![120, 120, 60]
        );
        let big = "x".repeat(400_000);
        let records: Vec<Record> = (0..5)
            .map(|i| Record::DrainReason(format!("w{i}"), big.clone()))
            .collect();
        let split = groups(p, &records);
        assert_eq!(
            split.iter().map(Group::len).collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
    }
}
