//! Audits: a sample of finished leases searched again by another worker. Workers
//! here scan for real (the job's kernel for solutions, its share kernel for shares)
//! and report what their conduct says; the audits must catch a worker that hides
//! solutions, one that skips part of its ranges, and an auditor that skips its
//! audit, and never an honest worker. Every run ends with the job exact: every
//! index counted once and every solution a single-process scan finds.

use super::*;
use picluster_core::kernel::sha256d::Target;
use std::collections::VecDeque;
use std::ops::Range;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conduct {
    Honest,
    /// Hashes every index, reports its shares, keeps the solutions of its own
    /// leases to itself (and reports those of its audits, to pass them).
    HidesSolutions,
    /// Searches the first half of each lease and claims all of it.
    SkipsHalf,
    /// Honest on its own leases; on an audit, reports no shares.
    LazyAuditor,
}

/// About one hash in 65,536 meets it: a handful of solutions in 2^20 nonces.
fn rare_target() -> Target {
    let mut t = [0xff; 32];
    t[0] = 0;
    t[1] = 0;
    Target(t)
}

/// A lease as the simulated worker holds it.
struct Held {
    lease: LeaseId,
    range: Range<u64>,
    /// The share target it was given at.
    bits: u8,
    /// Its range was searched before: an audit.
    audit: bool,
}

struct Run {
    h: Harness,
    out: Vec<Transmit>,
    report: JobReport,
    job: Sha256dJob,
}

/// One job of `keyspace` nonces over `workers` (chunks of 2^16), every finished
/// lease audited with probability `fraction`, to its end.
fn run(workers: &[(ConnId, &str, Conduct)], keyspace: u64, fraction: f64) -> Run {
    let mut h = Harness::new(CoordinatorConfig {
        min_chunk: 1 << 16,
        max_chunk: 1 << 16,
        audit_fraction: fraction,
        audit_seed: 7,
        ..CoordinatorConfig::default()
    });
    for (conn, name, _) in workers {
        h.core
            .handle_connected(h.now, *conn, PeerIdentity::new(Role::Worker, *name));
        h.worker_says(*conn, hello_at(PROTOCOL_MINOR));
    }
    let job = Sha256dJob::new(vectors()[0].header, Some(rare_target()), 0..keyspace, 0).unwrap();
    h.submit(&job, SearchMode::All);
    let kernel = job.kernel();
    let conduct: BTreeMap<ConnId, Conduct> = workers.iter().map(|(c, _, k)| (*c, *k)).collect();
    let mut bits: BTreeMap<ConnId, u8> = BTreeMap::new();
    // Each worker's leases, in order.
    let mut held: BTreeMap<ConnId, VecDeque<Held>> = BTreeMap::new();
    let mut searched: Vec<Range<u64>> = Vec::new();
    let mut all = Vec::new();
    for _round in 0..20_000 {
        let out = h.drain();
        for t in &out {
            match t {
                Transmit::ToWorker(c, CoordToWorker::ShareTarget(st)) => {
                    bits.insert(*c, st.bits);
                }
                Transmit::ToWorker(c, CoordToWorker::Assign(a)) => {
                    let audit = searched
                        .iter()
                        .any(|r| r.start <= a.start && a.end <= r.end);
                    let b = bits.get(c).copied().expect("a share target before work");
                    held.entry(*c).or_default().push_back(Held {
                        lease: a.lease,
                        range: a.start..a.end,
                        bits: b,
                        audit,
                    });
                }
                Transmit::ToWorker(c, CoordToWorker::Stop(Stop { lease })) => {
                    held.entry(*c).or_default().retain(|l| l.lease != *lease);
                }
                Transmit::Close(c, _) => {
                    held.remove(c);
                }
                _ => {}
            }
        }
        all.extend(out.iter().cloned());
        if let Some(report) = finished(&out) {
            return Run {
                h,
                out: all,
                report,
                job,
            };
        }
        h.now += Duration::from_millis(10);
        for (conn, leases) in held.iter_mut() {
            let Some(Held {
                lease,
                range,
                bits: b,
                audit,
            }) = leases.pop_front()
            else {
                continue;
            };
            let searched_part = match conduct[conn] {
                Conduct::SkipsHalf => range.start..range.start + (range.end - range.start) / 2,
                _ => range.clone(),
            };
            let shares = shares_of(&job, searched_part.clone(), u32::from(b));
            let mut solutions = Vec::new();
            kernel.scan(searched_part, &mut solutions);
            let report_shares = !(audit && conduct[conn] == Conduct::LazyAuditor);
            if report_shares && !shares.is_empty() {
                h.core.handle_inbound(
                    h.now,
                    *conn,
                    Inbound::Worker(WorkerToCoord::Shares(Found {
                        lease,
                        indices: shares,
                    })),
                );
            }
            let hides = conduct[conn] == Conduct::HidesSolutions && !audit;
            if !hides && !solutions.is_empty() {
                h.core.handle_inbound(
                    h.now,
                    *conn,
                    Inbound::Worker(WorkerToCoord::Found(Found {
                        lease,
                        indices: solutions,
                    })),
                );
            }
            h.core.handle_inbound(
                h.now,
                *conn,
                Inbound::Worker(WorkerToCoord::Progress(Progress {
                    lease,
                    position: range.end,
                })),
            );
            if !audit {
                searched.push(range);
            }
        }
        if h.core.poll_timeout().is_some_and(|t| t <= h.now) {
            h.core.handle_timeout(h.now);
        }
    }
    panic!("the job did not end");
}

/// The close of `conn`, as its text.
fn close_text(out: &[Transmit], conn: ConnId) -> Option<String> {
    out.iter().find_map(|t| match t {
        Transmit::Close(c, reason) if *c == conn => Some(reason.to_string()),
        _ => None,
    })
}

/// The job is exact: every index once, and the solutions of a plain scan.
fn assert_exact(r: &Run) {
    assert_eq!(r.report.state, JobState::Completed);
    assert_eq!(r.report.hashes, r.job.keyspace());
    let counted: u64 = r.report.contributions.iter().map(|c| c.hashes).sum();
    assert_eq!(counted, r.job.keyspace());
    let mut expected = Vec::new();
    r.job.kernel().scan(0..r.job.keyspace(), &mut expected);
    assert!(!expected.is_empty());
    let found: Vec<u64> = r.report.solutions.iter().map(|s| s.index).collect();
    assert_eq!(found, expected);
}

#[test]
fn honest_workers_pass_every_audit_and_the_job_is_exact() {
    let workers = [
        (ConnId(1), "a", Conduct::Honest),
        (ConnId(2), "b", Conduct::Honest),
        (ConnId(3), "c", Conduct::Honest),
    ];
    let r = run(&workers, 1 << 20, 1.0);
    assert_exact(&r);
    let stats = r.h.core.stats();
    assert_eq!(stats.violations, 0);
    assert_eq!(stats.audits_failed, 0);
    assert!(stats.audits_passed >= 10, "{stats:?}");
    // Every regular lease was audited once, in pieces: as much searched again as
    // committed, less the leases that ended while nobody else could take them.
    assert!(
        stats.audited_indices > (1 << 20) / 2 && stats.audited_indices <= 1 << 20,
        "{stats:?}"
    );
    assert!(closes(&r.out).is_empty(), "{:?}", closes(&r.out));
}

#[test]
fn a_worker_that_hides_its_solutions_is_caught_by_an_audit_and_they_are_found() {
    let workers = [
        (ConnId(1), "hider", Conduct::HidesSolutions),
        (ConnId(2), "honest", Conduct::Honest),
    ];
    let r = run(&workers, 1 << 20, 1.0);
    // Its shares were all in order: only the audit saw what it kept.
    let text = close_text(&r.out, ConnId(1)).expect("the hider is closed");
    assert!(
        text.starts_with("an audit of a range it reported as searched found solution ")
            && text.contains("worker hider is quarantined"),
        "{text}"
    );
    assert_eq!(closes(&r.out), vec![(ConnId(1), CloseCode::BadResult)]);
    assert_exact(&r);
    // What it committed was searched again, and every solution is the honest one's.
    assert!(r.report.contributions.iter().all(|c| c.worker == "honest"));
    let stats = r.h.core.stats();
    assert!(stats.audits_failed >= 1, "{stats:?}");
    let metrics = r.h.core.metrics(r.h.now);
    let hider = metrics.workers.iter().find(|w| w.name == "hider").unwrap();
    assert_eq!(hider.totals.rejected, 1);
    assert_eq!(hider.state, Some(WorkerState::Quarantined));
}

#[test]
fn a_worker_that_skips_half_of_each_range_is_caught_by_an_audit() {
    let workers = [
        (ConnId(1), "skipper", Conduct::SkipsHalf),
        (ConnId(2), "honest", Conduct::Honest),
    ];
    let r = run(&workers, 1 << 20, 1.0);
    let text = close_text(&r.out, ConnId(1)).expect("the skipper is closed");
    assert!(
        text.starts_with("an audit of job j1 found share ")
            && text.contains("skipper is quarantined")
            || text.contains("shares where the progress claimed implies"),
        "{text}"
    );
    assert_eq!(closes(&r.out), vec![(ConnId(1), CloseCode::BadResult)]);
    assert_exact(&r);
}

#[test]
fn an_auditor_that_skips_its_audit_is_quarantined_and_the_worker_it_audited_is_not() {
    let workers = [
        (ConnId(1), "honest-1", Conduct::Honest),
        (ConnId(2), "lazy-auditor", Conduct::LazyAuditor),
        (ConnId(3), "honest-3", Conduct::Honest),
    ];
    let r = run(&workers, 1 << 20, 1.0);
    let text = close_text(&r.out, ConnId(2)).expect("the lazy auditor is closed");
    assert!(
        text.starts_with("an audit of job j1 found share ")
            && text.contains("lazy-auditor is quarantined"),
        "{text}"
    );
    assert_eq!(closes(&r.out), vec![(ConnId(2), CloseCode::BadResult)]);
    assert_exact(&r);
}

#[test]
fn a_lone_worker_is_not_audited_and_a_job_with_audits_off_has_none() {
    let r = run(&[(ConnId(1), "alone", Conduct::Honest)], 1 << 19, 1.0);
    assert_exact(&r);
    let stats = r.h.core.stats();
    assert_eq!(
        (
            stats.audits_passed,
            stats.audits_failed,
            stats.audited_indices
        ),
        (0, 0, 0)
    );
    let pair = [
        (ConnId(1), "a", Conduct::Honest),
        (ConnId(2), "b", Conduct::HidesSolutions),
    ];
    let r = run(&pair, 1 << 19, 0.0);
    // Without audits a hider is not caught: its solutions are missing.
    assert_eq!(r.h.core.stats().audited_indices, 0);
    assert!(closes(&r.out).is_empty());
    let mut expected = Vec::new();
    r.job.kernel().scan(0..r.job.keyspace(), &mut expected);
    assert!(r.report.solutions.len() < expected.len());
}
