//! The x86-64 AVX-512 SHA-256d nonce scan: 16 nonces at once, one per 32-bit lane.
//! AVX-512F has lane rotates (`vprord`) and three-input logic (`vpternlogd`), so a
//! round is a handful of instructions for 16 hashes. The nonce-free work is the
//! portable kernel's ([`Prepared`]); the second hash stops after round 60 and only
//! lanes whose top word could meet the target are checked further, one at a time
//! against the reference (rare: 1 in 2^32 at difficulty 1).

use super::portable::{Scan, IV, K};
use std::arch::x86_64::*;

/// Whether this CPU has AVX-512F.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

pub(crate) fn scan(scan: &Scan<'_>, hits: &mut Vec<u64>) {
    assert!(
        available(),
        "AVX-512 kernel selected on a CPU without AVX-512F"
    );
    // SAFETY: the CPU has AVX-512F (checked above).
    unsafe { scan16(scan, hits) }
}

#[target_feature(enable = "avx512f")]
fn splat(x: u32) -> __m512i {
    _mm512_set1_epi32(x as i32)
}

#[target_feature(enable = "avx512f")]
fn xor3(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
    _mm512_ternarylogic_epi32::<0x96>(a, b, c)
}

#[target_feature(enable = "avx512f")]
fn ssig0(x: __m512i) -> __m512i {
    xor3(
        _mm512_ror_epi32::<7>(x),
        _mm512_ror_epi32::<18>(x),
        _mm512_srli_epi32::<3>(x),
    )
}

#[target_feature(enable = "avx512f")]
fn ssig1(x: __m512i) -> __m512i {
    xor3(
        _mm512_ror_epi32::<17>(x),
        _mm512_ror_epi32::<19>(x),
        _mm512_srli_epi32::<10>(x),
    )
}

#[target_feature(enable = "avx512f")]
fn round(s: &mut [__m512i; 8], kw: __m512i) {
    let [a, b, c, d, e, f, g, h] = *s;
    let sum1 = xor3(
        _mm512_ror_epi32::<6>(e),
        _mm512_ror_epi32::<11>(e),
        _mm512_ror_epi32::<25>(e),
    );
    let ch = _mm512_ternarylogic_epi32::<0xCA>(e, f, g);
    let t1 = _mm512_add_epi32(_mm512_add_epi32(h, sum1), _mm512_add_epi32(ch, kw));
    let sum0 = xor3(
        _mm512_ror_epi32::<2>(a),
        _mm512_ror_epi32::<13>(a),
        _mm512_ror_epi32::<22>(a),
    );
    let maj = _mm512_ternarylogic_epi32::<0xE8>(a, b, c);
    let t2 = _mm512_add_epi32(sum0, maj);
    *s = [
        _mm512_add_epi32(t1, t2),
        a,
        b,
        c,
        _mm512_add_epi32(d, t1),
        e,
        f,
        g,
    ];
}

#[target_feature(enable = "avx512f")]
fn schedule(w: &mut [__m512i; 64], from: usize, end: usize) {
    for t in from..end {
        w[t] = _mm512_add_epi32(
            _mm512_add_epi32(ssig1(w[t - 2]), w[t - 7]),
            _mm512_add_epi32(ssig0(w[t - 15]), w[t - 16]),
        );
    }
}

/// Byte-swaps every lane (the header stores the nonce little-endian).
#[target_feature(enable = "avx512f")]
fn bswap(x: __m512i) -> __m512i {
    let high = _mm512_and_si512(_mm512_ror_epi32::<8>(x), splat(0xff00_ff00));
    let low = _mm512_and_si512(_mm512_rol_epi32::<8>(x), splat(0x00ff_00ff));
    _mm512_or_si512(high, low)
}

#[target_feature(enable = "avx512f")]
fn scan16(scan: &Scan<'_>, hits: &mut Vec<u64>) {
    let (p, target, nonces) = scan.parts();
    let top = splat(u32::from_be_bytes([
        target.0[0],
        target.0[1],
        target.0[2],
        target.0[3],
    ]));
    let lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    let zero = _mm512_setzero_si512();
    let mut w = [zero; 64];
    let mut v = [zero; 64];
    let mut base = nonces.start;
    while base < nonces.end {
        let count = (nonces.end - base).min(16) as u32;
        let raw = _mm512_add_epi32(splat(base as u32), lanes);
        let n = bswap(raw);
        for (lane, word) in w.iter_mut().zip(p.w) {
            *lane = splat(word);
        }
        w[3] = n;
        w[16] = splat(p.w16);
        w[17] = splat(p.w17);
        w[18] = _mm512_add_epi32(splat(p.w18_part), ssig0(n));
        w[19] = _mm512_add_epi32(splat(p.w19_part), n);
        schedule(&mut w, 20, 64);
        let mut s = [zero; 8];
        for (lane, word) in s.iter_mut().zip(p.after_round_2) {
            *lane = splat(word);
        }
        for t in 3..64 {
            round(&mut s, _mm512_add_epi32(splat(K[t]), w[t]));
        }
        for i in 0..8 {
            v[i] = _mm512_add_epi32(splat(p.midstate[i]), s[i]);
        }
        v[8] = splat(0x8000_0000);
        for slot in v.iter_mut().take(15).skip(9) {
            *slot = zero;
        }
        v[15] = splat(256);
        schedule(&mut v, 16, 61);
        let mut s = [zero; 8];
        for (lane, word) in s.iter_mut().zip(IV) {
            *lane = splat(word);
        }
        for t in 0..61 {
            round(&mut s, _mm512_add_epi32(splat(K[t]), v[t]));
        }
        // After round 60, e is the final h: the hash's top word is IV[7] + e, swapped.
        let high = bswap(_mm512_add_epi32(splat(IV[7]), s[4]));
        let mut candidates = _mm512_cmple_epu32_mask(high, top) & ((1u32 << count) - 1) as u16;
        while candidates != 0 {
            let lane = candidates.trailing_zeros();
            candidates &= candidates - 1;
            scan.confirm(base + u64::from(lane), hits);
        }
        base += 16;
    }
}
