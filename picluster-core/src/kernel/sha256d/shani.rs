//! The x86-64 SHA-NI SHA-256d nonce scan, as a pipeline of two hashes: each step
//! runs the second hash of nonce `n` side by side with the first hash of nonce
//! `n + 1`. The two dependent chains of `sha256rnds2` hide each other's latency, and
//! because they are always in different hashes they never both wait at a hash's
//! start, as two nonces hashed in step do (5 % faster than that on the Intel Xeon of
//! BENCHMARKS.md). The whole loop is compiled with the SHA extensions enabled and
//! entered once per range, after a runtime check ([`available`]); nothing here
//! dispatches per hash.
//!
//! State is kept in SHA-NI's ABEF/CDGH register layout; message words are built as
//! host-order lanes (word `t` in lane `t % 4`), so no byte shuffles are needed. The
//! rounds are fully unrolled (a macro names every group, so the message ring's slots
//! are constants and stay in registers). Per range, once: rounds 0-3 of the header's
//! second block with a nonce word of zero (round 3 is the first to see the nonce,
//! and it only adds it to A and E, so each nonce's state after round 3 is one vector
//! add away), message words 16-19 with a nonce of zero (16 and 17 do not depend on
//! it; 18 and 19 only add σ0(nonce) and the nonce, computed in scalar code, so those
//! words take no schedule instructions), and every W+K, `sha256msg1` and `alignr`
//! term that no nonce changes (of that block's padding and of the second hash's).
//! What bounds the loop on the Intel Xeon measured (`benches/ports.c`) is the port
//! `sha256rnds2` holds for about three cycles; `sha256msg1` holds another for about
//! four. Per nonce: 30 `sha256rnds2` for the first hash (rounds 4-63) and 30 for the
//! second (rounds 0-59), then round 60 in scalar code: the E it makes is what H7
//! will be, so rounds 61-63 are skipped unless the top word could meet the target,
//! and then [`Scan::confirm`] checks the nonce in full.

use super::blocks::{gather_states, scatter_states, Blocks, States, BATCH};
use super::portable::{Scan, IV, K};
use std::arch::x86_64::*;

/// Whether this CPU has what the kernel needs.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse4.1")
        && std::arch::is_x86_feature_detected!("ssse3")
}

/// Runs [`scan_pipelined`] after checking the CPU; falls back to nothing (the caller only
/// selects this implementation when [`available`] is true).
pub(crate) fn scan(scan: &Scan<'_>, hits: &mut Vec<u64>) {
    assert!(
        available(),
        "SHA-NI kernel selected on a CPU without SHA-NI"
    );
    // SAFETY: the CPU has the features `scan_pipelined` is compiled for (checked
    // above).
    unsafe { scan_pipelined(scan, hits) }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn pack(state: &[u32; 8]) -> (__m128i, __m128i) {
    let dcba = _mm_set_epi32(
        state[3] as i32,
        state[2] as i32,
        state[1] as i32,
        state[0] as i32,
    );
    let hgfe = _mm_set_epi32(
        state[7] as i32,
        state[6] as i32,
        state[5] as i32,
        state[4] as i32,
    );
    let cdab = _mm_shuffle_epi32::<0xB1>(dcba);
    let efgh = _mm_shuffle_epi32::<0x1B>(hgfe);
    let abef = _mm_alignr_epi8::<8>(cdab, efgh);
    let cdgh = _mm_blend_epi16::<0xF0>(efgh, cdab);
    (abef, cdgh)
}

/// Back to lanes a,b,c,d and e,f,g,h.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn unpack(abef: __m128i, cdgh: __m128i) -> (__m128i, __m128i) {
    let feba = _mm_shuffle_epi32::<0x1B>(abef);
    let dchg = _mm_shuffle_epi32::<0xB1>(cdgh);
    let dcba = _mm_blend_epi16::<0xF0>(feba, dchg);
    let hgfe = _mm_alignr_epi8::<8>(dchg, feba);
    (dcba, hgfe)
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn k4(t: usize) -> __m128i {
    _mm_set_epi32(
        K[t + 3] as i32,
        K[t + 2] as i32,
        K[t + 1] as i32,
        K[t] as i32,
    )
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn words(w: [u32; 4]) -> __m128i {
    _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32)
}

/// A state in SHA-NI's layout: (ABEF, CDGH).
type State = (__m128i, __m128i);

/// Rounds t..t+4, `wk` holding W+K for each.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn rounds4(s: &mut State, wk: __m128i) {
    let (abef, cdgh) = *s;
    let abef2 = _mm_sha256rnds2_epu32(cdgh, abef, wk);
    let abef4 = _mm_sha256rnds2_epu32(abef, abef2, _mm_shuffle_epi32::<0x0E>(wk));
    // After two rounds, C,D,G,H are the A,B,E,F of two rounds before.
    *s = (abef4, abef2);
}

/// The four lanes of `v`, lane 0 first, stored and loaded back: LLVM would turn
/// a plain store and load into `pextrd`s, which need the vector ALU ports.
#[inline(always)]
fn lanes(v: __m128i) -> [u32; 4] {
    let mut out = std::mem::MaybeUninit::<[u32; 4]>::uninit();
    // SAFETY: the asm writes all 16 bytes of `out`, and nothing else.
    unsafe {
        std::arch::asm!(
            "movups xmmword ptr [{out}], {v}",
            out = in(reg) out.as_mut_ptr(),
            v = in(xmm_reg) v,
            options(nostack, preserves_flags),
        );
        out.assume_init()
    }
}

/// Message words W[t..t+4] (t = 16, 20, ... 60) into `m[SLOT]`, where the ring `m`
/// holds W[t-16..t) with W[t-16+4i..] in `m[(SLOT + i) % 4]`. The caller passes the
/// terms it has precomputed because no nonce changes them: `msg1`, the
/// `sha256msg1(W[t-16..], W[t-12..])`, and `align`, the W[t-7..t-3] that `alignr`
/// extracts.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn schedule<const SLOT: usize>(
    m: &mut [__m128i; 4],
    msg1: Option<__m128i>,
    align: Option<__m128i>,
) -> __m128i {
    let w16 = m[SLOT];
    let w12 = m[(SLOT + 1) % 4];
    let w8 = m[(SLOT + 2) % 4];
    let w4 = m[(SLOT + 3) % 4];
    let s0 = msg1.unwrap_or_else(|| _mm_sha256msg1_epu32(w16, w12));
    let w7 = align.unwrap_or_else(|| _mm_alignr_epi8::<4>(w4, w8));
    let w = _mm_sha256msg2_epu32(_mm_add_epi32(s0, w7), w4);
    m[SLOT] = w;
    w
}

/// Everything about a scan's block and the second hash that no nonce changes.
struct Fixed {
    /// The header's second block after rounds 0-3 with a nonce word of zero. Round 3
    /// is the first to see the nonce, and it only adds it to A and E, so a nonce's
    /// state after round 3 is this plus the nonce word in the lanes of A and E.
    after_round_3: State,
    /// Message words 4-15.
    m1: __m128i,
    m2: __m128i,
    m3: __m128i,
    /// W+K of rounds 4-15, msg1 of words 4-11 and 8-15, and words 9-12 (alignr).
    wk1: __m128i,
    wk2: __m128i,
    wk3: __m128i,
    msg1_12: __m128i,
    msg1_23: __m128i,
    /// Words 16-19 with a nonce of zero (16 and 17 do not depend on it), W+K of
    /// rounds 16-17 in the low lanes, of rounds 18-19 with a nonce of zero in the low
    /// lanes, and the msg1 of words 12-15 and 16-19, which depends on 16 only.
    w16: __m128i,
    wk16_low: __m128i,
    wk16_high: __m128i,
    msg1_3_16: __m128i,
    midstate: State,
    /// The second hash: its initial state, W+K of rounds 8-15 (constant padding), its
    /// padding words 8-15, their msg1, and the alignr of words 8-15 that W16 needs.
    iv: State,
    pad_wk2: __m128i,
    pad_wk3: __m128i,
    pad2: __m128i,
    pad3: __m128i,
    pad_msg1_23: __m128i,
    pad_align_32: __m128i,
}

impl Fixed {
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn new(p: &super::portable::Prepared) -> Fixed {
        let w = p.w;
        let midstate = pack(&p.midstate);
        let mut after_round_3 = p.after_round_2;
        super::portable::round(&mut after_round_3, K[3]);
        let m1 = words([w[4], w[5], w[6], w[7]]);
        let m2 = words([w[8], w[9], w[10], w[11]]);
        let m3 = words([w[12], w[13], w[14], w[15]]);
        let pad2 = words([0x8000_0000, 0, 0, 0]);
        let pad3 = words([0, 0, 0, 256]);
        let m0 = words([w[0], w[1], w[2], 0]);
        let msg1_01 = _mm_sha256msg1_epu32(m0, m1);
        let w16 = _mm_sha256msg2_epu32(_mm_add_epi32(msg1_01, _mm_alignr_epi8::<4>(m3, m2)), m3);
        let wk16 = _mm_add_epi32(w16, k4(16));
        Fixed {
            after_round_3: pack(&after_round_3),
            m1,
            m2,
            m3,
            wk1: _mm_add_epi32(m1, k4(4)),
            wk2: _mm_add_epi32(m2, k4(8)),
            wk3: _mm_add_epi32(m3, k4(12)),
            msg1_12: _mm_sha256msg1_epu32(m1, m2),
            msg1_23: _mm_sha256msg1_epu32(m2, m3),
            w16,
            wk16_low: wk16,
            wk16_high: _mm_shuffle_epi32::<0x0E>(wk16),
            msg1_3_16: _mm_sha256msg1_epu32(m3, w16),
            midstate,
            iv: pack(&IV),
            pad_wk2: _mm_add_epi32(pad2, k4(8)),
            pad_wk3: _mm_add_epi32(pad3, k4(12)),
            pad2,
            pad3,
            pad_msg1_23: _mm_sha256msg1_epu32(pad2, pad3),
            pad_align_32: _mm_alignr_epi8::<4>(pad3, pad2),
        }
    }
}

/// Groups of four rounds of every stream, scheduling their message words: each
/// `(slot, t, msg1, align)` is rounds t..t+4, whose words go to ring slot `slot`,
/// with [`schedule`]'s precomputed terms.
macro_rules! groups {
    ($s:ident, $m:ident; $(($slot:literal, $t:literal, $msg1:expr, $align:expr))*) => {$(
        for j in 0..$s.len() {
            let w = schedule::<$slot>(&mut $m[j], $msg1, $align);
            rounds4(&mut $s[j], _mm_add_epi32(w, k4($t)));
        }
    )*};
}

/// One step of each of two hashes, their instructions side by side: `$a` and `$b`
/// are each a state, a message ring and a group `(slot, t, msg1, align)` as in
/// [`groups!`].
macro_rules! side_by_side {
    ($sa:ident, $ma:ident, $sb:ident, $mb:ident;
     $(($slot_a:literal, $t_a:literal, $msg1_a:expr, $align_a:expr)
       ($slot_b:literal, $t_b:literal, $msg1_b:expr, $align_b:expr))*) => {$(
        let wa = schedule::<$slot_a>(&mut $ma, $msg1_a, $align_a);
        let wb = schedule::<$slot_b>(&mut $mb, $msg1_b, $align_b);
        rounds4(&mut $sa, _mm_add_epi32(wa, k4($t_a)));
        rounds4(&mut $sb, _mm_add_epi32(wb, k4($t_b)));
    )*};
}

/// The scan as a pipeline of two hashes: each step runs the second hash of nonce
/// `n` side by side with the first hash of nonce `n + 1`, so the two dependent
/// chains of `sha256rnds2` are always in different hashes and never wait at a hash's
/// start together, as two nonces hashed in step do.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn scan_pipelined(scan: &Scan<'_>, hits: &mut Vec<u64>) {
    let (p, target, nonces) = scan.parts();
    let top = u32::from_be_bytes([target.0[0], target.0[1], target.0[2], target.0[3]]);
    let f = Fixed::new(p);
    if nonces.is_empty() {
        return;
    }
    // The start of nonce `n`'s first hash. Rounds 0-3 need no `sha256rnds2`: they
    // are the state after round 3 with a nonce of zero plus the nonce word in A and
    // E (lanes 3 and 1 of ABEF). Words 16 and 17 do not depend on the nonce; 18 and
    // 19 add σ0(n) and n to what they are with a nonce of zero, so they take no
    // schedule instructions: `x` holds σ0(n) and n in lanes 0 and 1 (lane 2 is zero,
    // which the A-and-E shuffle uses), and the ring's slot 0, which only words 16-19
    // would read, becomes words 16-19.
    let start = |n: u64| -> (State, [__m128i; 4], __m128i) {
        let n = (n as u32).swap_bytes();
        let sigma0 = n.rotate_right(7) ^ n.rotate_right(18) ^ (n >> 3);
        let x = _mm_cvtsi64_si128((u64::from(n) << 32 | u64::from(sigma0)) as i64);
        let mut s = f.after_round_3;
        s.0 = _mm_add_epi32(s.0, _mm_shuffle_epi32::<0x66>(x));
        let m = [
            _mm_add_epi32(f.w16, _mm_slli_si128::<8>(x)),
            f.m1,
            f.m2,
            f.m3,
        ];
        (s, m, x)
    };
    let finish = |s: State| -> (__m128i, __m128i) {
        unpack(
            _mm_add_epi32(s.0, f.midstate.0),
            _mm_add_epi32(s.1, f.midstate.1),
        )
    };
    // Step i hashes nonce `start + i` to the end of its first hash and nonce
    // `start + i - 1` to round 60 of its second, so one step more than the range has
    // nonces: the first step's second hash (of no nonce) and the last step's first
    // hash (of the nonce past the range) are dropped.
    let mut digest = (_mm_setzero_si128(), _mm_setzero_si128());
    for i in 0..nonces.end - nonces.start + 1 {
        let (mut s1, mut m, x) = start(nonces.start.wrapping_add(i));
        let (dcba, hgfe) = digest;
        let mut v = [dcba, hgfe, f.pad2, f.pad3];
        let mut s2 = f.iv;
        rounds4(&mut s1, f.wk1);
        rounds4(&mut s2, _mm_add_epi32(dcba, k4(0)));
        rounds4(&mut s1, f.wk2);
        rounds4(&mut s2, _mm_add_epi32(hgfe, k4(4)));
        rounds4(&mut s1, f.wk3);
        rounds4(&mut s2, f.pad_wk2);
        rounds2_16(&mut s1, x, &f);
        rounds4(&mut s2, f.pad_wk3);
        side_by_side!(s1, m, s2, v;
            (1, 20, Some(f.msg1_12), None) (0, 16, None, Some(f.pad_align_32))
            (2, 24, Some(f.msg1_23), None) (1, 20, None, None)
            (3, 28, Some(f.msg1_3_16), None) (2, 24, Some(f.pad_msg1_23), None)
            (0, 32, None, None) (3, 28, None, None)
            (1, 36, None, None) (0, 32, None, None)
            (2, 40, None, None) (1, 36, None, None)
            (3, 44, None, None) (2, 40, None, None)
            (0, 48, None, None) (3, 44, None, None)
            (1, 52, None, None) (0, 48, None, None)
            (2, 56, None, None) (1, 52, None, None)
            (3, 60, None, None) (2, 56, None, None));
        digest = finish(s1);
        // Round 60 of the second hash alone, in scalar code (one `sha256rnds2`
        // fewer): the E it makes is H at the end, so H7 is it plus the initial
        // state's word 7. The lanes go through memory: a `pextrd` takes a vector
        // port, a store and a load none.
        let w = schedule::<3>(&mut v, None, None);
        let (abef, cdgh) = s2;
        let [f_, e, _, _] = lanes(abef);
        let [h, g, d, _] = lanes(cdgh);
        let sigma1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let t1 = h
            .wrapping_add(sigma1)
            .wrapping_add((e & f_) ^ (!e & g))
            .wrapping_add((_mm_cvtsi128_si32(w) as u32).wrapping_add(K[60]));
        let h7 = d.wrapping_add(t1).wrapping_add(IV[7]);
        if h7.swap_bytes() <= top && i > 0 {
            scan.confirm(nonces.start + i - 1, hits);
        }
    }
}

/// Rounds 16-19 of the header's block, whose words need no schedule instructions:
/// 16 and 17 are fixed, 18 and 19 add σ0(nonce) and the nonce (`x`'s lanes 0-1).
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn rounds2_16(s: &mut State, x: __m128i, f: &Fixed) {
    let (abef, cdgh) = *s;
    let abef2 = _mm_sha256rnds2_epu32(cdgh, abef, f.wk16_low);
    let abef4 = _mm_sha256rnds2_epu32(abef, abef2, _mm_add_epi32(x, f.wk16_high));
    *s = (abef4, abef2);
}

/// The number of compressions [`compress`] keeps in flight.
pub(crate) const STREAMS: usize = 2;

/// SHA-256 compressions of a batch of blocks, [`STREAMS`] interleaved: state `j`
/// absorbs block `j`, starting from `from` for every block if given (laid out once),
/// else from state `j`. What the preimage and hashcash kernels run.
pub(crate) fn compress(from: Option<&[u32; 8]>, states: &mut States, blocks: &Blocks) {
    assert!(
        available(),
        "SHA-NI compression used on a CPU without SHA-NI"
    );
    // SAFETY: the CPU has the features `compress_all` is compiled for (checked above).
    unsafe { compress_all(from, states, blocks) }
}

#[inline(never)]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress_all(from: Option<&[u32; 8]>, states: &mut States, blocks: &Blocks) {
    let from = from.map(|s| pack(s));
    // Four blocks at a time: each group of four message words is four row loads and
    // a 4x4 transpose, rather than sixteen scalar loads.
    for first in (0..BATCH).step_by(4) {
        let mut m = [[_mm_setzero_si128(); 4]; 4];
        for g in 0..4 {
            // SAFETY: `first + 4 <= BATCH`: four readable words of each row.
            let [r0, r1, r2, r3] = std::array::from_fn(|i| unsafe {
                _mm_loadu_si128(blocks[4 * g + i][first..first + 4].as_ptr().cast())
            });
            let (t0, t1) = (_mm_unpacklo_epi32(r0, r1), _mm_unpacklo_epi32(r2, r3));
            let (t2, t3) = (_mm_unpackhi_epi32(r0, r1), _mm_unpackhi_epi32(r2, r3));
            m[0][g] = _mm_unpacklo_epi64(t0, t1);
            m[1][g] = _mm_unpackhi_epi64(t0, t1);
            m[2][g] = _mm_unpacklo_epi64(t2, t3);
            m[3][g] = _mm_unpackhi_epi64(t2, t3);
        }
        for pair in (0..4).step_by(STREAMS) {
            let lanes = first + pair;
            let out = compress_streams::<STREAMS>(
                from,
                &gather_states(states, lanes),
                std::array::from_fn(|q| m[pair + q]),
            );
            scatter_states(states, lanes, &out);
        }
    }
}

#[allow(
    clippy::needless_range_loop,
    reason = "stream j's state and message ring are indexed alike"
)]
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress_streams<const N: usize>(
    from: Option<(__m128i, __m128i)>,
    states: &[[u32; 8]; N],
    mut m: [[__m128i; 4]; N],
) -> [[u32; 8]; N] {
    let init: [(__m128i, __m128i); N] = match from {
        Some(state) => [state; N],
        None => std::array::from_fn(|j| pack(&states[j])),
    };
    let mut s = init;
    for j in 0..N {
        rounds4(&mut s[j], _mm_add_epi32(m[j][0], k4(0)));
    }
    for j in 0..N {
        rounds4(&mut s[j], _mm_add_epi32(m[j][1], k4(4)));
    }
    for j in 0..N {
        rounds4(&mut s[j], _mm_add_epi32(m[j][2], k4(8)));
    }
    for j in 0..N {
        rounds4(&mut s[j], _mm_add_epi32(m[j][3], k4(12)));
    }
    groups!(s, m;
        (0, 16, None, None)
        (1, 20, None, None)
        (2, 24, None, None)
        (3, 28, None, None)
        (0, 32, None, None)
        (1, 36, None, None)
        (2, 40, None, None)
        (3, 44, None, None)
        (0, 48, None, None)
        (1, 52, None, None)
        (2, 56, None, None));
    for j in 0..N {
        let w = schedule::<3>(&mut m[j], None, None);
        rounds4(&mut s[j], _mm_add_epi32(w, k4(60)));
    }
    std::array::from_fn(|j| {
        let (dcba, hgfe) = unpack(
            _mm_add_epi32(s[j].0, init[j].0),
            _mm_add_epi32(s[j].1, init[j].1),
        );
        let mut state = [0u32; 8];
        // SAFETY: two 16-byte stores into a 32-byte array.
        unsafe {
            _mm_storeu_si128(state.as_mut_ptr().cast(), dcba);
            _mm_storeu_si128(state.as_mut_ptr().add(4).cast(), hgfe);
        }
        state
    })
}
