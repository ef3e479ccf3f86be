//! Configuration files as every picluster program reads them: TOML, every key
//! optional, unknown keys refused by name, errors naming the file. What each program's
//! file holds is the program's own (`picluster-worker`'s `WorkerConfig`, the
//! coordinator's file in `picluster`).

use std::path::{Path, PathBuf};

/// Why a configuration file cannot be used; the text names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid TOML for this program, or names a key it does not know.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and where (line and column, the key's name).
        message: String,
    },
}

/// Reads and parses a TOML configuration file of type `T`.
pub fn read_config<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string().trim().replace('\n', " ").replace("  ", " "),
    })
}

/// The configuration `explicit` names (it must exist), or else `default` when it
/// exists, or else none.
pub fn find_config<T: serde::de::DeserializeOwned + Default>(
    explicit: Option<&Path>,
    default: &str,
) -> Result<(T, Option<PathBuf>), ConfigError> {
    match explicit {
        Some(path) => Ok((read_config(path)?, Some(path.to_path_buf()))),
        None if Path::new(default).is_file() => {
            Ok((read_config(Path::new(default))?, Some(default.into())))
        }
        None => Ok((T::default(), None)),
    }
}

/// `text` with every commented-out setting (`# key = value`) turned on, but those
/// named in `except`: how the example settings in the packaged configuration files
/// (deploy/config) are checked to be valid keys and values.
#[doc(hidden)]
pub fn uncomment_settings(text: &str, except: &[&str]) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest
                    .split_once(" = ")
                    .is_some_and(|(key, _)| !key.contains(' ') && !except.contains(&key)) =>
            {
                rest
            }
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect()
}
