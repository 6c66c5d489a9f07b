//! The helpers every long-running part shares: the shutdown signal, sleeping until the next
//! deadline a pure core asked for (cores hand out `std::time::Instant`s; none at all means
//! "nothing to do until other input arrives"), and locking a mutex shared between tasks.

use std::future::Future;
use std::time::Instant;

/// Sleeps until `deadline`, or forever when there is none (a `select!` arm that never fires).
/// The earliest of some deadlines, any of which may be absent (a loop waking for whichever of
/// its cores needs it first).
pub fn earliest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}

pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Resolves when SIGTERM or SIGINT arrives. The handlers are installed now, so a signal that
/// arrives before the future is first polled is not lost.
pub fn termination() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    })
}

/// Locks `m`; a task that panicked while holding it left plain data, still usable.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn sleeps_until_the_deadline_and_forever_without_one() {
        let start = tokio::time::Instant::now();
        sleep_until(Some(Instant::now() + Duration::from_secs(5))).await;
        assert!(start.elapsed() >= Duration::from_secs(5));
        let never = tokio::time::timeout(Duration::from_secs(3600), sleep_until(None)).await;
        assert!(never.is_err(), "no deadline never wakes");
    }
}
