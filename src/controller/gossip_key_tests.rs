//! Against recorded API exchanges (tower-test): exactly which requests are made and what is
//! written.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

use super::*;

type Mock = Handle<Request<Body>, Response<Body>>;

const PATH: &str = "/api/v1/namespaces/ferrolb-system/secrets/lb-ferrolb-memberlist";

fn mock() -> (Client, Mock) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

async fn next(
    api: &mut Mock,
) -> (
    Method,
    String,
    String,
    Vec<u8>,
    SendResponse<Response<Body>>,
) {
    let (req, send) = tokio::time::timeout(Duration::from_secs(10), api.next_request())
        .await
        .expect("a request")
        .expect("the client is alive");
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let body = req.into_body().collect_bytes().await.unwrap().to_vec();
    (method, path, query, body, send)
}

fn respond(send: SendResponse<Response<Body>>, code: StatusCode, body: Value) {
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
           "message": reason, "code": code})
}

fn ensure(client: Client) -> tokio::task::JoinHandle<Result<Ensured, kube::Error>> {
    tokio::spawn(async move {
        ensure_key_secret(&client, "ferrolb-system", "lb-ferrolb-memberlist").await
    })
}

#[tokio::test]
async fn a_missing_secret_is_created_with_a_random_key() {
    let (client, mut api) = mock();
    let task = ensure(client);
    let (method, path, _, _, send) = next(&mut api).await;
    assert_eq!((method, path.as_str()), (Method::GET, PATH));
    respond(send, StatusCode::NOT_FOUND, status(404, "NotFound"));

    let (method, path, query, body, send) = next(&mut api).await;
    assert_eq!(method, Method::POST);
    assert_eq!(path, "/api/v1/namespaces/ferrolb-system/secrets");
    assert!(query.contains("fieldManager=ferrolb-controller"), "{query}");
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent["metadata"]["name"], "lb-ferrolb-memberlist");
    assert_eq!(sent["type"], "Opaque");
    let encoded = sent["data"][KEY_FIELD].as_str().unwrap();
    let key = base64_decode(encoded);
    assert_eq!(key.len(), KEY_LEN);
    assert!(key.iter().all(u8::is_ascii_alphanumeric));
    respond(send, StatusCode::CREATED, sent.clone());
    assert_eq!(task.await.unwrap().unwrap(), Ensured::Created);

    // A second Secret gets a different key.
    let (client, mut api) = mock();
    let task = ensure(client);
    let (_, _, _, _, send) = next(&mut api).await;
    respond(send, StatusCode::NOT_FOUND, status(404, "NotFound"));
    let (_, _, _, body, send) = next(&mut api).await;
    let other: Value = serde_json::from_slice(&body).unwrap();
    assert_ne!(other["data"][KEY_FIELD], sent["data"][KEY_FIELD]);
    respond(send, StatusCode::CREATED, other);
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_existing_secret_is_left_alone() {
    let (client, mut api) = mock();
    let task = ensure(client);
    let (method, path, _, _, send) = next(&mut api).await;
    assert_eq!((method, path.as_str()), (Method::GET, PATH));
    respond(
        send,
        StatusCode::OK,
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
               "metadata": {"name": "lb-ferrolb-memberlist", "namespace": "ferrolb-system"}}),
    );
    // The task ends with no further request: nothing is written.
    assert_eq!(task.await.unwrap().unwrap(), Ensured::Existed);
}

#[tokio::test]
async fn a_create_race_lost_to_another_replica_is_success() {
    let (client, mut api) = mock();
    let task = ensure(client);
    let (_, _, _, _, send) = next(&mut api).await;
    respond(send, StatusCode::NOT_FOUND, status(404, "NotFound"));
    let (method, _, _, _, send) = next(&mut api).await;
    assert_eq!(method, Method::POST);
    respond(send, StatusCode::CONFLICT, status(409, "AlreadyExists"));
    assert_eq!(task.await.unwrap().unwrap(), Ensured::CreatedByAnother);
}

#[tokio::test]
async fn refusals_are_retried_until_the_secret_exists() {
    let (client, mut api) = mock();
    let (_stop_tx, stop) = watch::channel(false);
    let task = tokio::spawn(keep_key_secret(
        client,
        "ferrolb-system".into(),
        "lb-ferrolb-memberlist".into(),
        stop,
    ));
    let (_, _, _, _, send) = next(&mut api).await;
    respond(send, StatusCode::FORBIDDEN, status(403, "Forbidden"));
    let (method, _, _, _, send) = next(&mut api).await;
    assert_eq!(method, Method::GET, "retried");
    respond(
        send,
        StatusCode::OK,
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
               "metadata": {"name": "lb-ferrolb-memberlist", "namespace": "ferrolb-system"}}),
    );
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops once the Secret exists")
        .unwrap();
}

/// Standard base64 (what Kubernetes uses for Secret data), decoded without another dependency.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        bits = (bits << 6) | v;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}
