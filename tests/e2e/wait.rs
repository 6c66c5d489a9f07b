//! Polling with generous deadlines. A deadline here is only the point where a test gives up on a
//! condition that should hold; nothing asserts how fast anything happened.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a test waits for the cluster to reach a state before it fails. Generous: the machine
/// is small and shared, and the API server and controller start from cold.
pub const PATIENCE: Duration = Duration::from_secs(90);

const POLL: Duration = Duration::from_millis(100);

/// Polls `check` until it yields `Some`, and returns that value; panics naming `what` after
/// `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
