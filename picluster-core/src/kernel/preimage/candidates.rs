//! The candidates of a scan as message words: the mask's fastest-varying positions
//! tabulated ([`Tail`]), the earlier ones stepped like an odometer ([`Odometer`]),
//! and sixteen candidates at a time filled into a batch ([`Candidates`]).

use crate::kernel::sha256d::batch::{Batch, BATCH};

/// Most combinations of the tail's positions (see [`Tail`]): its table stays small
/// enough for the first-level cache.
const MAX_TAIL_RADIX: usize = 1024;

/// The fastest-varying positions of a mask (its last ones), taken together as one
/// digit of radix up to [`MAX_TAIL_RADIX`], and for each value of that digit the
/// bits it sets in the message words it touches. Sixteen consecutive candidates that
/// share everything before the tail differ only in those words, which are then one
/// OR of the rest's bits with a slice of the table per word.
#[derive(Debug)]
pub(super) struct Tail {
    /// The first tail position.
    pub(super) start: usize,
    /// Values of the tail digit.
    pub(super) radix: usize,
    /// The first message word the tail touches.
    pub(super) first_word: usize,
    /// Per touched word, the bits of the tail positions.
    pub(super) masks: Vec<u32>,
    /// Per touched word `k`, `table[k * radix + r]`: the bits of tail value `r`.
    pub(super) table: Vec<u32>,
}

impl Tail {
    pub(super) fn new(positions: &[Vec<u8>]) -> Tail {
        let len = positions.len();
        let mut start = len;
        let mut radix = 1;
        while start > 0 && radix * positions[start - 1].len() <= MAX_TAIL_RADIX {
            start -= 1;
            radix *= positions[start].len();
        }
        // A position has at most 256 characters, so the tail has at least one.
        let first_word = start / 4;
        let words = (len - 1) / 4 + 1 - first_word;
        let shift = |p: usize| 24 - 8 * (p % 4);
        let mut masks = vec![0u32; words];
        for p in start..len {
            masks[p / 4 - first_word] |= 0xff << shift(p);
        }
        let mut table = vec![0u32; words * radix];
        for r in 0..radix {
            let mut rest = r;
            for p in (start..len).rev() {
                let set = &positions[p];
                let byte = set[rest % set.len()];
                rest /= set.len();
                table[(p / 4 - first_word) * radix + r] |= u32::from(byte) << shift(p);
            }
        }
        Tail {
            start,
            radix,
            first_word,
            masks,
            table,
        }
    }
}

/// A candidate as a SHA-256 block: each position's digit, set from an index, then
/// stepped like an odometer (the last position fastest).
struct Odometer<'a> {
    positions: &'a [Vec<u8>],
    digits: Vec<usize>,
    /// The candidate, 0x80, zeros, the bit length, as message words.
    words: [u32; 16],
}

impl<'a> Odometer<'a> {
    fn new(positions: &'a [Vec<u8>], first: u64) -> Odometer<'a> {
        let len = positions.len();
        let mut odometer = Odometer {
            positions,
            digits: vec![0; len],
            words: [0; 16],
        };
        odometer.set(len, 0x80);
        odometer.words[14] = ((len as u64 * 8) >> 32) as u32;
        odometer.words[15] = (len as u64 * 8) as u32;
        let mut rest = first;
        for (k, set) in positions.iter().enumerate().rev() {
            odometer.digits[k] = (rest % set.len() as u64) as usize;
            rest /= set.len() as u64;
            odometer.set(k, set[odometer.digits[k]]);
        }
        odometer
    }

    /// Byte `k` of the block.
    fn set(&mut self, k: usize, byte: u8) {
        let shift = 24 - 8 * (k % 4);
        let word = &mut self.words[k / 4];
        *word = (*word & !(0xff << shift)) | u32::from(byte) << shift;
    }

    /// Steps positions `..len` as one odometer (position `len - 1` fastest, carrying
    /// leftwards); the rest stay as they are.
    fn step_prefix(&mut self, len: usize) {
        for k in (0..len).rev() {
            let set = &self.positions[k];
            self.digits[k] += 1;
            if self.digits[k] < set.len() {
                self.set(k, set[self.digits[k]]);
                return;
            }
            self.digits[k] = 0;
            self.set(k, set[0]);
        }
    }
}

/// The candidates of a scan as (head, tail value): `head` holds the words with every
/// position before the tail (the tail's bits cleared), `r` the tail value; a
/// candidate's words are the head's ORed with the tail's table entry.
pub(super) struct Candidates<'a> {
    head: Odometer<'a>,
    tail: &'a Tail,
    r: usize,
    /// Whether a batch's words before the tail may differ from `head`'s.
    head_changed: bool,
}

impl<'a> Candidates<'a> {
    /// Candidates from mask index `first` on.
    pub(super) fn new(positions: &'a [Vec<u8>], tail: &'a Tail, first: u64) -> Candidates<'a> {
        let mut head = Odometer::new(positions, first);
        for (k, mask) in tail.masks.iter().enumerate() {
            head.words[tail.first_word + k] &= !mask;
        }
        Candidates {
            head,
            tail,
            r: (first % tail.radix as u64) as usize,
            head_changed: true,
        }
    }

    /// Word `t` of the current candidate.
    fn word(&self, t: usize) -> u32 {
        match t.checked_sub(self.tail.first_word) {
            Some(k) if k < self.tail.masks.len() => {
                self.head.words[t] | self.tail.table[k * self.tail.radix + self.r]
            }
            _ => self.head.words[t],
        }
    }

    /// The next candidate.
    fn step(&mut self) {
        self.r += 1;
        if self.r == self.tail.radix {
            self.r = 0;
            self.head.step_prefix(self.tail.start);
            self.head_changed = true;
        }
    }

    /// Writes the next `count` candidates (at most [`BATCH`]) into `batch`'s lanes;
    /// lanes past `count` repeat the last one. `batch` must be the one of the previous
    /// fill: its words that cannot have changed since are not written again.
    pub(super) fn fill(&mut self, batch: &mut Batch, count: usize) {
        let tail = self.tail;
        let tail_words = tail.first_word..tail.first_word + tail.masks.len();
        if self.r + BATCH <= tail.radix {
            // The whole batch shares the head: the tail words are the head's bits
            // ORed with sixteen consecutive table entries.
            if self.head_changed {
                for t in (0..tail_words.start).chain(tail_words.end..16) {
                    batch.blocks[t] = [self.head.words[t]; BATCH];
                }
                self.head_changed = false;
            }
            for (k, t) in tail_words.enumerate() {
                let entries = &tail.table[k * tail.radix + self.r..][..BATCH];
                for (lane, entry) in batch.blocks[t].iter_mut().zip(entries) {
                    *lane = self.head.words[t] | entry;
                }
            }
            self.r += BATCH - 1;
            self.step();
        } else {
            // The head steps within the batch: lane by lane, every word.
            for j in 0..BATCH {
                for t in 0..16 {
                    batch.blocks[t][j] = self.word(t);
                }
                if j + 1 < count {
                    self.step();
                }
            }
            self.step();
            self.head_changed = true;
        }
    }
}
