//! The backoff every watch of ferrolb uses (controller and speaker alike) between failed
//! attempts to reach the API server.
//!
//! kube-runtime's default doubles from 0.8 s up to 30 s: after an API server outage of some
//! 20 s the next attempt may be half a minute away, and Services created meanwhile wait that
//! long for an address (and for an answer on the network). This one is capped at
//! [`WatchBackoff::MAX`], a few seconds, and starts over as soon as the server answers again
//! (`StreamBackoff` resets it on every successful event), so watches recover within seconds of
//! the server's return while a long outage still costs only one request every few seconds.

use std::time::Duration;

use kube::runtime::WatchStreamExt;
use kube::runtime::utils::{Backoff, StreamBackoff};

/// What a failed watch attempt means for the person reading the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchTrouble {
    /// 410 Gone: the resource version expired; kube-runtime lists again. Routine.
    Expired,
    /// 404 Not Found: the kind is not served (its CRD is not installed).
    NotServed,
    /// Anything else (the API server unreachable, a refusal, ...).
    Other,
}

/// Classifies a watcher error by the API server's status code, wherever in it that is.
pub fn watch_trouble(error: &kube::runtime::watcher::Error) -> WatchTrouble {
    use kube::runtime::watcher::Error as W;
    let code = match error {
        W::WatchError(status) => Some(status.code),
        W::InitialListFailed(kube::Error::Api(s))
        | W::WatchStartFailed(kube::Error::Api(s))
        | W::WatchFailed(kube::Error::Api(s)) => Some(s.code),
        _ => None,
    };
    match code {
        Some(410) => WatchTrouble::Expired,
        Some(404) => WatchTrouble::NotServed,
        _ => WatchTrouble::Other,
    }
}

/// Exponential backoff from `initial` doubling up to `max`, each delay shortened by up to a
/// quarter at random so that replicas that failed together do not retry in lockstep; `reset`
/// (the next attempt succeeded) starts it over. The watches' [`WatchBackoff`] is one; the
/// speaker's ServiceL2Status writer backs its failed passes off with another.
#[derive(Debug, Clone)]
pub struct Exponential {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Exponential {
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// Starts over from `initial`.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

impl Iterator for Exponential {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let base = self.next;
        self.next = (base * 2).min(self.max);
        let jitter = base.mul_f64(rand::random::<f64>() / 4.0);
        Some(base - jitter)
    }
}

/// [`Exponential`] from [`WatchBackoff::INITIAL`] up to [`WatchBackoff::MAX`].
#[derive(Debug, Clone)]
pub struct WatchBackoff(Exponential);

impl WatchBackoff {
    pub const INITIAL: Duration = Duration::from_millis(200);
    pub const MAX: Duration = Duration::from_secs(2);

    pub fn new() -> Self {
        Self(Exponential::new(Self::INITIAL, Self::MAX))
    }
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.0.next()
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.0.reset();
    }
}

/// `stream` with [`WatchBackoff`] applied: what both components put on every watcher.
pub fn with_backoff<S>(stream: S) -> StreamBackoff<S, WatchBackoff>
where
    S: futures::TryStream + WatchStreamExt + Sized,
{
    stream.backoff(WatchBackoff::new())
}

/// Logs a failed watch attempt of `kind` at the level its cause deserves ([`watch_trouble`]).
pub fn log_watch_error(kind: &str, error: &kube::runtime::watcher::Error, quiet: &mut bool) {
    let text = crate::telemetry::error_chain(error);
    match watch_trouble(error) {
        WatchTrouble::Expired => {
            tracing::debug!(kind, error = %text, "watch expired; listing again")
        }
        // Said once until the kind is served again: a cluster whose CRDs lack a kind (an
        // older MetalLB's, without ServiceBGPStatus) is not told so every few seconds forever.
        WatchTrouble::NotServed if *quiet => {
            tracing::debug!(kind, error = %text, "this kind is still not served; retrying")
        }
        WatchTrouble::NotServed => {
            *quiet = true;
            tracing::warn!(kind, error = %text,
                "this kind is not served (are the CRDs installed?); retrying, said again only \
                 after it was served")
        }
        WatchTrouble::Other => {
            tracing::warn!(kind, error = %text, "watch failed; retrying within seconds")
        }
    }
}

/// Runs a watch of `api` with [`with_backoff`] on a task of its own, handing each event to
/// `apply` and logging each error (into a cache: [`super::reflect::reflect`]).
pub fn spawn_events<K>(
    api: kube::Api<K>,
    config: kube::runtime::watcher::Config,
    kind: &'static str,
    mut apply: impl FnMut(kube::runtime::watcher::Event<K>) + Send + 'static,
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    use futures::StreamExt;
    let stream = with_backoff(kube::runtime::watcher(api, config));
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        let mut quiet = false;
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    quiet = false;
                    apply(event);
                }
                Err(e) => log_watch_error(kind, &e, &mut quiet),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_at_a_few_seconds_and_reset_when_the_server_answers() {
        let mut backoff = WatchBackoff::new();
        let delays: Vec<Duration> = backoff.by_ref().take(12).collect();
        for (i, d) in delays.iter().enumerate() {
            assert!(*d <= WatchBackoff::MAX, "attempt {i}: {d:?}");
            assert!(*d >= WatchBackoff::INITIAL * 3 / 4, "attempt {i}: {d:?}");
        }
        // It grows while the server stays away...
        assert!(delays[0] <= WatchBackoff::INITIAL);
        assert!(delays[11] >= WatchBackoff::MAX * 3 / 4);
        // ...never past the cap however long the outage, and an answer starts it over.
        let total: Duration = delays.iter().sum();
        assert!(total <= WatchBackoff::MAX * 12);
        backoff.reset();
        assert!(backoff.next().unwrap() <= WatchBackoff::INITIAL);
    }

    #[test]
    fn a_kind_not_served_is_warned_once_until_it_was_served() {
        let status: kube::core::Status =
            serde_json::from_value(serde_json::json!({"code": 404, "reason": "NotFound"}))
                .expect("a Status");
        let error = kube::runtime::watcher::Error::WatchError(Box::new(status));
        assert_eq!(watch_trouble(&error), WatchTrouble::NotServed);
        let mut quiet = false;
        log_watch_error("ServiceBGPStatus", &error, &mut quiet);
        assert!(quiet, "said, then quiet");
        log_watch_error("ServiceBGPStatus", &error, &mut quiet);
        assert!(quiet);
    }

    #[test]
    fn exponential_doubles_up_to_its_cap_and_starts_over() {
        let (initial, max) = (Duration::from_secs(1), Duration::from_secs(30));
        let mut backoff = Exponential::new(initial, max);
        let delays: Vec<Duration> = backoff.by_ref().take(10).collect();
        for (i, d) in delays.iter().enumerate() {
            let base = (initial * 2u32.pow(i as u32)).min(max);
            assert!(*d <= base && *d >= base * 3 / 4, "attempt {i}: {d:?}");
        }
        backoff.reset();
        assert!(backoff.next().unwrap() <= initial);
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_retries_within_the_cap_after_a_long_outage() {
        use futures::StreamExt;
        // 30 failures in a row (an outage), then the server answers.
        let attempts = futures::stream::iter(
            (0..30)
                .map(|_| Err::<u32, &str>("connection refused"))
                .chain([Ok(1)]),
        );
        let start = tokio::time::Instant::now();
        let mut stream = std::pin::pin!(with_backoff(attempts));
        let mut last_error = start;
        let mut gaps = Vec::new();
        while let Some(item) = stream.next().await {
            let now = tokio::time::Instant::now();
            gaps.push(now - last_error);
            last_error = now;
            if item.is_ok() {
                break;
            }
        }
        assert_eq!(gaps.len(), 31);
        let longest = gaps.iter().max().copied().unwrap_or_default();
        assert!(longest <= WatchBackoff::MAX, "a retry waited {longest:?}");
    }
}
