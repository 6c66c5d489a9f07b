//! A fake review backend for the tests of the secure metrics server: a few known tokens, one
//! granted user, and switches that make a review fail or never answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use super::auth::{ReviewError, Reviewer, User};

/// What the fake API server answers for each token, and what it was asked.
#[derive(Default)]
pub(crate) struct FakeReviews {
    /// token -> user; a token not here is not authenticated.
    pub(crate) users: Mutex<HashMap<String, User>>,
    /// Users allowed `get` on /metrics.
    pub(crate) granted: Mutex<Vec<String>>,
    /// Never answer a SubjectAccessReview.
    pub(crate) access_review_hangs: Mutex<bool>,
    /// Answer every TokenReview / SubjectAccessReview with an error.
    pub(crate) token_review_down: Mutex<bool>,
    pub(crate) access_review_down: Mutex<bool>,
    pub(crate) token_reviews: Mutex<Vec<String>>,
    pub(crate) access_reviews: Mutex<Vec<(User, String)>>,
}

fn outage(review: &'static str) -> ReviewError {
    ReviewError {
        review,
        source: "connection refused".into(),
    }
}

impl Reviewer for FakeReviews {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<User>, ReviewError>> {
        Box::pin(async move {
            self.token_reviews.lock().unwrap().push(token.to_owned());
            if *self.token_review_down.lock().unwrap() {
                return Err(outage("TokenReview"));
            }
            Ok(self.users.lock().unwrap().get(token).cloned())
        })
    }

    fn authorize<'a>(
        &'a self,
        user: &'a User,
        path: &'a str,
    ) -> BoxFuture<'a, Result<bool, ReviewError>> {
        Box::pin(async move {
            self.access_reviews
                .lock()
                .unwrap()
                .push((user.clone(), path.to_owned()));
            let hangs = *self.access_review_hangs.lock().unwrap();
            if hangs {
                std::future::pending::<()>().await;
            }
            if *self.access_review_down.lock().unwrap() {
                return Err(outage("SubjectAccessReview"));
            }
            Ok(self.granted.lock().unwrap().contains(&user.name))
        })
    }
}

pub(crate) fn user(name: &str) -> User {
    User {
        name: name.to_owned(),
        uid: Some(format!("uid-{name}")),
        groups: vec!["system:serviceaccounts".to_owned()],
        extra: Default::default(),
    }
}

/// A fake with `prometheus-token` (granted) and `stranger-token` (known, not granted).
pub(crate) fn fake() -> Arc<FakeReviews> {
    let reviews = FakeReviews::default();
    reviews
        .users
        .lock()
        .unwrap()
        .insert("prometheus-token".into(), user("prometheus"));
    reviews
        .users
        .lock()
        .unwrap()
        .insert("stranger-token".into(), user("stranger"));
    reviews.granted.lock().unwrap().push("prometheus".into());
    Arc::new(reviews)
}
