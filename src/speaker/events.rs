//! Recording the speaker's events (`nodeAssigned`, and Warnings for Services nobody announces)
//! on a task of its own, so a slow or unreachable API server delays only the events, never a
//! change of ownership.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;
use tracing::warn;

/// This node has just become the announcer of `service`: a `nodeAssigned` event is due.
#[derive(Debug, Clone, PartialEq)]
pub struct Assigned {
    /// `namespace/name`.
    pub service: String,
    pub reference: ObjectReference,
    /// `None`: the `nodeAssigned` event. Some: a Warning event (reason, note) instead.
    pub warning: Option<(&'static str, String)>,
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
        // A fresh recorder each time: its cache would turn a repeat of the same event (the
        // node regaining a Service later) into a PATCH of the old one, hiding the new change.
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        let assigned_event = Event {
            type_: EventType::Normal,
            reason: "nodeAssigned".into(),
            note: Some(format!(
                "announcing from node {:?} with protocol \"layer2\"",
                self.me
            )),
            action: "Announce".into(),
            secondary: None,
        };
        for a in assigned {
            let warning;
            let event = match &a.warning {
                None => &assigned_event,
                Some((reason, note)) => {
                    warning = Event {
                        type_: EventType::Warning,
                        reason: (*reason).into(),
                        note: Some(note.clone()),
                        action: "Announce".into(),
                        secondary: None,
                    };
                    &warning
                }
            };
            if let Err(e) = recorder.publish(event, &a.reference).await {
                warn!(service = %a.service, error = %crate::telemetry::error_chain(&e), "cannot record nodeAssigned event");
            }
        }
    }

    /// Runs the writer on its own task; the sender queues each pass's events.
    pub fn spawn(self) -> EventQueue {
        let (tx, mut rx) = mpsc::channel::<Vec<Assigned>>(EVENT_QUEUE);
        tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
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
