//! tracing setup, Prometheus registry, and the /metrics /healthz /readyz server.
//!
//! Every component (controller, speaker) builds one [`Registry`], registers its own metrics in it,
//! and hands it to [`serve`] together with a [`Health`] handle it flips to ready once its own
//! readiness condition holds. With `--metrics-secure` ([`MetricsSecurityArgs`]) the same server
//! speaks HTTPS ([`tls`]) and lets only reviewed, authorised tokens read /metrics ([`auth`]).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use prometheus::Registry;

pub mod auth;
mod http;
mod secure;
pub mod tls;
pub use http::{Server, serve, serve_metrics, serve_with_text};
pub use secure::{MetricsSecurityArgs, Security};

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

impl FromStr for LogFormat {
    type Err = TelemetryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(TelemetryError::UnknownLogFormat(other.to_owned())),
        }
    }
}

/// Errors of the telemetry edge.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("unknown log format {0:?} (expected \"text\" or \"json\")")]
    UnknownLogFormat(String),
    #[error("invalid RUST_LOG filter: {0}")]
    Filter(String),
    #[error("a global tracing subscriber is already installed: {0}")]
    AlreadyInitialised(String),
    #[error("cannot listen for metrics/health on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics/health server failed")]
    Serve(#[source] std::io::Error),
}

/// An error and its causes on one line, `what failed: why: why`, each cause once.
///
/// Our own error messages say what their layer was doing and leave the cause to
/// [`std::error::Error::source`]; some dependencies' messages embed their source as well (kube's
/// `ApiError: {0}`), so a cause whose text the message above it already contains is skipped
/// rather than printed a second time.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let (mut out, mut skip_source) = describe(error);
    let mut above = out.clone();
    let mut next = error.source();
    while let Some(cause) = next {
        if skip_source {
            break;
        }
        let (text, skip) = describe(cause);
        if !text.is_empty() && !above.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        above = text;
        skip_source = skip;
        next = cause.source();
    }
    out
}

/// One error's own text in a chain, and whether its source is already told by it. kube's API
/// error prints the API server's Status twice over (`ApiError: {0} ({0:?})`, the second a
/// ~700-character debug dump), and the watcher's errors embed kube's: these get a short text of
/// their own, the Status as `message (code reason)`.
fn describe(error: &(dyn std::error::Error + 'static)) -> (String, bool) {
    use kube::runtime::watcher;
    let status = |s: &kube::core::Status| format!("{} ({} {})", s.message, s.code, s.reason);
    if let Some(kube::Error::Api(s)) = error.downcast_ref::<kube::Error>() {
        return (status(s), true);
    }
    if let Some(e) = error.downcast_ref::<watcher::Error>() {
        return match e {
            watcher::Error::InitialListFailed(_) => ("cannot list".into(), false),
            watcher::Error::WatchStartFailed(_) => ("cannot start the watch".into(), false),
            watcher::Error::WatchFailed(_) => ("the watch failed".into(), false),
            watcher::Error::WatchError(s) => (
                format!("the API server ended the watch: {}", status(s)),
                true,
            ),
            watcher::Error::NoResourceVersion => (e.to_string(), false),
        };
    }
    (error.to_string(), false)
}

/// Whether text logs get ANSI colours: only when they go to a terminal, and never when the
/// `NO_COLOR` convention asks for none (set to anything but the empty string). Pod logs are
/// files read by `kubectl logs`, where escape codes are noise.
pub fn log_colours(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The log filter for `spec`: one of MetalLB's `--log-level` names (`all`, `debug`, `info`,
/// `warn`, `error`, `none`), so a MetalLB chart value carries over, or else a RUST_LOG filter.
/// Read as a RUST_LOG filter, `all` would be a target name and silence every log line.
pub fn log_filter(spec: &str) -> Result<tracing_subscriber::EnvFilter, TelemetryError> {
    let spec = spec.trim();
    let directives = match spec {
        "" => "info",
        "all" => "trace",
        "none" => "off",
        other => other,
    };
    tracing_subscriber::EnvFilter::try_new(directives)
        .map_err(|e| TelemetryError::Filter(format!("{spec:?}: {e}")))
}

/// Installs the global tracing subscriber writing to stderr in `format`, with the level taken from
/// `RUST_LOG` ([`log_filter`]; default `info`). A malformed `RUST_LOG` is an error rather than
/// silently ignored, so a typo does not hide the logs someone asked for.
pub fn init_tracing(format: LogFormat) -> Result<(), TelemetryError> {
    use tracing_subscriber::EnvFilter;

    let filter = log_filter(&std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_default())?;
    use std::io::IsTerminal;
    let colours = log_colours(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| TelemetryError::AlreadyInitialised(e.to_string()))
}

/// Cheap, clonable readiness flag shared between a component and its `/readyz` endpoint.
/// Starts not ready.
#[derive(Clone, Debug, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Metric families that write their own Prometheus text exposition, for families with
/// thousands of series. [`Registry::gather`] builds a structure per series (a metric, its label
/// pairs, a string per label name and value) on every scrape; with tens of thousands of series
/// that is megabytes allocated in small pieces per scrape, which the allocator keeps around
/// afterwards, per thread. Writing the text directly allocates only the response body.
pub trait TextFamilies: Send + Sync {
    /// Appends complete families (`# HELP`, `# TYPE` and samples) to `out`.
    fn write_text(&self, out: &mut String);
}

/// The [`TextFamilies`] served besides a [`Registry`]. Cloning shares the list.
#[derive(Clone, Default)]
pub struct TextRegistry {
    sources: Arc<std::sync::Mutex<Vec<Arc<dyn TextFamilies>>>>,
}

impl TextRegistry {
    pub fn register(&self, source: Arc<dyn TextFamilies>) {
        self.sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(source);
    }

    /// Every registered source's families, in registration order.
    pub fn write_text(&self, out: &mut String) {
        let sources = self
            .sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for source in sources {
            source.write_text(out);
        }
    }
}

impl fmt::Debug for TextRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextRegistry").finish_non_exhaustive()
    }
}

/// The calling thread's time on a CPU and waiting for one, as the scheduler accounts them
/// (`/proc/thread-self/schedstat`). A slow synchronous step is either long work (`on_cpu`) or a
/// thread that was runnable but not running (`waiting`: other processes had the cores); logging
/// both tells an operator which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThreadTime {
    pub on_cpu: std::time::Duration,
    pub waiting: std::time::Duration,
}

impl ThreadTime {
    /// Now, for this thread; `None` where the kernel keeps no such account (no procfs, or
    /// schedstat not built in).
    pub fn now() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/thread-self/schedstat").ok()?)
    }

    /// Reads `schedstat`'s "ns on a CPU, ns waiting on a run queue, timeslices" line.
    pub fn parse(text: &str) -> Option<Self> {
        let mut fields = text.split_whitespace().map(str::parse::<u64>);
        let on_cpu = fields.next()?.ok()?;
        let waiting = fields.next()?.ok()?;
        Some(Self {
            on_cpu: std::time::Duration::from_nanos(on_cpu),
            waiting: std::time::Duration::from_nanos(waiting),
        })
    }

    /// What accrued between `earlier` and `self`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            on_cpu: self.on_cpu.saturating_sub(earlier.on_cpu),
            waiting: self.waiting.saturating_sub(earlier.waiting),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn tracing_installs_once_and_reports_a_second_install() {
        // nextest runs each test in its own process, so this is the first install here.
        init_tracing(LogFormat::Json).unwrap();
        let err = init_tracing(LogFormat::Text).unwrap_err();
        assert!(
            matches!(err, TelemetryError::AlreadyInitialised(_)),
            "{err}"
        );
    }

    #[test]
    fn metallb_log_level_names_map_to_filters() {
        use tracing::level_filters::LevelFilter;
        let level = |spec: &str| log_filter(spec).unwrap().max_level_hint();
        assert_eq!(level("all"), Some(LevelFilter::TRACE));
        assert_eq!(level("debug"), Some(LevelFilter::DEBUG));
        assert_eq!(level("info"), Some(LevelFilter::INFO));
        assert_eq!(level(""), Some(LevelFilter::INFO));
        assert_eq!(level("warn"), Some(LevelFilter::WARN));
        assert_eq!(level("error"), Some(LevelFilter::ERROR));
        assert_eq!(level("none"), Some(LevelFilter::OFF));
        // As a RUST_LOG filter `all` names a target, enabling nothing else: it must be a level.
        assert_eq!(log_filter("all").unwrap().to_string(), "trace");
        assert_eq!(log_filter(" none ").unwrap().to_string(), "off");
        // RUST_LOG filters still work.
        assert_eq!(level("warn,ferrolb=debug"), Some(LevelFilter::DEBUG));
        let err = log_filter("info,=nonsense=").unwrap_err();
        assert!(err.to_string().contains("nonsense"), "{err}");
    }

    #[test]
    fn log_format_parses_and_rejects() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        let err = "xml".parse::<LogFormat>().unwrap_err();
        assert!(err.to_string().contains("xml"));
        assert_eq!(LogFormat::Json.to_string(), "json");
    }

    #[test]
    fn thread_time_reads_the_schedulers_account() {
        let t = ThreadTime::parse("2353553 118000000 7\n").unwrap();
        assert_eq!(t.on_cpu, std::time::Duration::from_nanos(2_353_553));
        assert_eq!(t.waiting, std::time::Duration::from_millis(118));
        assert_eq!(ThreadTime::parse(""), None);
        assert_eq!(ThreadTime::parse("12"), None);
        assert_eq!(ThreadTime::parse("12 x 1"), None);
        let later = ThreadTime::parse("3353553 100 7").unwrap();
        let d = later.since(t);
        assert_eq!(d.on_cpu, std::time::Duration::from_millis(1));
        // A counter read on another thread can be behind: never a negative duration.
        assert_eq!(d.waiting, std::time::Duration::ZERO);
    }

    #[test]
    fn thread_time_counts_this_threads_work() {
        // Linux keeps the account wherever the speaker runs (schedstat is built into every
        // distribution kernel); a machine without it fails here rather than skip.
        let before = ThreadTime::now().expect("/proc/thread-self/schedstat");
        // Work until the account moves by a millisecond (the kernel updates it at ticks and
        // switches), giving up after 10 s of wall time.
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut x = 0u64;
        let mut worked = std::time::Duration::ZERO;
        while worked < std::time::Duration::from_millis(1) && std::time::Instant::now() < give_up {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            worked = ThreadTime::now().unwrap().since(before).on_cpu;
        }
        std::hint::black_box(x);
        assert!(worked >= std::time::Duration::from_millis(1), "{worked:?}");
    }
}

#[cfg(test)]
mod fake_reviews;
