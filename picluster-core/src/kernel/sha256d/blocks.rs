//! The layout a batch of compressions shares with the implementations that run it:
//! [`BATCH`] blocks and states stored lane by lane, and moving a few lanes in and out
//! of that layout. Apart from `batch` so that the implementations (`lanes`, `shani`,
//! `armsha2`) depend on the layout and `batch` on them, with no circle.

/// Blocks per batch: a multiple of every implementation's width (2, 4, 8, 16).
pub(crate) const BATCH: usize = 16;

/// A batch's message words, lane by lane: `blocks[t][j]` is word `t` of block `j`
/// (big-endian reads of its bytes). Kept in this layout so that a word of sixteen
/// blocks is one vector load, and a kernel that rewrites one word of a block writes
/// one `u32`.
pub(crate) type Blocks = [[u32; BATCH]; 16];
/// A batch's states, lane by lane: `states[i][j]` is word `i` of state `j`.
pub(crate) type States = [[u32; BATCH]; 8];

/// Gathers lanes `first..first + N` of state rows: N states of eight words.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
pub(crate) fn gather_states<const N: usize>(states: &States, first: usize) -> [[u32; 8]; N] {
    std::array::from_fn(|q| std::array::from_fn(|i| states[i][first + q]))
}

/// Gathers lanes `first..first + N` of block rows: N blocks of sixteen words.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub(crate) fn gather_blocks<const N: usize>(blocks: &Blocks, first: usize) -> [[u32; 16]; N] {
    std::array::from_fn(|q| std::array::from_fn(|t| blocks[t][first + q]))
}

/// Writes N states back to lanes `first..first + N`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
pub(crate) fn scatter_states<const N: usize>(
    states: &mut States,
    first: usize,
    out: &[[u32; 8]; N],
) {
    for (q, state) in out.iter().enumerate() {
        for (i, word) in state.iter().enumerate() {
            states[i][first + q] = *word;
        }
    }
}
