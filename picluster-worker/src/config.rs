//! The worker's configuration file: TOML, every key optional, unknown keys refused
//! by name. What the command line and `PICLUSTER_*` variables give wins over the
//! file, and the file over the built-in defaults. `--config FILE` names it; without
//! it, [`DEFAULT_WORKER_CONFIG`] is read when it exists.
//!
//! ```toml
//! state_dir = "/var/lib/picluster-worker"   # or: bundle = "/etc/picluster/pi-3.bundle"
//! threads = 4                               # default: every core
//! impl = "armsha2"                          # default: the fastest this CPU runs
//! metrics = "127.0.0.1:9479"                # default: no metrics
//! max_temp = 75                             # °C; default: never throttle
//! thermal_dir = "/sys/class/thermal"
//! ```

pub use picluster_core::runtime::config::{find_config, read_config, ConfigError};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the worker looks for its configuration when `--config` is not given.
pub const DEFAULT_WORKER_CONFIG: &str = "/etc/picluster/worker.toml";

/// The worker's configuration file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// A bundle from `picluster add-worker`.
    pub bundle: Option<PathBuf>,
    /// The state directory `--join` made.
    pub state_dir: Option<PathBuf>,
    /// Compute threads.
    pub threads: Option<u32>,
    /// The kernel implementation.
    #[serde(rename = "impl")]
    pub implementation: Option<String>,
    /// Metrics address.
    pub metrics: Option<SocketAddr>,
    /// Throttle at this temperature (°C).
    pub max_temp: Option<f64>,
    /// Where the thermal zones are.
    pub thermal_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use picluster_core::runtime::config::uncomment_settings;
    use std::path::Path;

    fn parse(text: &str) -> Result<WorkerConfig, ConfigError> {
        let path = std::env::temp_dir().join(format!(
            "picluster-worker-config-{}-{}.toml",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&path, text).unwrap();
        let result = read_config(&path);
        std::fs::remove_file(&path).unwrap();
        result
    }

    /// The file the Debian package installs as /etc/picluster/worker.toml, and the
    /// same file with every commented-out key turned on (all but one of `bundle` and
    /// `state_dir`, which exclude each other).
    #[test]
    fn the_packaged_configuration_parses_with_and_without_its_comments() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/worker.toml");
        let config: WorkerConfig = read_config(&path).unwrap();
        assert_eq!(
            config,
            WorkerConfig {
                state_dir: Some("/var/lib/picluster-worker".into()),
                max_temp: Some(75.0),
                metrics: Some("127.0.0.1:9479".parse().unwrap()),
                ..WorkerConfig::default()
            }
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let uncommented = uncomment_settings(&text, &["bundle"]);
        let all: WorkerConfig = toml::from_str(&uncommented).unwrap();
        assert_eq!(all.threads, Some(4));
        assert_eq!(all.implementation.as_deref(), Some("armsha2"));
        assert_eq!(all.thermal_dir, Some("/sys/class/thermal".into()));
    }

    #[test]
    fn every_key_parses_and_unknown_keys_are_refused_by_name() {
        let config = parse(
            "state_dir = \"/var/lib/picluster-worker\"\nthreads = 3\nimpl = \"sha2\"\nmetrics = \"127.0.0.1:9479\"\nmax_temp = 75\nthermal_dir = \"/tmp/t\"\n",
        )
        .unwrap();
        assert_eq!(
            config,
            WorkerConfig {
                bundle: None,
                state_dir: Some("/var/lib/picluster-worker".into()),
                threads: Some(3),
                implementation: Some("sha2".into()),
                metrics: Some("127.0.0.1:9479".parse().unwrap()),
                max_temp: Some(75.0),
                thermal_dir: Some("/tmp/t".into()),
            }
        );
        assert_eq!(parse("").unwrap(), WorkerConfig::default());
        let e = parse("threads = 2\nmax_temperature = 70\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `max_temperature`"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let e = parse("threads = \"four\"\n").unwrap_err().to_string();
        assert!(e.contains("threads") || e.contains("invalid type"), "{e}");
        let e = find_config::<WorkerConfig>(Some(Path::new("/nonexistent/w.toml")), "x")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/w.toml: "), "{e}");
    }
}
