//! The x86-64 SHA-NI SHA-256d nonce scan: two nonces interleaved, so that the long
//! latency of `sha256rnds2` is hidden by the other nonce's independent instructions.
//! The whole loop is compiled with the SHA extensions enabled and entered once per
//! range, after a runtime check ([`available`]); nothing here dispatches per hash.
//!
//! State is kept in SHA-NI's ABEF/CDGH register layout; message words are built as
//! host-order lanes (word `t` in lane `t % 4`), so no byte shuffles are needed.

use super::portable::{Scan, IV, K};
use std::arch::x86_64::*;

/// Whether this CPU has what the kernel needs.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse4.1")
        && std::arch::is_x86_feature_detected!("ssse3")
}

/// Runs `scan_two` after checking the CPU; falls back to nothing (the caller only
/// selects this implementation when [`available`] is true).
pub(crate) fn scan(scan: &Scan<'_>, hits: &mut Vec<u64>) {
    assert!(
        available(),
        "SHA-NI kernel selected on a CPU without SHA-NI"
    );
    // SAFETY: the CPU has the features `scan_two` is compiled for (checked above).
    unsafe { scan_two(scan, hits) }
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

/// 64 rounds on two independent streams; `m` holds each stream's 16 message words in
/// four lanes-of-four. Returns the states after adding the inputs.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress_two(
    state: [(__m128i, __m128i); 2],
    mut m: [[__m128i; 4]; 2],
) -> [(__m128i, __m128i); 2] {
    let mut s = state;
    for group in 0..16 {
        let t = group * 4;
        let k = k4(t);
        for j in 0..2 {
            let slot = group % 4;
            if group >= 4 {
                // W[t..t+4] from W[t-16..t): msg1/msg2 plus W[t-7..t-3] by alignr.
                let w16 = m[j][slot];
                let w12 = m[j][(slot + 1) % 4];
                let w8 = m[j][(slot + 2) % 4];
                let w4 = m[j][(slot + 3) % 4];
                let mixed =
                    _mm_add_epi32(_mm_sha256msg1_epu32(w16, w12), _mm_alignr_epi8::<4>(w4, w8));
                m[j][slot] = _mm_sha256msg2_epu32(mixed, w4);
            }
            let wk = _mm_add_epi32(m[j][slot], k);
            let (abef, cdgh) = s[j];
            let cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
            let abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32::<0x0E>(wk));
            s[j] = (abef, cdgh);
        }
    }
    [0, 1].map(|j| {
        (
            _mm_add_epi32(s[j].0, state[j].0),
            _mm_add_epi32(s[j].1, state[j].1),
        )
    })
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn words(w: [u32; 4]) -> __m128i {
    _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32)
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn scan_two(scan: &Scan<'_>, hits: &mut Vec<u64>) {
    let (p, target, nonces) = scan.parts();
    let top = u32::from_be_bytes([target.0[0], target.0[1], target.0[2], target.0[3]]);
    let mid = pack(&p.midstate);
    let iv = pack(&IV);
    let w = p.w;
    let m1 = words([w[4], w[5], w[6], w[7]]);
    let m2 = words([w[8], w[9], w[10], w[11]]);
    let m3 = words([w[12], w[13], w[14], w[15]]);
    let pad1 = words([0x8000_0000, 0, 0, 0]);
    let pad2 = words([0, 0, 0, 256]);
    let block2 = |nonce: u64| {
        let n = (nonce as u32).swap_bytes();
        [words([w[0], w[1], w[2], n]), m1, m2, m3]
    };
    let mut nonce = nonces.start;
    while nonce < nonces.end {
        let second = (nonce + 1).min(nonces.end - 1);
        let first_hash = compress_two([mid, mid], [block2(nonce), block2(second)]);
        let messages = first_hash.map(|(abef, cdgh)| {
            let (dcba, hgfe) = unpack(abef, cdgh);
            [dcba, hgfe, pad1, pad2]
        });
        let out = compress_two([iv, iv], messages);
        for (j, candidate) in [nonce, second].into_iter().enumerate() {
            if j == 1 && second == nonce {
                break; // an odd range's last nonce was computed twice
            }
            let (dcba, hgfe) = unpack(out[j].0, out[j].1);
            let h7 = _mm_extract_epi32::<3>(hgfe) as u32;
            if h7.swap_bytes() > top {
                continue;
            }
            let mut state = [0u32; 8];
            // SAFETY: two 16-byte stores into a 32-byte array.
            unsafe {
                _mm_storeu_si128(state.as_mut_ptr().cast(), dcba);
                _mm_storeu_si128(state.as_mut_ptr().add(4).cast(), hgfe);
            }
            let mut digest = [0u8; 32];
            for (chunk, word) in digest.chunks_exact_mut(4).zip(state) {
                chunk.copy_from_slice(&word.to_be_bytes());
            }
            if target.is_met_by(&digest) {
                hits.push(scan.index_of(candidate));
            }
        }
        nonce += 2;
    }
}
