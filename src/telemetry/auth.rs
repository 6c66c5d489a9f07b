//! Who may read /metrics with `--metrics-secure`: the bearer token of each request is
//! authenticated with a TokenReview and its user authorised with a SubjectAccessReview (`get` on
//! the non-resource URL `/metrics`), as MetalLB 0.16 and kube-rbac-proxy do. The reviews are made
//! by a [`Reviewer`] (the API server's, `k8s::review::KubeReviewer`, or a test's) and
//! their outcome is remembered for [`REVIEW_TTL`] per token, in at most [`CACHE_CAPACITY`]
//! entries keyed by the token's SHA-256, so a scrape every few seconds costs two API calls per
//! TTL, not per scrape. An API error is never remembered, and never lets a request through.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// How long a review's outcome (allowed, forbidden, or an unknown token) is reused for the same
/// token: a revoked grant or token stops working within this.
pub const REVIEW_TTL: Duration = Duration::from_secs(10);
/// At most this many tokens' outcomes are remembered (a handful of Prometheus replicas is the
/// normal case; the bound keeps a flood of made-up tokens from growing the process).
pub const CACHE_CAPACITY: usize = 256;
/// Both reviews of one request must be answered within this, or the request gets 503 (a scrape
/// waits for no API server retrying behind it).
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);
/// The non-resource URL the SubjectAccessReview asks `get` on.
pub const METRICS_PATH: &str = "/metrics";

/// The user a TokenReview authenticated, as the SubjectAccessReview must name it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// A review the API server could not answer (unreachable, refused us, answered nonsense).
#[derive(Debug, thiserror::Error)]
#[error("the {review} failed")]
pub struct ReviewError {
    /// `TokenReview` or `SubjectAccessReview`.
    pub review: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Makes the two reviews. `authenticate` answers `None` for a token the API server does not
/// accept; `authorize` whether `user` may `get` the non-resource URL `path`.
pub trait Reviewer: Send + Sync {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<User>, ReviewError>>;
    fn authorize<'a>(
        &'a self,
        user: &'a User,
        path: &'a str,
    ) -> BoxFuture<'a, Result<bool, ReviewError>>;
}

/// What a request to /metrics gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The metrics (200).
    Allowed,
    /// No bearer token, or one the API server does not accept (401).
    Unauthenticated,
    /// A known user without the grant (403).
    Forbidden,
    /// A review failed: neither accepted nor refused (503).
    Unavailable,
}

impl Decision {
    pub fn status(self) -> StatusCode {
        match self {
            Decision::Allowed => StatusCode::OK,
            Decision::Unauthenticated => StatusCode::UNAUTHORIZED,
            Decision::Forbidden => StatusCode::FORBIDDEN,
            Decision::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The bearer token of an `Authorization` header value, if it holds one (`Bearer` in any case,
/// a non-empty token).
pub fn bearer_token(header: Option<&HeaderValue>) -> Option<&str> {
    let value = header?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

type TokenHash = [u8; 32];

/// The outcomes remembered, with when each stops counting.
#[derive(Default)]
struct Cache {
    entries: HashMap<TokenHash, (Decision, Instant)>,
}

impl Cache {
    fn get(&self, key: &TokenHash, now: Instant) -> Option<Decision> {
        self.entries
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(decision, _)| *decision)
    }

    fn insert(&mut self, key: TokenHash, decision: Decision, now: Instant) {
        if self.entries.len() >= CACHE_CAPACITY && !self.entries.contains_key(&key) {
            self.entries.retain(|_, (_, until)| *until > now);
            if self.entries.len() >= CACHE_CAPACITY {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(key, (decision, now + REVIEW_TTL));
    }
}

/// Decides each /metrics request: the [`Reviewer`] and the cache of its outcomes.
pub struct Gate {
    reviewer: Arc<dyn Reviewer>,
    cache: Mutex<Cache>,
}

impl Gate {
    pub fn new(reviewer: Arc<dyn Reviewer>) -> Self {
        Gate {
            reviewer,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The decision for a request with this `Authorization` header.
    pub async fn decide(&self, authorization: Option<&HeaderValue>) -> Decision {
        let Some(token) = bearer_token(authorization) else {
            return Decision::Unauthenticated;
        };
        let key: TokenHash = Sha256::digest(token.as_bytes()).into();
        if let Some(decision) = self.lock().get(&key, Instant::now()) {
            return decision;
        }
        let decision = match tokio::time::timeout(REVIEW_TIMEOUT, self.review(token)).await {
            Ok(Ok(decision)) => decision,
            Ok(Err(e)) => {
                tracing::warn!(error = %super::error_chain(&e),
                    "cannot review a /metrics request's token: answering 503");
                return Decision::Unavailable;
            }
            Err(_) => {
                tracing::warn!(timeout = ?REVIEW_TIMEOUT,
                    "the API server did not answer a /metrics request's review in time: answering 503");
                return Decision::Unavailable;
            }
        };
        self.lock().insert(key, decision, Instant::now());
        decision
    }

    async fn review(&self, token: &str) -> Result<Decision, ReviewError> {
        let Some(user) = self.reviewer.authenticate(token).await? else {
            tracing::debug!("a /metrics request's token was not accepted by the TokenReview");
            return Ok(Decision::Unauthenticated);
        };
        if self.reviewer.authorize(&user, METRICS_PATH).await? {
            Ok(Decision::Allowed)
        } else {
            tracing::info!(user = %user.name, "refused /metrics: no `get` on {METRICS_PATH}");
            Ok(Decision::Forbidden)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // Nothing panics while holding the lock; were it poisoned, the cache is still consistent.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
