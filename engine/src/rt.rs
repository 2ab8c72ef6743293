//! Small helpers over the tokio runtime shared by the engine's loops.
//!
//! Depends on: tokio.

/// Run a short blocking piece (a synced storage write) from async code:
/// off the async workers on the multi-threaded runtime the daemon uses,
/// inline on a current-thread runtime (virtual-time tests, where tokio's
/// clock can be paused and `block_in_place` is not available).
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
