//! The announcer against a router made of our own session core on a loopback listener: the table
//! on Established, End-of-RIB, changes as UPDATEs, a Cease with its message on removal, on a
//! changed spec (then a new session) and on shutdown.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;
use crate::bgp::rib::RouteAttrs;
use crate::bgp::session::{DownReason, Input, Output, Session, SessionEvent};
use crate::bgp::wire::{Community, MpUnreach, NotificationRepr, cease, code};

const OURS: u32 = 64_512;
const ROUTER: u32 = 64_513;

/// What the router saw.
#[derive(Debug)]
enum Seen {
    Up,
    Routes(Routes),
    EndOfRib,
    Down(DownReason),
}

/// Accepts connections one after the other and runs a passive session on each, reporting what
/// it sees; the model RIB is per connection.
async fn router(listener: TcpListener, seen: mpsc::UnboundedSender<Seen>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let config = SessionConfig::new(ROUTER, PeerAs::Exact(OURS), Ipv4Addr::new(192, 0, 2, 1));
        let mut session = Session::new(config).unwrap();
        session.handle(Input::ManualStart, Instant::now());
        session.handle(Input::Connected, Instant::now());
        let mut model = Routes::new();
        let mut buf = vec![0u8; 65536];
        'conn: loop {
            let mut closed = false;
            while let Some(out) = session.poll_output() {
                match out {
                    Output::Send(b) => {
                        let _ = stream.write_all(&b).await;
                    }
                    // Reported after the events that follow it (the session's Down).
                    Output::Close => closed = true,
                    Output::Connect => {}
                    Output::Event(SessionEvent::Established(_)) => {
                        let _ = seen.send(Seen::Up);
                    }
                    Output::Event(SessionEvent::Update(u)) => {
                        if u.is_end_of_rib().is_some() {
                            let _ = seen.send(Seen::EndOfRib);
                            continue;
                        }
                        for p in &u.withdrawn {
                            model.remove(&IpNet::V4(*p));
                        }
                        if let Some(MpUnreach::Ipv6(ps)) = &u.attributes.mp_unreach {
                            for p in ps {
                                model.remove(&IpNet::V6(*p));
                            }
                        }
                        for p in &u.nlri {
                            let attrs = RouteAttrs {
                                local_pref: u.attributes.local_pref,
                                communities: u.attributes.communities.iter().copied().collect(),
                                large_communities: BTreeSet::new(),
                            };
                            model.insert(IpNet::V4(*p), attrs);
                        }
                        let _ = seen.send(Seen::Routes(model.clone()));
                    }
                    Output::Event(SessionEvent::Down(reason)) => {
                        let _ = seen.send(Seen::Down(reason));
                    }
                    Output::Event(_) => {}
                }
            }
            if closed {
                break 'conn;
            }
            tokio::select! {
                n = stream.read(&mut buf) => match n {
                    Ok(n) if n > 0 => session.handle(Input::Received(&buf[..n]), Instant::now()),
                    _ => session.handle(Input::ConnectionFailed, Instant::now()),
                },
                () = sleep_until(session.poll_timeout()) => session.handle_timeout(Instant::now()),
            }
        }
    }
}

use crate::runtime::sleep_until;

async fn next(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .expect("the router saw something within 10 s")
        .expect("router running")
}

fn routes(prefixes: &[&str], community: u32) -> Routes {
    prefixes
        .iter()
        .map(|p| {
            let attrs = RouteAttrs {
                local_pref: None,
                communities: BTreeSet::from([Community(community)]),
                large_communities: BTreeSet::new(),
            };
            (p.parse::<IpNet>().unwrap(), attrs)
        })
        .collect()
}

async fn start() -> (PeerSpec, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(router(listener, tx));
    let mut spec = PeerSpec::new("r1", IpAddr::V4(Ipv4Addr::LOCALHOST), OURS, ROUTER);
    spec.port = port;
    spec.hold_time = 9;
    (spec, rx)
}

fn cease_message(reason: &DownReason) -> Option<String> {
    match reason {
        DownReason::NotificationReceived(n)
            if (n.code, n.subcode) == (code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN) =>
        {
            n.shutdown_message().map(str::to_string)
        }
        _ => None,
    }
}

/// Reads what the router sees until `f` accepts it.
async fn until<T>(
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    mut f: impl FnMut(Seen) -> Option<T>,
) -> T {
    loop {
        if let Some(t) = f(next(seen).await) {
            return t;
        }
    }
}

#[tokio::test]
async fn announces_the_table_then_changes_then_says_goodbye() {
    let (spec, mut seen) = start().await;
    let mut announcer = BgpAnnouncer::new("node-a");
    let first = routes(&["192.0.2.100/32", "192.0.2.101/32"], 1);
    assert!(
        announcer
            .set(vec![(spec.clone(), first.clone())])
            .await
            .is_empty()
    );
    assert!(matches!(next(&mut seen).await, Seen::Up));
    let got = until(&mut seen, |s| match s {
        Seen::Routes(r) if r.len() == 2 => Some(r),
        _ => None,
    })
    .await;
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        first.keys().collect::<Vec<_>>()
    );
    // eBGP: no LOCAL_PREF; the community as given.
    assert!(
        got.values()
            .all(|a| a.local_pref.is_none() && a.communities.len() == 1)
    );
    assert!(matches!(next(&mut seen).await, Seen::EndOfRib));

    // One withdrawn, one added: the router ends with exactly the new table.
    let second = routes(&["192.0.2.101/32", "198.51.100.7/32"], 1);
    announcer.set(vec![(spec.clone(), second.clone())]).await;
    let got = until(&mut seen, |s| match s {
        Seen::Routes(r) if r.keys().eq(second.keys()) => Some(r),
        _ => None,
    })
    .await;
    assert_eq!(got.len(), 2);
    let status = announcer.statuses()["r1"].borrow().clone();
    assert_eq!(status.state, State::Established);
    assert_eq!(status.announced_prefixes, 2);
    assert!(status.updates_sent >= 4, "{status:?}");

    let started = Instant::now();
    announcer.shutdown().await;
    assert!(started.elapsed() <= STOP_BOUND + Duration::from_millis(500));
    let message = until(&mut seen, |s| match s {
        Seen::Down(reason) => Some(cease_message(&reason)),
        _ => None,
    })
    .await;
    assert_eq!(message.as_deref(), Some(SHUTDOWN_MESSAGE));
}

#[tokio::test]
async fn a_changed_spec_restarts_only_that_session_and_a_removed_one_is_told() {
    let (spec, mut seen) = start().await;
    let (other, mut other_seen) = start().await;
    let other = PeerSpec {
        name: "r2".into(),
        ..other
    };
    let table = routes(&["192.0.2.100/32"], 1);
    let mut announcer = BgpAnnouncer::new("node-a");
    announcer
        .set(vec![
            (spec.clone(), table.clone()),
            (other.clone(), table.clone()),
        ])
        .await;
    for s in [&mut seen, &mut other_seen] {
        until(s, |x| matches!(x, Seen::EndOfRib).then_some(())).await;
    }
    // r1's hold time changes: r1 is told and reconnects; r2 hears nothing but new routes.
    let changed = PeerSpec {
        hold_time: 30,
        ..spec.clone()
    };
    let table2 = routes(&["192.0.2.100/32"], 2);
    announcer
        .set(vec![
            (changed.clone(), table.clone()),
            (other.clone(), table2.clone()),
        ])
        .await;
    let message = until(&mut seen, |s| match s {
        Seen::Down(reason) => Some(cease_message(&reason)),
        _ => None,
    })
    .await;
    assert_eq!(message.as_deref(), Some(CHANGED_MESSAGE));
    until(&mut seen, |x| matches!(x, Seen::Up).then_some(())).await;
    let got = until(&mut other_seen, |s| match s {
        Seen::Routes(r) => Some(r),
        Seen::Down(reason) => panic!("r2 went down: {reason}"),
        _ => None,
    })
    .await;
    assert_eq!(got, table2);

    // r2 removed: Cease with the removal message; r1 stays.
    announcer.set(vec![(changed, table)]).await;
    let message = until(&mut other_seen, |s| match s {
        Seen::Down(reason) => Some(cease_message(&reason)),
        _ => None,
    })
    .await;
    assert_eq!(message.as_deref(), Some(REMOVED_MESSAGE));
    assert_eq!(announcer.statuses().len(), 1);
    announcer.shutdown().await;
}

/// A router that closes the first connection before its OPEN (still starting, say) is dialed
/// again after the connect deadline, not RFC 4271's 120 s ConnectRetryTime.
#[tokio::test]
async fn a_peer_that_closes_before_its_open_is_dialed_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let first = listener.accept().await;
        drop(first);
        router(listener, tx).await;
    });
    let mut spec = PeerSpec::new("r1", IpAddr::V4(Ipv4Addr::LOCALHOST), OURS, ROUTER);
    spec.port = port;
    spec.connect_time = Some(Duration::from_secs(1));
    let mut announcer = BgpAnnouncer::new("node-a");
    let started = Instant::now();
    announcer
        .set(vec![(spec, routes(&["192.0.2.100/32"], 1))])
        .await;
    until(&mut seen, |x| matches!(x, Seen::EndOfRib).then_some(())).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    announcer.shutdown().await;
}

/// A router that never answers the SYN (a firewall, an MD5 key it does not share): each dial
/// ends at the connect deadline as a failure the status reports, before ConnectRetry could
/// abandon it for a new dial without a word.
#[tokio::test]
async fn a_silent_peer_s_dial_times_out_and_is_reported() {
    // A listener whose accept queue is full (backlog 0, one connection queued) drops further
    // SYNs without an answer.
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    listener.bind(&any.into()).expect("bind");
    listener.listen(0).expect("listen");
    let address = listener.local_addr().unwrap().as_socket().unwrap();
    let _queued = std::net::TcpStream::connect(address).expect("the one queued connection");
    let mut spec = PeerSpec::new("r1", IpAddr::V4(Ipv4Addr::LOCALHOST), OURS, ROUTER);
    spec.port = address.port();
    spec.connect_time = Some(Duration::from_secs(1));
    assert!(
        spec.session_config(Ipv4Addr::LOCALHOST)
            .unwrap()
            .connect_retry
            > spec.connect_deadline(),
        "ConnectRetry must not end a dial before its own deadline"
    );
    let mut announcer = BgpAnnouncer::new("node-a");
    let started = Instant::now();
    announcer.set(vec![(spec, Routes::new())]).await;
    let mut status = announcer.statuses().remove("r1").expect("r1 runs");
    let reported = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(why) = status.borrow_and_update().last_down.clone() {
                return why;
            }
            status.changed().await.expect("the peer task runs");
        }
    })
    .await
    .expect("the failed dial is reported");
    let took = started.elapsed();
    // The first dial's deadline (1 s), not a later one's.
    assert!(took < Duration::from_millis(1900), "{took:?}: {reported}");
    assert_ne!(status.borrow().state, State::Established);
    announcer.shutdown().await;
}

#[test]
fn bad_specs_name_the_peer_and_the_field() {
    let spec = PeerSpec::new("edge", IpAddr::V4(Ipv4Addr::LOCALHOST), OURS, ROUTER);
    let id = Ipv4Addr::new(192, 0, 2, 1);
    let long = PeerSpec {
        password: Some("k".repeat(81)),
        ..spec.clone()
    };
    let e = long.session_config(id).unwrap_err();
    assert!(
        e.to_string().contains("\"edge\"") && e.to_string().contains("81"),
        "{e}"
    );
    let family = PeerSpec {
        source: Some("2001:db8::1".parse().unwrap()),
        ..spec.clone()
    };
    assert!(matches!(
        family.session_config(id),
        Err(SpecError::SourceFamily { .. })
    ));
    let hold = PeerSpec {
        hold_time: 2,
        ..spec.clone()
    };
    let e = hold.session_config(id).unwrap_err();
    assert!(e.to_string().contains("hold time 2"), "{e}");
    let config = spec.session_config(id).unwrap();
    assert_eq!(config.open_hold, dial::DEFAULT_CONNECT_TIME);
    // A dial's own deadline ends it first (see a_silent_peer_s_dial_times_out_and_is_reported).
    assert_eq!(
        config.connect_retry,
        dial::DEFAULT_CONNECT_TIME + CONNECT_RETRY_MARGIN
    );
    assert_eq!(config.hold_time, 90);
    assert!(config.graceful_restart.is_none() && config.route_refresh);
    let gr = PeerSpec {
        graceful_restart: true,
        ..spec.clone()
    };
    let config = gr.session_config(id).unwrap();
    let open = config.open();
    let offered = open.capabilities.iter().find_map(|c| match c {
        crate::bgp::wire::Capability::GracefulRestart(gr) => Some(gr.clone()),
        _ => None,
    });
    // Both families with their forwarding state kept (preserve-fw-state), no N bit: a Cease
    // still withdraws at once.
    let offered = offered.unwrap_or_else(|| panic!("no graceful restart: {open:?}"));
    assert_eq!(offered.restart_time, GR_RESTART_TIME);
    assert!(!offered.notification && !offered.restarted);
    let kept: Vec<_> = offered
        .families
        .iter()
        .filter(|f| f.forwarding_preserved)
        .map(|f| f.family)
        .collect();
    assert_eq!(kept, config.families);
    assert!(
        open.capabilities
            .contains(&crate::bgp::wire::Capability::RouteRefresh),
        "{open:?}"
    );
    let _ = NotificationRepr::new(code::CEASE, 0);
}
