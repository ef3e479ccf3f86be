//! Golden tests of the `--json` schema: every view serialized from fixed inputs,
//! compared byte for byte. A change here is a change of the schema scripts read:
//! add fields, do not rename or remove them.

use super::*;
use crate::cli::output::{CustomResult, Finished, JobFilter};
use picluster_core::identity::Role;
use picluster_core::ids::{JobId, WorkerId};
use picluster_core::job::SearchMode;
use picluster_core::kernel::{Solution, SolutionDetail};
use picluster_core::wire::{
    CertificateStatus, ChunkOutput, ClusterStatus, Contribution, CredentialReport, HashcashWork,
    JobDetail, JobProgress, JobReport, JobState, JobSummary, JobTimes, JobWorker, Revocation,
    TokenInfo, WorkSpec, WorkerState, WorkerStatus,
};

fn json(view: &impl View) -> String {
    let mut out = Vec::new();
    emit(&mut out, view, true).unwrap();
    String::from_utf8(out).unwrap()
}

fn text(view: &impl View) -> String {
    let mut out = Vec::new();
    emit(&mut out, view, false).unwrap();
    String::from_utf8(out).unwrap()
}

fn times() -> JobTimes {
    JobTimes {
        submitted_ms: 1_765_000_000_000,
        started_ms: Some(1_765_000_000_250),
        ended_ms: None,
    }
}

fn genesis() -> Solution {
    Solution {
        index: 2_083_236_893,
        hash: [0xab; 32],
        detail: SolutionDetail::Sha256d {
            nonce: 2_083_236_893,
            version: 1,
        },
    }
}

fn report() -> JobReport {
    JobReport {
        job: JobId(3),
        state: JobState::Completed,
        solutions: vec![genesis()],
        truncated: false,
        hashes: 4_000,
        keyspace: 4_000,
        elapsed_ms: 2_000,
        contributions: vec![Contribution {
            worker: "pi-1".into(),
            hashes: 4_000,
            chunks: 2,
        }],
        error: None,
        failure: None,
        kind: "sha256d".into(),
        found_by: vec![0],
        others: 0,
        times: JobTimes {
            ended_ms: Some(1_765_000_002_000),
            ..times()
        },
    }
}

fn summary(job: u64, state: JobState) -> JobSummary {
    JobSummary {
        progress: JobProgress {
            job: JobId(job),
            state,
            hashes: 10,
            keyspace: 100,
            elapsed_ms: 1_500,
            solutions: 1,
            workers: 2,
        },
        kind: "hashcash".into(),
        mode: SearchMode::All,
        priority: -1,
        client: "alice".into(),
        times: times(),
        waiting: state.is_final().then(|| "done".to_string()),
    }
}

fn worker(name: &str, id: u64, state: WorkerState) -> WorkerStatus {
    WorkerStatus {
        name: name.into(),
        worker: WorkerId(id),
        state,
        threads: 4,
        arch: "aarch64".into(),
        kernel_impl: "armsha2".into(),
        rate_hps: 12_500_000,
        hashes: 99,
        leases: 1,
        connected_ms: 61_000,
        kernels: vec!["demo".into()],
        drain_reason: (state == WorkerState::Drained).then(|| "new fan".to_string()),
        jobs: vec![JobId(7)],
        millicelsius: Some(61_500),
        throttled: Some(0),
        silent_ms: 250,
    }
}

#[test]
fn a_report_with_its_solution_and_workers() {
    let finished = Finished {
        report: report(),
        custom: None,
    };
    assert_eq!(
        json(&ReportView::from(&finished)),
        r#"{"job":"j3","state":"completed","kind":"sha256d","solutions":[{"nonce":2083236893,"version":1,"hash":"abababababababababababababababababababababababababababababababab","worker":"pi-1"}],"others":0,"truncated":false,"hashes":4000,"keyspace":4000,"seconds":2.0,"rate":2000.0,"rate_unit":"H/s","workers":[{"name":"pi-1","hashes":4000,"chunks":2}],"times":{"submitted_ms":1765000000000,"started_ms":1765000000250,"ended_ms":1765000002000},"error":null}"#
            .to_string()
            + "\n"
    );
    assert!(text(&ReportView::from(&finished)).starts_with("j3 completed: 1 solution\n"));
}

#[test]
fn a_custom_job_of_an_unknown_kernel_lists_its_raw_results() {
    let mut r = report();
    r.kind = "custom:demo".into();
    r.solutions.clear();
    r.found_by.clear();
    let finished = Finished {
        report: r,
        custom: Some(CustomResult {
            kernel: "demo".into(),
            covered: 4_000,
            output: None,
            raw: Some(vec![ChunkOutput {
                start: 0,
                end: 4_000,
                data: vec![1, 2],
            }]),
        }),
    };
    let line = json(&ReportView::from(&finished));
    assert_eq!(
        line.trim_end()
            .rsplit_once(r#""error":null,"#)
            .map(|(_, tail)| tail),
        Some(
            r#""kernel":"demo","covered":4000,"output":null,"kernel_known":false,"results":[{"start":0,"end":4000,"data_hex":"0102"}]}"#
        )
    );
    // A known kernel's merged result, and no raw results.
    let known = Finished {
        custom: Some(CustomResult {
            kernel: "demo".into(),
            covered: 4_000,
            output: Some(serde_json::json!({"sum": 3})),
            raw: None,
        }),
        ..finished
    };
    assert_eq!(
        json(&ReportView::from(&known))
            .trim_end()
            .rsplit_once(r#""error":null,"#)
            .map(|(_, tail)| tail.to_string()),
        Some(r#""kernel":"demo","covered":4000,"output":{"sum":3},"kernel_known":true}"#.into())
    );
}

#[test]
fn several_reports_are_one_object_with_a_list() {
    let two = [
        Finished {
            report: report(),
            custom: None,
        },
        Finished {
            report: JobReport {
                job: JobId(4),
                state: JobState::Failed,
                error: Some("rejected".into()),
                ..report()
            },
            custom: None,
        },
    ];
    let line = json(&ReportsView::from(&two[..]));
    assert!(line.starts_with(r#"{"jobs":[{"job":"j3","#), "{line}");
    assert!(line.contains(r#"{"job":"j4","state":"failed","#), "{line}");
    assert!(line.ends_with("\"error\":\"rejected\"}]}\n"), "{line}");
}

#[test]
fn a_listing_and_what_prune_removed() {
    let jobs = [
        summary(1, JobState::Running),
        summary(2, JobState::Completed),
    ];
    let live = JobFilter::default();
    assert_eq!(
        json(&JobsView::new(&jobs, &live, None)),
        r#"{"jobs":[{"job":"j1","state":"running","kind":"hashcash","mode":"all","priority":-1,"client":"alice","hashes":10,"keyspace":100,"solutions":1,"workers":2,"seconds":1.5,"times":{"submitted_ms":1765000000000,"started_ms":1765000000250,"ended_ms":null},"waiting":null}]}"#
            .to_string()
            + "\n"
    );
    let all = JobFilter {
        all: true,
        ..JobFilter::default()
    };
    let line = json(&JobsView::new(&jobs, &all, Some(5)));
    assert!(
        line.contains(r#""job":"j2","state":"completed","#),
        "{line}"
    );
    assert!(line.contains(r#""waiting":"done"}"#), "{line}");
    assert!(line.ends_with("],\"pruned\":5}\n"), "{line}");
    assert_eq!(
        json(&JobsView::new(&[], &live, Some(0))),
        "{\"jobs\":[],\"pruned\":0}\n"
    );
}

#[test]
fn a_job_in_detail_lists_its_workers_and_solutions() {
    let detail = JobDetail {
        summary: summary(7, JobState::Running),
        work: WorkSpec::Hashcash(HashcashWork {
            data: b"x".to_vec(),
            bits: 8,
            counter_start: 0,
            counter_end: 100,
        }),
        workers: vec![JobWorker {
            worker: "pi-2".into(),
            hashes: 10,
            chunks: 1,
            leases: 1,
            solutions: 1,
        }],
        reassigned: 2,
        steals: 1,
        unassigned: 90,
        solutions: vec![Solution {
            index: 5,
            hash: [0; 32],
            detail: SolutionDetail::Hashcash { counter: 5 },
        }],
        found_by: vec![0],
    };
    assert_eq!(
        json(&DetailView::from(&detail)),
        r#"{"job":"j7","state":"running","kind":"hashcash","mode":"all","priority":-1,"client":"alice","hashes":10,"keyspace":100,"solutions":[{"counter":5,"hash":"0000000000000000000000000000000000000000000000000000000000000000","worker":"pi-2"}],"workers":[{"name":"pi-2","hashes":10,"chunks":1,"leases":1,"solutions":1}],"seconds":1.5,"times":{"submitted_ms":1765000000000,"started_ms":1765000000250,"ended_ms":null},"waiting":null,"reassigned":2,"steals":1,"unassigned":90,"solutions_found":1}"#
            .to_string()
            + "\n"
    );
}

#[test]
fn a_preimage_solution_shows_its_text_and_hex() {
    let s = Solution {
        index: 9,
        hash: [1; 32],
        detail: SolutionDetail::Preimage {
            candidate: b"ab1".to_vec(),
        },
    };
    assert_eq!(
        serde_json::to_string(&SolutionView::new(&s, None)).unwrap(),
        r#"{"index":9,"preimage":"ab1","preimage_hex":"616231","hash":"0101010101010101010101010101010101010101010101010101010101010101","worker":null}"#
    );
    let bytes = Solution {
        detail: SolutionDetail::Preimage {
            candidate: vec![0xff, 0x00],
        },
        ..s
    };
    assert!(
        serde_json::to_string(&SolutionView::new(&bytes, Some("pi-1")))
            .unwrap()
            .starts_with(r#"{"index":9,"preimage":null,"preimage_hex":"ff00","#)
    );
}

#[test]
fn job_states_are_one_object_for_one_job_and_a_list_for_several() {
    let one = [summary(3, JobState::Cancelled)];
    assert_eq!(
        json(&JobStatesView::cancelled(&one)),
        "{\"job\":\"j3\",\"state\":\"cancelled\"}\n"
    );
    assert_eq!(text(&JobStatesView::cancelled(&one)), "j3 cancelled\n");
    assert_eq!(json(&JobStatesView::cancelled(&[])), "{\"jobs\":[]}\n");
    assert_eq!(text(&JobStatesView::cancelled(&[])), "no jobs to cancel\n");
    let ids = ["j8".to_string(), "j9".to_string()];
    assert_eq!(
        json(&JobStatesView::queued(&ids)),
        "{\"jobs\":[{\"job\":\"j8\",\"state\":\"queued\"},{\"job\":\"j9\",\"state\":\"queued\"}]}\n"
    );
    assert_eq!(text(&JobStatesView::queued(&ids)), "j8\nj9\n");
    assert_eq!(
        json(&ForgottenView::new(&[JobId(3), JobId(4)])),
        "{\"forgotten\":[\"j3\",\"j4\"]}\n"
    );
    assert_eq!(text(&ForgottenView::new(&[JobId(3)])), "forgot j3\n");
}

#[test]
fn status_lists_certificates_revocations_workers_and_jobs() {
    let status = ClusterStatus {
        workers: vec![worker("pi-1", 4, WorkerState::Busy)],
        jobs: vec![summary(7, JobState::Running)],
    };
    let credentials = CredentialReport {
        connected: vec![CertificateStatus {
            name: "pi-1".into(),
            role: Role::Worker,
            issued_ms: 1,
            expires_ms: 2,
        }],
        revoked: vec![Revocation {
            name: "pi-9".into(),
            revoked_ms: 3,
            closed: 0,
        }],
    };
    let line = json(&StatusView::new(&status, &credentials));
    assert!(
        line.starts_with(r#"{"certificates":[{"name":"pi-1","role":"worker","issued_ms":1,"expires_ms":2}],"revoked":[{"name":"pi-9","state":"revoked","revoked_ms":3}],"workers":[{"name":"pi-1","id":"w4","state":"busy","threads":4,"arch":"aarch64","impl":"armsha2","kernels":["demo"],"rate":12500000,"rate_unit":"indices/s","mhs":12.5,"hashes":99,"leases":1,"jobs":["j7"],"drain_reason":null,"temperature_celsius":61.5,"throttled_flags":0,"silent_seconds":0.25,"connected_seconds":61.0}],"jobs":[{"job":"j7","#),
        "{line}"
    );
}

#[test]
fn a_drained_worker_and_its_reason() {
    let w = worker("pi-3", 0, WorkerState::Drained);
    assert_eq!(
        json(&DrainedView::from(&w)),
        "{\"worker\":\"pi-3\",\"state\":\"drained\",\"leases\":1,\"connected\":false,\"reason\":\"new fan\"}\n"
    );
    assert_eq!(
        text(&DrainedView::from(&w)),
        "pi-3 drained (not connected: the mark waits for it): new fan\n"
    );
}

#[test]
fn tokens_revocations_and_releases() {
    let info = TokenInfo {
        id: "0a0b0c0d0e0f".into(),
        role: Role::Worker,
        created_by: "admin".into(),
        created_ms: 10,
        expires_ms: 20,
        uses_left: 3,
        replace: false,
    };
    assert_eq!(
        json(&TokensView::from(std::slice::from_ref(&info))),
        "{\"tokens\":[{\"id\":\"0a0b0c0d0e0f\",\"role\":\"worker\",\"created_by\":\"admin\",\"created_ms\":10,\"expires_ms\":20,\"uses_left\":3,\"replace\":false}]}\n"
    );
    assert_eq!(
        json(&TokenCreatedView::new("T".into(), &info)),
        "{\"token\":\"T\",\"id\":\"0a0b0c0d0e0f\",\"role\":\"worker\",\"expires_ms\":20,\"uses\":3,\"replace\":false}\n"
    );
    let revocation = Revocation {
        name: "pi-3".into(),
        revoked_ms: 5,
        closed: 1,
    };
    assert_eq!(
        json(&RevocationView::new("pi-3", &revocation)),
        "{\"name\":\"pi-3\",\"state\":\"revoked\",\"revoked_ms\":5,\"closed\":1}\n"
    );
    assert_eq!(
        json(&ChangedView::released("pi-3")),
        "{\"worker\":\"pi-3\",\"state\":\"released\"}\n"
    );
    assert_eq!(text(&ChangedView::released("pi-3")), "pi-3 released\n");
    assert_eq!(
        json(&ChangedView::token_revoked("0a0b")),
        "{\"token\":\"0a0b\",\"state\":\"revoked\"}\n"
    );
    assert_eq!(
        json(&ErrorView {
            error: "no such job",
            kind: "refused",
            retryable: false
        }),
        "{\"error\":\"no such job\",\"kind\":\"refused\",\"retryable\":false}\n"
    );
}
