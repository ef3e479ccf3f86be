//! What every picluster binary needs around its async work: a future that completes
//! on SIGTERM or Ctrl-C, a small runtime for IO-bound clients and workers, and a
//! stderr that a lost log sink cannot turn into a crash.

use std::io::Write;

/// Standard error for logs and messages, losing what cannot be written rather than
/// failing: a log sink that went away (`2>&1 | tee log` and `tee` killed first, a
/// closed terminal) must not take a coordinator or worker down. (tracing-subscriber
/// reports a failed write with `eprintln!`, which panics on a broken stderr.) Use it
/// as the writer of the log subscriber, and [`eprint_lossy`] for one-line messages.
#[derive(Clone, Copy, Debug, Default)]
pub struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// Writes a line to standard error if it can; never panics.
pub fn eprint_lossy(line: &str) {
    let _ = writeln!(LossyStderr, "{line}");
}

/// The exit status of a command-line tool whose standard output went away (a reader
/// like `head` that stopped early): 128 + SIGPIPE, as a Unix tool killed by the signal
/// reports, and nothing printed.
pub const EXIT_BROKEN_PIPE: u8 = 141;

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// A multi-thread runtime with one worker thread: enough for a client's or a worker's
/// network IO (compute runs on rayon), and it keeps a connection alive between the
/// calls of a blocking caller.
pub fn background_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
}
