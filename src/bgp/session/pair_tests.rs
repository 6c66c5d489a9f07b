//! Two sessions wired to each other, each the other's peer: what one sends, the other reads.

use std::net::Ipv4Addr;

use super::*;
use crate::bgp::wire::{AddressFamily, AsPath, Community, Origin, PathAttributes};

/// Carries every output of `from`: bytes to `to`, events into `events`; true if anything moved.
fn pump(
    from: &mut Session,
    to: &mut Session,
    events: &mut Vec<SessionEvent>,
    now: Instant,
) -> bool {
    let mut moved = false;
    while let Some(out) = from.poll_output() {
        moved = true;
        match out {
            Output::Send(bytes) => to.handle(Input::Received(&bytes), now),
            Output::Event(e) => events.push(e),
            Output::Connect | Output::Close => {}
        }
    }
    moved
}

fn run(a: &mut Session, b: &mut Session, now: Instant) -> (Vec<SessionEvent>, Vec<SessionEvent>) {
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    while pump(a, b, &mut ea, now) | pump(b, a, &mut eb, now) {}
    (ea, eb)
}

fn pair(a_as: u32, b_as: u32, b_hold: u16) -> (Session, Session) {
    let mut a = SessionConfig::new(a_as, PeerAs::External, Ipv4Addr::new(10, 0, 0, 1));
    a.route_refresh = true;
    let mut b = SessionConfig::new(b_as, PeerAs::Exact(a_as), Ipv4Addr::new(10, 0, 0, 2));
    b.hold_time = b_hold;
    b.families = vec![AddressFamily::IPV6_UNICAST];
    (Session::new(a).unwrap(), Session::new(b).unwrap())
}

#[test]
fn two_sessions_establish_exchange_an_update_and_one_shuts_the_other_down() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(4_200_000_001, 64512, 30);
    for s in [&mut a, &mut b] {
        s.handle(Input::ManualStart, t0);
        s.handle(Input::Connected, t0);
    }
    let (ea, eb) = run(&mut a, &mut b, t0);
    let established = |events: &[SessionEvent]| match events {
        [SessionEvent::Established(n)] => n.clone(),
        other => panic!("{other:?}"),
    };
    let (na, nb) = (established(&ea), established(&eb));
    assert_eq!((na.peer_as, nb.peer_as), (64512, 4_200_000_001));
    assert_eq!(na.hold_time, Duration::from_secs(30));
    assert_eq!(nb.keepalive, Duration::from_secs(10));
    assert!(na.four_octet_as && nb.four_octet_as);
    assert_eq!(na.families, [AddressFamily::IPV6_UNICAST]);
    assert!(!na.route_refresh, "b did not offer it");

    let update = UpdateRepr {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![4_200_000_001])),
            next_hop: Some(Ipv4Addr::new(10, 0, 0, 1)),
            communities: vec![Community::new(64512, 7)],
            ..PathAttributes::default()
        },
        nlri: vec!["192.0.2.10/32".parse().unwrap()],
        ..UpdateRepr::default()
    };
    a.send_update(&update, t0).unwrap();
    let (_, eb) = run(&mut a, &mut b, t0);
    assert_eq!(eb, [SessionEvent::Update(Box::new(update))]);

    // Keepalives keep both up across many hold times.
    let mut now = t0;
    for _ in 0..100 {
        now = [a.poll_timeout(), b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .unwrap();
        a.handle_timeout(now);
        b.handle_timeout(now);
        let (ea, eb) = run(&mut a, &mut b, now);
        assert!(ea.is_empty() && eb.is_empty(), "{ea:?} {eb:?}");
    }
    assert!(now > t0 + Duration::from_secs(300));
    assert_eq!(
        (a.state(), b.state()),
        (State::Established, State::Established)
    );

    a.shutdown("rolling restart", now);
    let (ea, eb) = run(&mut a, &mut b, now);
    assert_eq!(ea, [SessionEvent::Down(DownReason::Stopped)]);
    let [SessionEvent::Down(DownReason::NotificationReceived(n))] = eb.as_slice() else {
        panic!("{eb:?}");
    };
    assert_eq!(n.shutdown_message(), Some("rolling restart"));
    assert_eq!((a.state(), b.state()), (State::Idle, State::Idle));
}

#[test]
fn a_peer_of_the_wrong_as_is_told_and_both_go_idle() {
    let t0 = Instant::now();
    let (mut a, _) = pair(64512, 65001, 90);
    // b expects 64513, a is 64512.
    let mut b = SessionConfig::new(65001, PeerAs::Exact(64513), Ipv4Addr::new(10, 0, 0, 2));
    b.automatic_start = false;
    let mut b = Session::new(b).unwrap();
    for s in [&mut a, &mut b] {
        s.handle(Input::ManualStart, t0);
        s.handle(Input::Connected, t0);
    }
    let (ea, eb) = run(&mut a, &mut b, t0);
    let bad_peer_as = NotificationRepr::new(code::OPEN, 2);
    assert_eq!(
        eb,
        [SessionEvent::Down(DownReason::NotificationSent(
            bad_peer_as.clone()
        ))]
    );
    assert_eq!(
        ea,
        [SessionEvent::Down(DownReason::NotificationReceived(
            bad_peer_as
        ))]
    );
    assert_eq!((a.state(), b.state()), (State::Idle, State::Idle));
    assert_eq!(a.poll_timeout(), Some(t0), "a restarts by itself");
    assert_eq!(b.poll_timeout(), None);
}
