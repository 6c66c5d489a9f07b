//! The election loop against recorded API exchanges (tower-test stands in for the API server).

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use kube::runtime::events::Reporter;
use kube::runtime::reflector;
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

use super::*;
use crate::controller::cached::CachedService;
use crate::controller::lease::Timing;
use crate::controller::metrics::ControllerMetrics;
use crate::telemetry::Registry;

type Mock = Handle<Request<Body>, Response<Body>>;

const PATH: &str =
    "/apis/coordination.k8s.io/v1/namespaces/ferrolb-system/leases/ferrolb-controller";

fn setup(lease_secs: u64) -> (LeaseLoop, Arc<Context>, Mock) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let (reader, _writer) = reflector::store::<CachedService>();
    let (tx, _rx) = futures::channel::mpsc::unbounded();
    let metrics = ControllerMetrics::register(&Registry::new()).unwrap();
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: Some("a".into()),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        reporter,
        None,
        reader,
        metrics,
        tx,
    ));
    let api = Api::<Lease>::namespaced(client, "ferrolb-system");
    let elector = Elector::new("a".into(), Timing::for_lease(lease_secs));
    (
        LeaseLoop::new(api, "ferrolb-controller", elector),
        ctx,
        handle,
    )
}

async fn next(api: &mut Mock) -> (Method, String, Value, SendResponse<Response<Body>>) {
    let (req, send) = tokio::time::timeout(Duration::from_secs(10), api.next_request())
        .await
        .expect("a request")
        .expect("client alive");
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let bytes = req.into_body().collect_bytes().await.unwrap();
    (
        method,
        path,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        send,
    )
}

fn answer(send: SendResponse<Response<Body>>, code: u16, body: &Value) {
    send.send_response(
        Response::builder()
            .status(StatusCode::from_u16(code).unwrap())
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": reason,
           "reason": reason, "code": code})
}

/// The Lease as the API returns it after a write of `body`, at resourceVersion `rv`.
fn stored(body: &Value, rv: &str) -> Value {
    let mut lease = body.clone();
    lease["metadata"]["resourceVersion"] = json!(rv);
    lease["metadata"]["namespace"] = json!("ferrolb-system");
    lease
}

/// First attempt: no Lease, so it is created; the replica leads.
async fn become_leader(election: &mut LeaseLoop, ctx: &Arc<Context>, api: &mut Mock) -> Instant {
    let started = Instant::now();
    let attempt = async {
        election.attempt().await;
        ctx.lead_until(election.elector.leader_until());
    };
    let serve = async {
        let (m, p, _, send) = next(api).await;
        assert_eq!((m, p.as_str()), (Method::GET, PATH));
        answer(send, 404, &status(404, "NotFound"));
        let (m, p, body, send) = next(api).await;
        assert_eq!(m, Method::POST);
        assert_eq!(p, PATH.rsplit_once('/').unwrap().0);
        assert_eq!(body["spec"]["holderIdentity"], "a");
        answer(send, 201, &stored(&body, "1"));
    };
    futures::join!(attempt, serve);
    assert!(ctx.is_leading());
    started
}

#[tokio::test]
async fn a_leader_whose_renewals_fail_stops_writing_before_its_lease_could_pass_on() {
    let (mut election, ctx, mut api) = setup(2);
    let started = become_leader(&mut election, &ctx, &mut api).await;
    // From now on the API server fails every request.
    let (_stop_tx, stop) = watch::channel(false);
    let ctx2 = ctx.clone();
    let running = tokio::spawn(async move { election.run(&ctx2, || {}, stop).await });
    let failing = tokio::spawn(async move {
        loop {
            let Some((_, send)) = api.next_request().await else {
                return;
            };
            answer(send, 500, &status(500, "InternalError"));
        }
    });
    // A standby that saw the created record at the earliest possible moment may take over
    // one full lease duration later; by then this replica must have stopped writing, by its
    // own clock, even though nothing told it that it lost anything.
    tokio::time::sleep_until(tokio::time::Instant::from_std(
        started + Duration::from_secs(2),
    ))
    .await;
    assert!(
        !ctx.is_leading(),
        "still leading a lease it could not renew"
    );
    running.abort();
    failing.abort();
}

#[tokio::test]
async fn renewals_are_conditional_and_a_conflict_is_not_leadership() {
    let (mut election, ctx, mut api) = setup(15);
    become_leader(&mut election, &ctx, &mut api).await;
    let attempt = async {
        election.attempt().await;
        ctx.lead_until(election.elector.leader_until());
    };
    let serve = async {
        let (m, _, _, send) = next(&mut api).await;
        assert_eq!(m, Method::GET);
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "ferrolb-controller", "namespace": "ferrolb-system",
                         "resourceVersion": "1"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 0}});
        answer(send, 200, &lease);
        let (m, p, body, send) = next(&mut api).await;
        assert_eq!((m, p.as_str()), (Method::PATCH, PATH));
        assert_eq!(body["metadata"]["resourceVersion"], "1", "{body}");
        answer(send, 409, &status(409, "Conflict"));
    };
    futures::join!(attempt, serve);
    // Still within the deadline of the creation; but the next check shows another holder.
    let attempt = async {
        election.attempt().await;
        ctx.lead_until(election.elector.leader_until());
    };
    let serve = async {
        let (_, _, _, send) = next(&mut api).await;
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "ferrolb-controller", "namespace": "ferrolb-system",
                         "resourceVersion": "2"},
            "spec": {"holderIdentity": "b", "leaseDurationSeconds": 15, "leaseTransitions": 1}});
        answer(send, 200, &lease);
    };
    futures::join!(attempt, serve);
    assert!(!ctx.is_leading());
}

#[tokio::test]
async fn a_refused_release_at_shutdown_is_only_logged() {
    let (mut election, ctx, mut api) = setup(15);
    become_leader(&mut election, &ctx, &mut api).await;
    let serve = async {
        let (m, p, body, send) = next(&mut api).await;
        assert_eq!((m, p.as_str()), (Method::PATCH, PATH));
        assert_eq!(body["spec"]["holderIdentity"], Value::Null);
        assert_eq!(body["metadata"]["resourceVersion"], "1");
        // helm uninstall removed the Role before the controller stopped.
        answer(send, 403, &status(403, "Forbidden"));
    };
    futures::join!(election.release(), serve);
    assert!(!election.is_leader(Instant::now()));
}

#[tokio::test]
async fn a_dead_election_task_stops_writes_and_fails_the_controller() {
    let (_election, ctx, _api) = setup(15);
    ctx.lead_until(Some(Instant::now() + Duration::from_secs(60)));
    assert!(ctx.is_leading());
    let (_stop_tx, stop) = watch::channel(false);
    let task = tokio::spawn(async {
        panic!("bug in the election loop");
    });
    let result: Result<Option<()>, _> = crate::controller::run::supervise_lease(
        task,
        &ctx,
        "ferrolb-system",
        "ferrolb-controller",
        stop,
    )
    .await;
    let err = result.unwrap_err();
    assert!(
        err.to_string()
            .contains("ferrolb-system/ferrolb-controller"),
        "{err}"
    );
    assert!(!ctx.is_leading());
}
