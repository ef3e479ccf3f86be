//! The aarch64 SHA-256d nonce scan with the ARMv8 SHA2 instructions (Raspberry Pi 5's
//! Cortex-A76; the Pi 3 and 4 lack them): `sha256h`/`sha256h2` do four rounds,
//! `sha256su0`/`su1` extend the schedule four words at a time. The scan is a
//! pipeline: each step runs the second hashes of two nonces side by side with the
//! first hashes of the next two, so four dependent chains hide each other's latency
//! and never all wait at a hash's start (llvm-mca's Cortex-A76 model: 233 cycles per
//! nonce with four nonces hashed in step, 217 as a pipeline). The midstate is
//! computed once per version. Rounds 0-3 of the second block are done once per range
//! with a nonce of zero: round 3 is the first to see the nonce and only adds it to A
//! and E, so each nonce starts at quad 1. Message words 16 and 17 do not depend on
//! the nonce and 18 and 19 add σ0(nonce) and the nonce, so they take no
//! `sha256su0`/`su1`. The second hash's padding is constant. The four-round
//! instructions leave no room to stop after round 60, so the top word is checked
//! after the last round.

use super::blocks::{gather_blocks, gather_states, scatter_states, Blocks, States, BATCH};
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
    unsafe { scan_pipelined(scan, hits) }
}

/// Quads `$q` (rounds 4q to 4q+3) of every stream of [`compress_streams`], each
/// stream's instructions next to the others'.
macro_rules! quads {
    ($s:ident, $m:ident, $k:ident; $($q:literal)*) => {$({
        let kq = $k[$q];
        for j in 0..$s.len() {
            let wk = vaddq_u32($m[j][0], kq);
            let [a, e] = $s[j];
            $s[j] = [vsha256hq_u32(a, e, wk), vsha256h2q_u32(e, a, wk)];
        }
        for j in 0..$s.len() {
            let [m0, m1, m2, m3] = $m[j];
            let next = if $q < 12 {
                vsha256su1q_u32(vsha256su0q_u32(m0, m1), m2, m3)
            } else {
                m0
            };
            $m[j] = [m1, m2, m3, next];
        }
    })*};
}

/// [`STREAMS`] compressions at once, their instructions interleaved: stream `j`'s
/// state `$states[j]` ([ABCD, EFGH]) absorbs message `$msgs[j]` (four vectors of four
/// words); `$k` holds the round constants by fours. A macro rather than a function, so
/// that it is expanded into the functions compiled with the SHA2 instructions, fully
/// unrolled, with nothing passed through the stack.
macro_rules! compress_streams {
    ($states:expr, $msgs:expr, $k:expr) => {{
        let states: [[uint32x4_t; 2]; STREAMS] = $states;
        let mut m: [[uint32x4_t; 4]; STREAMS] = $msgs;
        let k: &[uint32x4_t; 16] = $k;
        let mut s = states;
        quads!(s, m, k; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
        let out: [[uint32x4_t; 2]; STREAMS] = std::array::from_fn(|j| {
            [
                vaddq_u32(s[j][0], states[j][0]),
                vaddq_u32(s[j][1], states[j][1]),
            ]
        });
        out
    }};
}

/// SHA-256 compressions of a batch of blocks, [`STREAMS`] interleaved: state `j` absorbs
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
    for first in (0..BATCH).step_by(STREAMS) {
        let st = gather_states::<STREAMS>(states, first);
        let bl = gather_blocks::<STREAMS>(blocks, first);
        let out = compress_streams!(
            std::array::from_fn(|j| from.unwrap_or_else(|| state(&st[j]))),
            std::array::from_fn(|j| msg(&bl[j])),
            &k
        );
        let out: [[u32; 8]; STREAMS] = out.map(|[abcd, efgh]| {
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

/// Quads `$q` of two sets of streams, one after the other per quad.
macro_rules! both_quads {
    ($sa:ident, $ma:ident, $sb:ident, $mb:ident, $k:ident; $($q:literal)*) => {$(
        quads!($sa, $ma, $k; $q);
        quads!($sb, $mb, $k; $q);
    )*};
}

/// Nonces per half of [`scan_pipelined`]'s step.
const HALF: usize = 2;

/// The scan as a pipeline: each step runs the second hashes of [`HALF`] nonces side
/// by side with the first hashes of the next [`HALF`], so that the four chains in
/// flight are never all at a hash's start together.
#[inline(never)]
#[target_feature(enable = "sha2")]
fn scan_pipelined(scan: &Scan<'_>, hits: &mut Vec<u64>) {
    let (p, target, nonces) = scan.parts();
    if nonces.is_empty() {
        return;
    }
    let top = u32::from_be_bytes([target.0[0], target.0[1], target.0[2], target.0[3]]);
    let k: [uint32x4_t; 16] = std::array::from_fn(|q| load(&K[4 * q..]));
    let mid = [load(&p.midstate[..4]), load(&p.midstate[4..])];
    let iv = [load(&IV[..4]), load(&IV[4..])];
    let (m1, m2, m3) = (load(&p.w[4..8]), load(&p.w[8..12]), load(&p.w[12..16]));
    let pad = [load(&[0x8000_0000, 0, 0, 0]), load(&[0, 0, 0, 256])];
    let mut after_round_3 = p.after_round_2;
    super::portable::round(&mut after_round_3, K[3]);
    let start = [load(&after_round_3[..4]), load(&after_round_3[4..])];
    let w16 = load(&[p.w16, p.w17, p.w18_part, p.w19_part]);
    // The first hashes of nonces `base..base + HALF` after round 3, and their message
    // rings at quad 1. Rounds 0-3 were done once with a nonce of zero: round 3 is
    // the first to see the nonce, and it only adds it to A and E. Words 16 and 17 do
    // not depend on the nonce; 18 and 19 add σ0(nonce) and the nonce, so they take
    // no `sha256su0`/`su1`.
    let begin = |base: u64| {
        let mut s = [start; HALF];
        let mut m = [[m1, m2, m3, w16]; HALF];
        for j in 0..HALF {
            let n = (base.wrapping_add(j as u64) as u32).swap_bytes();
            let sigma0 = n.rotate_right(7) ^ n.rotate_right(18) ^ (n >> 3);
            let a_e = vsetq_lane_u32::<0>(n, vdupq_n_u32(0));
            s[j] = [vaddq_u32(s[j][0], a_e), vaddq_u32(s[j][1], a_e)];
            let terms = vcombine_u32(
                vdup_n_u32(0),
                vcreate_u32(u64::from(n) << 32 | u64::from(sigma0)),
            );
            m[j][3] = vaddq_u32(w16, terms);
        }
        (s, m)
    };
    let digest = |s: [[uint32x4_t; 2]; HALF]| -> [[uint32x4_t; 4]; HALF] {
        std::array::from_fn(|j| {
            [
                vaddq_u32(s[j][0], mid[0]),
                vaddq_u32(s[j][1], mid[1]),
                pad[0],
                pad[1],
            ]
        })
    };
    // Step i hashes the HALF nonces from `start + HALF * i` to the end of their
    // first hash and the HALF before them to the end of their second, so there is
    // one step more than the range needs: the first step's second hashes (of no
    // nonces) and the first hashes of nonces past the range are dropped.
    let mut next = [[vdupq_n_u32(0), vdupq_n_u32(0), pad[0], pad[1]]; HALF];
    let steps = (nonces.end - nonces.start).div_ceil(HALF as u64);
    for i in 0..steps + 1 {
        let first = nonces.start.wrapping_add(i * HALF as u64);
        let (mut s1, mut r1) = begin(first);
        let mut s2 = [iv; HALF];
        let mut r2 = next;
        quads!(s2, r2, k; 0);
        both_quads!(s1, r1, s2, r2, k; 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
        next = digest(s1);
        if i == 0 {
            continue;
        }
        let base = nonces.start + (i - 1) * HALF as u64;
        let count = (nonces.end - base).min(HALF as u64);
        for (lane, state) in s2.iter().enumerate().take(count as usize) {
            // H7, the top of the hash read as a little-endian number, byte-swapped.
            let high = vgetq_lane_u32::<3>(vaddq_u32(state[1], iv[1])).swap_bytes();
            if high <= top {
                scan.confirm(base + lane as u64, hits);
            }
        }
    }
}

/// The number of compressions [`compress`] keeps in flight.
const STREAMS: usize = 4;
