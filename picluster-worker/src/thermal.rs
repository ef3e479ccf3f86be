//! Heat: the CPU temperature from Linux thermal zones, the Raspberry Pi firmware's
//! throttling flags (`vcgencmd get_throttled`, where it exists), and the governor that
//! runs fewer compute threads while the board is hot. A Pi 4 mining on four cores
//! without a fan reaches 80 °C, where its firmware throttles the clock, within
//! minutes; running fewer threads just below that keeps the rate it can sustain
//! without the firmware halving the clock.

use std::path::{Path, PathBuf};

/// Where Linux lists its thermal zones.
pub const SYSTEM_THERMAL_DIR: &str = "/sys/class/thermal";

/// Degrees below `--max-temp` at which the governor gives a thread back.
pub const HYSTERESIS_C: f64 = 5.0;

/// A directory of thermal zones (`thermal_zone*/temp` in millidegrees Celsius, and
/// `thermal_zone*/type`), as Linux has under [`SYSTEM_THERMAL_DIR`].
#[derive(Clone, Debug)]
pub struct Thermal {
    dir: PathBuf,
}

impl Thermal {
    /// The zones under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Thermal {
        Thermal { dir: dir.into() }
    }

    /// The system's zones.
    pub fn system() -> Thermal {
        Thermal::new(SYSTEM_THERMAL_DIR)
    }

    /// The directory read.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CPU's temperature in °C: the hottest zone whose type names the CPU or
    /// the SoC (`cpu-thermal` on a Pi, `x86_pkg_temp` on a PC), or the hottest zone
    /// if none does; `None` when no zone can be read.
    pub fn celsius(&self) -> Option<f64> {
        let mut cpu: Option<f64> = None;
        let mut any: Option<f64> = None;
        for entry in std::fs::read_dir(&self.dir).ok()?.flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with("thermal_zone") {
                continue;
            }
            let Some(milli) = std::fs::read_to_string(entry.path().join("temp"))
                .ok()
                .and_then(|t| t.trim().parse::<i64>().ok())
            else {
                continue;
            };
            let celsius = milli as f64 / 1000.0;
            let kind = std::fs::read_to_string(entry.path().join("type")).unwrap_or_default();
            let kind = kind.trim().to_ascii_lowercase();
            if ["cpu", "soc", "x86_pkg", "k10temp", "coretemp"]
                .iter()
                .any(|k| kind.contains(k))
            {
                cpu = Some(cpu.map_or(celsius, |c| c.max(celsius)));
            }
            any = Some(any.map_or(celsius, |c| c.max(celsius)));
        }
        cpu.or(any)
    }
}

/// The Raspberry Pi firmware's throttling flags (`vcgencmd get_throttled`, e.g.
/// `0x50005`: bit 0 under-voltage now, bit 1 frequency capped now, bit 2 throttled
/// now, bit 3 soft temperature limit now; bits 16-19 the same since boot); `None`
/// where `vcgencmd` does not exist or says nothing readable.
pub fn throttled_flags() -> Option<u32> {
    let out = std::process::Command::new("vcgencmd")
        .arg("get_throttled")
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    parse_throttled(&String::from_utf8_lossy(&out.stdout))
}

/// `throttled=0x50005` as 0x50005.
pub fn parse_throttled(text: &str) -> Option<u32> {
    let value = text.trim().strip_prefix("throttled=")?;
    u32::from_str_radix(value.trim_start_matches("0x"), 16).ok()
}

/// Decides how many compute threads run from the temperature: one fewer each time
/// a reading is at or above the limit (never below one), one more each time it is
/// [`HYSTERESIS_C`] below it (never above the worker's threads).
#[derive(Clone, Debug, PartialEq)]
pub struct Governor {
    max_c: f64,
    threads: u32,
    active: u32,
}

impl Governor {
    /// A governor for `threads` threads, all running, with the limit `max_c` °C.
    pub fn new(max_c: f64, threads: u32) -> Governor {
        let threads = threads.max(1);
        Governor {
            max_c,
            threads,
            active: threads,
        }
    }

    /// Threads that run now.
    pub fn active(&self) -> u32 {
        self.active
    }

    /// A reading: the new number of threads if it changes.
    pub fn update(&mut self, celsius: f64) -> Option<u32> {
        let before = self.active;
        if celsius >= self.max_c {
            self.active = self.active.saturating_sub(1).max(1);
        } else if celsius <= self.max_c - HYSTERESIS_C {
            self.active = (self.active + 1).min(self.threads);
        }
        (self.active != before).then_some(self.active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_governor_steps_down_when_hot_and_up_when_cool_with_hysteresis() {
        let mut g = Governor::new(70.0, 4);
        assert_eq!(
            g.update(65.0),
            None,
            "below the limit, above the band: hold"
        );
        assert_eq!(g.update(70.0), Some(3));
        assert_eq!(g.update(75.0), Some(2));
        assert_eq!(g.update(80.0), Some(1));
        assert_eq!(g.update(90.0), None, "never below one thread");
        assert_eq!(g.update(66.0), None, "within the band: hold");
        assert_eq!(g.update(65.0), Some(2));
        assert_eq!(g.update(40.0), Some(3));
        assert_eq!(g.update(40.0), Some(4));
        assert_eq!(g.update(40.0), None, "never above its threads");
        assert_eq!(g.active(), 4);
    }

    #[test]
    fn the_cpu_zone_is_read_and_other_zones_only_without_one() {
        let dir = std::env::temp_dir().join(format!("picluster-thermal-{}", std::process::id()));
        let zone = |n: u32, kind: &str, milli: &str| {
            let z = dir.join(format!("thermal_zone{n}"));
            std::fs::create_dir_all(&z).unwrap();
            std::fs::write(z.join("type"), kind).unwrap();
            std::fs::write(z.join("temp"), milli).unwrap();
        };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(Thermal::new(&dir).celsius(), None);
        zone(0, "acpitz\n", "91000\n");
        assert_eq!(Thermal::new(&dir).celsius(), Some(91.0));
        zone(1, "cpu-thermal\n", "54312\n");
        assert_eq!(Thermal::new(&dir).celsius(), Some(54.312));
        zone(2, "bogus", "not a number");
        assert_eq!(Thermal::new(&dir).celsius(), Some(54.312));
        assert_eq!(Thermal::new(dir.join("missing")).celsius(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn throttled_flags_parse_as_vcgencmd_prints_them() {
        assert_eq!(parse_throttled("throttled=0x50005\n"), Some(0x50005));
        assert_eq!(parse_throttled("throttled=0x0"), Some(0));
        assert_eq!(parse_throttled("error"), None);
    }
}
