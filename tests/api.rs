//! The library as a Rust programmer meets it: helpers to make targets, solutions
//! that say what they found, errors that read as sentences however they are printed,
//! and the blocking client refusing to run inside an async runtime.

use picluster_client::{
    hex, sha256, sha256d, ClientError, Mask, PreimageHash, PreimageJob, Solution, SolutionDetail,
};
use sha2::{Digest, Sha256};

#[test]
fn the_hash_and_hex_helpers_agree_with_sha2_and_make_a_preimage_target() {
    let once: [u8; 32] = Sha256::digest(b"pig").into();
    let twice: [u8; 32] = Sha256::digest(once).into();
    assert_eq!(sha256(b"pig"), once);
    assert_eq!(sha256d(b"pig"), twice);
    assert_eq!(
        hex::encode(&sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(hex::decode(&hex::encode(&once)).unwrap(), once.to_vec());
    let mask = Mask::parse("?l?l?l", &[None; 4]).unwrap();
    assert!(PreimageJob::new(mask, PreimageHash::Sha256, &[sha256(b"pig")], None).is_ok());
}

#[test]
fn solutions_say_what_they_found_and_print_a_text_candidate_as_text() {
    let preimage = Solution {
        index: 7,
        hash: [0; 32],
        detail: SolutionDetail::Preimage {
            candidate: b"pig".to_vec(),
        },
    };
    assert_eq!(preimage.candidate(), Some(&b"pig"[..]));
    assert_eq!(preimage.candidate_text(), Some("pig"));
    assert_eq!((preimage.counter(), preimage.nonce()), (None, None));
    assert_eq!(
        format!("{:?}", preimage.detail),
        "Preimage { candidate: \"pig\" }"
    );
    let binary = SolutionDetail::Preimage {
        candidate: vec![0xff, 0x00],
    };
    assert_eq!(format!("{binary:?}"), "Preimage { candidate: [255, 0] }");
    let hashcash = Solution {
        index: 3,
        hash: [0; 32],
        detail: SolutionDetail::Hashcash { counter: 41 },
    };
    assert_eq!(hashcash.counter(), Some(41));
    assert_eq!(hashcash.candidate(), None);
}

#[test]
fn errors_print_their_sentence_under_debug_as_main_shows_them() {
    let bad = Mask::parse("?l?", &[None; 4]).unwrap_err();
    assert_eq!(format!("{bad:?}"), bad.to_string());
    assert!(
        !format!("{bad:?}").contains("TrailingQuestionMark"),
        "{bad:?}"
    );
    let boxed: Box<dyn std::error::Error> = Box::new(bad);
    assert_eq!(format!("{boxed:?}"), boxed.to_string());
    assert_eq!(
        format!("{:?}", ClientError::Disconnected),
        "the connection to the coordinator was lost"
    );
}

#[tokio::test]
async fn the_blocking_client_inside_an_async_runtime_says_what_to_use_instead() {
    let bundle = picluster_core::trust::ClusterCa::generate("c")
        .unwrap()
        .bundle(
            picluster_core::identity::Role::Client,
            "alice",
            "127.0.0.1:9",
        )
        .unwrap();
    match picluster_client::blocking::Client::connect(&bundle) {
        Err(e @ ClientError::InsideRuntime) => assert_eq!(
            e.to_string(),
            "picluster_client::blocking::Client was called inside an async runtime, where it would block the runtime's thread: use picluster_client::Client with .await there (or call the blocking client from tokio::task::spawn_blocking)"
        ),
        other => panic!("expected InsideRuntime, got {other:?}"),
    }
}
