//! The aarch64 SHA-256d nonce scan with the ARMv8 SHA2 instructions (Raspberry Pi 5's
//! Cortex-A76; the Pi 3 and 4 lack them): `sha256h`/`sha256h2` do four rounds,
//! `sha256su0`/`su1` extend the schedule four words at a time. Two nonces are hashed
//! side by side so that each one's dependent chain of instructions hides the other's
//! latency. The midstate is computed once per version; of the second block only the
//! first four message words (with the nonce) change; the second hash's padding is
//! constant. The four-round instructions leave no room to stop after round 60, so the
//! top word is checked after the last round.

use super::batch::{gather_blocks, gather_states, scatter_states, Blocks, States, BATCH};
use super::portable::{Scan, IV, K};
use std::arch::aarch64::*;

/// Whether this CPU has the SHA2 instructions.
pub(crate) fn available() -> bool {
    std::arch::is_aarch64_feature_detected!("sha2")
}

pub(crate) fn scan(scan: &Scan<'_>, hits: &mut Vec<u64>) {
    assert!(
        available(),
        "ARMv8 SHA2 kernel selected on a CPU without the SHA2 instructions"
    );
    // SAFETY: the CPU has the SHA2 instructions (checked above); NEON is baseline.
    unsafe { scan2(scan, hits) }
}

/// Two compressions at once: `states[i]` absorbs message `msgs[i]`.
#[target_feature(enable = "sha2")]
fn compress2(
    states: [[uint32x4_t; 2]; 2],
    msgs: [[uint32x4_t; 4]; 2],
    k: &[uint32x4_t; 16],
) -> [[uint32x4_t; 2]; 2] {
    let [[mut a0, mut e0], [mut a1, mut e1]] = states;
    let [mut m0, mut m1] = msgs;
    for (q, kq) in k.iter().enumerate() {
        let wk0 = vaddq_u32(m0[0], *kq);
        let wk1 = vaddq_u32(m1[0], *kq);
        let (p0, p1) = (a0, a1);
        a0 = vsha256hq_u32(a0, e0, wk0);
        a1 = vsha256hq_u32(a1, e1, wk1);
        e0 = vsha256h2q_u32(e0, p0, wk0);
        e1 = vsha256h2q_u32(e1, p1, wk1);
        if q < 12 {
            let n0 = vsha256su1q_u32(vsha256su0q_u32(m0[0], m0[1]), m0[2], m0[3]);
            let n1 = vsha256su1q_u32(vsha256su0q_u32(m1[0], m1[1]), m1[2], m1[3]);
            m0 = [m0[1], m0[2], m0[3], n0];
            m1 = [m1[1], m1[2], m1[3], n1];
        } else {
            m0 = [m0[1], m0[2], m0[3], m0[0]];
            m1 = [m1[1], m1[2], m1[3], m1[0]];
        }
    }
    [
        [vaddq_u32(a0, states[0][0]), vaddq_u32(e0, states[0][1])],
        [vaddq_u32(a1, states[1][0]), vaddq_u32(e1, states[1][1])],
    ]
}

/// SHA-256 compressions of a batch of blocks, two interleaved: state `j` absorbs
/// block `j`, starting from `from` for every block if given, else from state `j`.
/// What the preimage and hashcash kernels run.
pub(crate) fn compress(from: Option<&[u32; 8]>, states: &mut States, blocks: &Blocks) {
    assert!(
        available(),
        "ARMv8 SHA2 compression used on a CPU without the SHA2 instructions"
    );
    // SAFETY: the CPU has the SHA2 instructions (checked above).
    unsafe { compress_pairs(from, states, blocks) }
}

#[inline(never)]
#[target_feature(enable = "sha2")]
fn compress_pairs(from: Option<&[u32; 8]>, states: &mut States, blocks: &Blocks) {
    let k: [uint32x4_t; 16] = std::array::from_fn(|q| load(&K[4 * q..]));
    let state = |s: &[u32; 8]| [load(&s[..4]), load(&s[4..])];
    let msg = |b: &[u32; 16]| {
        [
            load(&b[..4]),
            load(&b[4..8]),
            load(&b[8..12]),
            load(&b[12..]),
        ]
    };
    let from = from.map(state);
    for first in (0..BATCH).step_by(2) {
        let [s0, s1] = gather_states::<2>(states, first);
        let [b0, b1] = gather_blocks::<2>(blocks, first);
        let out = compress2(
            [
                from.unwrap_or_else(|| state(&s0)),
                from.unwrap_or_else(|| state(&s1)),
            ],
            [msg(&b0), msg(&b1)],
            &k,
        );
        let out: [[u32; 8]; 2] = out.map(|[abcd, efgh]| {
            let mut s = [0u32; 8];
            // SAFETY: two 4-word stores into an 8-word array.
            unsafe {
                vst1q_u32(s.as_mut_ptr(), abcd);
                vst1q_u32(s.as_mut_ptr().add(4), efgh);
            }
            s
        });
        scatter_states(states, first, &out);
    }
}

#[target_feature(enable = "sha2")]
fn load(words: &[u32]) -> uint32x4_t {
    // SAFETY: `words` has at least four elements (all callers pass 4-word slices).
    unsafe { vld1q_u32(words[..4].as_ptr()) }
}

#[inline(never)]
#[target_feature(enable = "sha2")]
fn scan2(scan: &Scan<'_>, hits: &mut Vec<u64>) {
    let (p, target, nonces) = scan.parts();
    let top = u32::from_be_bytes([target.0[0], target.0[1], target.0[2], target.0[3]]);
    let k: [uint32x4_t; 16] = std::array::from_fn(|q| load(&K[4 * q..]));
    let mid = [load(&p.midstate[..4]), load(&p.midstate[4..])];
    let iv = [load(&IV[..4]), load(&IV[4..])];
    let (m1, m2, m3) = (load(&p.w[4..8]), load(&p.w[8..12]), load(&p.w[12..16]));
    let pad = [load(&[0x8000_0000, 0, 0, 0]), load(&[0, 0, 0, 256])];
    let mut base = nonces.start;
    while base < nonces.end {
        let count = (nonces.end - base).min(2);
        let words = |nonce: u64| [p.w[0], p.w[1], p.w[2], (nonce as u32).swap_bytes()];
        let first = compress2(
            [mid, mid],
            [
                [load(&words(base)), m1, m2, m3],
                [load(&words(base + 1)), m1, m2, m3],
            ],
            &k,
        );
        let second = compress2(
            [iv, iv],
            [
                [first[0][0], first[0][1], pad[0], pad[1]],
                [first[1][0], first[1][1], pad[0], pad[1]],
            ],
            &k,
        );
        for (lane, state) in second.iter().enumerate().take(count as usize) {
            // H7, the top of the hash read as a little-endian number, byte-swapped.
            let high = vgetq_lane_u32::<3>(state[1]).swap_bytes();
            if high > top {
                continue;
            }
            scan.confirm(base + lane as u64, hits);
        }
        base += 2;
    }
}
