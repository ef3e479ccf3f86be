//! What every picluster binary needs around its async work: a future that completes
//! on SIGTERM or Ctrl-C, and a small runtime for IO-bound clients and workers.

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
