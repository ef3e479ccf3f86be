//! The portable scalar SHA-256d nonce scan: plain Rust, no CPU features, the reference
//! every faster implementation is checked against (itself checked against the `sha2`
//! crate). It uses the known tricks, which the SIMD implementations repeat lane-wise:
//! the first 64 header bytes are compressed once per version (midstate); rounds 0-2 of
//! the second block and the parts of its message schedule that do not depend on the
//! nonce (message word 3) are computed once; and the second hash stops after round
//! 60, when state word H7 (the top 32 bits of the result) is final, unless it could
//! meet the target.

use super::Target;
use std::ops::Range;

pub(crate) const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

#[rustfmt::skip]
pub(super) const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

fn ssig0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}

fn ssig1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}

/// One SHA-256 round on state `s` (a..h) with round constant plus message word `kw`.
#[inline(always)]
pub(super) fn round(s: &mut [u32; 8], kw: u32) {
    let [a, b, c, d, e, f, g, h] = *s;
    let t1 = h
        .wrapping_add(e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25))
        .wrapping_add((e & f) ^ (!e & g))
        .wrapping_add(kw);
    let t2 = (a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22))
        .wrapping_add((a & b) ^ (a & c) ^ (b & c));
    *s = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
}

/// Extends message words `w[16..end]` from the ones before.
#[inline(always)]
fn schedule(w: &mut [u32; 64], from: usize, end: usize) {
    for t in from..end {
        w[t] = ssig1(w[t - 2])
            .wrapping_add(w[t - 7])
            .wrapping_add(ssig0(w[t - 15]))
            .wrapping_add(w[t - 16]);
    }
}

fn compress(state: [u32; 8], block: &[u8; 64]) -> [u32; 8] {
    let words = std::array::from_fn(|t| {
        u32::from_be_bytes([
            block[4 * t],
            block[4 * t + 1],
            block[4 * t + 2],
            block[4 * t + 3],
        ])
    });
    compress_words(state, &words)
}

/// One compression of a block given as message words (big-endian reads of its bytes).
pub(crate) fn compress_words(state: [u32; 8], block: &[u32; 16]) -> [u32; 8] {
    let mut w = [0u32; 64];
    w[..16].copy_from_slice(block);
    schedule(&mut w, 16, 64);
    let mut s = state;
    for t in 0..64 {
        round(&mut s, K[t].wrapping_add(w[t]));
    }
    std::array::from_fn(|i| state[i].wrapping_add(s[i]))
}

/// Everything about one (header, version) that no nonce changes.
pub(crate) struct Prepared {
    pub(super) midstate: [u32; 8],
    /// Message words 0-15 of the header's second block (word 3, the nonce, left 0).
    pub(super) w: [u32; 16],
    /// The state after rounds 0-2 of the second block.
    pub(super) after_round_2: [u32; 8],
    /// Message words 16 and 17, and the nonce-free parts of words 18 and 19.
    pub(super) w16: u32,
    pub(super) w17: u32,
    pub(super) w18_part: u32,
    pub(super) w19_part: u32,
}

impl Prepared {
    pub(crate) fn new(header: &[u8; 80]) -> Prepared {
        let mut first = [0u8; 64];
        first.copy_from_slice(&header[..64]);
        let midstate = compress(IV, &first);
        let word =
            |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let mut w = [0u32; 16];
        w[0] = word(64);
        w[1] = word(68);
        w[2] = word(72);
        w[4] = 0x8000_0000; // padding of an 80-byte message
        w[15] = 640; // its length in bits
        let mut after_round_2 = midstate;
        for t in 0..3 {
            round(&mut after_round_2, K[t].wrapping_add(w[t]));
        }
        // w16 = s1(w14) + w9 + s0(w1) + w0 and w17 = s1(w15) + w10 + s0(w2) + w1 never
        // see the nonce; w18 adds s0(w3) and w19 adds w3 to nonce-free parts.
        let w16 = ssig1(w[14])
            .wrapping_add(w[9])
            .wrapping_add(ssig0(w[1]))
            .wrapping_add(w[0]);
        let w17 = ssig1(w[15])
            .wrapping_add(w[10])
            .wrapping_add(ssig0(w[2]))
            .wrapping_add(w[1]);
        let w18_part = ssig1(w16).wrapping_add(w[11]).wrapping_add(w[2]);
        let w19_part = ssig1(w17).wrapping_add(w[12]).wrapping_add(ssig0(w[4]));
        Prepared {
            midstate,
            w,
            after_round_2,
            w16,
            w17,
            w18_part,
            w19_part,
        }
    }
}

/// One version's scan, as every implementation gets it: the per-version
/// precomputation, the header (for the full check of a candidate), the target, the
/// nonces (`u64`, so that a range can end at 2^32) and the keyspace index of the first.
pub(crate) struct Scan<'a> {
    pub(crate) prepared: &'a Prepared,
    pub(crate) header: &'a [u8; 80],
    pub(crate) target: &'a Target,
    pub(crate) nonces: Range<u64>,
    pub(crate) index_base: u64,
}

impl<'a> Scan<'a> {
    /// The keyspace index of `nonce`.
    pub(crate) fn index_of(&self, nonce: u64) -> u64 {
        self.index_base + (nonce - self.nonces.start)
    }

    /// Checks candidate `nonce` against the reference and records its keyspace index
    /// if it meets the target (the lane-wise kernels only preselect on the top word).
    pub(crate) fn confirm(&self, nonce: u64, hits: &mut Vec<u64>) {
        super::confirm(self.header, self.target, nonce, self.index_of(nonce), hits);
    }

    /// What an implementation's loop needs: the precomputation, the target, the nonces.
    pub(crate) fn parts(&self) -> (&'a Prepared, &'a Target, Range<u64>) {
        (self.prepared, self.target, self.nonces.clone())
    }
}

/// Pushes the keyspace index of every nonce `n` in the scan's nonces whose
/// SHA-256d meets `target`.
pub(crate) fn scan(scan: &Scan<'_>, hits: &mut Vec<u64>) {
    let (p, target, nonces) = scan.parts();
    let top = u32::from_be_bytes([target.0[0], target.0[1], target.0[2], target.0[3]]);
    let mut w = [0u32; 64];
    let mut v = [0u32; 64];
    for nonce in nonces.clone() {
        // The header stores the nonce little-endian; SHA-256 reads words big-endian.
        let n = (nonce as u32).swap_bytes();
        w[..16].copy_from_slice(&p.w);
        w[3] = n;
        w[16] = p.w16;
        w[17] = p.w17;
        w[18] = p.w18_part.wrapping_add(ssig0(n));
        w[19] = p.w19_part.wrapping_add(n);
        schedule(&mut w, 20, 64);
        let mut s = p.after_round_2;
        for t in 3..64 {
            round(&mut s, K[t].wrapping_add(w[t]));
        }
        let first: [u32; 8] = std::array::from_fn(|i| p.midstate[i].wrapping_add(s[i]));

        // Second hash: one block of the 32-byte digest and constant padding.
        v[..8].copy_from_slice(&first);
        v[8] = 0x8000_0000;
        v[9..15].fill(0);
        v[15] = 256;
        schedule(&mut v, 16, 61);
        let mut s = IV;
        for t in 0..61 {
            round(&mut s, K[t].wrapping_add(v[t]));
        }
        // After round 60, e is what h will be at the end: H7, the top of the hash
        // read as a little-endian number, byte-swapped.
        let high = IV[7].wrapping_add(s[4]).swap_bytes();
        if high > top {
            continue;
        }
        schedule(&mut v, 61, 64);
        for t in 61..64 {
            round(&mut s, K[t].wrapping_add(v[t]));
        }
        let mut digest = [0u8; 32];
        for (i, chunk) in digest.chunks_exact_mut(4).enumerate() {
            chunk.copy_from_slice(&IV[i].wrapping_add(s[i]).to_be_bytes());
        }
        if target.is_met_by(&digest) {
            hits.push(scan.index_of(nonce));
        }
    }
}
