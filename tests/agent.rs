//! The worker agent state machine driven directly.

use picluster_core::ids::{JobId, LeaseId, WorkerId};
use picluster_core::job::JobKind;
use picluster_core::kernel::sha256d::Sha256dJob;
use picluster_core::wire::*;
use picluster_suite::fixtures::vectors;
use picluster_worker::agent::{Agent, AgentError, ComputeCommand, WorkerInfo};
use picluster_worker::compute::{ComputeEvent, TaskId};

fn agent() -> Agent {
    let mut a = Agent::new(
        WorkerInfo {
            threads: 2,
            kernel_impl: "sha2-soft".into(),
            bench_hps: 5,
        },
        Default::default(),
    );
    a.handle_welcome(WorkerWelcome {
        minor: 0,
        worker: WorkerId(1),
        progress_interval_ms: 100,
    });
    a
}

fn assign(lease: u64, start: u64, end: u64) -> CoordToWorker {
    let job = Sha256dJob::new(vectors()[0].header, None, 0..1 << 20, 0).unwrap();
    CoordToWorker::Assign(Assign {
        lease: LeaseId(lease),
        job: JobId(1),
        work: WorkSpec::from(&JobKind::Sha256d(job)).into(),
        start,
        end,
    })
}

fn commands(a: &mut Agent) -> Vec<String> {
    std::iter::from_fn(|| a.poll_compute())
        .map(|c| format!("{c:?}"))
        .collect()
}

fn sent(a: &mut Agent) -> Vec<WorkerToCoord> {
    std::iter::from_fn(|| a.poll_transmit()).collect()
}

#[test]
fn hello_describes_the_worker() {
    let WorkerToCoord::Hello(h) = agent().hello() else {
        panic!()
    };
    assert_eq!(
        (h.threads, h.bench_hps, h.kernel_impl.as_str()),
        (2, 5, "sha2-soft")
    );
    assert_eq!(h.minor, PROTOCOL_MINOR);
    assert_eq!(h.arch, std::env::consts::ARCH);
}

#[test]
fn assignments_become_tasks_and_compute_events_become_reports() {
    let mut a = agent();
    a.handle_message(assign(7, 0, 1000)).unwrap();
    a.handle_message(assign(8, 1000, 2000)).unwrap();
    assert_eq!(
        commands(&mut a),
        vec!["Run(TaskId(1), 0..1000)", "Run(TaskId(2), 1000..2000)"]
    );
    let c = a.poll_compute();
    assert!(c.is_none());
    a.handle_compute(ComputeEvent::Found {
        task: TaskId(1),
        indices: vec![5],
    });
    a.handle_compute(ComputeEvent::Progress {
        task: TaskId(1),
        position: 512,
        output: None,
    });
    a.handle_compute(ComputeEvent::Finished {
        task: TaskId(1),
        position: 1000,
        output: None,
    });
    assert_eq!(
        sent(&mut a),
        vec![
            WorkerToCoord::Found(Found {
                lease: LeaseId(7),
                indices: vec![5]
            }),
            WorkerToCoord::Progress(Progress {
                lease: LeaseId(7),
                position: 512
            }),
            WorkerToCoord::Progress(Progress {
                lease: LeaseId(7),
                position: 1000
            }),
        ]
    );
    assert_eq!(a.leases_held(), 1);
}

#[test]
fn a_stopped_lease_reports_only_its_final_position_as_acknowledgement() {
    let mut a = agent();
    a.handle_message(assign(7, 0, 1000)).unwrap();
    commands(&mut a);
    a.handle_message(CoordToWorker::Stop(Stop { lease: LeaseId(7) }))
        .unwrap();
    assert_eq!(commands(&mut a), vec!["Stop(TaskId(1))"]);
    a.handle_compute(ComputeEvent::Found {
        task: TaskId(1),
        indices: vec![3],
    });
    a.handle_compute(ComputeEvent::Progress {
        task: TaskId(1),
        position: 512,
        output: None,
    });
    a.handle_compute(ComputeEvent::Finished {
        task: TaskId(1),
        position: 640,
        output: None,
    });
    assert_eq!(
        sent(&mut a),
        vec![WorkerToCoord::Released(Released {
            lease: LeaseId(7),
            position: 640
        })]
    );
    assert_eq!(a.leases_held(), 0);
    // Stopping an unknown lease is harmless.
    a.handle_message(CoordToWorker::Stop(Stop { lease: LeaseId(99) }))
        .unwrap();
    assert!(commands(&mut a).is_empty());
}

#[test]
fn shutdown_releases_unfinished_work_then_leaves() {
    let mut a = agent();
    a.handle_message(assign(7, 0, 1000)).unwrap();
    a.handle_message(assign(8, 1000, 2000)).unwrap();
    commands(&mut a);
    a.handle_shutdown();
    assert_eq!(commands(&mut a), vec!["Stop(TaskId(1))", "Stop(TaskId(2))"]);
    assert!(a.is_shutting_down() && !a.has_left());
    // An assignment crossing our shutdown goes straight back.
    a.handle_message(assign(9, 2000, 3000)).unwrap();
    a.handle_compute(ComputeEvent::Finished {
        task: TaskId(1),
        position: 640,
        output: None,
    });
    a.handle_compute(ComputeEvent::Finished {
        task: TaskId(2),
        position: 1000,
        output: None,
    });
    assert_eq!(
        sent(&mut a),
        vec![
            WorkerToCoord::Released(Released {
                lease: LeaseId(9),
                position: 2000
            }),
            WorkerToCoord::Released(Released {
                lease: LeaseId(7),
                position: 640
            }),
            WorkerToCoord::Released(Released {
                lease: LeaseId(8),
                position: 1000
            }),
            WorkerToCoord::Leaving,
        ]
    );
    assert!(a.has_left());
}

fn welcome(a: &mut Agent, minor: u16) {
    a.handle_welcome(WorkerWelcome {
        minor,
        worker: WorkerId(2),
        progress_interval_ms: 100,
    });
}

fn work_digest() -> [u8; 32] {
    let CoordToWorker::Assign(a) = assign(0, 0, 1) else {
        unreachable!()
    };
    a.work.digest()
}

/// A coordinator that dies before its next checkpoint, or before a report reaches
/// it, knows the leases finished meanwhile only as out: they are offered again after
/// the next welcome (once), the most recent 128 of them.
#[test]
fn leases_finished_on_a_connection_that_is_lost_are_offered_after_the_next_welcome() {
    let mut a = agent();
    for k in 0..130u64 {
        a.handle_message(assign(100 + k, k * 10, k * 10 + 10))
            .unwrap();
        commands(&mut a);
        if k == 129 {
            a.handle_compute(ComputeEvent::Found {
                task: TaskId(k + 1),
                indices: vec![1295],
            });
        }
        a.handle_compute(ComputeEvent::Finished {
            task: TaskId(k + 1),
            position: k * 10 + 10,
            output: None,
        });
    }
    sent(&mut a);
    assert_eq!(a.leases_to_offer(), 128);
    a.handle_disconnected();
    welcome(&mut a, PROTOCOL_MINOR);
    let digest = work_digest();
    let [WorkerToCoord::Holding(Holding { leases }), ..] = &sent(&mut a)[..] else {
        panic!("no holding report");
    };
    assert_eq!(leases.len(), 128);
    assert_eq!(
        leases[0].lease,
        LeaseId(102),
        "the oldest two are forgotten"
    );
    assert_eq!(
        leases[127],
        HeldLease {
            lease: LeaseId(229),
            job: JobId(1),
            work: digest,
            start: 1290,
            position: 1300,
            end: 1300,
            found: vec![1295],
        }
    );
    assert_eq!(a.leases_to_offer(), 0);
    // Offered once: the welcome after another lost connection has nothing to add.
    a.handle_disconnected();
    welcome(&mut a, PROTOCOL_MINOR);
    assert!(
        sent(&mut a).iter().all(
            |m| !matches!(m, WorkerToCoord::Holding(Holding { leases }) if !leases.is_empty())
        ),
        "offered twice"
    );
}

#[test]
fn leases_run_on_through_a_lost_connection_and_are_claimed_after_the_welcome() {
    let mut a = agent();
    a.handle_message(assign(7, 0, 1000)).unwrap();
    a.handle_message(assign(8, 1000, 2000)).unwrap();
    a.handle_message(assign(9, 2000, 3000)).unwrap();
    commands(&mut a);
    a.handle_compute(ComputeEvent::Found {
        task: TaskId(1),
        indices: vec![5],
    });
    a.handle_compute(ComputeEvent::Progress {
        task: TaskId(1),
        position: 512,
        output: None,
    });
    // Lease 9 is being stopped when the connection goes: it is not kept.
    a.handle_message(CoordToWorker::Stop(Stop { lease: LeaseId(9) }))
        .unwrap();
    commands(&mut a);
    a.handle_disconnected();
    assert_eq!(commands(&mut a), Vec::<String>::new(), "nothing stops");
    assert_eq!(
        sent(&mut a),
        vec![],
        "queued reports are for the old session"
    );
    assert_eq!(a.leases_detached(), 2);
    // The engine carries on meanwhile: lease 7 ends, lease 8 finds a solution.
    a.handle_compute(ComputeEvent::Found {
        task: TaskId(1),
        indices: vec![900],
    });
    a.handle_compute(ComputeEvent::Finished {
        task: TaskId(1),
        position: 1000,
        output: None,
    });
    a.handle_compute(ComputeEvent::Found {
        task: TaskId(2),
        indices: vec![1500],
    });
    a.handle_compute(ComputeEvent::Progress {
        task: TaskId(2),
        position: 1600,
        output: None,
    });
    a.handle_compute(ComputeEvent::Finished {
        task: TaskId(3),
        position: 2000,
        output: None,
    });
    assert_eq!(sent(&mut a), vec![], "no connection, nothing to say");
    welcome(&mut a, PROTOCOL_MINOR);
    let digest = work_digest();
    assert_eq!(
        sent(&mut a),
        vec![WorkerToCoord::Holding(Holding {
            leases: vec![
                HeldLease {
                    lease: LeaseId(7),
                    job: JobId(1),
                    work: digest,
                    start: 0,
                    position: 1000,
                    end: 1000,
                    found: vec![5, 900],
                },
                HeldLease {
                    lease: LeaseId(8),
                    job: JobId(1),
                    work: digest,
                    start: 1000,
                    position: 1600,
                    end: 2000,
                    found: vec![1500],
                },
            ]
        })]
    );
    assert_eq!(a.leases_detached(), 0);
    // Lease 8 is ours again: it reports as before.
    a.handle_compute(ComputeEvent::Finished {
        task: TaskId(2),
        position: 2000,
        output: None,
    });
    assert_eq!(
        sent(&mut a),
        vec![WorkerToCoord::Progress(Progress {
            lease: LeaseId(8),
            position: 2000
        })]
    );
    assert_eq!(a.leases_held(), 0);
    // Nothing held; lease 8, finished on the lost connection, is offered again.
    a.handle_disconnected();
    welcome(&mut a, PROTOCOL_MINOR);
    assert_eq!(
        sent(&mut a),
        vec![WorkerToCoord::Holding(Holding {
            leases: vec![HeldLease {
                lease: LeaseId(8),
                job: JobId(1),
                work: digest,
                start: 1000,
                position: 2000,
                end: 2000,
                found: vec![1500],
            }]
        })]
    );
    // Then nothing: the next welcome says so.
    a.handle_disconnected();
    welcome(&mut a, PROTOCOL_MINOR);
    assert_eq!(
        sent(&mut a),
        vec![WorkerToCoord::Holding(Holding { leases: vec![] })]
    );
}

#[test]
fn a_coordinator_that_cannot_adopt_gets_nothing_and_the_leases_stop() {
    let mut a = agent();
    a.handle_message(assign(7, 0, 1000)).unwrap();
    a.handle_message(assign(8, 1000, 2000)).unwrap();
    commands(&mut a);
    a.handle_disconnected();
    a.handle_compute(ComputeEvent::Finished {
        task: TaskId(1),
        position: 1000,
        output: None,
    });
    welcome(&mut a, 0);
    assert_eq!(sent(&mut a), vec![]);
    assert_eq!(commands(&mut a), vec!["Stop(TaskId(2))"]);
    a.handle_compute(ComputeEvent::Finished {
        task: TaskId(2),
        position: 1200,
        output: None,
    });
    assert_eq!(sent(&mut a), vec![], "orphaned: not reported");
    assert_eq!(a.leases_held(), 0);
    // The next session's lease 7 is a different task.
    a.handle_message(assign(7, 0, 10)).unwrap();
    assert_eq!(commands(&mut a), vec!["Run(TaskId(3), 0..10)"]);
}

#[test]
fn a_lease_with_more_solutions_than_can_be_remembered_stops_when_the_connection_goes() {
    let mut a = agent();
    a.handle_message(assign(7, 0, 1 << 19)).unwrap();
    a.handle_message(assign(8, 1 << 19, 1 << 20)).unwrap();
    commands(&mut a);
    a.handle_compute(ComputeEvent::Found {
        task: TaskId(1),
        indices: (0..=MAX_HELD_FOUND as u64).collect(),
    });
    sent(&mut a);
    a.handle_disconnected();
    assert_eq!(commands(&mut a), vec!["Stop(TaskId(1))"]);
    // The other one runs on until it finds too many too.
    a.handle_compute(ComputeEvent::Found {
        task: TaskId(2),
        indices: (1 << 19..(1 << 19) + MAX_HELD_FOUND as u64 + 1).collect(),
    });
    assert_eq!(commands(&mut a), vec!["Stop(TaskId(2))"]);
    assert_eq!(a.leases_detached(), 0);
    welcome(&mut a, PROTOCOL_MINOR);
    assert_eq!(
        sent(&mut a),
        vec![WorkerToCoord::Holding(Holding { leases: vec![] })]
    );
}

#[test]
fn leaving_and_losing_the_connection_stops_everything() {
    let mut a = agent();
    a.handle_message(assign(7, 0, 1000)).unwrap();
    commands(&mut a);
    a.handle_shutdown();
    assert_eq!(commands(&mut a), vec!["Stop(TaskId(1))"]);
    a.handle_disconnected();
    assert!(a.has_left());
    assert_eq!(a.leases_detached(), 0);
}

#[test]
fn bad_assignments_are_protocol_errors() {
    let mut a = agent();
    assert_eq!(
        a.handle_message(assign(1, 10, 10)),
        Err(AgentError::BadRange {
            lease: LeaseId(1),
            start: 10,
            end: 10,
            keyspace: 1 << 20
        })
    );
    assert!(matches!(
        a.handle_message(assign(2, 0, (1 << 20) + 1)),
        Err(AgentError::BadRange { .. })
    ));
    let CoordToWorker::Assign(mut bad) = assign(3, 0, 10) else {
        panic!()
    };
    let WorkSpec::Sha256d(w) = std::sync::Arc::make_mut(&mut bad.work) else {
        unreachable!()
    };
    w.version_mask = 1;
    assert_eq!(
        a.handle_message(CoordToWorker::Assign(bad)),
        Err(AgentError::InvalidWork {
            lease: LeaseId(3),
            reason: "version mask 0x00000001 has bits outside BIP 320's 0x1fffe000".into()
        })
    );
    assert_eq!(
        a.handle_message(CoordToWorker::Welcome(WorkerWelcome {
            minor: 0,
            worker: WorkerId(1),
            progress_interval_ms: 1
        })),
        Err(AgentError::UnexpectedWelcome)
    );
    assert!(commands(&mut a).is_empty());
    let _: Option<ComputeCommand> = a.poll_compute();
}

#[test]
fn a_trim_is_passed_to_the_engine_and_its_new_end_acknowledged() {
    let mut a = agent();
    a.handle_message(assign(7, 0, 1000)).unwrap();
    commands(&mut a);
    a.handle_message(CoordToWorker::Trim(Trim {
        lease: LeaseId(7),
        end: 400,
    }))
    .unwrap();
    assert_eq!(commands(&mut a), vec!["Trim(TaskId(1), 400)"]);
    a.handle_compute(ComputeEvent::Trimmed {
        task: TaskId(1),
        end: 512,
    });
    a.handle_compute(ComputeEvent::Finished {
        task: TaskId(1),
        position: 512,
        output: None,
    });
    assert_eq!(
        sent(&mut a),
        vec![
            WorkerToCoord::Trimmed(Trimmed {
                lease: LeaseId(7),
                end: 512
            }),
            WorkerToCoord::Progress(Progress {
                lease: LeaseId(7),
                position: 512
            }),
        ],
        "the lease completes at its new end"
    );
    // A trim for a lease no longer held is ignored.
    a.handle_message(CoordToWorker::Trim(Trim {
        lease: LeaseId(7),
        end: 1,
    }))
    .unwrap();
    assert!(commands(&mut a).is_empty());
}

fn run_kernel(a: &mut Agent) -> std::sync::Arc<dyn picluster_core::kernel::SearchKernel> {
    match a.poll_compute() {
        Some(ComputeCommand::Run {
            work: picluster_worker::compute::Work::Search(kernel),
            ..
        }) => kernel,
        other => panic!("expected a run, got {other:?}"),
    }
}

#[test]
fn a_jobs_kernel_is_built_once_for_all_its_leases() {
    let mut a = agent();
    a.handle_message(assign(1, 0, 10)).unwrap();
    let first = run_kernel(&mut a);
    a.handle_message(assign(2, 10, 20)).unwrap();
    let second = run_kernel(&mut a);
    assert!(std::sync::Arc::ptr_eq(&first, &second));
    // The same job id with another description (a coordinator restarted without its
    // journal) is another job: its kernel is built anew.
    let job = Sha256dJob::new(vectors()[1].header, None, 0..1 << 20, 0).unwrap();
    a.handle_message(CoordToWorker::Assign(Assign {
        lease: LeaseId(3),
        job: JobId(1),
        work: WorkSpec::from(&JobKind::Sha256d(job)).into(),
        start: 0,
        end: 10,
    }))
    .unwrap();
    let third = run_kernel(&mut a);
    assert!(!std::sync::Arc::ptr_eq(&first, &third));
    assert_eq!(third.keyspace(), 1 << 20);
}

#[test]
fn leases_beyond_what_the_engine_queues_are_handed_straight_back() {
    let mut a = agent();
    let cap = picluster_worker::compute::MAX_TASKS as u64;
    for lease in 1..=cap {
        a.handle_message(assign(lease, lease * 10, lease * 10 + 10))
            .unwrap();
    }
    assert_eq!(commands(&mut a).len(), cap as usize);
    assert!(sent(&mut a).is_empty());
    a.handle_message(assign(cap + 1, 0, 10)).unwrap();
    assert!(commands(&mut a).is_empty());
    assert_eq!(
        sent(&mut a),
        vec![WorkerToCoord::Released(Released {
            lease: LeaseId(cap + 1),
            position: 0,
        })]
    );
    assert_eq!(a.leases_held(), cap as usize);
}
