use super::*;
use crate::bgp::wire::capability::GracefulRestartFamily;
use crate::bgp::wire::{Context, GracefulRestart, Message, WireError, hex};

const M: &str = "ffffffffffffffffffffffffffffffff";

/// An OPEN as FRR's bgpd sends it to an eBGP peer (AS 65001, hold 180, router ID 10.0.0.1), each
/// capability in an optional parameter of its own: multiprotocol IPv4 and IPv6 unicast, route
/// refresh (the pre-standard code 128 and RFC 2918's 2), enhanced route refresh (70), 4-octet AS,
/// ADD-PATH (69), FQDN (73) "r1", graceful restart (N bit, 120 s, IPv4 unicast with F), long-lived
/// graceful restart (71) empty. Written out field by field from RFC 4271 §4.2 and RFC 5492 §4.
const FRR_OPEN: &str = "005f 01 | 04 fde9 00b4 0a000001 | 42 |
    02 06 | 01 04 0001 00 01 |
    02 06 | 01 04 0002 00 01 |
    02 02 | 80 00 |
    02 02 | 02 00 |
    02 02 | 46 00 |
    02 06 | 41 04 0000fde9 |
    02 06 | 45 04 0001 01 01 |
    02 06 | 49 04 02 7231 00 |
    02 08 | 40 06 4078 0001 01 80 |
    02 02 | 47 00";

/// What MetalLB's native speaker sends (AS 64512, hold 90, ID 10.0.0.2): one Capabilities
/// parameter of 18 bytes, MP IPv4 and IPv6 unicast and the 4-octet AS.
const METALLB_OPEN: &str = "0031 01 | 04 fc00 005a 0a000002 | 14 |
    02 12 | 01 04 0001 00 01 | 01 04 0002 00 01 | 41 04 0000fc00";

fn msg(rest: &str) -> Vec<u8> {
    hex(&format!("{M} {rest}"))
}

fn parse_open(bytes: &[u8]) -> Result<OpenRepr, WireError> {
    match Message::parse(bytes, Context::default())? {
        Message::Open(open) => Ok(open),
        other => panic!("not an OPEN: {other:?}"),
    }
}

#[test]
fn parses_frr_open_with_its_capabilities() {
    let bytes = msg(FRR_OPEN);
    assert_eq!(bytes.len(), 95);
    let open = parse_open(&bytes).unwrap();
    assert_eq!(open.my_as, 65001);
    assert_eq!(open.hold_time, 180);
    assert_eq!(open.bgp_id, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(
        open.capabilities,
        vec![
            Capability::Multiprotocol(AddressFamily::IPV4_UNICAST),
            Capability::Multiprotocol(AddressFamily::IPV6_UNICAST),
            Capability::Unknown {
                code: 128,
                value: vec![]
            },
            Capability::RouteRefresh,
            Capability::Unknown {
                code: 70,
                value: vec![]
            },
            Capability::FourOctetAs(65001),
            Capability::Unknown {
                code: 69,
                value: hex("0001 01 01")
            },
            Capability::Unknown {
                code: 73,
                value: hex("02 7231 00")
            },
            Capability::GracefulRestart(GracefulRestart {
                restarted: false,
                notification: true,
                restart_time: 120,
                families: vec![GracefulRestartFamily {
                    family: AddressFamily::IPV4_UNICAST,
                    forwarding_preserved: true,
                }],
            }),
            Capability::Unknown {
                code: 71,
                value: vec![]
            },
        ]
    );
    assert_eq!(open.asn(), 65001);
    assert_eq!(
        open.families(),
        vec![AddressFamily::IPV4_UNICAST, AddressFamily::IPV6_UNICAST]
    );
    assert!(open.has(&Capability::RouteRefresh));
    // Emitted again, the capabilities share one parameter; the result parses to the same OPEN.
    let again = Message::Open(open.clone())
        .emit(Context::default())
        .unwrap();
    assert_eq!(again.len(), 95 - 9 * 2);
    assert_eq!(parse_open(&again).unwrap(), open);
}

fn metallb_caps(asn: u32) -> Vec<Capability> {
    vec![
        Capability::Multiprotocol(AddressFamily::IPV4_UNICAST),
        Capability::Multiprotocol(AddressFamily::IPV6_UNICAST),
        Capability::FourOctetAs(asn),
    ]
}

#[test]
fn emits_metallb_native_open_byte_for_byte() {
    let open = OpenRepr::new(64512, 90, Ipv4Addr::new(10, 0, 0, 2), metallb_caps(64512));
    let bytes = Message::Open(open.clone())
        .emit(Context::default())
        .unwrap();
    assert_eq!(bytes, msg(METALLB_OPEN));
    assert_eq!(parse_open(&bytes).unwrap(), open);
}

#[test]
fn four_octet_as_sends_as_trans() {
    let asn = 4_200_000_001;
    let open = OpenRepr::new(asn, 90, Ipv4Addr::new(10, 0, 0, 2), metallb_caps(asn));
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(open.asn(), asn);
    let bytes = Message::Open(open).emit(Context::default()).unwrap();
    assert_eq!(
        bytes,
        msg("0031 01 | 04 5ba0 005a 0a000002 | 14 |
             02 12 | 01 04 0001 00 01 | 01 04 0002 00 01 | 41 04 fa56ea01")
    );
}

#[test]
fn open_without_capabilities_is_ipv4_only() {
    let bytes = msg("001d 01 | 04 fde9 0000 0a000001 | 00");
    let open = parse_open(&bytes).unwrap();
    assert_eq!(open.hold_time, 0);
    assert!(open.capabilities.is_empty());
    assert_eq!(open.families(), vec![AddressFamily::IPV4_UNICAST]);
    assert_eq!(open.four_octet_as(), None);
    assert_eq!(Message::Open(open).emit(Context::default()).unwrap(), bytes);
}

/// Each malformed OPEN and the NOTIFICATION RFC 4271 §6.2 answers it with.
#[test]
fn open_errors_answer_rfc4271_6_2() {
    let cases: &[(&str, (u8, u8, &str))] = &[
        // Version 3: Unsupported Version Number, data = the version we speak.
        ("001d 01 | 03 fde9 00b4 0a000001 | 00", (2, 1, "0004")),
        // Hold time 1 and 2: Unacceptable Hold Time.
        ("001d 01 | 04 fde9 0001 0a000001 | 00", (2, 6, "")),
        ("001d 01 | 04 fde9 0002 0a000001 | 00", (2, 6, "")),
        // BGP Identifier 0.0.0.0: Bad BGP Identifier.
        ("001d 01 | 04 fde9 00b4 00000000 | 00", (2, 3, "")),
        // Optional parameter type 1 (authentication): Unsupported Optional Parameter.
        (
            "0021 01 | 04 fde9 00b4 0a000001 | 04 | 01 02 0000",
            (2, 4, ""),
        ),
        // Parameters length past the message; a parameter past the parameters; bytes after:
        // recognized but malformed, Unspecific.
        ("001e 01 | 04 fde9 00b4 0a000001 | 05 | 02", (2, 0, "")),
        (
            "0021 01 | 04 fde9 00b4 0a000001 | 04 | 02 06 0104",
            (2, 0, ""),
        ),
        ("001e 01 | 04 fde9 00b4 0a000001 | 00 | 00", (2, 0, "")),
        // A capability past its parameter, and known capabilities of the wrong length.
        (
            "0021 01 | 04 fde9 00b4 0a000001 | 04 | 02 02 4104",
            (2, 0, ""),
        ),
        (
            "0024 01 | 04 fde9 00b4 0a000001 | 07 | 02 05 01 03 000100",
            (2, 0, ""),
        ),
        (
            "0022 01 | 04 fde9 00b4 0a000001 | 05 | 02 03 02 01 00",
            (2, 0, ""),
        ),
        (
            "0024 01 | 04 fde9 00b4 0a000001 | 07 | 02 05 41 03 00fde9",
            (2, 0, ""),
        ),
        (
            "0025 01 | 04 fde9 00b4 0a000001 | 08 | 02 06 40 04 4078 0001",
            (2, 0, ""),
        ),
        (
            "0022 01 | 04 fde9 00b4 0a000001 | 05 | 02 03 40 01 40",
            (2, 0, ""),
        ),
    ];
    for (text, (code, subcode, data)) in cases {
        let bytes = msg(text);
        assert_eq!(frame(&bytes), Ok(Some(bytes.len())), "{text}");
        let n = parse_open(&bytes).unwrap_err().notification();
        assert_eq!(
            (n.code, n.subcode, n.data),
            (*code, *subcode, hex(data)),
            "{text}"
        );
    }
}

#[test]
fn emit_refuses_hold_time_1_and_too_many_capabilities() {
    let mut open = OpenRepr::new(65000, 1, Ipv4Addr::new(1, 1, 1, 1), vec![]);
    assert!(
        Message::Open(open.clone())
            .emit(Context::default())
            .is_err()
    );
    open.hold_time = 3;
    open.capabilities = vec![
        Capability::Unknown {
            code: 200,
            value: vec![0; 250]
        };
        2
    ];
    assert!(matches!(
        Message::Open(open).emit(Context::default()),
        Err(crate::bgp::wire::EmitError::FieldTooLong { .. })
    ));
}

use crate::bgp::wire::frame;
