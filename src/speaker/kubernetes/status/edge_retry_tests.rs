//! A failing status pass backs off: while the API server refuses the writes the writer tries
//! again after growing delays (capped), one request per attempt, and never gives up.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;

use super::*;

/// The API server refuses every write (503) for ten minutes, then takes them. Three Services
/// are announced meanwhile.
#[tokio::test(start_paused = true)]
async fn a_refused_pass_is_retried_with_a_growing_capped_delay_until_it_succeeds() {
    use tokio::time::Instant;

    let (w, mut api) = writer(None);
    let (tx, rx) = watch::channel(inputs(
        &[("shop/a", &[]), ("shop/b", &[]), ("shop/c", &[])],
        &["node-a"],
    ));
    let task = w.spawn(rx);
    let down = std::sync::Arc::new(AtomicBool::new(true));
    let writes = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(Instant, Method, bool)>::new()));
    let (log, refusing) = (writes.clone(), down.clone());
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        let mut made = 0;
        while let Some((req, send)) = api.next_request().await {
            let method = req.method().clone();
            let query = req.uri().query().unwrap_or("").to_owned();
            if query.contains("watch=true") {
                held.push(send);
                continue;
            }
            let refused = method != Method::GET && refusing.load(SeqCst);
            if method != Method::GET {
                log.lock()
                    .unwrap()
                    .push((Instant::now(), method.clone(), refused));
            }
            let (status, reply) = if refused {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "message": "etcd is unavailable", "reason": "ServiceUnavailable",
                           "code": 503}),
                )
            } else if method == Method::GET {
                (
                    StatusCode::OK,
                    json!({"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2StatusList",
                           "metadata": {"resourceVersion": "5"}, "items": []}),
                )
            } else {
                made += usize::from(method == Method::POST);
                (
                    StatusCode::OK,
                    json!({"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
                           "metadata": {"name": format!("l2-{made}"), "namespace": NS}}),
                )
            };
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
        }
    });

    let outage = Duration::from_secs(600);
    tokio::time::sleep(outage).await;
    let attempts: Vec<Instant> = writes
        .lock()
        .unwrap()
        .iter()
        .map(|(at, m, refused)| {
            assert!(*refused && *m == Method::POST, "{m} during the outage");
            *at
        })
        .collect();
    // Not given up: it keeps trying through the outage, at least every cap.
    assert!(attempts.len() >= 10, "{} attempts", attempts.len());
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g <= RETRY_MAX),
        "a retry waited past the cap: {gaps:?}"
    );
    // Not hot-looping: the delays grow, and each attempt is one request, not one per Service.
    assert!(
        attempts.len() <= 40,
        "{} write attempts in {outage:?} of outage: {gaps:?}",
        attempts.len()
    );
    assert!(gaps[0] < gaps[4], "{gaps:?}");

    // The server takes writes again: every object is made, once, within the cap.
    down.store(false, SeqCst);
    tokio::time::sleep(RETRY_MAX + Duration::from_secs(5)).await;
    let after: Vec<Method> = writes.lock().unwrap()[attempts.len()..]
        .iter()
        .map(|(_, m, _)| m.clone())
        .collect();
    assert_eq!(
        after.iter().filter(|m| **m == Method::POST).count(),
        3,
        "{after:?}"
    );
    assert_eq!(
        after.iter().filter(|m| **m == Method::PATCH).count(),
        3,
        "{after:?}"
    );
    // Done: nothing more is written.
    let written = writes.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(writes.lock().unwrap().len(), written);

    drop(tx);
    task.await.unwrap();
    server.abort();
}
