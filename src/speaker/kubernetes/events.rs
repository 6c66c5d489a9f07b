//! Recording the speaker's events (`nodeAssigned`, and Warnings for Services nobody announces)
//! on a task of its own, so a slow or unreachable API server delays only the events, never a
//! change of ownership. A batch is recorded [`WRITE_SETTLE`] after it is queued, with every
//! batch queued meanwhile.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;
use tracing::warn;

use super::WRITE_SETTLE;

/// This node has just become the announcer of `service`: a `nodeAssigned` event is due.
#[derive(Debug, Clone, PartialEq)]
pub struct Assigned {
    /// `namespace/name`.
    pub service: String,
    pub reference: ObjectReference,
    /// `None`: the `nodeAssigned` event. Some: a Warning event (reason, note) instead.
    pub warning: Option<(&'static str, String)>,
    /// The protocol a `nodeAssigned` event names.
    pub protocol: Protocol,
}

/// How this node announces a Service (MetalLB's `protocol` in `nodeAssigned`).
pub use crate::config::Protocol;

/// The Node `name`, for events about a speaker without a Pod (or a peer without an object).
pub fn node_reference(name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".to_owned()),
        kind: Some("Node".to_owned()),
        name: Some(name.to_owned()),
        ..ObjectReference::default()
    }
}

/// Records `nodeAssigned` events for this node.
#[derive(Clone)]
pub struct EventWriter {
    client: Client,
    reporter: Reporter,
    me: String,
}

/// Event batches waiting beyond this are dropped (with a warning) rather than queued without
/// bound while the API server does not answer.
const EVENT_QUEUE: usize = 64;

impl EventWriter {
    pub fn new(client: Client, me: String) -> Self {
        let reporter = Reporter {
            controller: "ferrolb-speaker".into(),
            instance: Some(me.clone()),
        };
        Self {
            client,
            reporter,
            me,
        }
    }

    /// Posts one event per Service. A failure is logged and not retried: the event is a
    /// record for humans, and retrying against a refusing API server would only add load.
    pub async fn record(&self, assigned: &[Assigned]) {
        if assigned.is_empty() {
            return;
        }
        let assigned_event = |protocol: Protocol| Event {
            type_: EventType::Normal,
            reason: "nodeAssigned".into(),
            note: Some(format!(
                "announcing from node {:?} with protocol {:?}",
                self.me,
                protocol.as_str()
            )),
            action: "Announce".into(),
            secondary: None,
        };
        let assigned_events = [Protocol::Layer2, Protocol::Bgp].map(assigned_event);
        for a in assigned {
            let warning;
            let event = match &a.warning {
                None => &assigned_events[usize::from(a.protocol == Protocol::Bgp)],
                Some((reason, note)) => {
                    warning = Event {
                        type_: EventType::Warning,
                        reason: (*reason).into(),
                        note: Some(crate::k8s::bounded_note(note)),
                        action: "Announce".into(),
                        secondary: None,
                    };
                    &warning
                }
            };
            // A fresh recorder for each event: its cache keys an event by its object, reason and
            // action, not its note, and would turn a second one of a batch (the layer-2 and the
            // BGP `nodeAssigned` of one Service, or the node regaining a Service) into a PATCH
            // of the first, which the speaker may not do and which would hide the new change.
            let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
            if let Err(e) = recorder.publish(event, &a.reference).await {
                warn!(service = %a.service, error = %crate::telemetry::error_chain(&e), "cannot record nodeAssigned event");
            }
        }
    }

    /// Runs the writer on its own task; the sender queues each pass's events.
    pub fn spawn(self) -> EventQueue {
        let (tx, mut rx) = mpsc::channel::<Vec<Assigned>>(EVENT_QUEUE);
        tokio::spawn(async move {
            while let Some(mut batch) = rx.recv().await {
                tokio::time::sleep(WRITE_SETTLE).await;
                while let Ok(more) = rx.try_recv() {
                    batch.extend(more);
                }
                self.record(&batch).await;
            }
        });
        EventQueue(tx)
    }
}

pub struct EventQueue(mpsc::Sender<Vec<Assigned>>);

impl EventQueue {
    pub fn send(&self, assigned: Vec<Assigned>) {
        if assigned.is_empty() {
            return;
        }
        if let Err(e) = self.0.try_send(assigned) {
            let dropped: Vec<String> = match e {
                mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b) => {
                    b.into_iter().map(|a| a.service).collect()
                }
            };
            warn!(services = ?dropped, "event queue full; nodeAssigned events dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use http::{Method, Request, Response};
    use kube::client::Body;
    use tokio::time::{Duration, Instant};

    use super::*;

    fn assigned(name: &str) -> Assigned {
        Assigned {
            service: format!("shop/{name}"),
            reference: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Service".into()),
                namespace: Some("shop".into()),
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                ..ObjectReference::default()
            },
            warning: None,
            protocol: Protocol::Layer2,
        }
    }

    /// One Service announced by both protocols gets both `nodeAssigned` events in one batch, each
    /// created (a POST): never a PATCH of the first, which the speaker's RBAC does not allow.
    #[tokio::test]
    async fn two_events_about_one_service_in_a_batch_are_both_created() {
        let (mock, mut api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let writer = EventWriter::new(Client::new(mock, "default"), "node-a".into());
        let bgp = Assigned {
            protocol: Protocol::Bgp,
            ..assigned("web")
        };
        let server = tokio::spawn(async move {
            let mut notes = Vec::new();
            while let Some((req, send)) = api.next_request().await {
                assert_eq!(req.method(), Method::POST, "{}", req.uri());
                let body = req.into_body().collect_bytes().await.unwrap();
                let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
                notes.push(event["note"].as_str().unwrap_or("").to_owned());
                send.send_response(Response::builder().body(Body::from(body)).unwrap());
            }
            notes
        });
        writer.record(&[assigned("web"), bgp]).await;
        drop(writer);
        let notes = server.await.unwrap();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].contains("\"layer2\"") && notes[1].contains("\"bgp\""),
            "{notes:?}"
        );
    }

    /// A takeover queues `nodeAssigned` events; they are posted once the change has settled,
    /// so they do not compete with answering, and a batch queued meanwhile joins them.
    #[tokio::test(start_paused = true)]
    async fn events_are_recorded_once_the_change_has_settled() {
        let (mock, mut api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let queue = EventWriter::new(Client::new(mock, "default"), "node-a".into()).spawn();
        let start = Instant::now();
        let server = tokio::spawn(async move {
            let mut posts: Vec<(Duration, String)> = Vec::new();
            while let Some((req, send)) = api.next_request().await {
                assert_eq!(req.method(), Method::POST, "{}", req.uri());
                let body = req.into_body().collect_bytes().await.unwrap();
                let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let about = event["regarding"]["name"].as_str().unwrap_or("").to_owned();
                posts.push((start.elapsed(), about));
                send.send_response(Response::builder().body(Body::from(body)).unwrap());
                if posts.len() == 2 {
                    return posts;
                }
            }
            posts
        });
        queue.send(vec![assigned("web")]);
        tokio::time::sleep(WRITE_SETTLE / 2).await;
        queue.send(vec![assigned("api")]);
        let posts = tokio::time::timeout(WRITE_SETTLE * 5, server)
            .await
            .expect("both events are posted")
            .unwrap();
        let names: Vec<&str> = posts.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["web", "api"]);
        for (at, name) in &posts {
            assert!(
                *at >= WRITE_SETTLE && *at < WRITE_SETTLE * 2,
                "{name} posted {at:?} after the first batch"
            );
        }
    }
}
