//! The reviews of `--metrics-secure` made by the API server: a TokenReview authenticates a
//! /metrics request's bearer token, a SubjectAccessReview asks whether its user may `get` the
//! non-resource URL. Both are `create` calls on cluster-scoped review resources, which answer in
//! their status and store nothing (RBAC: `create` on `tokenreviews.authentication.k8s.io` and
//! `subjectaccessreviews.authorization.k8s.io`).

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::telemetry::auth::{ReviewError, Reviewer, User};

/// [`Reviewer`] on the API server `client` talks to.
pub struct KubeReviewer {
    tokens: Api<TokenReview>,
    access: Api<SubjectAccessReview>,
}

impl KubeReviewer {
    pub fn new(client: Client) -> Self {
        KubeReviewer {
            tokens: Api::all(client.clone()),
            access: Api::all(client),
        }
    }
}

impl Reviewer for KubeReviewer {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<User>, ReviewError>> {
        Box::pin(async move {
            let answer = self
                .tokens
                .create(&PostParams::default(), &token_review(token))
                .await
                .map_err(|e| ReviewError {
                    review: "TokenReview",
                    source: Box::new(e),
                })?;
            Ok(authenticated_user(answer.status))
        })
    }

    fn authorize<'a>(
        &'a self,
        user: &'a User,
        path: &'a str,
    ) -> BoxFuture<'a, Result<bool, ReviewError>> {
        Box::pin(async move {
            let answer = self
                .access
                .create(&PostParams::default(), &access_review(user, path))
                .await
                .map_err(|e| ReviewError {
                    review: "SubjectAccessReview",
                    source: Box::new(e),
                })?;
            // No status is no answer to "allowed": refused, as the API server would.
            Ok(answer.status.is_some_and(|s| s.allowed))
        })
    }
}

/// A TokenReview of `token` for the API server's own audiences (those of a ServiceAccount token
/// Prometheus has mounted).
pub fn token_review(token: &str) -> TokenReview {
    TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences: None,
        },
        ..TokenReview::default()
    }
}

/// The user of a TokenReview's answer, when it authenticated one with a name.
pub fn authenticated_user(status: Option<TokenReviewStatus>) -> Option<User> {
    let status = status?;
    if status.authenticated != Some(true) {
        return None;
    }
    let user = status.user?;
    let name = user.username.filter(|n| !n.is_empty())?;
    Some(User {
        name,
        uid: user.uid.filter(|u| !u.is_empty()),
        groups: user.groups.unwrap_or_default(),
        extra: user.extra.unwrap_or_default(),
    })
}

/// A SubjectAccessReview: may `user` (with its groups, uid and extra, as the TokenReview gave
/// them) `get` the non-resource URL `path`?
pub fn access_review(user: &User, path: &str) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            uid: user.uid.clone(),
            groups: Some(user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some(path.to_owned()),
                verb: Some("get".to_owned()),
            }),
            resource_attributes: None,
        },
        ..SubjectAccessReview::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::UserInfo;
    use std::collections::BTreeMap;

    fn status(authenticated: Option<bool>, name: Option<&str>) -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated,
            user: Some(UserInfo {
                username: name.map(str::to_owned),
                uid: Some("u-1".into()),
                groups: Some(vec!["system:serviceaccounts".into()]),
                extra: Some(BTreeMap::from([("scope".into(), vec!["a".into()])])),
            }),
            ..TokenReviewStatus::default()
        }
    }

    #[test]
    fn only_an_authenticated_named_user_comes_out_of_a_token_review() {
        let user = authenticated_user(Some(status(Some(true), Some("system:serviceaccount:m:p"))))
            .expect("authenticated");
        assert_eq!(user.name, "system:serviceaccount:m:p");
        assert_eq!(user.uid.as_deref(), Some("u-1"));
        assert_eq!(user.groups, ["system:serviceaccounts"]);
        assert_eq!(user.extra["scope"], ["a"]);
        assert_eq!(
            authenticated_user(Some(status(Some(false), Some("x")))),
            None
        );
        assert_eq!(authenticated_user(Some(status(None, Some("x")))), None);
        assert_eq!(authenticated_user(Some(status(Some(true), None))), None);
        assert_eq!(authenticated_user(Some(status(Some(true), Some("")))), None);
        assert_eq!(authenticated_user(None), None);
    }

    #[test]
    fn the_access_review_asks_get_on_the_non_resource_url_for_the_whole_user() {
        let user = authenticated_user(Some(status(Some(true), Some("prom")))).unwrap();
        let spec = access_review(&user, "/metrics").spec;
        assert_eq!(spec.user.as_deref(), Some("prom"));
        assert_eq!(spec.uid.as_deref(), Some("u-1"));
        assert_eq!(spec.groups.unwrap(), ["system:serviceaccounts"]);
        assert_eq!(spec.extra.unwrap()["scope"], ["a"]);
        let attributes = spec.non_resource_attributes.unwrap();
        assert_eq!(attributes.path.as_deref(), Some("/metrics"));
        assert_eq!(attributes.verb.as_deref(), Some("get"));
        assert!(spec.resource_attributes.is_none());
        assert_eq!(token_review("t0k").spec.token.as_deref(), Some("t0k"));
    }
}
