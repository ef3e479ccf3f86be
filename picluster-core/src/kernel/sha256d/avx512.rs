//! The x86-64 AVX-512 SHA-256d nonce scan and batch compressions: 16 nonces (or
//! blocks) at once, one per 32-bit lane. AVX-512F has lane rotates (`vprord`) and
//! three-input logic (`vpternlogd`), so a round is a handful of instructions for 16
//! hashes. The scan is the generic lane scan of `lanes` (fully unrolled, state
//! renamed, the schedule extended group by group), instantiated here for [`Zmm`]:
//! the nonce-free work is the portable kernel's (`Prepared`); the second hash stops
//! after round 60 and only lanes whose top word could meet the target are checked
//! further, one at a time against the reference (rare: 1 in 2^32 at difficulty 1).

use super::lanes::{self, Lanes};
use super::portable::Scan;
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

/// Byte-swaps every lane (the header stores the nonce little-endian).
#[target_feature(enable = "avx512f")]
fn bswap(x: __m512i) -> __m512i {
    let high = _mm512_and_si512(
        _mm512_ror_epi32::<8>(x),
        _mm512_set1_epi32(0xff00_ff00_u32 as i32),
    );
    let low = _mm512_and_si512(_mm512_rol_epi32::<8>(x), _mm512_set1_epi32(0x00ff_00ff));
    _mm512_or_si512(high, low)
}

/// Sixteen lanes for the generic code in `lanes` (the batch compressions of the
/// preimage and hashcash kernels): rotates are `vprord`, Ch, Maj and the three-way
/// XORs of the sigmas one `vpternlogd` each.
#[derive(Clone, Copy)]
pub(super) struct Zmm(__m512i);

// SAFETY (every `unsafe` block below): `Zmm` values are only made and used in
// `compress16`, which is compiled with AVX-512F and only called when the CPU has it.
impl Lanes for Zmm {
    const N: usize = 16;
    #[inline(always)]
    fn splat(x: u32) -> Self {
        Zmm(unsafe { _mm512_set1_epi32(x as i32) })
    }
    #[inline(always)]
    fn counting(base: u32) -> Self {
        Zmm(unsafe {
            _mm512_add_epi32(
                _mm512_set1_epi32(base as i32),
                _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
            )
        })
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Zmm(unsafe { _mm512_add_epi32(self.0, o.0) })
    }
    #[inline(always)]
    fn ch(e: Self, f: Self, g: Self) -> Self {
        Zmm(unsafe { _mm512_ternarylogic_epi32::<0xCA>(e.0, f.0, g.0) })
    }
    #[inline(always)]
    fn maj(a: Self, b: Self, c: Self) -> Self {
        Zmm(unsafe { _mm512_ternarylogic_epi32::<0xE8>(a.0, b.0, c.0) })
    }
    #[inline(always)]
    fn bsig0(self) -> Self {
        let x = self.0;
        Zmm(unsafe {
            xor3(
                _mm512_ror_epi32::<2>(x),
                _mm512_ror_epi32::<13>(x),
                _mm512_ror_epi32::<22>(x),
            )
        })
    }
    #[inline(always)]
    fn bsig1(self) -> Self {
        let x = self.0;
        Zmm(unsafe {
            xor3(
                _mm512_ror_epi32::<6>(x),
                _mm512_ror_epi32::<11>(x),
                _mm512_ror_epi32::<25>(x),
            )
        })
    }
    #[inline(always)]
    fn ssig0(self) -> Self {
        Zmm(unsafe { ssig0(self.0) })
    }
    #[inline(always)]
    fn ssig1(self) -> Self {
        Zmm(unsafe { ssig1(self.0) })
    }
    #[inline(always)]
    fn bswap(self) -> Self {
        Zmm(unsafe { bswap(self.0) })
    }
    #[inline(always)]
    fn le_mask(self, o: Self) -> u32 {
        u32::from(unsafe { _mm512_cmple_epu32_mask(self.0, o.0) })
    }
    #[inline(always)]
    fn load(words: &[u32]) -> Self {
        let words = &words[..16];
        // SAFETY: sixteen readable words (the slice above is checked).
        Zmm(unsafe { _mm512_loadu_si512(words.as_ptr().cast()) })
    }
    #[inline(always)]
    fn store(self, out: &mut [u32]) {
        let out = &mut out[..16];
        // SAFETY: sixteen writable words (the slice above is checked).
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), self.0) }
    }
}

/// A batch operation, sixteen blocks at a time (see `lanes::run`).
pub(crate) fn run(op: lanes::Op<'_>) {
    assert!(
        available(),
        "AVX-512 kernel selected on a CPU without AVX-512F"
    );
    // SAFETY: the CPU has AVX-512F (checked above).
    unsafe { run16(op) }
}

#[inline(never)]
#[target_feature(enable = "avx512f")]
fn run16(op: lanes::Op<'_>) {
    lanes::run::<Zmm>(op);
}

#[inline(never)]
#[target_feature(enable = "avx512f")]
fn scan16(scan: &Scan<'_>, hits: &mut Vec<u64>) {
    lanes::scan_lanes::<Zmm>(scan, hits);
}
