//! What `picluster submit` takes: a subcommand per job kind, and the options every
//! kind shares.

use super::{ClusterArg, OutputArg};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub(in crate::cli) enum SubmitKind {
    /// Bitcoin-style SHA-256d nonce search over an 80-byte block header.
    #[command(
        after_help = "Examples:\n  picluster submit sha256d --header HEX --cluster rack\n  picluster submit sha256d --header HEX --nonce-range 0..100000000 --all --json\n  picluster submit sha256d --headers-file blocks.txt --detach"
    )]
    Sha256d(Sha256dArgs),
    /// Proof of work: counters C such that SHA-256(DATA || C as 8 bytes big-endian)
    /// has at least --bits leading zero bits.
    #[command(
        after_help = "Examples:\n  picluster submit hashcash --data 'hello' --bits 24\n  picluster submit hashcash --data-file msg.bin --bits 16 --counter-range 0..100000000 --all"
    )]
    Hashcash(HashcashArgs),
    /// Preimage search: candidates of a mask whose SHA-256 (or SHA-256d) is one of
    /// the target digests. Stops when every target is found, or the mask is done.
    #[command(
        after_help = "Examples:\n  picluster submit preimage --mask 'pass?d?d?d?d' --target HEX\n  picluster submit preimage --mask '?l?l?l?l?d?d' --targets-file digests.txt --hash sha256d\n  picluster submit preimage --masks-file masks.txt --target HEX --detach"
    )]
    Preimage(PreimageArgs),
}

/// What every `submit` command shares.
#[derive(Args, Debug)]
pub(in crate::cli) struct SubmitCommon {
    /// Print the job id and return without waiting.
    #[arg(long)]
    pub(in crate::cli) detach: bool,
    /// Higher runs first; equal priorities share the cluster fairly among clients.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub(in crate::cli) priority: i32,
    #[command(flatten)]
    pub(in crate::cli) cluster: ClusterArg,
    #[command(flatten)]
    pub(in crate::cli) output: OutputArg,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["data", "data_hex", "data_file"])))]
pub(in crate::cli) struct HashcashArgs {
    /// The data, as text (UTF-8).
    #[arg(long)]
    pub(in crate::cli) data: Option<String>,
    /// The data, as hex.
    #[arg(long, value_name = "HEX")]
    pub(in crate::cli) data_hex: Option<String>,
    /// The data, read from a file (at most 64 KiB).
    #[arg(long, value_name = "FILE")]
    pub(in crate::cli) data_file: Option<PathBuf>,
    /// Leading zero bits required (1-256).
    #[arg(long)]
    pub(in crate::cli) bits: u32,
    /// Counters to try, half-open START..END (default 0..2^64-1).
    #[arg(long, value_name = "START..END")]
    pub(in crate::cli) counter_range: Option<String>,
    /// Find every counter in the range instead of stopping at the first (needs
    /// --counter-range).
    #[arg(long)]
    pub(in crate::cli) all: bool,
    #[command(flatten)]
    pub(in crate::cli) common: SubmitCommon,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("targets").required(true).multiple(true).args(["target", "targets_file"])))]
pub(in crate::cli) struct PreimageArgs {
    /// The mask: ?l ?u ?d ?h ?H ?s ?a ?b ?1-?4 are charsets, ?? is '?', anything
    /// else stands for itself (e.g. "pass?d?d?d?d").
    #[arg(
        long,
        required_unless_present = "masks_file",
        conflicts_with = "masks_file"
    )]
    pub(in crate::cli) mask: Option<String>,
    /// A file of masks, one per line (blank lines and # comments skipped): one job
    /// each, with the other options; waits for all of them (or --detach).
    #[arg(long, value_name = "FILE")]
    pub(in crate::cli) masks_file: Option<PathBuf>,
    /// Custom charset ?1 (same syntax, e.g. "?l?d_").
    #[arg(long = "charset1", short = '1', value_name = "SET")]
    pub(in crate::cli) charset1: Option<String>,
    /// Custom charset ?2.
    #[arg(long = "charset2", short = '2', value_name = "SET")]
    pub(in crate::cli) charset2: Option<String>,
    /// Custom charset ?3.
    #[arg(long = "charset3", short = '3', value_name = "SET")]
    pub(in crate::cli) charset3: Option<String>,
    /// Custom charset ?4.
    #[arg(long = "charset4", short = '4', value_name = "SET")]
    pub(in crate::cli) charset4: Option<String>,
    /// A target digest, 64 hex digits (repeatable).
    #[arg(long, value_name = "HEX")]
    pub(in crate::cli) target: Vec<String>,
    /// A file of target digests, one per line (blank lines and # comments skipped).
    #[arg(long, value_name = "FILE")]
    pub(in crate::cli) targets_file: Option<PathBuf>,
    /// The hash inverted.
    #[arg(long, value_enum, default_value_t = HashArg::Sha256)]
    pub(in crate::cli) hash: HashArg,
    /// Stop at the first preimage found instead of looking for every target.
    #[arg(long)]
    pub(in crate::cli) first: bool,
    /// Skip this many candidates at the start of the mask.
    #[arg(long, default_value_t = 0)]
    pub(in crate::cli) skip: u64,
    /// Search at most this many candidates.
    #[arg(long)]
    pub(in crate::cli) limit: Option<u64>,
    #[command(flatten)]
    pub(in crate::cli) common: SubmitCommon,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(in crate::cli) enum HashArg {
    /// SHA-256(candidate).
    Sha256,
    /// SHA-256(SHA-256(candidate)).
    Sha256d,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("headers").required(true).args(["header", "headers_file"])))]
pub(in crate::cli) struct Sha256dArgs {
    /// The 80-byte block header, hex, as serialized (its nonce field is ignored).
    #[arg(long)]
    pub(in crate::cli) header: Option<String>,
    /// A file of headers, one per line (blank lines and # comments skipped): one job
    /// each, with the other options; waits for all of them (or --detach).
    #[arg(long, value_name = "FILE")]
    pub(in crate::cli) headers_file: Option<PathBuf>,
    /// Nonces to search, half-open START..END (default 0..4294967296).
    #[arg(long, value_name = "START..END")]
    pub(in crate::cli) nonce_range: Option<String>,
    /// Target, 64 hex digits, most significant first (default: the header's nBits).
    #[arg(long)]
    pub(in crate::cli) target: Option<String>,
    /// BIP 320 version bits to roll (a subset of 1fffe000), to search beyond 2^32.
    #[arg(long, value_name = "HEX")]
    pub(in crate::cli) version_mask: Option<String>,
    /// Find every solution instead of stopping at the first.
    #[arg(long)]
    pub(in crate::cli) all: bool,
    #[command(flatten)]
    pub(in crate::cli) common: SubmitCommon,
}
