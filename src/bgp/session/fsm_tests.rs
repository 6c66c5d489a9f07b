//! The state machine driven through every RFC 4271 §8 event that applies in each state, then
//! its timers, framing, shutdown, automatic restart and UPDATE sending.

use std::net::Ipv4Addr;

use super::*;
use crate::bgp::wire::{
    AddressFamily, AsPath, Capability, OpenRepr, Origin, PathAttributes, RouteRefreshRepr, cease,
};

pub(super) const LOCAL_AS: u32 = 64512;
pub(super) const PEER_AS: u32 = 65001;
const SECOND: Duration = Duration::from_secs(1);

fn config() -> SessionConfig {
    let mut config =
        SessionConfig::new(LOCAL_AS, PeerAs::Exact(PEER_AS), Ipv4Addr::new(10, 0, 0, 2));
    config.route_refresh = true;
    config
}

pub(super) fn peer_open(hold_time: u16) -> OpenRepr {
    OpenRepr::new(
        PEER_AS,
        hold_time,
        Ipv4Addr::new(10, 0, 0, 1),
        vec![
            Capability::Multiprotocol(AddressFamily::IPV4_UNICAST),
            Capability::Multiprotocol(AddressFamily::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(PEER_AS),
        ],
    )
}

fn bytes(msg: Message) -> Vec<u8> {
    msg.emit(Context::FOUR_OCTET).unwrap()
}

fn update() -> UpdateRepr {
    UpdateRepr {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![PEER_AS])),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            ..PathAttributes::default()
        },
        nlri: vec!["198.51.100.0/24".parse().unwrap()],
        ..UpdateRepr::default()
    }
}

/// Every output, as a short line: the message sent, or what the owner is asked or told.
fn drain(s: &mut Session) -> Vec<String> {
    std::iter::from_fn(|| s.poll_output())
        .map(|o| match o {
            Output::Send(b) => match Message::parse(&b, Context::FOUR_OCTET).unwrap() {
                Message::Open(_) => "OPEN".into(),
                Message::Keepalive => "KEEPALIVE".into(),
                Message::Update(_) => "UPDATE".into(),
                Message::RouteRefresh(_) => "ROUTE-REFRESH".into(),
                Message::Notification(n) => format!("NOTIFICATION {}/{}", n.code, n.subcode),
            },
            Output::Connect => "connect".into(),
            Output::Close => "close".into(),
            Output::Event(SessionEvent::Established(_)) => "established".into(),
            Output::Event(SessionEvent::Update(_)) => "update".into(),
            Output::Event(SessionEvent::RouteRefreshRequested(_)) => "refresh".into(),
            Output::Event(SessionEvent::Down(why)) => format!(
                "down {}",
                match why {
                    DownReason::Stopped => "stopped",
                    DownReason::ConnectionFailed => "conn",
                    DownReason::HoldTimerExpired => "hold",
                    DownReason::NotificationSent(_) => "sent",
                    DownReason::NotificationReceived(_) => "recv",
                    DownReason::UnexpectedBytes => "bytes",
                    DownReason::BfdDown => "bfd",
                }
            ),
        })
        .collect()
}

/// A session driven from Idle into `state` at `now`, its outputs drained.
pub(super) fn session_in(state: State, config: SessionConfig, now: Instant) -> Session {
    let mut s = Session::new(config).unwrap();
    let steps: &[Input<'_>] = match state {
        State::Idle => &[],
        State::Connect => &[Input::ManualStart],
        State::OpenSent => &[Input::ManualStart, Input::Connected],
        State::Active => &[
            Input::ManualStart,
            Input::Connected,
            Input::ConnectionFailed,
        ],
        State::OpenConfirm | State::Established => &[Input::ManualStart, Input::Connected],
    };
    for step in steps {
        s.handle(*step, now);
    }
    if matches!(state, State::OpenConfirm | State::Established) {
        s.handle(Input::Received(&bytes(Message::Open(peer_open(180)))), now);
    }
    if state == State::Established {
        s.handle(Input::Received(&bytes(Message::Keepalive)), now);
    }
    assert_eq!(s.state(), state);
    drain(&mut s);
    s
}

/// The events of RFC 4271 §8.1 (numbers in the comments) a session can meet.
#[derive(Debug, Clone, Copy)]
enum Ev {
    ManualStart,     // 1
    ManualStop,      // 2
    ConnectRetry,    // 9
    HoldTimer,       // 10
    KeepaliveTimer,  // 11
    Connected,       // 16, 17
    ConnectionFails, // 18
    Open,            // 19
    BadHeader,       // 21
    BadOpen,         // 22
    NotifVersion,    // 24
    Notif,           // 25
    Keepalive,       // 26
    Update,          // 27
    BadUpdate,       // 28
    RouteRefresh,    // RFC 2918
    BfdDown,         // RFC 5882 §4.3
}

fn apply(s: &mut Session, ev: Ev, now: Instant) {
    let timer = |s: &Session, t| {
        s.timer(t)
            .unwrap_or_else(|| panic!("{t:?} does not run in {:?}", s.state()))
    };
    let received = |msg| bytes(msg);
    let data = match ev {
        Ev::ManualStart => return s.handle(Input::ManualStart, now),
        Ev::ManualStop => return s.handle(Input::ManualStop, now),
        Ev::ConnectRetry => return s.handle_timeout(timer(s, Timer::ConnectRetry)),
        Ev::HoldTimer => return s.handle_timeout(timer(s, Timer::Hold)),
        Ev::KeepaliveTimer => return s.handle_timeout(timer(s, Timer::Keepalive)),
        Ev::Connected => return s.handle(Input::Connected, now),
        Ev::ConnectionFails => return s.handle(Input::ConnectionFailed, now),
        Ev::BfdDown => return s.handle(Input::BfdDown, now),
        Ev::Open => received(Message::Open(peer_open(180))),
        Ev::BadHeader => {
            let mut b = received(Message::Keepalive);
            b[0] = 0;
            b
        }
        Ev::BadOpen => {
            let mut b = received(Message::Open(peer_open(180)));
            b[22..24].copy_from_slice(&[0, 2]); // hold time 2
            b
        }
        Ev::NotifVersion => received(Message::Notification(NotificationRepr {
            code: code::OPEN,
            subcode: 1,
            data: vec![0, 4],
        })),
        Ev::Notif => received(Message::Notification(NotificationRepr::new(code::CEASE, 2))),
        Ev::Keepalive => received(Message::Keepalive),
        Ev::Update => received(Message::Update(Box::new(update()))),
        Ev::BadUpdate => {
            let mut b = received(Message::Update(Box::new(update())));
            b[26] = 3; // ORIGIN 3
            b
        }
        Ev::RouteRefresh => received(Message::RouteRefresh(RouteRefreshRepr {
            family: AddressFamily::IPV4_UNICAST,
            subtype: 0,
        })),
    };
    s.handle(Input::Received(&data), now);
}

use State::*;

type Row = (State, Ev, State, &'static [&'static str], u32);

const FAILED: u32 = 1;

/// (state, event, next state, outputs, ConnectRetryCounter after), per RFC 4271 §8.2.2.
#[rustfmt::skip]
const TABLE: &[Row] = &[
    (Idle, Ev::ManualStart, Connect, &["connect"], 0),
    (Idle, Ev::ManualStop, Idle, &[], 0),
    (Idle, Ev::Connected, Idle, &[], 0),
    (Idle, Ev::ConnectionFails, Idle, &[], 0),
    (Idle, Ev::Keepalive, Idle, &[], 0),
    (Connect, Ev::ManualStart, Connect, &[], 0),
    (Connect, Ev::ManualStop, Idle, &["close", "down stopped"], 0),
    (Connect, Ev::ConnectRetry, Connect, &["close", "connect"], 0),
    (Connect, Ev::Connected, OpenSent, &["OPEN"], 0),
    (Connect, Ev::ConnectionFails, Idle, &["close", "down conn"], 0),
    (Connect, Ev::Keepalive, Idle, &["close", "down bytes"], FAILED),
    (Active, Ev::ManualStart, Active, &[], 0),
    (Active, Ev::ManualStop, Idle, &["close", "down stopped"], 0),
    (Active, Ev::ConnectRetry, Connect, &["connect"], 0),
    (Active, Ev::Connected, OpenSent, &["OPEN"], 0),
    (Active, Ev::ConnectionFails, Idle, &["close", "down conn"], FAILED),
    (Active, Ev::Keepalive, Idle, &["close", "down bytes"], FAILED),
    (OpenSent, Ev::ManualStart, OpenSent, &[], 0),
    (OpenSent, Ev::ManualStop, Idle, &["NOTIFICATION 6/2", "close", "down stopped"], 0),
    (OpenSent, Ev::HoldTimer, Idle, &["NOTIFICATION 4/0", "close", "down hold"], FAILED),
    (OpenSent, Ev::Connected, OpenSent, &[], 0),
    (OpenSent, Ev::ConnectionFails, Active, &["close", "down conn"], 0),
    (OpenSent, Ev::Open, OpenConfirm, &["KEEPALIVE"], 0),
    (OpenSent, Ev::BadHeader, Idle, &["NOTIFICATION 1/1", "close", "down sent"], FAILED),
    (OpenSent, Ev::BadOpen, Idle, &["NOTIFICATION 2/6", "close", "down sent"], FAILED),
    (OpenSent, Ev::NotifVersion, Idle, &["close", "down recv"], 0),
    (OpenSent, Ev::Notif, Idle, &["close", "down recv"], FAILED),
    (OpenSent, Ev::Keepalive, Idle, &["NOTIFICATION 5/1", "close", "down sent"], FAILED),
    (OpenSent, Ev::Update, Idle, &["NOTIFICATION 5/1", "close", "down sent"], FAILED),
    (OpenSent, Ev::BadUpdate, Idle, &["NOTIFICATION 5/1", "close", "down sent"], FAILED),
    (OpenSent, Ev::RouteRefresh, Idle, &["NOTIFICATION 5/1", "close", "down sent"], FAILED),
    (OpenConfirm, Ev::ManualStart, OpenConfirm, &[], 0),
    (OpenConfirm, Ev::ManualStop, Idle, &["NOTIFICATION 6/2", "close", "down stopped"], 0),
    (OpenConfirm, Ev::HoldTimer, Idle, &["NOTIFICATION 4/0", "close", "down hold"], FAILED),
    (OpenConfirm, Ev::KeepaliveTimer, OpenConfirm, &["KEEPALIVE"], 0),
    (OpenConfirm, Ev::Connected, OpenConfirm, &[], 0),
    (OpenConfirm, Ev::ConnectionFails, Idle, &["close", "down conn"], FAILED),
    (OpenConfirm, Ev::Open, Idle, &["NOTIFICATION 5/2", "close", "down sent"], FAILED),
    (OpenConfirm, Ev::BadHeader, Idle, &["NOTIFICATION 1/1", "close", "down sent"], FAILED),
    (OpenConfirm, Ev::BadOpen, Idle, &["NOTIFICATION 5/2", "close", "down sent"], FAILED),
    (OpenConfirm, Ev::NotifVersion, Idle, &["close", "down recv"], 0),
    (OpenConfirm, Ev::Notif, Idle, &["close", "down recv"], FAILED),
    (OpenConfirm, Ev::Keepalive, Established, &["established"], 0),
    (OpenConfirm, Ev::Update, Idle, &["NOTIFICATION 5/2", "close", "down sent"], FAILED),
    (OpenConfirm, Ev::BadUpdate, Idle, &["NOTIFICATION 5/2", "close", "down sent"], FAILED),
    (OpenConfirm, Ev::RouteRefresh, Idle, &["NOTIFICATION 5/2", "close", "down sent"], FAILED),
    (Established, Ev::ManualStart, Established, &[], 0),
    (Established, Ev::ManualStop, Idle, &["NOTIFICATION 6/2", "close", "down stopped"], 0),
    (Established, Ev::HoldTimer, Idle, &["NOTIFICATION 4/0", "close", "down hold"], FAILED),
    (Established, Ev::KeepaliveTimer, Established, &["KEEPALIVE"], 0),
    (Established, Ev::Connected, Established, &[], 0),
    (Established, Ev::ConnectionFails, Idle, &["close", "down conn"], FAILED),
    (Established, Ev::Open, Idle, &["NOTIFICATION 5/3", "close", "down sent"], FAILED),
    (Established, Ev::BadHeader, Idle, &["NOTIFICATION 1/1", "close", "down sent"], FAILED),
    (Established, Ev::BadOpen, Idle, &["NOTIFICATION 5/3", "close", "down sent"], FAILED),
    (Established, Ev::NotifVersion, Idle, &["close", "down recv"], 0),
    (Established, Ev::Notif, Idle, &["close", "down recv"], FAILED),
    (Established, Ev::Keepalive, Established, &[], 0),
    (Established, Ev::Update, Established, &["update"], 0),
    (Established, Ev::BadUpdate, Idle, &["NOTIFICATION 3/6", "close", "down sent"], FAILED),
    (Established, Ev::RouteRefresh, Established, &["refresh"], 0),
    // BFD down: Cease / BFD Down (RFC 9384) on a connection, nothing without one.
    (Idle, Ev::BfdDown, Idle, &[], 0),
    (Connect, Ev::BfdDown, Connect, &[], 0),
    (Active, Ev::BfdDown, Active, &[], 0),
    (OpenSent, Ev::BfdDown, Idle, &["NOTIFICATION 6/10", "close", "down bfd"], FAILED),
    (OpenConfirm, Ev::BfdDown, Idle, &["NOTIFICATION 6/10", "close", "down bfd"], FAILED),
    (Established, Ev::BfdDown, Idle, &["NOTIFICATION 6/10", "close", "down bfd"], FAILED),
];

#[test]
fn every_event_in_every_state() {
    let t0 = Instant::now();
    for &(from, ev, to, outputs, counter) in TABLE {
        let mut s = session_in(from, config(), t0);
        apply(&mut s, ev, t0 + SECOND);
        let what = format!("{from:?} + {ev:?}");
        assert_eq!(s.state(), to, "{what}");
        assert_eq!(drain(&mut s), outputs, "{what}");
        assert_eq!(s.connect_retry_counter(), counter, "{what}");
    }
}

#[test]
fn timers_that_run_in_each_state() {
    use Timer::*;
    let t0 = Instant::now();
    for (state, running) in [
        (Idle, &[][..]),
        (Connect, &[ConnectRetry][..]),
        (Active, &[ConnectRetry][..]),
        (OpenSent, &[Hold][..]),
        (OpenConfirm, &[Hold, Keepalive][..]),
        (Established, &[Hold, Keepalive][..]),
    ] {
        let s = session_in(state, config(), t0);
        for timer in [ConnectRetry, Hold, Keepalive, IdleHold] {
            let runs = s.timer(timer).is_some();
            assert_eq!(runs, running.contains(&timer), "{state:?} {timer:?}");
        }
    }
}

#[test]
fn messages_framed_across_reads_and_after_a_fatal_one_ignored() {
    let t0 = Instant::now();
    let mut s = session_in(OpenSent, config(), t0);
    let mut stream = bytes(Message::Open(peer_open(180)));
    stream.extend(bytes(Message::Keepalive));
    stream.extend(bytes(Message::Update(Box::new(update()))));
    for chunk in stream.chunks(7) {
        s.handle(Input::Received(chunk), t0);
    }
    assert_eq!(drain(&mut s), ["KEEPALIVE", "established", "update"]);
    // A bad message, then a good one in the same read: one NOTIFICATION, nothing after it.
    let mut bad = bytes(Message::Open(peer_open(180)));
    bad.extend(bytes(Message::Keepalive));
    s.handle(Input::Received(&bad), t0);
    assert_eq!(drain(&mut s), ["NOTIFICATION 5/3", "close", "down sent"]);
    // A header that can never frame is refused before its body arrives.
    let mut s = session_in(Established, config(), t0);
    let mut huge = bytes(Message::Keepalive);
    huge[16..18].copy_from_slice(&[0x20, 0x00]);
    s.handle(Input::Received(&huge[..19]), t0);
    assert_eq!(drain(&mut s), ["NOTIFICATION 1/2", "close", "down sent"]);
}

#[test]
fn keepalives_every_third_of_the_hold_time_and_the_hold_timer_fires() {
    let t0 = Instant::now();
    let mut s = session_in(Established, config(), t0);
    // Ours is 90, the peer's 180: 90 s hold, 30 s keepalive.
    assert_eq!(s.timer(Timer::Keepalive), Some(t0 + 30 * SECOND));
    assert_eq!(s.timer(Timer::Hold), Some(t0 + 90 * SECOND));
    assert_eq!(s.poll_timeout(), Some(t0 + 30 * SECOND));
    s.handle_timeout(t0 + 30 * SECOND);
    assert_eq!(drain(&mut s), ["KEEPALIVE"]);
    assert_eq!(s.timer(Timer::Keepalive), Some(t0 + 60 * SECOND));
    // Nothing due: nothing happens.
    s.handle_timeout(t0 + 31 * SECOND);
    assert!(drain(&mut s).is_empty());
    // The peer's KEEPALIVE pushes the hold timer on.
    s.handle(
        Input::Received(&bytes(Message::Keepalive)),
        t0 + 50 * SECOND,
    );
    assert_eq!(s.timer(Timer::Hold), Some(t0 + 140 * SECOND));
    // Sending an UPDATE restarts our keepalive timer (RFC 4271 §4.4).
    s.send_update(&update(), t0 + 55 * SECOND).unwrap();
    assert_eq!(s.timer(Timer::Keepalive), Some(t0 + 85 * SECOND));
    assert_eq!(drain(&mut s), ["UPDATE"]);
    // A silent peer: the hold timer ends the session (and no keepalive goes out after it).
    s.handle_timeout(t0 + 140 * SECOND);
    assert_eq!(drain(&mut s), ["NOTIFICATION 4/0", "close", "down hold"]);
    assert_eq!(
        s.poll_timeout(),
        Some(t0 + 140 * SECOND),
        "the automatic restart"
    );
}

#[test]
fn hold_time_zero_runs_no_timers() {
    let t0 = Instant::now();
    let mut s = session_in(OpenSent, config(), t0);
    s.handle(Input::Received(&bytes(Message::Open(peer_open(0)))), t0);
    s.handle(Input::Received(&bytes(Message::Keepalive)), t0);
    assert_eq!(s.state(), Established);
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.negotiated().unwrap().hold_time, Duration::ZERO);
    s.send_update(&update(), t0).unwrap();
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn shutdown_sends_the_message_and_stays_down_until_started() {
    let t0 = Instant::now();
    let mut s = session_in(Established, config(), t0);
    s.shutdown("node draining", t0);
    let Some(Output::Send(sent)) = s.poll_output() else {
        panic!("no NOTIFICATION");
    };
    let Ok(Message::Notification(n)) = Message::parse(&sent, Context::default()) else {
        panic!("not a NOTIFICATION");
    };
    assert_eq!(
        (n.code, n.subcode),
        (code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN)
    );
    assert_eq!(n.shutdown_message(), Some("node draining"));
    assert_eq!(drain(&mut s), ["close", "down stopped"]);
    assert_eq!(s.poll_timeout(), None, "no automatic restart after a stop");
    s.handle(Input::ManualStart, t0 + SECOND);
    assert_eq!(drain(&mut s), ["connect"]);
    // Before any connection there is no one to tell.
    let mut s = session_in(Connect, config(), t0);
    s.shutdown("bye", t0);
    assert_eq!(drain(&mut s), ["close", "down stopped"]);
}

#[test]
fn restarts_by_itself_with_metallbs_backoff() {
    let t0 = Instant::now();
    let mut s = session_in(Connect, config(), t0);
    let mut now = t0;
    let mut delays = Vec::new();
    for _ in 0..10 {
        s.handle(Input::ConnectionFailed, now);
        let at = s.timer(Timer::IdleHold).unwrap();
        delays.push((at - now).as_secs());
        now = at;
        s.handle_timeout(now);
        assert_eq!(s.state(), Connect);
    }
    assert_eq!(delays, [0, 1, 2, 4, 8, 16, 32, 64, 120, 120]);
    // Established puts the delay back to zero.
    s.handle(Input::Connected, now);
    s.handle(Input::Received(&bytes(Message::Open(peer_open(180)))), now);
    s.handle(Input::Received(&bytes(Message::Keepalive)), now);
    s.handle(Input::ConnectionFailed, now);
    assert_eq!(s.timer(Timer::IdleHold), Some(now));
    // Off: Idle stays Idle.
    let mut config = config();
    config.automatic_start = false;
    let mut s = session_in(Connect, config, t0);
    s.handle(Input::ConnectionFailed, t0);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn route_refresh_only_when_we_offered_it_and_for_a_family_agreed() {
    let t0 = Instant::now();
    let refresh = |family| {
        bytes(Message::RouteRefresh(RouteRefreshRepr {
            family,
            subtype: 0,
        }))
    };
    let mut s = session_in(Established, config(), t0);
    let other = AddressFamily { afi: 25, safi: 65 };
    s.handle(Input::Received(&refresh(other)), t0);
    assert!(drain(&mut s).is_empty(), "an unknown family is ignored");
    assert_eq!(s.state(), Established);
    s.handle(Input::Received(&refresh(AddressFamily::IPV6_UNICAST)), t0);
    assert_eq!(
        s.poll_output(),
        Some(Output::Event(SessionEvent::RouteRefreshRequested(
            RouteRefreshRepr {
                family: AddressFamily::IPV6_UNICAST,
                subtype: 0,
            }
        )))
    );
    // We never sent the capability: the type is unknown to us (Bad Message Type, data 5).
    let mut quiet = config();
    quiet.route_refresh = false;
    let mut s = session_in(Established, quiet, t0);
    s.handle(Input::Received(&refresh(AddressFamily::IPV4_UNICAST)), t0);
    let Some(Output::Send(sent)) = s.poll_output() else {
        panic!("no NOTIFICATION");
    };
    assert_eq!(
        Message::parse(&sent, Context::default()),
        Ok(Message::Notification(NotificationRepr {
            code: code::HEADER,
            subcode: 3,
            data: vec![5],
        }))
    );
}

#[test]
fn updates_are_sent_only_when_established_with_the_agreed_as_width() {
    let t0 = Instant::now();
    let mut s = session_in(OpenConfirm, config(), t0);
    assert_eq!(
        s.send_update(&update(), t0),
        Err(SendError::NotEstablished(OpenConfirm))
    );
    let mut s = session_in(Established, config(), t0);
    let mut wide = update();
    wide.attributes.as_path = Some(AsPath::sequence(vec![4_200_000_001]));
    s.send_update(&wide, t0).unwrap();
    let Some(Output::Send(sent)) = s.poll_output() else {
        panic!("no UPDATE");
    };
    let parsed = Message::parse(&sent, Context::FOUR_OCTET).unwrap();
    assert_eq!(parsed, Message::Update(Box::new(wide)));
}

#[test]
fn established_reports_what_was_negotiated_and_down_says_why() {
    let t0 = Instant::now();
    let mut s = session_in(OpenConfirm, config(), t0);
    s.handle(Input::Received(&bytes(Message::Keepalive)), t0);
    let Some(Output::Event(SessionEvent::Established(n))) = s.poll_output() else {
        panic!("not established");
    };
    assert_eq!(n.peer_as, PEER_AS);
    assert!(n.four_octet_as && n.route_refresh && !n.internal);
    assert_eq!(
        n.families,
        [AddressFamily::IPV4_UNICAST, AddressFamily::IPV6_UNICAST]
    );
    let cease = NotificationRepr::administrative_shutdown("maintenance");
    s.handle(
        Input::Received(&bytes(Message::Notification(cease.clone()))),
        t0,
    );
    assert_eq!(s.poll_output(), Some(Output::Close),);
    let Some(Output::Event(SessionEvent::Down(why))) = s.poll_output() else {
        panic!("not down");
    };
    assert_eq!(why, DownReason::NotificationReceived(cease));
    assert_eq!(
        why.to_string(),
        "peer sent NOTIFICATION Cease (6/2) Administrative Shutdown: \"maintenance\""
    );
}

#[test]
fn a_router_id_set_after_the_start_goes_in_the_next_open() {
    let t0 = Instant::now();
    let mut s = Session::new(config()).unwrap();
    s.handle(Input::ManualStart, t0);
    assert_eq!(drain(&mut s), ["connect"]);
    assert_eq!(
        s.set_router_id(Ipv4Addr::UNSPECIFIED),
        Err(ConfigError::RouterId)
    );
    s.set_router_id(Ipv4Addr::new(192, 0, 2, 11)).unwrap();
    s.handle(Input::Connected, t0);
    let Some(Output::Send(sent)) = s.poll_output() else {
        panic!("no OPEN");
    };
    let Ok(Message::Open(open)) = Message::parse(&sent, Context::default()) else {
        panic!("not an OPEN");
    };
    assert_eq!(open.bgp_id, Ipv4Addr::new(192, 0, 2, 11));
}

#[test]
fn a_peer_s_connection_is_taken_only_while_the_session_has_none_up() {
    let t0 = Instant::now();
    // Connect (our dial under way) and Active: taken; our OPEN goes on it.
    for from in [Connect, Active] {
        let mut s = session_in(from, config(), t0);
        assert!(s.accept(t0 + SECOND), "{from:?}");
        assert_eq!(s.state(), Active);
        s.handle(Input::Connected, t0 + SECOND);
        assert_eq!(drain(&mut s), ["OPEN"], "{from:?}");
        assert_eq!(s.state(), OpenSent);
    }
    // A connection of its own up: the peer's is refused, nothing changes.
    for from in [OpenSent, OpenConfirm, Established] {
        let mut s = session_in(from, config(), t0);
        assert!(!s.accept(t0 + SECOND), "{from:?}");
        assert_eq!(s.state(), from);
        assert!(drain(&mut s).is_empty(), "{from:?}");
    }
    // Waiting out the restart backoff: the peer is back, so the wait ends.
    let mut s = session_in(Connect, config(), t0);
    for _ in 0..5 {
        s.handle(Input::ConnectionFailed, t0);
        s.handle_timeout(s.timer(Timer::IdleHold).unwrap());
    }
    s.handle(Input::ConnectionFailed, t0);
    assert!(s.timer(Timer::IdleHold).unwrap() > t0 + 10 * SECOND);
    drain(&mut s);
    assert!(s.accept(t0 + SECOND));
    assert_eq!((s.state(), s.timer(Timer::IdleHold)), (Active, None));
    // Stopped by hand: stays stopped.
    let mut s = session_in(Established, config(), t0);
    s.shutdown("bye", t0);
    assert!(!s.accept(t0 + SECOND));
    assert_eq!(s.state(), Idle);
}
