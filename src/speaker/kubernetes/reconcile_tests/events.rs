//! `nodeAssigned` events: when they are recorded, and that a refusing API never blocks.

use super::*;

#[tokio::test]
async fn new_announcer_records_one_node_assigned_event_then_nothing() {
    let ip = "192.0.2.10";
    let order = ranked(ip);
    let mut h = Harness::new(order[0]);
    h.add(service("web", ip, "Cluster"));

    let pass = h.pass(&NODES);
    assert_eq!(pass.changed_from, Some(BTreeMap::new()));
    assert_eq!(h.owned(), [ip]);
    let sent = h.record(&pass.assigned, StatusCode::CREATED).await;
    h.assert_one_event(&sent, "web");

    // Nothing changed: no ownership change, no event.
    let pass = h.pass(&NODES);
    assert_eq!(pass.changed_from, None);
    assert!(pass.assigned.is_empty(), "{:?}", pass.assigned);
    assert!(
        h.record(&pass.assigned, StatusCode::CREATED)
            .await
            .is_empty()
    );
    assert_eq!(h.owned(), [ip]);

    // The other nodes see the same Service and record nothing: only the announcer does.
    for other in &order[1..] {
        let mut o = Harness::new(other);
        o.add(service("web", ip, "Cluster"));
        let pass = o.pass(&NODES);
        assert!(o.owned().is_empty());
        assert!(pass.assigned.is_empty());
    }
}

#[tokio::test]
async fn announcer_moving_away_sends_nothing_and_coming_back_records_again() {
    let ip = "192.0.2.20";
    let order = ranked(ip);
    // This node is second in line: it announces only while the first is not a member.
    let mut h = Harness::new(order[1]);
    h.add(service("api", ip, "Cluster"));
    let pass = h.pass(&NODES);
    assert!(h.owned().is_empty());
    assert!(pass.assigned.is_empty());

    let without_first: Vec<&str> = NODES.into_iter().filter(|n| *n != order[0]).collect();
    let pass = h.pass(&without_first);
    assert_eq!(h.owned(), [ip]);
    let sent = h.record(&pass.assigned, StatusCode::CREATED).await;
    h.assert_one_event(&sent, "api");

    // The first node is back: it announces; this node lets go and records nothing.
    let pass = h.pass(&NODES);
    assert_eq!(
        pass.changed_from.map(|b| b.len()),
        Some(1),
        "ownership changed"
    );
    assert!(h.owned().is_empty());
    assert!(pass.assigned.is_empty());

    // Gone again: the Service comes back to this node, a change worth a new event (a POST,
    // not a PATCH of the first one).
    let pass = h.pass(&without_first);
    assert_eq!(h.owned(), [ip]);
    let sent = h.record(&pass.assigned, StatusCode::CREATED).await;
    h.assert_one_event(&sent, "api");
}

#[tokio::test]
async fn local_policy_follows_the_endpoint_and_records_only_on_arrival() {
    let ip = "192.0.2.30";
    let order = ranked(ip);
    // The endpoint decides, not the ranking: put it on the last-ranked node first.
    let me = order[2];
    let mut h = Harness::new(me);
    h.services_only(service("db", ip, "Local"));
    put(&mut h.slices, slice("db", order[0]));
    let pass = h.pass(&NODES);
    assert!(h.owned().is_empty(), "no endpoint here");
    assert!(pass.assigned.is_empty());

    put(&mut h.slices, slice("db", me));
    let pass = h.pass(&NODES);
    assert_eq!(h.owned(), [ip]);
    let sent = h.record(&pass.assigned, StatusCode::CREATED).await;
    h.assert_one_event(&sent, "db");

    put(&mut h.slices, slice("db", order[1]));
    let pass = h.pass(&NODES);
    assert!(pass.changed_from.is_some());
    assert!(h.owned().is_empty(), "the endpoint moved away");
    assert!(pass.assigned.is_empty());
}

#[tokio::test]
async fn refused_event_is_logged_and_never_blocks_or_repeats() {
    let (logs, _guard) = Logs::capture();
    for (status, ip) in [
        (StatusCode::FORBIDDEN, "192.0.2.40"),
        (StatusCode::INTERNAL_SERVER_ERROR, "192.0.2.41"),
    ] {
        let mut h = Harness::new(ranked(ip)[0]);
        h.add(service("web", ip, "Cluster"));
        let pass = h.pass(&NODES);
        // Ownership is decided (and handed to the announcer) before any event is sent.
        assert_eq!(h.owned(), [ip]);
        let sent = h.record(&pass.assigned, status).await;
        assert_eq!(sent.len(), 1, "one attempt, no retry: {sent:#?}");
        let text = logs.text();
        assert!(
            text.contains("cannot record nodeAssigned event")
                && text.contains("shop/web")
                && text.contains(&format!("refused ({})", status.as_u16())),
            "{text}"
        );
        // The next passes do not try again either.
        for _ in 0..3 {
            let pass = h.pass(&NODES);
            assert!(pass.assigned.is_empty());
            assert!(h.record(&pass.assigned, status).await.is_empty());
        }
        assert_eq!(h.owned(), [ip], "still announced");
    }
}

#[tokio::test]
async fn queued_events_are_posted_in_order_from_their_own_task() {
    let first = "192.0.2.90";
    let me = ranked(first)[0];
    // A second IP this node also wins, so both Services are announced here.
    let second = (100..200)
        .map(|i| format!("192.0.2.{i}"))
        .find(|ip| ranked(ip)[0] == me)
        .unwrap();
    let mut h = Harness::new(me);
    let queue = h.events.clone().spawn();
    h.add(service("web", first, "Cluster"));
    queue.send(h.pass(&NODES).assigned);

    let (req, held) = tokio::time::timeout(Duration::from_secs(10), h.api.next_request())
        .await
        .expect("the worker posts the event")
        .expect("the client is alive");
    assert_eq!((req.method(), req.uri().path()), (&Method::POST, EVENTS));

    // While that POST is unanswered, the next pass still decides and queues without waiting.
    h.add(service("api", &second, "Cluster"));
    queue.send(h.pass(&NODES).assigned);
    assert_eq!(h.owned().len(), 2);

    held.send_error("the API server went away");
    let (req, _send) = tokio::time::timeout(Duration::from_secs(10), h.api.next_request())
        .await
        .expect("the worker goes on to the next event")
        .expect("the client is alive");
    let bytes = req.into_body().collect_bytes().await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["regarding"]["name"], "api");
}

/// A Warning's note (a long list of sharers, say) is cut to the API's 1 kB limit with a marker,
/// instead of the whole event being refused.
#[tokio::test]
async fn a_long_warning_note_is_cut_to_the_apis_limit() {
    let mut h = Harness::new(NODES[0]);
    let note = format!(
        "shares its address with {}",
        "shop/sharer-with-a-long-name, ".repeat(100)
    );
    let assigned = [crate::speaker::kubernetes::events::Assigned {
        service: "shop/web".into(),
        reference: k8s_openapi::api::core::v1::ObjectReference {
            kind: Some("Service".into()),
            api_version: Some("v1".into()),
            namespace: Some("shop".into()),
            name: Some("web".into()),
            ..Default::default()
        },
        warning: Some(("noCommonNode", note.clone())),
        protocol: Default::default(),
    }];
    let sent = h.record(&assigned, StatusCode::CREATED).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let written = sent[0].body["note"].as_str().unwrap();
    assert!(written.len() <= 1024, "{} bytes", written.len());
    assert!(written.ends_with(" [...]"), "{written}");
    assert!(note.starts_with(written.trim_end_matches(" [...]")));
    assert_eq!(sent[0].body["type"], "Warning");
}

/// Two Services sharing one address (`allow-shared-ip`): the node that answers for it records
/// `nodeAssigned` on both, and both are in what it announces (so each gets its
/// ServiceL2Status), including a sharer added after the address was already owned. (Before,
/// only the first sharer by key was announced on paper: the second got neither.)
#[tokio::test]
async fn every_sharer_of_an_owned_address_gets_its_event_and_its_status() {
    let ip = "192.0.2.30";
    let mut h = Harness::new(ranked(ip)[0]);
    h.add(service("web", ip, "Cluster"));
    let pass = h.pass(&NODES);
    let sent = h.record(&pass.assigned, StatusCode::CREATED).await;
    h.assert_one_event(&sent, "web");

    // A second Service joins the address: the owned set does not change, the announced
    // Services do.
    h.add(service("web-udp", ip, "Cluster"));
    let pass = h.pass(&NODES);
    assert_eq!(pass.changed_from, None);
    assert!(pass.announced_changed);
    let sent = h.record(&pass.assigned, StatusCode::CREATED).await;
    h.assert_one_event(&sent, "web-udp");
    let announced: Vec<&str> = h.rec.announced().keys().map(|s| &**s).collect();
    assert_eq!(announced, ["shop/web", "shop/web-udp"]);
    let desired =
        crate::speaker::kubernetes::l2status::desired(h.rec.announced(), h.rec.only_on(), None);
    assert_eq!(desired.len(), 2, "{desired:?}");
}
