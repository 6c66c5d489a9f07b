//! The /metrics decision with a fake review backend: 401, 403, 200 and 503, and the cache.

use super::*;
use crate::telemetry::fake_reviews::{FakeReviews, fake, user};

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
}

/// The gate's decision for a request carrying `token` as its bearer token.
async fn decide(gate: &Gate, token: &str) -> Decision {
    gate.decide(Some(&bearer(token))).await
}

#[tokio::test]
async fn no_token_or_another_scheme_is_401_without_asking_the_api_server() {
    let reviews = fake();
    let gate = Gate::new(reviews.clone());
    assert_eq!(gate.decide(None).await, Decision::Unauthenticated);
    for value in [
        "Basic cHJvbTpwcm9t",
        "Bearer",
        "Bearer   ",
        "prometheus-token",
        "",
    ] {
        let header = HeaderValue::from_static(value);
        assert_eq!(
            gate.decide(Some(&header)).await,
            Decision::Unauthenticated,
            "{value:?}"
        );
    }
    assert!(reviews.token_reviews.lock().unwrap().is_empty());
    assert_eq!(Decision::Unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_token_the_review_rejects_is_401_and_never_reaches_the_access_review() {
    let reviews = fake();
    let gate = Gate::new(reviews.clone());
    assert_eq!(decide(&gate, "made-up").await, Decision::Unauthenticated);
    assert_eq!(*reviews.token_reviews.lock().unwrap(), ["made-up"]);
    assert!(reviews.access_reviews.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_known_user_without_the_grant_is_403_and_with_it_200() {
    let reviews = fake();
    let gate = Gate::new(reviews.clone());
    let refused = decide(&gate, "stranger-token").await;
    assert_eq!(refused, Decision::Forbidden);
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // The scheme's case does not matter (RFC 7235).
    let lower = HeaderValue::from_static("bearer prometheus-token");
    let allowed = gate.decide(Some(&lower)).await;
    assert_eq!(allowed, Decision::Allowed);
    assert_eq!(allowed.status(), StatusCode::OK);
    // The access review names the user the token review gave, and asks about /metrics.
    let asked = reviews.access_reviews.lock().unwrap().clone();
    assert_eq!(
        asked,
        [
            (user("stranger"), METRICS_PATH.to_owned()),
            (user("prometheus"), METRICS_PATH.to_owned())
        ]
    );
}

#[tokio::test]
async fn a_failing_review_is_503_never_200_and_is_not_remembered() {
    let reviews = fake();
    let gate = Gate::new(reviews.clone());
    *reviews.token_review_down.lock().unwrap() = true;
    let down = decide(&gate, "prometheus-token").await;
    assert_eq!(down, Decision::Unavailable);
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    *reviews.token_review_down.lock().unwrap() = false;
    *reviews.access_review_down.lock().unwrap() = true;
    assert_eq!(
        decide(&gate, "prometheus-token").await,
        Decision::Unavailable
    );
    // Back up: asked again at once, allowed.
    *reviews.access_review_down.lock().unwrap() = false;
    assert_eq!(decide(&gate, "prometheus-token").await, Decision::Allowed);
    assert_eq!(reviews.token_reviews.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn outcomes_are_reused_for_the_ttl_then_asked_again() {
    let reviews = fake();
    let gate = Gate::new(reviews.clone());
    for token in ["prometheus-token", "stranger-token", "made-up"] {
        decide(&gate, token).await;
    }
    let asked = |r: &FakeReviews| r.token_reviews.lock().unwrap().len();
    assert_eq!(asked(&reviews), 3);
    // The grant is revoked and the unknown token becomes a user's; within the TTL every token
    // gets the remembered answer without a review.
    reviews.granted.lock().unwrap().clear();
    reviews
        .users
        .lock()
        .unwrap()
        .insert("made-up".into(), user("prometheus"));
    tokio::time::advance(REVIEW_TTL - Duration::from_millis(1)).await;
    assert_eq!(decide(&gate, "prometheus-token").await, Decision::Allowed);
    assert_eq!(decide(&gate, "stranger-token").await, Decision::Forbidden);
    assert_eq!(decide(&gate, "made-up").await, Decision::Unauthenticated);
    assert_eq!(asked(&reviews), 3);
    // Past it, each is reviewed again and the change shows.
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(decide(&gate, "prometheus-token").await, Decision::Forbidden);
    assert_eq!(decide(&gate, "made-up").await, Decision::Forbidden);
    assert_eq!(asked(&reviews), 5);
}

#[tokio::test(start_paused = true)]
async fn the_cache_holds_at_most_its_capacity_and_keeps_the_newest() {
    let reviews = fake();
    let gate = Gate::new(reviews.clone());
    for i in 0..CACHE_CAPACITY + 40 {
        decide(&gate, &format!("made-up-{i}")).await;
        tokio::time::advance(Duration::from_micros(10)).await;
    }
    assert_eq!(gate.lock().entries.len(), CACHE_CAPACITY);
    // The latest token is still remembered; the first was evicted and is reviewed again.
    let before = reviews.token_reviews.lock().unwrap().len();
    let latest = format!("made-up-{}", CACHE_CAPACITY + 39);
    decide(&gate, &latest).await;
    assert_eq!(reviews.token_reviews.lock().unwrap().len(), before);
    decide(&gate, "made-up-0").await;
    assert_eq!(reviews.token_reviews.lock().unwrap().len(), before + 1);
    // Tokens are kept only as hashes.
    let key: TokenHash = Sha256::digest(latest.as_bytes()).into();
    assert!(gate.lock().entries.contains_key(&key));
}

#[tokio::test(start_paused = true)]
async fn a_review_that_never_answers_is_503_and_is_not_remembered() {
    let reviews = fake();
    let gate = Gate::new(reviews.clone());
    *reviews.access_review_hangs.lock().unwrap() = true;
    assert_eq!(
        decide(&gate, "prometheus-token").await,
        Decision::Unavailable
    );
    *reviews.access_review_hangs.lock().unwrap() = false;
    assert_eq!(decide(&gate, "prometheus-token").await, Decision::Allowed);
    assert_eq!(reviews.access_reviews.lock().unwrap().len(), 2);
}
