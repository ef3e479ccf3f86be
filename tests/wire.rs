//! Wire protocol: golden bytes for every message (an accidental change of any wire
//! type fails here), frame limits, and decoding that never panics on damaged frames.

use picluster_core::ids::{JobId, LeaseId, RequestId, WorkerId};
use picluster_core::job::SearchMode;
use picluster_core::kernel::{Solution, SolutionDetail};
use picluster_core::wire::*;
use proptest::prelude::*;

fn work() -> WorkSpec {
    WorkSpec::Sha256d(Sha256dWork {
        header: vec![0xab; 80],
        target: {
            let mut t = [0u8; 32];
            t[4] = 0xff;
            t[5] = 0xff;
            t
        },
        nonce_start: 7,
        nonce_end: 1 << 32,
        version_mask: 0x1fff_e000,
    })
}

fn progress() -> JobProgress {
    JobProgress {
        job: JobId(3),
        state: JobState::Running,
        hashes: 1000,
        keyspace: 4096,
        elapsed_ms: 1500,
        solutions: 1,
        workers: 2,
    }
}

fn summary() -> JobSummary {
    JobSummary {
        progress: progress(),
        kind: "sha256d".into(),
        mode: SearchMode::All,
        priority: -2,
        client: "admin".into(),
        times: JobTimes {
            submitted_ms: 1_000,
            started_ms: Some(1_200),
            ended_ms: None,
        },
        waiting: None,
    }
}

/// One sample of every message variant, with its name.
fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let e = |m: &dyn erased::Encode| m.frame();
    vec![
        (
            "WorkerToCoord::Hello",
            e(&WorkerToCoord::Hello(WorkerHello {
                minor: 0,
                agent_version: "0.1.0".into(),
                threads: 4,
                arch: "aarch64".into(),
                kernel_impl: "sha2-soft".into(),
                bench_hps: 4_000_000,
                kernels: vec!["example/pi/1".into()],
            })),
        ),
        (
            "WorkerToCoord::Progress",
            e(&WorkerToCoord::Progress(Progress {
                lease: LeaseId(9),
                position: 65536,
            })),
        ),
        (
            "WorkerToCoord::Found",
            e(&WorkerToCoord::Found(Found {
                lease: LeaseId(9),
                indices: vec![1, 300],
            })),
        ),
        (
            "WorkerToCoord::Released",
            e(&WorkerToCoord::Released(Released {
                lease: LeaseId(9),
                position: 128,
            })),
        ),
        ("WorkerToCoord::Leaving", e(&WorkerToCoord::Leaving)),
        (
            "WorkerToCoord::Trimmed",
            e(&WorkerToCoord::Trimmed(Trimmed {
                lease: LeaseId(9),
                end: 40000,
            })),
        ),
        (
            "CoordToWorker::Welcome",
            e(&CoordToWorker::Welcome(WorkerWelcome {
                minor: 0,
                worker: WorkerId(2),
                progress_interval_ms: 250,
            })),
        ),
        (
            "CoordToWorker::Assign",
            e(&CoordToWorker::Assign(Assign {
                lease: LeaseId(9),
                job: JobId(3),
                work: work().into(),
                start: 0,
                end: 65536,
            })),
        ),
        (
            "CoordToWorker::Stop",
            e(&CoordToWorker::Stop(Stop { lease: LeaseId(9) })),
        ),
        (
            "CoordToWorker::Trim",
            e(&CoordToWorker::Trim(Trim {
                lease: LeaseId(9),
                end: 30000,
            })),
        ),
        (
            "ClientToCoord::Hello",
            e(&ClientToCoord::Hello(ClientHello {
                minor: 0,
                client_version: "0.1.0".into(),
            })),
        ),
        (
            "ClientToCoord::Submit",
            e(&ClientToCoord::Submit(Submit {
                request: RequestId(1),
                work: work(),
                mode: SearchMode::First,
                priority: 0,
            })),
        ),
        (
            "ClientToCoord::Watch",
            e(&ClientToCoord::Watch(JobRequest {
                request: RequestId(2),
                job: JobId(3),
            })),
        ),
        (
            "ClientToCoord::Cancel",
            e(&ClientToCoord::Cancel(JobRequest {
                request: RequestId(3),
                job: JobId(3),
            })),
        ),
        (
            "ClientToCoord::ListJobs",
            e(&ClientToCoord::ListJobs(RequestId(4))),
        ),
        (
            "ClientToCoord::Status",
            e(&ClientToCoord::Status(RequestId(5))),
        ),
        (
            "CoordToClient::Welcome",
            e(&CoordToClient::Welcome(ClientWelcome { minor: 0 })),
        ),
        (
            "CoordToClient::Submitted",
            e(&CoordToClient::Submitted(JobRequest {
                request: RequestId(1),
                job: JobId(3),
            })),
        ),
        (
            "CoordToClient::Watching",
            e(&CoordToClient::Watching(RequestId(2), progress())),
        ),
        (
            "CoordToClient::Progress",
            e(&CoordToClient::Progress(progress())),
        ),
        (
            "CoordToClient::Finished",
            e(&CoordToClient::Finished(JobReport {
                job: JobId(3),
                state: JobState::Completed,
                solutions: vec![
                    Solution {
                        index: 5,
                        hash: [0x11; 32],
                        detail: SolutionDetail::Sha256d {
                            nonce: 12,
                            version: 0x2000_0000,
                        },
                    },
                    Solution {
                        index: 6,
                        hash: [0x22; 32],
                        detail: SolutionDetail::Hashcash { counter: 300 },
                    },
                    Solution {
                        index: 7,
                        hash: [0x33; 32],
                        detail: SolutionDetail::Preimage {
                            candidate: b"pi".to_vec(),
                        },
                    },
                ],
                truncated: false,
                hashes: 4096,
                keyspace: 4096,
                elapsed_ms: 2000,
                contributions: vec![Contribution {
                    worker: "pi-1".into(),
                    hashes: 4096,
                    chunks: 2,
                }],
                error: None,
                failure: None,
                kind: "sha256d".into(),
                found_by: vec![0, 0, 0],
                others: 0,
                times: JobTimes {
                    submitted_ms: 1_000,
                    started_ms: Some(1_200),
                    ended_ms: Some(3_000),
                },
            })),
        ),
        (
            "CoordToClient::Finished(Failed)",
            e(&CoordToClient::Finished(JobReport {
                job: JobId(4),
                state: JobState::Failed,
                solutions: vec![],
                truncated: false,
                hashes: 0,
                keyspace: 10,
                elapsed_ms: 1,
                contributions: vec![],
                error: Some("bad params".into()),
                failure: None,
                kind: "custom:x".into(),
                found_by: vec![],
                others: 0,
                times: JobTimes::default(),
            })),
        ),
        (
            "WorkerToCoord::Output",
            e(&WorkerToCoord::Output(Output {
                lease: LeaseId(9),
                position: 300,
                data: vec![1, 2, 3],
            })),
        ),
        (
            "WorkerToCoord::Rejected",
            e(&WorkerToCoord::Rejected(Rejected {
                lease: LeaseId(9),
                reason: "no".into(),
            })),
        ),
        (
            "CoordToClient::Outputs",
            e(&CoordToClient::Outputs(
                JobId(3),
                vec![ChunkOutput {
                    start: 0,
                    end: 300,
                    data: vec![4, 5],
                }],
            )),
        ),
        (
            "ClientToCoord::Submit(Hashcash)",
            e(&ClientToCoord::Submit(Submit {
                request: RequestId(1),
                work: WorkSpec::Hashcash(HashcashWork {
                    data: b"pi".to_vec(),
                    bits: 20,
                    counter_start: 0,
                    counter_end: 1000,
                }),
                mode: SearchMode::All,
                priority: 0,
            })),
        ),
        (
            "ClientToCoord::Submit(Preimage)",
            e(&ClientToCoord::Submit(Submit {
                request: RequestId(1),
                work: WorkSpec::Preimage(PreimageWork {
                    positions: vec![b"ab".to_vec(), b"0".to_vec()],
                    double: true,
                    targets: vec![[0x44; 32]],
                    start: 1,
                    end: 2,
                }),
                mode: SearchMode::All,
                priority: 0,
            })),
        ),
        (
            "ClientToCoord::Submit(Custom)",
            e(&ClientToCoord::Submit(Submit {
                request: RequestId(1),
                work: WorkSpec::Custom(CustomWork {
                    kernel: "k".into(),
                    params: vec![7],
                    keyspace: 1000,
                    block: 10,
                }),
                mode: SearchMode::All,
                priority: 0,
            })),
        ),
        (
            "CoordToClient::Cancelled",
            e(&CoordToClient::Cancelled(
                RequestId(3),
                JobSummary {
                    progress: JobProgress {
                        state: JobState::Cancelled,
                        ..progress()
                    },
                    kind: "preimage".into(),
                    mode: SearchMode::First,
                    priority: 5,
                    client: "ops".into(),
                    times: JobTimes::default(),
                    waiting: Some("no workers connected".into()),
                },
            )),
        ),
        (
            "CoordToClient::Jobs",
            e(&CoordToClient::Jobs(
                RequestId(4),
                vec![
                    summary(),
                    JobSummary {
                        progress: JobProgress {
                            state: JobState::Queued,
                            ..progress()
                        },
                        ..summary()
                    },
                ],
            )),
        ),
        (
            "CoordToClient::Status",
            e(&CoordToClient::Status(
                RequestId(5),
                ClusterStatus {
                    workers: vec![
                        WorkerStatus {
                            name: "pi-1".into(),
                            worker: WorkerId(2),
                            state: WorkerState::Busy,
                            threads: 4,
                            arch: "aarch64".into(),
                            kernel_impl: "sha2-soft".into(),
                            rate_hps: 4_000_000,
                            hashes: 123,
                            leases: 2,
                            connected_ms: 60_000,
                            kernels: vec!["k".into()],
                            drain_reason: None,
                            jobs: vec![JobId(3)],
                            millicelsius: Some(61_250),
                            throttled: Some(0x50000),
                            silent_ms: 120,
                        },
                        WorkerStatus {
                            name: "pi-2".into(),
                            worker: WorkerId(4),
                            state: WorkerState::Leaving,
                            threads: 1,
                            arch: "arm".into(),
                            kernel_impl: "sha2-soft".into(),
                            rate_hps: 0,
                            hashes: 0,
                            leases: 0,
                            connected_ms: 1,
                            kernels: vec![],
                            drain_reason: None,
                            jobs: vec![],
                            millicelsius: None,
                            throttled: None,
                            silent_ms: 0,
                        },
                    ],
                    jobs: vec![summary()],
                },
            )),
        ),
        (
            "ClientToCoord::Drain",
            e(&ClientToCoord::Drain(Drain {
                request: RequestId(8),
                worker: "pi-1".into(),
                drain: true,
                reason: Some("fan".into()),
            })),
        ),
        (
            "CoordToClient::Drained",
            e(&CoordToClient::Drained(
                RequestId(8),
                WorkerStatus {
                    name: "pi-1".into(),
                    worker: WorkerId(2),
                    state: WorkerState::Draining,
                    threads: 4,
                    arch: "aarch64".into(),
                    kernel_impl: "sha2-soft".into(),
                    rate_hps: 1,
                    hashes: 2,
                    leases: 1,
                    connected_ms: 3,
                    kernels: vec![],
                    drain_reason: Some("fan".into()),
                    jobs: vec![JobId(3)],
                    millicelsius: None,
                    throttled: None,
                    silent_ms: 5,
                },
            )),
        ),
        (
            "CoordToClient::Refused(UnknownWorker)",
            e(&CoordToClient::Refused(
                RequestId(9),
                Refusal::UnknownWorker("pi-9".into()),
            )),
        ),
        (
            "CoordToClient::Refused(UnknownJob)",
            e(&CoordToClient::Refused(
                RequestId(6),
                Refusal::UnknownJob(JobId(99)),
            )),
        ),
        (
            "CoordToClient::Refused(InvalidJob)",
            e(&CoordToClient::Refused(
                RequestId(7),
                Refusal::InvalidJob("bad".into()),
            )),
        ),
        (
            "ClientToCoord::Forget",
            e(&ClientToCoord::Forget(JobRequest {
                request: RequestId(4),
                job: JobId(3),
            })),
        ),
        (
            "ClientToCoord::Prune",
            e(&ClientToCoord::Prune(RequestId(5))),
        ),
        (
            "CoordToClient::Forgotten",
            e(&CoordToClient::Forgotten(JobRequest {
                request: RequestId(4),
                job: JobId(3),
            })),
        ),
        (
            "CoordToClient::Pruned",
            e(&CoordToClient::Pruned(RequestId(5), 300)),
        ),
        (
            "CoordToClient::Refused(NotFinished)",
            e(&CoordToClient::Refused(
                RequestId(6),
                Refusal::NotFinished(JobId(3)),
            )),
        ),
        (
            "ClientToCoord::Release",
            e(&ClientToCoord::Release(WorkerRequest {
                request: RequestId(4),
                worker: "pi-3".into(),
            })),
        ),
        (
            "CoordToClient::ReleasedWorker",
            e(&CoordToClient::ReleasedWorker(RequestId(4), "pi-3".into())),
        ),
        (
            "CoordToClient::Refused(NotQuarantined)",
            e(&CoordToClient::Refused(
                RequestId(5),
                Refusal::NotQuarantined("pi-3".into()),
            )),
        ),
        (
            "CoordToClient::Refused(NotPermitted)",
            e(&CoordToClient::Refused(
                RequestId(6),
                Refusal::NotPermitted("no".into()),
            )),
        ),
        (
            "WorkerToCoord::Holding",
            e(&WorkerToCoord::Holding(Holding {
                leases: vec![HeldLease {
                    lease: LeaseId(9),
                    job: JobId(3),
                    work: [0x55; 32],
                    start: 100,
                    position: 300,
                    end: 1000,
                    found: vec![150],
                }],
            })),
        ),
        (
            "ClientToCoord::Revoke",
            e(&ClientToCoord::Revoke(WorkerRequest {
                request: RequestId(4),
                worker: "pi-3".into(),
            })),
        ),
        (
            "CoordToClient::Revoked",
            e(&CoordToClient::Revoked(
                RequestId(4),
                Revocation {
                    name: "pi-3".into(),
                    revoked_ms: 1000,
                    closed: 1,
                },
            )),
        ),
        (
            "ClientToCoord::Credentials",
            e(&ClientToCoord::Credentials(RequestId(5))),
        ),
        (
            "CoordToClient::Credentials",
            e(&CoordToClient::Credentials(
                RequestId(5),
                CredentialReport {
                    connected: vec![CertificateStatus {
                        name: "pi-1".into(),
                        role: picluster_core::identity::Role::Worker,
                        issued_ms: 1,
                        expires_ms: 2,
                    }],
                    revoked: vec![],
                },
            )),
        ),
        (
            "ClientToCoord::CreateToken",
            e(&ClientToCoord::CreateToken(CreateToken {
                request: RequestId(6),
                id: "0a0b".into(),
                secret_sha256: [0x11; 32],
                role: picluster_core::identity::Role::Worker,
                ttl_s: 3600,
                uses: 1,
                replace: false,
            })),
        ),
        (
            "CoordToClient::TokenCreated",
            e(&CoordToClient::TokenCreated(
                RequestId(6),
                TokenInfo {
                    id: "0a0b".into(),
                    role: picluster_core::identity::Role::Client,
                    created_by: "admin".into(),
                    created_ms: 5,
                    expires_ms: 6,
                    uses_left: 2,
                    replace: true,
                },
            )),
        ),
        (
            "ClientToCoord::ListTokens",
            e(&ClientToCoord::ListTokens(RequestId(7))),
        ),
        (
            "CoordToClient::Tokens",
            e(&CoordToClient::Tokens(RequestId(7), vec![])),
        ),
        (
            "ClientToCoord::RevokeToken",
            e(&ClientToCoord::RevokeToken(TokenRequest {
                request: RequestId(8),
                id: "0a0b".into(),
            })),
        ),
        (
            "CoordToClient::TokenRevoked",
            e(&CoordToClient::TokenRevoked(RequestId(8), "0a0b".into())),
        ),
        (
            "WorkerToCoord::Renew",
            e(&WorkerToCoord::Renew(Renew { csr: vec![1, 2, 3] })),
        ),
        (
            "CoordToWorker::Renewed",
            e(&CoordToWorker::Renewed(Renewed {
                cert_pem: "pem".into(),
            })),
        ),
        (
            "CoordToWorker::RenewRefused",
            e(&CoordToWorker::RenewRefused(JoinRefusal::CannotIssue)),
        ),
        (
            "JoinToCoord::Join",
            e(&JoinToCoord::Join(JoinRequest {
                minor: 2,
                token: "0a0b".into(),
                secret: [0x22; 16],
                name: "pi-9".into(),
                role: picluster_core::identity::Role::Worker,
                csr: vec![9],
            })),
        ),
        (
            "CoordToJoin::Enrolled",
            e(&CoordToJoin::Enrolled(Enrolled {
                role: picluster_core::identity::Role::Worker,
                name: "pi-9".into(),
                cert_pem: "pem".into(),
            })),
        ),
        (
            "CoordToJoin::Refused",
            e(&CoordToJoin::Refused(JoinRefusal::UsedUp("0a0b".into()))),
        ),
        (
            "CoordToWorker::ShareTarget",
            e(&CoordToWorker::ShareTarget(ShareTarget { bits: 16 })),
        ),
        (
            "WorkerToCoord::Rate",
            e(&WorkerToCoord::Rate(RateChange {
                threads: 3,
                bench_hps: 9_000_000,
            })),
        ),
        (
            "WorkerToCoord::Health",
            e(&WorkerToCoord::Health(Health {
                millicelsius: Some(71_500),
                throttled: Some(0x5),
            })),
        ),
        (
            "ClientToCoord::Show",
            e(&ClientToCoord::Show(JobRequest {
                request: RequestId(9),
                job: JobId(3),
            })),
        ),
        (
            "CoordToClient::Detail",
            e(&CoordToClient::Detail(
                RequestId(9),
                Box::new(JobDetail {
                    summary: summary(),
                    work: WorkSpec::Custom(CustomWork {
                        kernel: "k".into(),
                        params: vec![7],
                        keyspace: 1000,
                        block: 10,
                    }),
                    workers: vec![JobWorker {
                        worker: "pi-1".into(),
                        hashes: 1000,
                        chunks: 3,
                        leases: 1,
                        solutions: 1,
                    }],
                    reassigned: 1,
                    steals: 2,
                    unassigned: 96,
                    solutions: vec![Solution {
                        index: 6,
                        hash: [0x22; 32],
                        detail: SolutionDetail::Hashcash { counter: 300 },
                    }],
                    found_by: vec![0],
                }),
            )),
        ),
        (
            "WorkerToCoord::Shares",
            e(&WorkerToCoord::Shares(Found {
                lease: LeaseId(9),
                indices: vec![300, 70000],
            })),
        ),
        // Minor 4: typed refusals, appended.
        (
            "CoordToClient::Refused(Forbidden)",
            e(&CoordToClient::Refused(
                RequestId(2),
                Refusal::Forbidden(NotPermitted {
                    client: "bob".into(),
                    action: Action::Cancel(JobId(3)),
                    needs: Needs::OwnerOrAdmin,
                }),
            )),
        ),
        (
            "CoordToClient::Refused(BadJob)",
            e(&CoordToClient::Refused(
                RequestId(7),
                Refusal::BadJob(InvalidJob {
                    kind: JobErrorKind::Preimage,
                    reason: "bad".into(),
                }),
            )),
        ),
        (
            "CoordToClient::Refused(BadToken)",
            e(&CoordToClient::Refused(
                RequestId(5),
                Refusal::BadToken(TokenRequestError::Lifetime {
                    ttl_s: 0,
                    max_s: 86_400,
                }),
            )),
        ),
        (
            "CoordToJoin::Refused(BadCsr)",
            e(&CoordToJoin::Refused(JoinRefusal::BadCsr(
                CsrError::BadSignature,
            ))),
        ),
        (
            "CoordToWorker::RenewRefused(NotDue)",
            e(&CoordToWorker::RenewRefused(JoinRefusal::NotDue {
                due_ms: 1_765_000_000_000,
            })),
        ),
        // Minor 5: limits, appended.
        (
            "CoordToClient::Refused(OverLimit)",
            e(&CoordToClient::Refused(
                RequestId(4),
                Refusal::OverLimit(LimitReached {
                    client: "bob".into(),
                    limit: Limit::LiveJobs,
                    allowed: 1000,
                    used: 1000,
                }),
            )),
        ),
    ]
}

mod erased {
    pub(crate) trait Encode {
        fn frame(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Encode for T {
        fn frame(&self) -> Vec<u8> {
            picluster_core::wire::encode_frame(self).unwrap()
        }
    }
}

#[rustfmt::skip]
const GOLDEN: &[(&str, &str)] = &[
    ("WorkerToCoord::Hello", "2d000000000005302e312e3004076161726368363409736861322d736f66748092f401010c6578616d706c652f70692f31"),
    ("WorkerToCoord::Progress", "050000000109808004"),
    ("WorkerToCoord::Found", "0600000002090201ac02"),
    ("WorkerToCoord::Released", "0400000003098001"),
    ("WorkerToCoord::Leaving", "0100000004"),
    ("WorkerToCoord::Trimmed", "050000000509c0b802"),
    ("CoordToWorker::Welcome", "05000000000002fa01"),
    ("CoordToWorker::Assign", "840000000109030050abababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababab00000000ffff000000000000000000000000000000000000000000000000000007808080801080c0ffff0100808004"),
    ("CoordToWorker::Stop", "020000000209"),
    ("CoordToWorker::Trim", "050000000309b0ea01"),
    ("ClientToCoord::Hello", "08000000000005302e312e30"),
    ("ClientToCoord::Submit", "8100000001010050abababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababab00000000ffff000000000000000000000000000000000000000000000000000007808080801080c0ffff010000"),
    ("ClientToCoord::Watch", "03000000020203"),
    ("ClientToCoord::Cancel", "03000000030303"),
    ("ClientToCoord::ListJobs", "020000000404"),
    ("ClientToCoord::Status", "020000000505"),
    ("CoordToClient::Welcome", "020000000000"),
    ("CoordToClient::Submitted", "03000000010103"),
    ("CoordToClient::Watching", "0c00000002020301e8078020dc0b0102"),
    ("CoordToClient::Progress", "0b000000030301e8078020dc0b0102"),
    ("CoordToClient::Finished", "9c00000004030203051111111111111111111111111111111111111111111111111111111111111111000c808080800206222222222222222222222222222222222222222222222222222222222222222201ac02073333333333333333333333333333333333333333333333333333333333333333020270690080208020d00f010470692d31802002000007736861323536640300000000e80701b00901b817"),
    ("CoordToClient::Finished(Failed)", "240000000404040000000a0100010a62616420706172616d730008637573746f6d3a780000000000"),
    ("WorkerToCoord::Output", "080000000609ac0203010203"),
    ("WorkerToCoord::Rejected", "050000000709026e6f"),
    ("CoordToClient::Outputs", "090000000a030100ac02020405"),
    ("ClientToCoord::Submit(Hashcash)", "0c0000000101020270691400e8070100"),
    ("ClientToCoord::Submit(Preimage)", "2f0000000101030202616201300101444444444444444444444444444444444444444444444444444444444444444401020100"),
    ("ClientToCoord::Submit(Custom)", "0c000000010104016b0107e8070a0100"),
    ("CoordToClient::Cancelled", "3400000005030303e8078020dc0b010208707265696d616765000a036f707300000001146e6f20776f726b65727320636f6e6e6563746564"),
    ("CoordToClient::Jobs", "450000000604020301e8078020dc0b0102077368613235366401030561646d696ee80701b00900000300e8078020dc0b0102077368613235366401030561646d696ee80701b0090000"),
    ("CoordToClient::Status", "770000000705020470692d31020104076161726368363409736861322d736f66748092f4017b02e0d40301016b0001030184bd0701808014780470692d320402010361726d09736861322d736f667400000001000000000000010301e8078020dc0b0102077368613235366401030561646d696ee80701b0090000"),
    ("ClientToCoord::Drain", "0d00000006080470692d3101010366616e"),
    ("CoordToClient::Drained", "2b00000009080470692d31020304076161726368363409736861322d736f66740102010300010366616e0103000005"),
    ("CoordToClient::Refused(UnknownWorker)", "080000000809020470692d39"),
    ("CoordToClient::Refused(UnknownJob)", "0400000008060063"),
    ("CoordToClient::Refused(InvalidJob)", "0700000008070103626164"),
    ("ClientToCoord::Forget", "03000000070403"),
    ("ClientToCoord::Prune", "020000000805"),
    ("CoordToClient::Forgotten", "030000000b0403"),
    ("CoordToClient::Pruned", "040000000c05ac02"),
    ("CoordToClient::Refused(NotFinished)", "0400000008060303"),
    ("ClientToCoord::Release", "0700000009040470692d33"),
    ("CoordToClient::ReleasedWorker", "070000000d040470692d33"),
    ("CoordToClient::Refused(NotQuarantined)", "080000000805040470692d33"),
    ("CoordToClient::Refused(NotPermitted)", "06000000080605026e6f"),
    ("WorkerToCoord::Holding", "2c00000008010903555555555555555555555555555555555555555555555555555555555555555564ac02e807019601"),
    ("ClientToCoord::Revoke", "070000000a040470692d33"),
    ("CoordToClient::Revoked", "0a0000000e040470692d33e80701"),
    ("ClientToCoord::Credentials", "020000000b05"),
    ("CoordToClient::Credentials", "0c0000000f05010470692d3101010200"),
    ("ClientToCoord::CreateToken", "2c0000000c060430613062111111111111111111111111111111111111111111111111111111111111111101901c0100"),
    ("CoordToClient::TokenCreated", "1200000010060430613062020561646d696e05060201"),
    ("ClientToCoord::ListTokens", "020000000d07"),
    ("CoordToClient::Tokens", "03000000110700"),
    ("ClientToCoord::RevokeToken", "070000000e080430613062"),
    ("CoordToClient::TokenRevoked", "0700000012080430613062"),
    ("WorkerToCoord::Renew", "050000000903010203"),
    ("CoordToWorker::Renewed", "05000000040370656d"),
    ("CoordToWorker::RenewRefused", "020000000506"),
    ("JoinToCoord::Join", "1f00000000020430613062222222222222222222222222222222220470692d39010109"),
    ("CoordToJoin::Enrolled", "0b00000000010470692d390370656d"),
    ("CoordToJoin::Refused", "0700000001020430613062"),
    ("CoordToWorker::ShareTarget", "020000000610"),
    ("WorkerToCoord::Rate", "060000000b03c0a8a504"),
    ("WorkerToCoord::Health", "070000000c0198dd080105"),
    ("ClientToCoord::Show", "030000000f0903"),
    ("CoordToClient::Detail", "6000000013090301e8078020dc0b0102077368613235366401030561646d696ee80701b009000004016b0107e8070a010470692d31e8070301010102600106222222222222222222222222222222222222222222222222222222222222222201ac020100"),
    ("WorkerToCoord::Shares", "080000000a0902ac02f0a204"),
    ("CoordToClient::Refused(Forbidden)", "0a00000008020903626f62080301"),
    ("CoordToClient::Refused(BadJob)", "0800000008070a0203626164"),
    ("CoordToClient::Refused(BadToken)", "0800000008050b040080a305"),
    ("CoordToJoin::Refused(BadCsr)", "03000000010801"),
    ("CoordToWorker::RenewRefused(NotDue)", "08000000050980e4ca91af33"),
    ("CoordToClient::Refused(OverLimit)", "0c00000008040c03626f6200e807e807"),
];

#[test]
fn every_message_matches_its_golden_bytes() {
    let samples = samples();
    let mut report = String::new();
    for (name, frame) in &samples {
        report.push_str(&format!(
            "    (\"{name}\", \"{}\"),\n",
            picluster_core::hex::encode(frame)
        ));
    }
    assert_eq!(
        GOLDEN.len(),
        samples.len(),
        "golden list out of date:\n{report}"
    );
    for ((name, frame), (golden_name, golden_hex)) in samples.iter().zip(GOLDEN) {
        assert_eq!(name, golden_name);
        assert_eq!(
            &picluster_core::hex::encode(frame),
            golden_hex,
            "{name} changed on the wire; wire enums are append-only within a major version"
        );
    }
}

#[test]
fn every_sample_round_trips() {
    for (name, frame) in samples() {
        let ok = if name.starts_with("WorkerToCoord") {
            decode_frame::<WorkerToCoord>(&frame).map(|m| encode_frame(&m).unwrap())
        } else if name.starts_with("CoordToWorker") {
            decode_frame::<CoordToWorker>(&frame).map(|m| encode_frame(&m).unwrap())
        } else if name.starts_with("ClientToCoord") {
            decode_frame::<ClientToCoord>(&frame).map(|m| encode_frame(&m).unwrap())
        } else if name.starts_with("JoinToCoord") {
            decode_frame::<JoinToCoord>(&frame).map(|m| encode_frame(&m).unwrap())
        } else if name.starts_with("CoordToJoin") {
            decode_frame::<CoordToJoin>(&frame).map(|m| encode_frame(&m).unwrap())
        } else {
            decode_frame::<CoordToClient>(&frame).map(|m| encode_frame(&m).unwrap())
        };
        assert_eq!(ok.unwrap(), frame, "{name}");
    }
}

#[test]
fn oversized_frames_are_rejected_from_the_header_alone() {
    let limit = MAX_FRAME_LEN as u32;
    assert_eq!(frame_body_len(limit.to_le_bytes()), Ok(MAX_FRAME_LEN));
    assert_eq!(
        frame_body_len((limit + 1).to_le_bytes()),
        Err(FrameError::TooLarge(u64::from(limit) + 1))
    );
    let huge = WorkerToCoord::Found(Found {
        lease: LeaseId(1),
        indices: vec![u64::MAX; MAX_FRAME_LEN / 8],
    });
    assert!(matches!(encode_frame(&huge), Err(FrameError::TooLarge(_))));
}

#[test]
fn trailing_bytes_and_unknown_variants_are_errors() {
    let mut frame = encode_frame(&WorkerToCoord::Leaving).unwrap();
    frame.push(0);
    frame[0] += 1;
    assert_eq!(
        decode_frame::<WorkerToCoord>(&frame),
        Err(FrameError::TrailingBytes(1))
    );
    // Variant 5 does not exist in WorkerToCoord.
    assert!(matches!(
        decode_body::<WorkerToCoord>(&[5]),
        Err(FrameError::Malformed(_))
    ));
    assert!(matches!(
        decode_body::<CoordToClient>(&[]),
        Err(FrameError::Malformed(_))
    ));
}

#[test]
fn close_codes_round_trip() {
    for code in 0..10u32 {
        assert_eq!(CloseCode::from_u32(code).map(|c| c as u32), Some(code));
    }
    assert_eq!(CloseCode::from_u32(10), None);
}

fn decode_all(frame: &[u8]) {
    let _ = decode_frame::<WorkerToCoord>(frame);
    let _ = decode_frame::<CoordToWorker>(frame);
    let _ = decode_frame::<ClientToCoord>(frame);
    let _ = decode_frame::<CoordToClient>(frame);
    let _ = decode_frame::<JoinToCoord>(frame);
    let _ = decode_frame::<CoordToJoin>(frame);
    if frame.len() >= 4 {
        let _ = decode_body::<WorkerToCoord>(&frame[4..]);
        let _ = decode_body::<CoordToClient>(&frame[4..]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn truncated_frames_never_panic_and_never_decode(which in 0usize..64, cut in 0usize..200) {
        let samples = samples();
        let (_, frame) = &samples[which % samples.len()];
        let cut = cut % frame.len();
        decode_all(&frame[..cut]);
        // A strict prefix is never a whole frame.
        prop_assert!(decode_frame::<WorkerToCoord>(&frame[..cut]).is_err());
        prop_assert!(decode_frame::<CoordToClient>(&frame[..cut]).is_err());
    }

    #[test]
    fn extended_frames_never_panic(which in 0usize..64, extra in proptest::collection::vec(any::<u8>(), 1..32)) {
        let samples = samples();
        let (_, frame) = &samples[which % samples.len()];
        let mut long = frame.clone();
        long.extend_from_slice(&extra);
        decode_all(&long);
        prop_assert!(matches!(
            decode_frame::<CoordToClient>(&long),
            Err(FrameError::TrailingBytes(_)) | Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn bit_flipped_frames_never_panic(which in 0usize..64, flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..6)) {
        let samples = samples();
        let (_, frame) = &samples[which % samples.len()];
        let mut damaged = frame.clone();
        for (at, bit) in flips {
            let i = at % damaged.len();
            damaged[i] ^= 1 << bit;
        }
        decode_all(&damaged);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_all(&bytes);
    }
}
