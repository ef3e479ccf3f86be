//! Fuzz targets, run as proptest loops in the suite: the frame decoder and every
//! wire message (as bytes, and as structured messages fed into the coordinator state
//! machine), the join token parser, and certificate request handling. Each case is
//! random input and mutations of valid samples; none may panic, and what is accepted
//! must be consistent.
//!
//! cargo-fuzz needs a nightly toolchain, which a fresh CI machine of this project
//! cannot fetch, so the targets run here. They run `PICLUSTER_FUZZ_CASES` cases each
//! (default 2,000; the suite's CI run uses the default). For a long run:
//! `PICLUSTER_FUZZ_CASES=1000000 cargo test --release --test tests fuzz::`.

use picluster_core::coordinator::{Coordinator, CoordinatorConfig, Inbound, Transmit};
use picluster_core::identity::{PeerIdentity, Role};
use picluster_core::ids::{ConnId, JobId, LeaseId, RequestId};
use picluster_core::job::{JobKind, SearchMode};
use picluster_core::kernel::sha256d::Sha256dJob;
use picluster_core::token::JoinToken;
use picluster_core::trust::ClusterCa;
use picluster_core::wire::*;
use picluster_suite::fixtures::vectors;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::time::{Duration, Instant};

fn cases() -> u32 {
    std::env::var("PICLUSTER_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

/// Applies byte mutations (position, xor) and an optional truncation.
fn mutate(mut bytes: Vec<u8>, flips: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    if !bytes.is_empty() {
        for &(at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
    }
    if let Some(cut) = cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    bytes
}

fn decode_every_kind(body: &[u8]) {
    macro_rules! each {
        ($($t:ty),*) => {$(
            if let Ok(m) = decode_body::<$t>(body) {
                // What decodes re-encodes, and decodes again to the same message
                // (postcard accepts overlong varints, so the bytes may differ).
                let frame = encode_frame(&m).unwrap();
                assert_eq!(decode_body::<$t>(&frame[4..]).unwrap(), m, "{}", stringify!($t));
            }
        )*};
    }
    each!(
        WorkerToCoord,
        CoordToWorker,
        ClientToCoord,
        CoordToClient,
        JoinToCoord,
        CoordToJoin
    );
}

#[test]
fn fuzz_frame_decoder_and_every_wire_message_as_bytes() {
    let seeds: Vec<Vec<u8>> = vec![
        encode_frame(&WorkerToCoord::Shares(Found {
            lease: LeaseId(3),
            indices: vec![1, 2, 3],
        }))
        .unwrap(),
        encode_frame(&JoinToCoord::Join(JoinRequest {
            minor: 2,
            token: "0a0b0c0d0e0f".into(),
            secret: [1; 16],
            name: "pi-1".into(),
            role: Role::Worker,
            csr: vec![0x30, 0x82, 1, 2],
        }))
        .unwrap(),
        encode_frame(&ClientToCoord::CreateToken(CreateToken {
            request: RequestId(1),
            id: "0a0b0c0d0e0f".into(),
            secret_sha256: [2; 32],
            role: Role::Worker,
            ttl_s: 60,
            uses: 1,
            replace: false,
        }))
        .unwrap(),
        encode_frame(&CoordToClient::Credentials(
            RequestId(2),
            CredentialReport::default(),
        ))
        .unwrap(),
    ];
    let strategy = (
        0..seeds.len(),
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        proptest::option::of(any::<usize>()),
        proptest::collection::vec(any::<u8>(), 0..96),
        any::<bool>(),
    );
    runner()
        .run(&strategy, |(which, flips, cut, random, use_random)| {
            let frame = if use_random {
                random
            } else {
                mutate(seeds[which].clone(), &flips, cut)
            };
            for t in 0..6 {
                let _ = match t {
                    0 => decode_frame::<WorkerToCoord>(&frame).map(drop),
                    1 => decode_frame::<CoordToWorker>(&frame).map(drop),
                    2 => decode_frame::<ClientToCoord>(&frame).map(drop),
                    3 => decode_frame::<CoordToClient>(&frame).map(drop),
                    4 => decode_frame::<JoinToCoord>(&frame).map(drop),
                    _ => decode_frame::<CoordToJoin>(&frame).map(drop),
                };
            }
            if frame.len() >= 4 {
                decode_every_kind(&frame[4..]);
                let _ = frame_body_len(frame[..4].try_into().unwrap());
            }
            Ok(())
        })
        .unwrap();
}

/// A worker message built from random parts, leases and indices near the job's.
fn worker_message() -> impl Strategy<Value = WorkerToCoord> {
    let lease = (0u64..12).prop_map(LeaseId);
    let index = prop_oneof![0u64..(1 << 20), any::<u64>()];
    prop_oneof![
        (lease.clone(), index.clone())
            .prop_map(|(lease, position)| WorkerToCoord::Progress(Progress { lease, position })),
        (
            lease.clone(),
            proptest::collection::vec(index.clone(), 0..4)
        )
            .prop_map(|(lease, indices)| WorkerToCoord::Found(Found { lease, indices })),
        (
            lease.clone(),
            proptest::collection::vec(index.clone(), 0..4)
        )
            .prop_map(|(lease, indices)| WorkerToCoord::Shares(Found { lease, indices })),
        (lease.clone(), index.clone())
            .prop_map(|(lease, position)| WorkerToCoord::Released(Released { lease, position })),
        (lease.clone(), index.clone())
            .prop_map(|(lease, end)| WorkerToCoord::Trimmed(Trimmed { lease, end })),
        (
            lease.clone(),
            index.clone(),
            proptest::collection::vec(any::<u8>(), 0..8)
        )
            .prop_map(|(lease, position, data)| WorkerToCoord::Output(Output {
                lease,
                position,
                data
            })),
        (lease.clone(), ".{0,8}")
            .prop_map(|(lease, reason)| WorkerToCoord::Rejected(Rejected { lease, reason })),
        (lease, 0u64..3, index.clone(), index.clone(), index).prop_map(
            |(lease, job, start, position, end)| WorkerToCoord::Holding(Holding {
                leases: vec![HeldLease {
                    lease,
                    job: JobId(job),
                    work: [0; 32],
                    start,
                    position,
                    end,
                    found: vec![],
                }],
            })
        ),
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|csr| WorkerToCoord::Renew(Renew { csr })),
        any::<u16>().prop_map(hello),
    ]
}

fn hello(minor: u16) -> WorkerToCoord {
    WorkerToCoord::Hello(WorkerHello {
        minor,
        agent_version: "f".into(),
        threads: 1,
        arch: "x86_64".into(),
        kernel_impl: "f".into(),
        bench_hps: 1 << 20,
        kernels: vec![],
    })
}

#[test]
fn fuzz_every_worker_message_into_the_coordinator() {
    let strategy = (
        proptest::collection::vec((0usize..3, worker_message(), 0u64..400), 1..40),
        any::<bool>(),
    );
    runner()
        .run(&strategy, |(script, shares)| {
            let mut now = Instant::now();
            let mut core = Coordinator::new(
                CoordinatorConfig {
                    min_chunk: 1 << 12,
                    max_chunk: 1 << 14,
                    ..CoordinatorConfig::default()
                },
                now,
            );
            let client = ConnId(100);
            core.handle_connected(now, client, PeerIdentity::new(Role::Admin, "a"));
            let client_says = |core: &mut Coordinator, now, m| {
                core.handle_inbound(now, client, Inbound::Client(m));
            };
            client_says(
                &mut core,
                now,
                ClientToCoord::Hello(ClientHello {
                    minor: PROTOCOL_MINOR,
                    client_version: "f".into(),
                }),
            );
            let job = Sha256dJob::new(vectors()[0].header, None, 0..1 << 20, 0).unwrap();
            client_says(
                &mut core,
                now,
                ClientToCoord::Submit(Submit {
                    request: RequestId(1),
                    work: WorkSpec::from(&JobKind::Sha256d(job)),
                    mode: SearchMode::All,
                    priority: 0,
                }),
            );
            let minor = if shares { PROTOCOL_MINOR } else { 0 };
            for w in 0..3u64 {
                let conn = ConnId(w + 1);
                core.handle_connected(now, conn, PeerIdentity::new(Role::Worker, format!("w{w}")));
                core.handle_inbound(now, conn, Inbound::Worker(hello(minor)));
            }
            let mut open = [true; 3];
            for (who, message, wait_ms) in script {
                while let Some(t) = core.poll_transmit(now) {
                    if let Transmit::Close(conn, _) = t {
                        if (1..=3).contains(&conn.0) && open[conn.0 as usize - 1] {
                            open[conn.0 as usize - 1] = false;
                            core.handle_disconnected(now, conn);
                        }
                    }
                }
                now += Duration::from_millis(wait_ms);
                core.handle_timeout(now);
                if open[who] {
                    core.handle_inbound(now, ConnId(who as u64 + 1), Inbound::Worker(message));
                }
            }
            while core.poll_transmit(now).is_some() {}
            let report = core.report(JobId(1), now).unwrap();
            prop_assert!(report.hashes <= 1 << 20);
            // Nothing a worker says makes a solution the reference does not confirm.
            for s in &report.solutions {
                prop_assert!(
                    picluster_core::kernel::SearchKernel::verify(&job.kernel(), s.index).is_some()
                );
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_join_tokens() {
    let valid = JoinToken {
        id: "0a1b2c3d4e5f".into(),
        secret: [0x5a; 16],
        ca_pin: [0xc3; 32],
        address: "pi-master.local:7878".into(),
        more: Vec::new(),
    }
    .to_string();
    let strategy = (
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        proptest::option::of(any::<usize>()),
        ".{0,120}",
        any::<bool>(),
    );
    runner()
        .run(&strategy, |(flips, cut, random, use_random)| {
            let text = if use_random {
                random
            } else {
                String::from_utf8_lossy(&mutate(valid.clone().into_bytes(), &flips, cut))
                    .into_owned()
            };
            match text.parse::<JoinToken>() {
                // What parses prints back as itself (ids in lower case).
                Ok(token) => {
                    prop_assert_eq!(token.to_string().parse::<JoinToken>().unwrap(), token)
                }
                Err(e) => prop_assert!(e.to_string().starts_with("not a join token")),
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_certificate_requests() {
    let ca = ClusterCa::generate("fuzz").unwrap();
    let (_, valid) = picluster_core::trust::make_request("pi-1").unwrap();
    let strategy = (
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        proptest::option::of(any::<usize>()),
        proptest::collection::vec(any::<u8>(), 0..200),
        any::<bool>(),
    );
    runner()
        .run(&strategy, |(flips, cut, random, use_random)| {
            let request = if use_random {
                random
            } else {
                mutate(valid.clone(), &flips, cut)
            };
            match ca.sign_request(Role::Worker, "pi-7", &request, 90, 1) {
                Ok(pem) => {
                    // Whatever was asked, the certificate names the worker pi-7.
                    let der: rustls_pki_types::CertificateDer<'static> =
                        rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).unwrap();
                    let id = picluster_core::trust::identity_of(&der).unwrap();
                    prop_assert_eq!((id.role, id.name.as_str()), (Role::Worker, "pi-7"));
                }
                Err(e) => prop_assert!(e.to_string().starts_with("certificate request refused")),
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_join_requests_into_the_coordinator() {
    let strategy = proptest::collection::vec(
        (
            prop_oneof![Just("0a0b0c0d0e0f".to_string()), "[0-9a-f]{0,14}"],
            prop_oneof![Just([7u8; 16]), any::<[u8; 16]>()],
            prop_oneof![Just("pi-9".to_string()), ".{0,70}"],
            any::<bool>(),
        ),
        1..8,
    );
    runner()
        .run(&strategy, |joins| {
            let now = Instant::now();
            let mut core = Coordinator::new(CoordinatorConfig::default(), now);
            let admin = ConnId(100);
            core.handle_connected(now, admin, PeerIdentity::new(Role::Admin, "admin"));
            core.handle_inbound(
                now,
                admin,
                Inbound::Client(ClientToCoord::Hello(ClientHello {
                    minor: PROTOCOL_MINOR,
                    client_version: "f".into(),
                })),
            );
            core.handle_inbound(
                now,
                admin,
                Inbound::Client(ClientToCoord::CreateToken(CreateToken {
                    request: RequestId(1),
                    id: "0a0b0c0d0e0f".into(),
                    secret_sha256: picluster_core::token::secret_hash(&[7u8; 16]),
                    role: Role::Worker,
                    ttl_s: 600,
                    uses: 2,
                    replace: false,
                })),
            );
            let mut issued = 0;
            for (i, (token, secret, name, csr_ok)) in joins.into_iter().enumerate() {
                let conn = ConnId(i as u64 + 1);
                core.handle_joining(now, conn);
                let checked = if csr_ok {
                    Ok(())
                } else {
                    Err(picluster_core::wire::CsrError::NotARequest)
                };
                core.handle_inbound(
                    now,
                    conn,
                    Inbound::Join(
                        JoinRequest {
                            minor: 2,
                            token,
                            secret,
                            name,
                            role: Role::Worker,
                            csr: vec![],
                        },
                        checked,
                    ),
                );
                // A second request on the same connection is a violation, not a join.
                core.handle_inbound(
                    now,
                    conn,
                    Inbound::Join(
                        JoinRequest {
                            minor: 2,
                            token: "0a0b0c0d0e0f".into(),
                            secret: [7; 16],
                            name: "pi-x".into(),
                            role: Role::Worker,
                            csr: vec![],
                        },
                        Ok(()),
                    ),
                );
                while let Some(t) = core.poll_transmit(now) {
                    if let Transmit::Issue(_, issue) = t {
                        prop_assert_eq!(issue.role, Role::Worker);
                        prop_assert!(picluster_core::identity::is_valid_name(&issue.name));
                        issued += 1;
                    }
                }
            }
            // The token allows two enrollments, whatever came.
            prop_assert!(issued <= 2, "{issued} certificates from a two-use token");
            Ok(())
        })
        .unwrap();
}
