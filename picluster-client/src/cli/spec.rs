//! Input validation: command-line arguments into a valid job, before anything is
//! sent, with errors that name the option and the problem.

use super::args::{HashArg, HashcashArgs, PreimageArgs, Sha256dArgs};
use super::CliError;
use picluster_core::hex;
use picluster_core::job::{JobKind, JobSpec, SearchMode};
use picluster_core::kernel::hashcash::HashcashJob;
use picluster_core::kernel::preimage::{Mask, PreimageError, PreimageHash, PreimageJob};
use picluster_core::kernel::sha256d::{BlockHeader, Sha256dJob, Target, NONCE_SPACE};
use std::ops::Range;

/// Validates `submit sha256d` arguments into jobs, before anything is sent: one, or
/// one per line of `--headers-file`.
pub(super) fn sha256d_specs(args: &Sha256dArgs) -> Result<Vec<JobSpec>, CliError> {
    match (&args.header, &args.headers_file) {
        (Some(header), _) => Ok(vec![sha256d_spec(args, header)?]),
        (None, Some(path)) => each_line("--headers-file", path, |line| sha256d_spec(args, line)),
        (None, None) => unreachable!("clap requires --header or --headers-file"),
    }
}

/// Validates `submit preimage` arguments into jobs: one, or one per line of
/// `--masks-file`.
pub(super) fn preimage_specs(args: &PreimageArgs) -> Result<Vec<JobSpec>, CliError> {
    match (&args.mask, &args.masks_file) {
        (Some(mask), _) => Ok(vec![preimage_spec(args, mask)?]),
        (None, Some(path)) => each_line("--masks-file", path, |line| preimage_spec(args, line)),
        (None, None) => unreachable!("clap requires --mask or --masks-file"),
    }
}

/// Most jobs one batch file may submit.
pub(super) const MAX_BATCH_JOBS: usize = 10_000;

/// One job per line of a batch file (blank lines and `#` comments skipped); an
/// error names the file and the line, and nothing is submitted.
fn each_line(
    option: &str,
    path: &std::path::Path,
    spec: impl Fn(&str) -> Result<JobSpec, CliError>,
) -> Result<Vec<JobSpec>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Input(format!("{option} {}: {e}", path.display())))?;
    let mut specs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if specs.len() == MAX_BATCH_JOBS {
            return Err(CliError::Input(format!(
                "{option} {}: more than {MAX_BATCH_JOBS} jobs; split the file",
                path.display()
            )));
        }
        specs.push(spec(line).map_err(|e| {
            CliError::Input(format!("{option} {} line {}: {e}", path.display(), n + 1))
        })?);
    }
    if specs.is_empty() {
        return Err(CliError::Input(format!(
            "{option} {}: no jobs in it (every line is blank or a # comment)",
            path.display()
        )));
    }
    Ok(specs)
}

/// Validates `submit sha256d` arguments with `header` into a job.
fn sha256d_spec(args: &Sha256dArgs, header: &str) -> Result<JobSpec, CliError> {
    let input = |e: &dyn std::fmt::Display| CliError::Input(e.to_string());
    let header = BlockHeader::from_hex(header).map_err(|e| input(&e))?;
    let target = args
        .target
        .as_deref()
        .map(Target::from_hex)
        .transpose()
        .map_err(|e| input(&e))?;
    let nonces = match &args.nonce_range {
        Some(r) => parse_range(r)?,
        None => 0..NONCE_SPACE,
    };
    let mask = match &args.version_mask {
        Some(m) => parse_hex_u32(m).map_err(|e| CliError::Input(format!("--version-mask: {e}")))?,
        None => 0,
    };
    let job = Sha256dJob::new(header, target, nonces, mask).map_err(|e| input(&e))?;
    Ok(JobSpec {
        kind: JobKind::Sha256d(job),
        mode: if args.all {
            SearchMode::All
        } else {
            SearchMode::First
        },
    })
}

/// Validates `submit hashcash` arguments into a job, before anything is sent.
pub(super) fn hashcash_spec(args: &HashcashArgs) -> Result<JobSpec, CliError> {
    let data = if let Some(text) = &args.data {
        text.as_bytes().to_vec()
    } else if let Some(h) = &args.data_hex {
        hex::decode(h.trim()).map_err(|e| CliError::Input(format!("--data-hex: {e}")))?
    } else if let Some(path) = &args.data_file {
        let meta = std::fs::metadata(path)
            .map_err(|e| CliError::Input(format!("--data-file {}: {e}", path.display())))?;
        if meta.len() > picluster_core::kernel::hashcash::MAX_DATA_LEN as u64 {
            return Err(CliError::Input(format!(
                "--data-file {}: {} bytes; at most {} are accepted",
                path.display(),
                meta.len(),
                picluster_core::kernel::hashcash::MAX_DATA_LEN
            )));
        }
        std::fs::read(path)
            .map_err(|e| CliError::Input(format!("--data-file {}: {e}", path.display())))?
    } else {
        unreachable!("clap requires one of --data, --data-hex, --data-file")
    };
    if args.all && args.counter_range.is_none() {
        return Err(CliError::Input(
            "--all needs --counter-range: the default range of 2^64 counters never ends".into(),
        ));
    }
    let counters = match &args.counter_range {
        Some(r) => parse_span(
            "--counter-range",
            r,
            u64::MAX,
            "18446744073709551615 (2^64-1)",
        )?,
        None => 0..u64::MAX,
    };
    let job =
        HashcashJob::new(&data, args.bits, counters).map_err(|e| CliError::Input(e.to_string()))?;
    Ok(JobSpec {
        kind: JobKind::Hashcash(job),
        mode: if args.all {
            SearchMode::All
        } else {
            SearchMode::First
        },
    })
}

/// Validates `submit preimage` arguments with `mask` into a job.
fn preimage_spec(args: &PreimageArgs, mask: &str) -> Result<JobSpec, CliError> {
    let custom = [
        args.charset1.as_deref(),
        args.charset2.as_deref(),
        args.charset3.as_deref(),
        args.charset4.as_deref(),
    ];
    let mask = Mask::parse(mask, &custom).map_err(|e| {
        // A custom charset's fault is its option's, not the mask's.
        let option = match e {
            PreimageError::InCustomCharset { charset, .. }
            | PreimageError::NestedCustom(charset)
            | PreimageError::EmptyCustom(charset) => format!("-{charset}"),
            _ => "--mask".to_string(),
        };
        CliError::Input(format!("{option}: {e}"))
    })?;
    let mut targets = Vec::new();
    for (i, t) in args.target.iter().enumerate() {
        targets.push(
            parse_digest(t).map_err(|e| CliError::Input(format!("--target #{}: {e}", i + 1)))?,
        );
    }
    if let Some(path) = &args.targets_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::Input(format!("--targets-file {}: {e}", path.display())))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            targets.push(parse_digest(line).map_err(|e| {
                CliError::Input(format!(
                    "--targets-file {} line {}: {e}",
                    path.display(),
                    n + 1
                ))
            })?);
        }
    }
    let keyspace = mask.keyspace();
    let end = match args.limit {
        Some(0) => return Err(CliError::Input("--limit must be at least 1".into())),
        Some(limit) => args.skip.saturating_add(limit).min(keyspace),
        None => keyspace,
    };
    let hash = match args.hash {
        HashArg::Sha256 => PreimageHash::Sha256,
        HashArg::Sha256d => PreimageHash::Sha256d,
    };
    let job = PreimageJob::new(mask, hash, &targets, Some(args.skip..end))
        .map_err(|e| CliError::Input(e.to_string()))?;
    Ok(JobSpec {
        kind: JobKind::Preimage(job),
        mode: if args.first {
            SearchMode::First
        } else {
            SearchMode::All
        },
    })
}

fn parse_digest(s: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(s.trim()).map_err(|e| e.to_string())?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{} bytes, expected 32 (64 hex digits)", b.len()))
}

/// A decimal, `0x` hexadecimal or `2^N` number; wider than u64, so that a bound
/// one past the largest (`2^64`) is told apart from text that is not a number.
fn parse_number(s: &str) -> Option<u128> {
    if let Some(h) = s.strip_prefix("0x") {
        return u128::from_str_radix(h, 16).ok();
    }
    if let Some(n) = s.strip_prefix("2^") {
        return n
            .parse::<u32>()
            .ok()
            .filter(|n| *n < 128)
            .map(|n| 1u128 << n);
    }
    s.parse().ok()
}

fn parse_range(s: &str) -> Result<Range<u64>, CliError> {
    parse_span("--nonce-range", s, NONCE_SPACE, "4294967296 (2^32)")
}

/// Parses a half-open `START..END` range for option `option`, with END at most `max`.
fn parse_span(option: &str, s: &str, max: u64, max_text: &str) -> Result<Range<u64>, CliError> {
    let bad = |why: &str| CliError::Input(format!("{option} {s}: {why}"));
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| bad("expected START..END"))?;
    let number = |which: &str, text: &str| {
        parse_number(text.trim()).ok_or_else(|| {
            bad(&format!(
                "{which} `{}` is not a number (decimal, 0x hex, or 2^N)",
                text.trim()
            ))
        })
    };
    let (start, end) = (number("START", a)?, number("END", b)?);
    if start >= end {
        return Err(bad("the range is empty or reversed (END is exclusive)"));
    }
    if end > u128::from(max) {
        return Err(bad(&format!("END is beyond {max_text}")));
    }
    // Both fit: start < end <= max.
    Ok(start as u64..end as u64)
}

fn parse_hex_u32(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    if digits.is_empty() || digits.len() > 8 {
        return Err(format!("`{s}` is not 1-8 hex digits"));
    }
    u32::from_str_radix(digits, 16).map_err(|_| format!("`{s}` is not hex"))
}
