//! The SIMD SHA-256d nonce scans without SHA instructions: one nonce per 32-bit lane,
//! the portable kernel's tricks applied lane-wise (midstate and rounds 0-2 from
//! [`Prepared`], the nonce-free schedule words, constant padding of the second hash,
//! early exit after round 60 on the top word).
//!
//! The scan is written once, generic over a vector of lanes ([`Lanes`]), and
//! instantiated inside a function compiled for each CPU feature, so every
//! implementation is a whole loop built for its instructions:
//! - `avx2`: x86-64 AVX2, 8 lanes (x86 without AVX-512);
//! - `neon`: aarch64 Advanced SIMD, 4 lanes (Raspberry Pi 3 and 4, whose cores lack the
//!   SHA2 extension), with shift-and-insert rotates and bit-select for Ch and Maj;
//! - `neon32`: 32-bit ARM with NEON (32-bit Raspberry Pi OS), 4 lanes; there the
//!   compression is NEON assembly, as Rust's 32-bit ARM NEON intrinsics are not
//!   stable and LLVM does not vectorise the generic scan.
//!
//! `Arr4` (plain arrays, no SIMD) runs the generic scan anywhere, so that its logic
//! is tested on every machine against the portable reference.

// On 32-bit ARM only tests use the generic scan (neon32 is assembly).
#![cfg_attr(
    all(target_arch = "arm", not(test)),
    allow(
        dead_code,
        reason = "the generic scan serves x86-64, aarch64 and tests"
    )
)]

use super::blocks::{Blocks, States, BATCH};
use super::portable::{Scan, IV, K};

/// A vector of `N` 32-bit lanes. Implementations are only ever used inside a function
/// compiled with the instructions they need.
pub(super) trait Lanes: Copy {
    const N: usize;
    fn splat(x: u32) -> Self;
    /// Lane `i` holds `base + i`.
    fn counting(base: u32) -> Self;
    fn add(self, o: Self) -> Self;
    /// Ch(e, f, g) = (e & f) ^ (!e & g).
    fn ch(e: Self, f: Self, g: Self) -> Self;
    /// Maj(a, b, c).
    fn maj(a: Self, b: Self, c: Self) -> Self;
    /// Σ0, Σ1, σ0, σ1 of SHA-256.
    fn bsig0(self) -> Self;
    fn bsig1(self) -> Self;
    fn ssig0(self) -> Self;
    fn ssig1(self) -> Self;
    fn bswap(self) -> Self;
    /// Bit `i` set when lane `i` is at most `o`'s lane `i` (unsigned).
    fn le_mask(self, o: Self) -> u32;
    /// Lanes from `words[..N]`.
    fn load(words: &[u32]) -> Self;
    /// The lanes into `out[..N]`.
    fn store(self, out: &mut [u32]);
}

#[inline(always)]
fn round<L: Lanes>(s: &mut [L; 8], kw: L) {
    let [a, b, c, d, e, f, g, h] = *s;
    let t1 = h.add(e.bsig1()).add(L::ch(e, f, g).add(kw));
    let t2 = a.bsig0().add(L::maj(a, b, c));
    *s = [t1.add(t2), a, b, c, d.add(t1), e, f, g];
}

/// One round with the state in named registers: `d` and `h` change, and the caller
/// renames (h, a, b, c, d, e, f, g) to (a, ..., h) for the next round, so nothing moves.
#[inline(always)]
#[allow(clippy::too_many_arguments, reason = "the eight state words")]
fn round_in_place<L: Lanes>(a: L, b: L, c: L, d: &mut L, e: L, f: L, g: L, h: &mut L, kw: L) {
    let t1 = h.add(e.bsig1()).add(L::ch(e, f, g).add(kw));
    *d = d.add(t1);
    *h = t1.add(a.bsig0().add(L::maj(a, b, c)));
}

/// Rounds `from..from + 8 * groups`, eight at a time with the state renamed.
#[inline(always)]
fn rounds8<L: Lanes>(s: &mut [L; 8], kw: &[L; 64], w: &[L; 64], from: usize, groups: usize) {
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *s;
    for group in 0..groups {
        let t = from + 8 * group;
        let k = |i: usize| kw[t + i].add(w[t + i]);
        round_in_place(a, b, c, &mut d, e, f, g, &mut h, k(0));
        round_in_place(h, a, b, &mut c, d, e, f, &mut g, k(1));
        round_in_place(g, h, a, &mut b, c, d, e, &mut f, k(2));
        round_in_place(f, g, h, &mut a, b, c, d, &mut e, k(3));
        round_in_place(e, f, g, &mut h, a, b, c, &mut d, k(4));
        round_in_place(d, e, f, &mut g, h, a, b, &mut c, k(5));
        round_in_place(c, d, e, &mut f, g, h, a, &mut b, k(6));
        round_in_place(b, c, d, &mut e, f, g, h, &mut a, k(7));
    }
    *s = [a, b, c, d, e, f, g, h];
}

/// Runs `$body` with `$t` bound to each constant in turn: straight-line code where a
/// loop would stay a loop (LLVM does not unroll loops this large), so that every
/// index into the round constants and message words is a constant.
macro_rules! unrolled {
    ($($value:literal),*; |$t:ident| $body:block) => {
        $({
            let $t: usize = $value;
            $body
        })*
    };
}

#[inline(always)]
fn schedule<L: Lanes>(w: &mut [L; 64], from: usize, end: usize) {
    for t in from..end {
        w[t] = w[t - 2]
            .ssig1()
            .add(w[t - 7])
            .add(w[t - 15].ssig0().add(w[t - 16]));
    }
}

/// The scan, `L::N` nonces at a time. Always inlined into a function compiled for
/// `L`'s instructions.
#[inline(always)]
pub(super) fn scan_lanes<L: Lanes>(scan: &Scan<'_>, hits: &mut Vec<u64>) {
    let (p, target, nonces) = scan.parts();
    let top = L::splat(u32::from_be_bytes([
        target.0[0],
        target.0[1],
        target.0[2],
        target.0[3],
    ]));
    // Nonce-free message words and round constants, splat once.
    let kw: [L; 64] = std::array::from_fn(|t| L::splat(K[t]));
    let words: [L; 16] = std::array::from_fn(|t| L::splat(p.w[t]));
    let zero = L::splat(0);
    let mut w = [zero; 64];
    let mut v = [zero; 64];
    // The second hash's padding words never change: v[8..16], and K + v for them.
    v[8] = L::splat(0x8000_0000);
    v[15] = L::splat(256);
    let mut base = nonces.start;
    while base < nonces.end {
        let count = (nonces.end - base).min(L::N as u64) as u32;
        let n = L::counting(base as u32).bswap();
        w[..16].copy_from_slice(&words);
        w[3] = n;
        w[16] = L::splat(p.w16);
        w[17] = L::splat(p.w17);
        w[18] = L::splat(p.w18_part).add(n.ssig0());
        w[19] = L::splat(p.w19_part).add(n);
        let mut s: [L; 8] = std::array::from_fn(|i| L::splat(p.after_round_2[i]));
        for t in 3..8 {
            round(&mut s, kw[t].add(w[t]));
        }
        // Each group of eight rounds extends the schedule by the words it needs.
        unrolled!(8, 16, 24, 32, 40, 48, 56; |t| {
            schedule(&mut w, t.max(20), t + 8);
            rounds8(&mut s, &kw, &w, t, 1);
        });
        for i in 0..8 {
            v[i] = L::splat(p.midstate[i]).add(s[i]);
        }
        let mut s: [L; 8] = std::array::from_fn(|i| L::splat(IV[i]));
        block_rounds(&kw, &mut v, &mut s, true);
        // After round 60, e is the final h: the hash's top word is IV[7] + e, swapped.
        let high = L::splat(IV[7]).add(s[4]).bswap();
        let mut candidates = high.le_mask(top) & (u32::MAX >> (32 - count));
        while candidates != 0 {
            let lane = candidates.trailing_zeros();
            candidates &= candidates - 1;
            scan.confirm(base + u64::from(lane), hits);
        }
        base += L::N as u64;
    }
}

/// The rounds of one block: `w` holds message words 0-15 (the rest is scheduled
/// here, group by group) and `s` the state, which the rounds advance (the caller adds
/// the starting state). With `stop_after_60`, only rounds 0-60: then `s[4]` (e) is
/// the last round's h, so the starting state's h plus `s[4]` is word 7 of the result.
#[inline(always)]
fn block_rounds<L: Lanes>(kw: &[L; 64], w: &mut [L; 64], s: &mut [L; 8], stop_after_60: bool) {
    unrolled!(0, 8, 16, 24, 32, 40, 48; |t| {
        schedule(w, t.max(16), t + 8);
        rounds8(s, kw, w, t, 1);
    });
    if stop_after_60 {
        schedule(w, 56, 61);
        for t in 56..61 {
            round(s, kw[t].add(w[t]));
        }
    } else {
        schedule(w, 56, 64);
        rounds8(s, kw, w, 56, 1);
    }
}

/// What a batch asks of a lane implementation ([`run`]).
pub(super) enum Op<'a> {
    /// Compress block `j` into state `j`, or from `from` for every block if given.
    /// Words `zero_from..15` of every block are zero (`zero_from` 15: no promise).
    Compress {
        from: Option<&'a [u32; 8]>,
        states: &'a mut States,
        blocks: &'a Blocks,
        zero_from: usize,
    },
    /// Word 7 of the compression of every block from `from`, stopping after round 60.
    CompressTop {
        from: &'a [u32; 8],
        blocks: &'a Blocks,
        zero_from: usize,
        top: &'a mut [u32; BATCH],
    },
    /// SHA-256 of each digest (the second hash of SHA-256d): into `out`, or only its
    /// word 7 into `top`, stopping after round 60. The block's words 8-15 are the
    /// padding of a 32-byte message, constants here, so the compiler folds them and
    /// the schedule terms they make into the round constants.
    Rehash {
        digests: &'a States,
        out: Option<&'a mut States>,
        top: &'a mut [u32; BATCH],
    },
}

/// Message words 0-15 of blocks `first..first + L::N`, words `Z..15` taken as zero:
/// constants, so that the compiler folds them (and the schedule terms they make)
/// away, as it does for the second hash's padding.
#[inline(always)]
fn load_words<L: Lanes, const Z: usize>(blocks: &Blocks, first: usize) -> [L; 64] {
    let mut w = [L::splat(0); 64];
    for (t, (w, row)) in w.iter_mut().zip(blocks).enumerate() {
        if t < Z || t == 15 {
            *w = L::load(&row[first..]);
        }
    }
    w
}

#[inline(always)]
fn compress<L: Lanes, const Z: usize>(
    kw: &[L; 64],
    from: Option<&[u32; 8]>,
    states: &mut States,
    blocks: &Blocks,
) {
    let from: Option<[L; 8]> = from.map(|s| std::array::from_fn(|i| L::splat(s[i])));
    for first in (0..BATCH).step_by(L::N) {
        let mut w = load_words::<L, Z>(blocks, first);
        let init: [L; 8] =
            from.unwrap_or_else(|| std::array::from_fn(|i| L::load(&states[i][first..])));
        let mut s = init;
        block_rounds(kw, &mut w, &mut s, false);
        for ((s, init), row) in s.iter().zip(init).zip(states.iter_mut()) {
            s.add(init).store(&mut row[first..]);
        }
    }
}

#[inline(always)]
fn compress_top<L: Lanes, const Z: usize>(
    kw: &[L; 64],
    from: &[u32; 8],
    blocks: &Blocks,
    top: &mut [u32; BATCH],
) {
    let init: [L; 8] = std::array::from_fn(|i| L::splat(from[i]));
    for first in (0..BATCH).step_by(L::N) {
        let mut w = load_words::<L, Z>(blocks, first);
        let mut s = init;
        block_rounds(kw, &mut w, &mut s, true);
        init[7].add(s[4]).store(&mut top[first..]);
    }
}

/// Calls `$f::<L, Z>` with the variant of `Z` (words `Z..15` zero) that `$zero_from`
/// allows: candidates up to 15 bytes, up to 31, and any.
macro_rules! by_zero_words {
    ($zero_from:expr, $f:ident($($arg:expr),*)) => {
        match $zero_from {
            0..=4 => $f::<L, 4>($($arg),*),
            5..=8 => $f::<L, 8>($($arg),*),
            _ => $f::<L, 15>($($arg),*),
        }
    };
}

/// Runs `op` on a batch, `L::N` blocks at a time: a word of `L::N` blocks is one load;
/// the rounds are [`block_rounds`]', fully unrolled.
#[inline(always)]
pub(super) fn run<L: Lanes>(op: Op<'_>) {
    let kw: [L; 64] = std::array::from_fn(|t| L::splat(K[t]));
    match op {
        Op::Compress {
            from,
            states,
            blocks,
            zero_from,
        } => by_zero_words!(zero_from, compress(&kw, from, states, blocks)),
        Op::CompressTop {
            from,
            blocks,
            zero_from,
            top,
        } => by_zero_words!(zero_from, compress_top(&kw, from, blocks, top)),
        Op::Rehash {
            digests,
            mut out,
            top,
        } => {
            let iv: [L; 8] = std::array::from_fn(|i| L::splat(IV[i]));
            for first in (0..BATCH).step_by(L::N) {
                let mut w = [L::splat(0); 64];
                for (w, row) in w.iter_mut().zip(digests) {
                    *w = L::load(&row[first..]);
                }
                w[8] = L::splat(0x8000_0000);
                w[15] = L::splat(256);
                let mut s = iv;
                match &mut out {
                    Some(out) => {
                        block_rounds(&kw, &mut w, &mut s, false);
                        for ((s, iv), row) in s.iter().zip(iv).zip(out.iter_mut()) {
                            s.add(iv).store(&mut row[first..]);
                        }
                    }
                    None => {
                        block_rounds(&kw, &mut w, &mut s, true);
                        iv[7].add(s[4]).store(&mut top[first..]);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Plain arrays: vectorised by the compiler where the function is built for SIMD.
// ---------------------------------------------------------------------------------

/// Four lanes as a plain array: the generic scan without SIMD, for its tests.
#[cfg(test)]
#[derive(Clone, Copy)]
pub(super) struct Arr4([u32; 4]);

/// The generic scan on plain arrays (tests compare it with the portable reference).
#[cfg(test)]
pub(super) fn scan_arrays(scan: &Scan<'_>, hits: &mut Vec<u64>) {
    scan_lanes::<Arr4>(scan, hits);
}

/// The generic batch operations on plain arrays (tested against the portable ones).
#[cfg(test)]
pub(super) fn run_arrays(op: Op<'_>) {
    run::<Arr4>(op);
}

#[cfg(test)]
#[inline(always)]
fn map4(a: [u32; 4], f: impl Fn(u32) -> u32) -> [u32; 4] {
    [f(a[0]), f(a[1]), f(a[2]), f(a[3])]
}

#[cfg(test)]
#[inline(always)]
fn zip4(a: [u32; 4], b: [u32; 4], f: impl Fn(u32, u32) -> u32) -> [u32; 4] {
    [f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2]), f(a[3], b[3])]
}

#[cfg(test)]
impl Lanes for Arr4 {
    const N: usize = 4;
    #[inline(always)]
    fn splat(x: u32) -> Self {
        Arr4([x; 4])
    }
    #[inline(always)]
    fn counting(base: u32) -> Self {
        Arr4([
            base,
            base.wrapping_add(1),
            base.wrapping_add(2),
            base.wrapping_add(3),
        ])
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Arr4(zip4(self.0, o.0, u32::wrapping_add))
    }
    #[inline(always)]
    fn ch(e: Self, f: Self, g: Self) -> Self {
        Arr4(zip4(e.0, zip4(f.0, g.0, |f, g| f ^ g), |e, fg| e & fg)).xor(g)
    }
    #[inline(always)]
    fn maj(a: Self, b: Self, c: Self) -> Self {
        let ab = zip4(a.0, b.0, |a, b| a & b);
        let c_ab = zip4(c.0, zip4(a.0, b.0, |a, b| a | b), |c, o| c & o);
        Arr4(zip4(ab, c_ab, |x, y| x | y))
    }
    #[inline(always)]
    fn bsig0(self) -> Self {
        self.rotr(2).xor(self.rotr(13)).xor(self.rotr(22))
    }
    #[inline(always)]
    fn bsig1(self) -> Self {
        self.rotr(6).xor(self.rotr(11)).xor(self.rotr(25))
    }
    #[inline(always)]
    fn ssig0(self) -> Self {
        self.rotr(7).xor(self.rotr(18)).xor(self.shr(3))
    }
    #[inline(always)]
    fn ssig1(self) -> Self {
        self.rotr(17).xor(self.rotr(19)).xor(self.shr(10))
    }
    #[inline(always)]
    fn bswap(self) -> Self {
        Arr4(map4(self.0, u32::swap_bytes))
    }
    #[inline(always)]
    fn le_mask(self, o: Self) -> u32 {
        let mut m = 0;
        for i in 0..4 {
            m |= u32::from(self.0[i] <= o.0[i]) << i;
        }
        m
    }
    #[inline(always)]
    fn load(words: &[u32]) -> Self {
        Arr4([words[0], words[1], words[2], words[3]])
    }
    #[inline(always)]
    fn store(self, out: &mut [u32]) {
        out[..4].copy_from_slice(&self.0);
    }
}

#[cfg(test)]
impl Arr4 {
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        Arr4(zip4(self.0, o.0, |a, b| a ^ b))
    }
    #[inline(always)]
    fn shr(self, n: u32) -> Self {
        Arr4(map4(self.0, |x| x >> n))
    }
    /// Rotate right as two shifts and an or: NEON has no vector rotate.
    #[inline(always)]
    fn rotr(self, n: u32) -> Self {
        Arr4(zip4(
            map4(self.0, |x| x >> n),
            map4(self.0, |x| x << (32 - n)),
            |a, b| a | b,
        ))
    }
}

// ---------------------------------------------------------------------------------
// x86-64 AVX2
// ---------------------------------------------------------------------------------

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub(in super::super) struct Avx2(__m256i);

    // SAFETY (every `unsafe` block below): `Avx2` values are only made and used in
    // `scan8`, which is compiled with AVX2 and only called when the CPU has it.
    macro_rules! rotr {
        ($x:expr, $n:literal) => {
            _mm256_or_si256(
                _mm256_srli_epi32::<$n>($x),
                _mm256_slli_epi32::<{ 32 - $n }>($x),
            )
        };
    }

    impl Lanes for Avx2 {
        const N: usize = 8;
        #[inline(always)]
        fn splat(x: u32) -> Self {
            Avx2(unsafe { _mm256_set1_epi32(x as i32) })
        }
        #[inline(always)]
        fn counting(base: u32) -> Self {
            Avx2(unsafe {
                _mm256_add_epi32(
                    _mm256_set1_epi32(base as i32),
                    _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0),
                )
            })
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            Avx2(unsafe { _mm256_add_epi32(self.0, o.0) })
        }
        #[inline(always)]
        fn ch(e: Self, f: Self, g: Self) -> Self {
            Avx2(unsafe {
                _mm256_xor_si256(g.0, _mm256_and_si256(e.0, _mm256_xor_si256(f.0, g.0)))
            })
        }
        #[inline(always)]
        fn maj(a: Self, b: Self, c: Self) -> Self {
            Avx2(unsafe {
                _mm256_or_si256(
                    _mm256_and_si256(a.0, b.0),
                    _mm256_and_si256(c.0, _mm256_or_si256(a.0, b.0)),
                )
            })
        }
        #[inline(always)]
        fn bsig0(self) -> Self {
            let x = self.0;
            Avx2(unsafe {
                _mm256_xor_si256(_mm256_xor_si256(rotr!(x, 2), rotr!(x, 13)), rotr!(x, 22))
            })
        }
        #[inline(always)]
        fn bsig1(self) -> Self {
            let x = self.0;
            Avx2(unsafe {
                _mm256_xor_si256(_mm256_xor_si256(rotr!(x, 6), rotr!(x, 11)), rotr!(x, 25))
            })
        }
        #[inline(always)]
        fn ssig0(self) -> Self {
            let x = self.0;
            Avx2(unsafe {
                _mm256_xor_si256(
                    _mm256_xor_si256(rotr!(x, 7), rotr!(x, 18)),
                    _mm256_srli_epi32::<3>(x),
                )
            })
        }
        #[inline(always)]
        fn ssig1(self) -> Self {
            let x = self.0;
            Avx2(unsafe {
                _mm256_xor_si256(
                    _mm256_xor_si256(rotr!(x, 17), rotr!(x, 19)),
                    _mm256_srli_epi32::<10>(x),
                )
            })
        }
        #[inline(always)]
        fn bswap(self) -> Self {
            Avx2(unsafe {
                let order = _mm256_setr_epi8(
                    3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 3, 2, 1, 0, 7, 6, 5, 4,
                    11, 10, 9, 8, 15, 14, 13, 12,
                );
                _mm256_shuffle_epi8(self.0, order)
            })
        }
        #[inline(always)]
        fn le_mask(self, o: Self) -> u32 {
            // Unsigned a <= b  <=>  min(a, b) == a.
            unsafe {
                let eq = _mm256_cmpeq_epi32(_mm256_min_epu32(self.0, o.0), self.0);
                _mm256_movemask_ps(_mm256_castsi256_ps(eq)) as u32
            }
        }
        #[inline(always)]
        fn load(words: &[u32]) -> Self {
            let words = &words[..8];
            // SAFETY: eight readable words (the slice above is checked).
            Avx2(unsafe { _mm256_loadu_si256(words.as_ptr().cast()) })
        }
        #[inline(always)]
        fn store(self, out: &mut [u32]) {
            let out = &mut out[..8];
            // SAFETY: eight writable words (the slice above is checked).
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), self.0) }
        }
    }

    /// Whether this CPU has AVX2.
    pub(in super::super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
    }

    pub(in super::super) fn scan(scan: &Scan<'_>, hits: &mut Vec<u64>) {
        assert!(available(), "AVX2 kernel selected on a CPU without AVX2");
        // SAFETY: the CPU has AVX2 (checked above).
        unsafe { scan8(scan, hits) }
    }

    #[inline(never)]
    #[target_feature(enable = "avx2")]
    fn scan8(scan: &Scan<'_>, hits: &mut Vec<u64>) {
        scan_lanes::<Avx2>(scan, hits);
    }

    /// A batch operation, eight blocks at a time (see [`run`]).
    pub(in super::super) fn run(op: Op<'_>) {
        assert!(available(), "AVX2 kernel selected on a CPU without AVX2");
        // SAFETY: the CPU has AVX2 (checked above).
        unsafe { run8(op) }
    }

    #[inline(never)]
    #[target_feature(enable = "avx2")]
    fn run8(op: Op<'_>) {
        super::run::<Avx2>(op);
    }
}

// ---------------------------------------------------------------------------------
// aarch64 NEON
// ---------------------------------------------------------------------------------

#[cfg(target_arch = "aarch64")]
pub(super) mod neon {
    use super::*;
    use std::arch::aarch64::*;

    #[derive(Clone, Copy)]
    pub(in super::super) struct Neon(uint32x4_t);

    // SAFETY (every `unsafe` block below): `Neon` values are only made and used in
    // `scan4`, which is compiled with NEON (the aarch64 baseline).
    macro_rules! rotr {
        ($x:expr, $n:literal) => {
            vsliq_n_u32::<{ 32 - $n }>(vshrq_n_u32::<$n>($x), $x)
        };
    }

    impl Lanes for Neon {
        const N: usize = 4;
        #[inline(always)]
        fn splat(x: u32) -> Self {
            Neon(unsafe { vdupq_n_u32(x) })
        }
        #[inline(always)]
        fn counting(base: u32) -> Self {
            let lanes = [0u32, 1, 2, 3];
            Neon(unsafe { vaddq_u32(vdupq_n_u32(base), vld1q_u32(lanes.as_ptr())) })
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            Neon(unsafe { vaddq_u32(self.0, o.0) })
        }
        #[inline(always)]
        fn ch(e: Self, f: Self, g: Self) -> Self {
            Neon(unsafe { vbslq_u32(e.0, f.0, g.0) })
        }
        #[inline(always)]
        fn maj(a: Self, b: Self, c: Self) -> Self {
            // Where a and b differ, c decides; elsewhere a (= b).
            Neon(unsafe { vbslq_u32(veorq_u32(a.0, b.0), c.0, a.0) })
        }
        #[inline(always)]
        fn bsig0(self) -> Self {
            let x = self.0;
            Neon(unsafe { veorq_u32(veorq_u32(rotr!(x, 2), rotr!(x, 13)), rotr!(x, 22)) })
        }
        #[inline(always)]
        fn bsig1(self) -> Self {
            let x = self.0;
            Neon(unsafe { veorq_u32(veorq_u32(rotr!(x, 6), rotr!(x, 11)), rotr!(x, 25)) })
        }
        #[inline(always)]
        fn ssig0(self) -> Self {
            let x = self.0;
            Neon(unsafe { veorq_u32(veorq_u32(rotr!(x, 7), rotr!(x, 18)), vshrq_n_u32::<3>(x)) })
        }
        #[inline(always)]
        fn ssig1(self) -> Self {
            let x = self.0;
            Neon(unsafe { veorq_u32(veorq_u32(rotr!(x, 17), rotr!(x, 19)), vshrq_n_u32::<10>(x)) })
        }
        #[inline(always)]
        fn bswap(self) -> Self {
            Neon(unsafe { vreinterpretq_u32_u8(vrev32q_u8(vreinterpretq_u8_u32(self.0))) })
        }
        #[inline(always)]
        fn le_mask(self, o: Self) -> u32 {
            unsafe {
                let le = vcleq_u32(self.0, o.0);
                let bits = [1u32, 2, 4, 8];
                vaddvq_u32(vandq_u32(le, vld1q_u32(bits.as_ptr())))
            }
        }
        #[inline(always)]
        fn load(words: &[u32]) -> Self {
            let words = &words[..4];
            // SAFETY: four readable words (the slice above is checked).
            Neon(unsafe { vld1q_u32(words.as_ptr()) })
        }
        #[inline(always)]
        fn store(self, out: &mut [u32]) {
            let out = &mut out[..4];
            // SAFETY: four writable words (the slice above is checked).
            unsafe { vst1q_u32(out.as_mut_ptr(), self.0) }
        }
    }

    pub(in super::super) fn scan(scan: &Scan<'_>, hits: &mut Vec<u64>) {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { scan4(scan, hits) }
    }

    // Not inlined: one symbol per implementation, for `llvm-mca` (BENCHMARKS.md).
    #[inline(never)]
    #[target_feature(enable = "neon")]
    fn scan4(scan: &Scan<'_>, hits: &mut Vec<u64>) {
        scan_lanes::<Neon>(scan, hits);
    }

    /// A batch operation, four blocks at a time (see [`run`]).
    pub(in super::super) fn run(op: Op<'_>) {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { run4(op) }
    }

    #[inline(never)]
    #[target_feature(enable = "neon")]
    fn run4(op: Op<'_>) {
        super::run::<Neon>(op);
    }
}

// ---------------------------------------------------------------------------------
// 32-bit ARM NEON
// ---------------------------------------------------------------------------------

#[cfg(target_arch = "arm")]
pub(super) mod neon32 {
    //! Rust's NEON intrinsics are not stable on 32-bit ARM and LLVM does not
    //! vectorise the lane-wise scan there, so the compression of four blocks at once
    //! is NEON assembly: a..h in q0-q7, rotates as shift plus shift-and-insert,
    //! `vbsl` for Ch and Maj, eight rounds unrolled with the registers renamed
    //! instead of moved, and the message schedule four lanes at a time.
    use super::super::blocks::{Blocks, States, BATCH};
    use super::super::portable::{Scan, IV, K};
    use std::arch::asm;

    /// Whether this build may use NEON. Rust can neither enable NEON per function
    /// nor detect it on 32-bit ARM (both unstable), so the path exists when the whole
    /// build has NEON: `.cargo/config.toml` builds `armv7-unknown-linux-gnueabihf`
    /// for Cortex-A7 with NEON (which every ARMv7 Raspberry Pi runs) and sets
    /// `--cfg picluster_neon`.
    pub(in super::super) fn available() -> bool {
        cfg!(picluster_neon)
    }

    /// Four SHA-256 compressions: `state` holds a..h, four lanes each; `w` holds
    /// message words 0-15 (four lanes each) and receives 16-63; `k` is each round
    /// constant four times. The initial state is added at the end.
    #[cfg(picluster_neon)]
    #[inline(never)]
    fn compress4(state: &mut [u32; 32], w: &mut [u32; 256], k: &[u32; 256]) {
        // SAFETY: the pointers cover the arrays read and written (w[16..64] is
        // written through `sched`, which starts at w[16]; the loads reach back to
        // w[t-16] >= w[0]); NEON is enabled for this build (`picluster_neon`).
        unsafe {
            asm!(
                // Message schedule, words 16..64.
                "mov {n}, #48",
                "2:",
                "vldr d16, [{sched}, #-256]",
                "vldr d17, [{sched}, #-248]",
                "vldr d18, [{sched}, #-240]",
                "vldr d19, [{sched}, #-232]",
                "vldr d20, [{sched}, #-112]",
                "vldr d21, [{sched}, #-104]",
                "vldr d22, [{sched}, #-32]",
                "vldr d23, [{sched}, #-24]",
                "vadd.i32 q8, q8, q10",
                "vshr.u32 q12, q9, #7",
                "vsli.32 q12, q9, #25",
                "vshr.u32 q13, q9, #18",
                "vsli.32 q13, q9, #14",
                "veor q12, q12, q13",
                "vshr.u32 q13, q9, #3",
                "veor q12, q12, q13",
                "vadd.i32 q8, q8, q12",
                "vshr.u32 q12, q11, #17",
                "vsli.32 q12, q11, #15",
                "vshr.u32 q13, q11, #19",
                "vsli.32 q13, q11, #13",
                "veor q12, q12, q13",
                "vshr.u32 q13, q11, #10",
                "veor q12, q12, q13",
                "vadd.i32 q8, q8, q12",
                "vst1.32 {{d16-d17}}, [{sched}]!",
                "subs {n}, {n}, #1",
                "bne 2b",
                // One round on registers a..h; the caller renames them for the next.
                ".macro PICLUSTER_RND a, b, c, d, e, f, g, h",
                "vld1.32 {{d16-d17}}, [{k}]!",
                "vld1.32 {{d18-d19}}, [{w}]!",
                "vadd.i32 q8, q8, q9",
                "vadd.i32 \\h, \\h, q8",
                "vshr.u32 q9, \\e, #6",
                "vsli.32 q9, \\e, #26",
                "vshr.u32 q10, \\e, #11",
                "vsli.32 q10, \\e, #21",
                "veor q9, q9, q10",
                "vshr.u32 q10, \\e, #25",
                "vsli.32 q10, \\e, #7",
                "veor q9, q9, q10",
                "vadd.i32 \\h, \\h, q9",
                "vmov q10, \\e",
                "vbsl q10, \\f, \\g",
                "vadd.i32 \\h, \\h, q10",
                "vadd.i32 \\d, \\d, \\h",
                "vshr.u32 q9, \\a, #2",
                "vsli.32 q9, \\a, #30",
                "vshr.u32 q10, \\a, #13",
                "vsli.32 q10, \\a, #19",
                "veor q9, q9, q10",
                "vshr.u32 q10, \\a, #22",
                "vsli.32 q10, \\a, #10",
                "veor q9, q9, q10",
                "vadd.i32 \\h, \\h, q9",
                "veor q10, \\a, \\b",
                "vbsl q10, \\c, \\a",
                "vadd.i32 \\h, \\h, q10",
                ".endm",
                "vld1.32 {{d0-d3}}, [{state}]!",
                "vld1.32 {{d4-d7}}, [{state}]!",
                "vld1.32 {{d8-d11}}, [{state}]!",
                "vld1.32 {{d12-d15}}, [{state}]",
                "sub {state}, {state}, #96",
                "mov {n}, #8",
                "3:",
                "PICLUSTER_RND q0, q1, q2, q3, q4, q5, q6, q7",
                "PICLUSTER_RND q7, q0, q1, q2, q3, q4, q5, q6",
                "PICLUSTER_RND q6, q7, q0, q1, q2, q3, q4, q5",
                "PICLUSTER_RND q5, q6, q7, q0, q1, q2, q3, q4",
                "PICLUSTER_RND q4, q5, q6, q7, q0, q1, q2, q3",
                "PICLUSTER_RND q3, q4, q5, q6, q7, q0, q1, q2",
                "PICLUSTER_RND q2, q3, q4, q5, q6, q7, q0, q1",
                "PICLUSTER_RND q1, q2, q3, q4, q5, q6, q7, q0",
                "subs {n}, {n}, #1",
                "bne 3b",
                ".purgem PICLUSTER_RND",
                // Add the initial state and store.
                "vld1.32 {{d16-d19}}, [{state}]!",
                "vld1.32 {{d20-d23}}, [{state}]!",
                "vadd.i32 q0, q0, q8",
                "vadd.i32 q1, q1, q9",
                "vadd.i32 q2, q2, q10",
                "vadd.i32 q3, q3, q11",
                "vld1.32 {{d16-d19}}, [{state}]!",
                "vld1.32 {{d20-d23}}, [{state}]",
                "vadd.i32 q4, q4, q8",
                "vadd.i32 q5, q5, q9",
                "vadd.i32 q6, q6, q10",
                "vadd.i32 q7, q7, q11",
                "sub {state}, {state}, #96",
                "vst1.32 {{d0-d3}}, [{state}]!",
                "vst1.32 {{d4-d7}}, [{state}]!",
                "vst1.32 {{d8-d11}}, [{state}]!",
                "vst1.32 {{d12-d15}}, [{state}]",
                state = inout(reg) state.as_mut_ptr() => _,
                w = inout(reg) w.as_mut_ptr() => _,
                sched = inout(reg) w.as_mut_ptr().add(64) => _,
                k = inout(reg) k.as_ptr() => _,
                n = out(reg) _,
                out("q0") _, out("q1") _, out("q2") _, out("q3") _,
                out("q4") _, out("q5") _, out("q6") _, out("q7") _,
                out("q8") _, out("q9") _, out("q10") _, out("q11") _,
                out("q12") _, out("q13") _,
                options(nostack),
            );
        }
    }

    #[cfg(not(picluster_neon))]
    fn compress4(_: &mut [u32; 32], _: &mut [u32; 256], _: &[u32; 256]) {
        unreachable!("neon32 is unavailable in a build without picluster_neon")
    }

    /// Each round constant four times, for [`compress4`].
    const K4: [u32; 256] = {
        let mut k = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            k[i] = K[i / 4];
            i += 1;
        }
        k
    };

    /// Batch compressions, four blocks at a time, through [`compress4`]'s layout; from
    /// `from` for every block if given.
    pub(in super::super) fn compress(
        from: Option<&[u32; 8]>,
        states: &mut States,
        blocks: &Blocks,
    ) {
        assert!(available(), "NEON kernel selected in a build without NEON");
        let mut w = [0u32; 256];
        let mut state = [0u32; 32];
        for first in (0..BATCH).step_by(4) {
            for (t, row) in blocks.iter().enumerate() {
                w[4 * t..4 * t + 4].copy_from_slice(&row[first..first + 4]);
            }
            for (i, row) in states.iter().enumerate() {
                match from {
                    Some(from) => state[4 * i..4 * i + 4].fill(from[i]),
                    None => state[4 * i..4 * i + 4].copy_from_slice(&row[first..first + 4]),
                }
            }
            compress4(&mut state, &mut w, &K4);
            for (i, row) in states.iter_mut().enumerate() {
                row[first..first + 4].copy_from_slice(&state[4 * i..4 * i + 4]);
            }
        }
    }

    pub(in super::super) fn scan(scan: &Scan<'_>, hits: &mut Vec<u64>) {
        assert!(available(), "NEON kernel selected in a build without NEON");
        let (p, target, nonces) = scan.parts();
        let top = u32::from_be_bytes([target.0[0], target.0[1], target.0[2], target.0[3]]);
        let k = K4;
        let mut w = [0u32; 256];
        let mut state = [0u32; 32];
        let mut base = nonces.start;
        while base < nonces.end {
            let count = (nonces.end - base).min(4);
            // Second block of the header: words 0-15, the nonce (byte-swapped) in 3.
            for t in 0..16 {
                w[4 * t..4 * t + 4].fill(p.w[t]);
            }
            for lane in 0..4 {
                w[12 + lane] = (base as u32).wrapping_add(lane as u32).swap_bytes();
            }
            for i in 0..8 {
                state[4 * i..4 * i + 4].fill(p.midstate[i]);
            }
            compress4(&mut state, &mut w, &k);
            // Second hash: the digest and constant padding.
            w[..32].copy_from_slice(&state);
            w[32..36].fill(0x8000_0000);
            w[36..60].fill(0);
            w[60..64].fill(256);
            for i in 0..8 {
                state[4 * i..4 * i + 4].fill(IV[i]);
            }
            compress4(&mut state, &mut w, &k);
            for lane in 0..count as usize {
                // H7, the top of the hash read as a little-endian number, swapped.
                if state[28 + lane].swap_bytes() > top {
                    continue;
                }
                scan.confirm(base + lane as u64, hits);
            }
            base += 4;
        }
    }
}
