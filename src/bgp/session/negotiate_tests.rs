//! Our OPEN, and the checks and agreements on the peer's (RFC 4271 §6.2, RFC 6793, RFC 5492),
//! both directly and through a session in OpenSent.

use std::net::Ipv4Addr;

use super::fsm_tests::{LOCAL_AS, PEER_AS, peer_open, session_in};
use super::*;
use crate::bgp::wire::{
    AddressFamily, Capability, EmitError, GracefulRestart, GracefulRestartFamily, OpenRepr, hex,
};

const ROUTER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn config(peer_as: PeerAs) -> SessionConfig {
    SessionConfig::new(LOCAL_AS, peer_as, ROUTER_ID)
}

fn notification(e: WireError) -> (u8, u8, Vec<u8>) {
    let n = e.notification();
    (n.code, n.subcode, n.data)
}

#[test]
fn default_open_is_metallbs_native_open_byte_for_byte() {
    let open = config(PeerAs::Exact(PEER_AS)).open();
    let bytes = Message::Open(open).emit(Context::default()).unwrap();
    assert_eq!(
        bytes,
        hex(
            "ffffffffffffffffffffffffffffffff 0031 01 | 04 fc00 005a 0a000002 | 14 |
             02 12 | 01 04 0001 00 01 | 01 04 0002 00 01 | 41 04 0000fc00"
        )
    );
}

#[test]
fn hold_time_is_the_smaller_and_keepalive_a_third() {
    for (ours, theirs, hold, keepalive) in [
        (90, 180, 90, 30),
        (90, 9, 9, 3),
        (90, 3, 3, 1),
        (90, 4, 4, 1),
        (90, 0, 0, 0),
        (0, 90, 0, 0),
    ] {
        let mut config = config(PeerAs::Exact(PEER_AS));
        config.hold_time = ours;
        let n = config.negotiate(&peer_open(theirs)).unwrap();
        assert_eq!(n.hold_time, Duration::from_secs(hold), "{ours} {theirs}");
        assert_eq!(
            n.keepalive,
            Duration::from_secs(keepalive),
            "{ours} {theirs}"
        );
    }
}

#[test]
fn hold_time_1_or_2_is_unacceptable() {
    let t0 = Instant::now();
    for hold in [1u16, 2] {
        let mut open = peer_open(180);
        open.hold_time = hold;
        let e = config(PeerAs::Exact(PEER_AS)).negotiate(&open).unwrap_err();
        assert_eq!(notification(e), (2, 6, vec![]));
        // From the wire it never gets that far: the OPEN does not parse.
        let mut s = session_in(State::OpenSent, config(PeerAs::Exact(PEER_AS)), t0);
        let mut bytes = Message::Open(peer_open(180))
            .emit(Context::default())
            .unwrap();
        bytes[22..24].copy_from_slice(&hold.to_be_bytes());
        s.handle(Input::Received(&bytes), t0);
        let Some(Output::Send(sent)) = s.poll_output() else {
            panic!("no NOTIFICATION");
        };
        assert_eq!(&sent[19..21], &[2, 6]);
        assert_eq!(s.state(), State::Idle);
    }
}

#[test]
fn peer_as_must_match_or_fit_the_dynamic_kind() {
    let open_as = |asn: u32| {
        OpenRepr::new(
            asn,
            90,
            Ipv4Addr::new(10, 0, 0, 1),
            vec![Capability::FourOctetAs(asn)],
        )
    };
    let bad_peer_as = |asn| (2, 2, vec![]) == notification(WireError::BadPeerAs(asn));
    for (peer_as, asn, ok) in [
        (PeerAs::Exact(PEER_AS), PEER_AS, true),
        (PeerAs::Exact(PEER_AS), PEER_AS + 1, false),
        (PeerAs::Internal, LOCAL_AS, true),
        (PeerAs::Internal, PEER_AS, false),
        (PeerAs::External, PEER_AS, true),
        (PeerAs::External, LOCAL_AS, false),
    ] {
        let result = config(peer_as).negotiate(&open_as(asn));
        match result {
            Ok(n) => {
                assert!(ok, "{peer_as:?} accepted {asn}");
                assert_eq!(n.peer_as, asn);
                assert_eq!(n.internal, asn == LOCAL_AS);
            }
            Err(e) => {
                assert!(!ok, "{peer_as:?} refused {asn}: {e}");
                assert!(bad_peer_as(asn));
                assert_eq!(e, WireError::BadPeerAs(asn));
            }
        }
    }
}

#[test]
fn four_octet_as_numbers() {
    let big = 4_200_000_001;
    // The peer's AS comes from its capability; the 2-octet field says AS_TRANS.
    let open = OpenRepr::new(
        big,
        90,
        Ipv4Addr::new(10, 0, 0, 1),
        vec![Capability::FourOctetAs(big)],
    );
    assert_eq!(open.my_as, 23456);
    let n = config(PeerAs::Exact(big)).negotiate(&open).unwrap();
    assert_eq!(n.peer_as, big);
    assert!(n.four_octet_as);
    // A peer without the capability is read from the 2-octet field and speaks 2-octet paths.
    let old = OpenRepr::new(PEER_AS, 90, Ipv4Addr::new(10, 0, 0, 1), vec![]);
    let n = config(PeerAs::Exact(PEER_AS)).negotiate(&old).unwrap();
    assert!(!n.four_octet_as);
    // Our AS needs four octets and the peer cannot read them: Unsupported Capability, naming
    // the capability we need.
    let mut wide = config(PeerAs::Exact(PEER_AS));
    wide.local_as = big;
    let e = wide.negotiate(&old).unwrap_err();
    assert_eq!(notification(e), (2, 7, hex("41 04 fa56ea01")));
}

#[test]
fn same_bgp_identifier_is_refused_inside_one_as_only() {
    let mut open = peer_open(90);
    open.bgp_id = ROUTER_ID;
    assert!(config(PeerAs::Exact(PEER_AS)).negotiate(&open).is_ok());
    let internal = OpenRepr::new(LOCAL_AS, 90, ROUTER_ID, vec![]);
    let e = config(PeerAs::Internal).negotiate(&internal).unwrap_err();
    assert_eq!(notification(e), (2, 3, vec![]));
}

#[test]
fn families_route_refresh_and_graceful_restart_need_both_sides() {
    let gr = GracefulRestart {
        restarted: false,
        notification: false,
        restart_time: 120,
        families: vec![GracefulRestartFamily {
            family: AddressFamily::IPV4_UNICAST,
            forwarding_preserved: true,
        }],
    };
    let ipv4_only = OpenRepr::new(
        PEER_AS,
        90,
        Ipv4Addr::new(10, 0, 0, 1),
        vec![
            Capability::Multiprotocol(AddressFamily::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::GracefulRestart(gr.clone()),
        ],
    );
    // Defaults (MetalLB's): no route refresh, no graceful restart offered.
    let n = config(PeerAs::Exact(PEER_AS))
        .negotiate(&ipv4_only)
        .unwrap();
    assert_eq!(n.families, [AddressFamily::IPV4_UNICAST]);
    assert!(!n.route_refresh);
    assert_eq!(n.graceful_restart, None);
    let mut offering = config(PeerAs::Exact(PEER_AS));
    offering.route_refresh = true;
    offering.graceful_restart = Some(GracefulRestart {
        restart_time: 90,
        ..GracefulRestart::default()
    });
    let n = offering.negotiate(&ipv4_only).unwrap();
    assert!(n.route_refresh);
    assert_eq!(n.graceful_restart, Some(gr));
    // What we offer is in our OPEN.
    let ours = offering.open();
    assert!(ours.has(&Capability::RouteRefresh));
    assert!(
        ours.capabilities
            .iter()
            .any(|c| matches!(c, Capability::GracefulRestart(_)))
    );
    // A peer with no multiprotocol capability carries IPv4 unicast (RFC 4760 §8).
    let bare = OpenRepr::new(PEER_AS, 90, Ipv4Addr::new(10, 0, 0, 1), vec![]);
    let n = offering.negotiate(&bare).unwrap();
    assert_eq!(n.families, [AddressFamily::IPV4_UNICAST]);
    assert!(!n.route_refresh);
}

#[test]
fn bad_open_in_open_sent_sends_its_notification_and_goes_idle() {
    let t0 = Instant::now();
    let mut s = session_in(State::OpenSent, config(PeerAs::Exact(PEER_AS + 1)), t0);
    let bytes = Message::Open(peer_open(90))
        .emit(Context::default())
        .unwrap();
    s.handle(Input::Received(&bytes), t0);
    let Some(Output::Send(sent)) = s.poll_output() else {
        panic!("no NOTIFICATION");
    };
    assert_eq!(
        Message::parse(&sent, Context::default()),
        Ok(Message::Notification(NotificationRepr::new(2, 2)))
    );
    assert_eq!(s.poll_output(), Some(Output::Close));
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.connect_retry_counter(), 1);
}

#[test]
fn configurations_no_open_could_carry_are_refused() {
    let mut c = config(PeerAs::Exact(PEER_AS));
    c.hold_time = 2;
    assert_eq!(Session::new(c).unwrap_err(), ConfigError::HoldTime(2));
    let mut c = config(PeerAs::Exact(PEER_AS));
    c.local_as = 0;
    assert_eq!(Session::new(c).unwrap_err(), ConfigError::LocalAs);
    assert_eq!(
        Session::new(config(PeerAs::Exact(0))).unwrap_err(),
        ConfigError::PeerAs
    );
    let c = SessionConfig::new(LOCAL_AS, PeerAs::Internal, Ipv4Addr::UNSPECIFIED);
    assert_eq!(Session::new(c).unwrap_err(), ConfigError::RouterId);
    let mut c = config(PeerAs::Exact(PEER_AS));
    c.families = vec![AddressFamily::IPV4_UNICAST; 50];
    assert!(matches!(
        Session::new(c).unwrap_err(),
        ConfigError::Open(EmitError::FieldTooLong { .. })
    ));
    let mut c = config(PeerAs::Exact(PEER_AS));
    c.graceful_restart = Some(GracefulRestart {
        restart_time: 4096,
        ..GracefulRestart::default()
    });
    assert!(matches!(
        Session::new(c).unwrap_err(),
        ConfigError::Open(EmitError::Invalid(_))
    ));
}
