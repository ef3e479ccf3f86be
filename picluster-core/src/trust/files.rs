//! Reading cluster files, and writing private ones: created once, with their mode
//! from the start, and removed again if the write fails.

use super::ClusterError;
use std::fs;
use std::io::Write as _;
use std::path::Path;

pub(super) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn read_text(path: &Path) -> Result<String, ClusterError> {
    fs::read_to_string(path).map_err(io_error(path))
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ClusterError> {
    serde_json::from_str(&read_text(path)?).map_err(|source| ClusterError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

pub(super) fn write_new(path: &Path, contents: &[u8]) -> Result<(), ClusterError> {
    write_with_mode(path, contents, 0o644)
}

/// Refuses a private key file that group or others may read.
pub(super) fn check_private(path: &Path) -> Result<(), ClusterError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(|source| ClusterError::Io {
                path: path.to_path_buf(),
                source,
            })?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(ClusterError::KeyReadable {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

pub(super) fn write_new_private(path: &Path, contents: &[u8]) -> Result<(), ClusterError> {
    write_with_mode(path, contents, 0o600)
}

/// Creates `path` (failing if it exists) with `mode` from the start, so a key is
/// never readable by others, not even for a moment.
fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), ClusterError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            ClusterError::FileExists(path.to_path_buf())
        } else {
            io_error(path)(e)
        }
    })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            // Leave no half-written key or bundle behind.
            let _ = fs::remove_file(path);
            io_error(path)(e)
        })
}
