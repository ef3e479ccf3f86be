//! How numbers, times, rates, solutions and tables read in text output.

use picluster_core::hex;
use picluster_core::job::SearchMode;
use picluster_core::kernel::{Solution, SolutionDetail};
use std::io::Write;

/// `1.23 G` style.
pub(super) fn si(n: u64) -> String {
    let n = n as f64;
    for (scale, unit) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if n >= scale {
            return format!("{:.2} {unit}", n / scale);
        }
    }
    format!("{n}")
}

/// `1h02m`, `3m20s`, `12s`.
pub(super) fn duration_text(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// A rate in the unit of a job's kind: SHA-256d hashes per second (`MH/s`), or
/// keyspace indices per second for every other kind (their cost per index differs,
/// so they are never added to a hash rate).
pub(super) fn rate_text(kind: &str, per_second: f64) -> String {
    if kind == "sha256d" {
        format!("{:.2} MH/s", per_second / 1e6)
    } else if per_second >= 1e6 {
        format!("{:.2} M indices/s", per_second / 1e6)
    } else {
        format!("{:.0} indices/s", per_second)
    }
}

pub(super) fn per_second(count: u64, elapsed_ms: u64) -> f64 {
    if elapsed_ms == 0 {
        0.0
    } else {
        count as f64 * 1000.0 / elapsed_ms as f64
    }
}

/// `1234567` as `1,234,567`.
pub(super) fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn solution_line(s: &Solution) -> String {
    match &s.detail {
        SolutionDetail::Sha256d { nonce, version } => format!(
            "nonce {nonce} (0x{nonce:08x})  version 0x{version:08x}  hash {}",
            hex::encode(&s.hash)
        ),
        SolutionDetail::Hashcash { counter } => {
            format!("counter {counter}  hash {}", hex::encode(&s.hash))
        }
        SolutionDetail::Template {
            extranonce2,
            ntime,
            version,
            nonce,
            block,
        } => format!(
            "extranonce2 {}  ntime {ntime:08x}  version {version:08x}  nonce {nonce:08x}  hash {}{}",
            hex::encode(extranonce2),
            hex::encode(&s.hash),
            if *block { "  (a block)" } else { "" }
        ),
        SolutionDetail::Preimage { candidate } => format!(
            "{}  hash {}",
            match std::str::from_utf8(candidate) {
                Ok(text) => format!("{text:?}"),
                Err(_) => format!("hex:{}", hex::encode(candidate)),
            },
            hex::encode(&s.hash)
        ),
    }
}

/// A table whose columns are as wide as their widest cell (so long names and
/// states never break it); a header starting with `>` is right-aligned.
pub(super) fn table(
    out: &mut dyn Write,
    indent: &str,
    headers: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let names: Vec<&str> = headers.iter().map(|h| h.trim_start_matches('>')).collect();
    let mut widths: Vec<usize> = names.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut text = String::from(indent);
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            let last = i + 1 == cells.len();
            if headers[i].starts_with('>') {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                if !last {
                    text.push_str(&" ".repeat(pad));
                }
            }
            if !last {
                text.push_str("  ");
            }
        }
        // An empty last cell leaves no trailing blanks.
        text.trim_end().to_string()
    };
    writeln!(out, "{}", line(&names))?;
    for row in rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    Ok(())
}

pub(super) fn mode_str(mode: SearchMode) -> &'static str {
    match mode {
        SearchMode::First => "first",
        SearchMode::All => "all",
    }
}

/// `MM-DD HH:MM:SS` UTC, or `-`.
pub(super) fn when(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".to_string(), |ms| utc(ms)[5..].to_string())
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` UTC (the civil-from-days algorithm).
pub(in crate::cli) fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_keep_their_columns_whatever_they_hold() {
        let long = "a-worker-name-of-the-longest-kind-that-a-cluster-may-issue-xyz12";
        let rows = vec![
            vec!["pi-1".to_string(), "busy".to_string(), "1".to_string()],
            vec![
                long.to_string(),
                "unresponsive".to_string(),
                "123456".to_string(),
            ],
            vec![
                "x".to_string(),
                "custom:org/very/long/kernel/name/7".to_string(),
                "7".to_string(),
            ],
        ];
        let mut out = Vec::new();
        table(&mut out, "", &["WORKER", "STATE", ">N"], &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Every row's second column starts where the header's does, and the
        // right-aligned last column ends at the same place.
        let at = lines[0].find("STATE").unwrap();
        for (line, row) in lines[1..].iter().zip(&rows) {
            assert_eq!(line.find(row[1].as_str()), Some(at), "{text}");
            assert_eq!(line.len(), lines[0].len(), "{text}");
        }
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(10_236_893), "10,236,893");
        assert_eq!(duration_text(59.4), "59s");
        assert_eq!(duration_text(3600.0 + 125.0), "1h02m");
        assert_eq!(rate_text("sha256d", 24_750_000.0), "24.75 MH/s");
        assert_eq!(rate_text("preimage", 999.0), "999 indices/s");
    }
}
