//! The retry delay of every watch: short, capped at a few seconds, and back to the start as soon
//! as the API server answers again.
//!
//! kube-runtime's default grows to 30 s and only forgets its failures two minutes after the last
//! one, so after an API server restart a watch could wait half a minute before it even tried
//! again, and new Services waited with it. An API server that is back is noticed within
//! [`WATCH_BACKOFF_MAX`] of its return instead.

use std::time::Duration;

use kube::runtime::utils::Backoff;

/// The first retry after a watch error.
pub const WATCH_BACKOFF_MIN: Duration = Duration::from_millis(250);
/// The longest wait between two attempts, however long the outage.
pub const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Doubling from [`WATCH_BACKOFF_MIN`] up to [`WATCH_BACKOFF_MAX`]; `reset` (which the watch
/// stream calls on every event that is not an error) starts again from the minimum.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    next: Duration,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self {
            next: WATCH_BACKOFF_MIN,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    /// Never `None`: a watch is retried for as long as the process runs.
    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (self.next * 2).min(WATCH_BACKOFF_MAX);
        Some(delay)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = WATCH_BACKOFF_MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_stays_there_however_long_the_outage() {
        let mut b = WatchBackoff::default();
        let delays: Vec<Duration> = b.by_ref().take(6).collect();
        assert_eq!(
            delays,
            [250, 500, 1000, 2000, 2000, 2000].map(Duration::from_millis)
        );
        assert!(b.take(1000).all(|d| d == WATCH_BACKOFF_MAX));
    }

    #[test]
    fn an_answer_from_the_server_starts_again_from_the_minimum() {
        let mut b = WatchBackoff::default();
        b.by_ref().take(10).for_each(drop);
        b.reset();
        assert_eq!(b.next(), Some(WATCH_BACKOFF_MIN));
    }
}
