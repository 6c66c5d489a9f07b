use super::*;

/// The marker, as every fixture starts.
const M: &str = "ffffffffffffffffffffffffffffffff";

fn msg(rest: &str) -> Vec<u8> {
    hex(&format!("{M} {rest}"))
}

fn parse(bytes: &[u8]) -> Result<Message, WireError> {
    Message::parse(bytes, Context::FOUR_OCTET)
}

/// The NOTIFICATION an error answers with, as (code, subcode, data).
fn answer(bytes: &[u8]) -> (u8, u8, Vec<u8>) {
    let n = parse(bytes).unwrap_err().notification();
    (n.code, n.subcode, n.data)
}

#[test]
fn keepalive_is_a_bare_header() {
    let bytes = msg("0013 04");
    assert_eq!(parse(&bytes), Ok(Message::Keepalive));
    assert_eq!(Message::Keepalive.emit(Context::default()).unwrap(), bytes);
}

#[test]
fn route_refresh_rfc2918() {
    let bytes = msg("0017 05 | 0002 00 01");
    let refresh = Message::RouteRefresh(RouteRefreshRepr {
        family: AddressFamily::IPV6_UNICAST,
        subtype: 0,
    });
    assert_eq!(parse(&bytes), Ok(refresh.clone()));
    assert_eq!(refresh.emit(Context::default()).unwrap(), bytes);
}

/// Cease / Administrative Shutdown with an RFC 9003 shutdown communication.
const SHUTDOWN: &str = "0023 03 | 06 02 | 0d 6e6f646520647261696e696e67";

#[test]
fn notification_cease_with_shutdown_message() {
    let bytes = msg(SHUTDOWN);
    let notification = NotificationRepr::administrative_shutdown("node draining");
    assert_eq!(
        parse(&bytes),
        Ok(Message::Notification(notification.clone()))
    );
    assert_eq!(
        Message::Notification(notification.clone())
            .emit(Context::default())
            .unwrap(),
        bytes
    );
    assert_eq!(notification.shutdown_message(), Some("node draining"));
    assert_eq!(
        notification.to_string(),
        "Cease (6/2) Administrative Shutdown: \"node draining\""
    );
}

#[test]
fn shutdown_message_is_cut_at_255_bytes_on_a_char_boundary() {
    let long = "é".repeat(200); // 400 bytes
    let n = NotificationRepr::administrative_shutdown(&long);
    assert_eq!(n.data[0], 254);
    assert_eq!(n.data.len(), 255);
    assert_eq!(n.shutdown_message(), Some("é".repeat(127).as_str()));
    assert!(
        NotificationRepr::administrative_shutdown("")
            .data
            .is_empty()
    );
    // Not UTF-8, or a length that lies: no message, still a NOTIFICATION.
    let odd = NotificationRepr {
        code: code::CEASE,
        subcode: cease::ADMINISTRATIVE_SHUTDOWN,
        data: vec![3, 0xff, 0xfe, 0xfd],
    };
    assert_eq!(odd.shutdown_message(), None);
    let lying = NotificationRepr {
        data: vec![9, b'a'],
        ..odd
    };
    assert_eq!(lying.shutdown_message(), None);
}

#[test]
fn notification_of_unknown_code_is_kept() {
    let bytes = msg("0015 03 | 63 07");
    let n = NotificationRepr::new(99, 7);
    assert_eq!(parse(&bytes), Ok(Message::Notification(n.clone())));
    assert_eq!(n.to_string(), "unknown error (99/7)");
}

#[test]
fn header_errors_answer_rfc4271_6_1() {
    let mut bad_marker = msg("0013 04");
    bad_marker[3] = 0;
    assert_eq!(answer(&bad_marker), (1, 1, vec![]));
    // Lengths out of bounds carry the length as data.
    assert_eq!(answer(&msg("0012 04")), (1, 2, vec![0x00, 0x12]));
    let mut huge = msg("1001 02");
    huge.resize(4097, 0);
    assert_eq!(answer(&huge), (1, 2, vec![0x10, 0x01]));
    assert_eq!(answer(&msg("0014 04 00")), (1, 2, vec![0x00, 0x14]));
    assert_eq!(
        answer(&msg("001c 01 000000000000000000")),
        (1, 2, vec![0, 0x1c])
    );
    assert_eq!(answer(&msg("0016 02 000000")), (1, 2, vec![0, 0x16]));
    assert_eq!(answer(&msg("0014 03 06")), (1, 2, vec![0, 0x14]));
    assert_eq!(answer(&msg("0018 05 0001000100")), (1, 2, vec![0, 0x18]));
    // The type is the data of Bad Message Type.
    assert_eq!(answer(&msg("0013 07")), (1, 3, vec![7]));
    assert_eq!(answer(&msg("0013 00")), (1, 3, vec![0]));
}

#[test]
fn a_message_and_its_header_length_must_agree() {
    let mut longer = msg("0013 04");
    longer.push(0);
    assert_eq!(parse(&longer), Err(WireError::Truncated(20)));
    assert_eq!(parse(&msg("0017 05 0001")), Err(WireError::Truncated(21)));
    assert_eq!(parse(&hex("ffff")), Err(WireError::Truncated(2)));
}

#[test]
fn frame_finds_whole_messages_in_a_stream() {
    let mut stream = msg("0013 04");
    stream.extend(msg(SHUTDOWN));
    assert_eq!(frame(&stream), Ok(Some(19)));
    assert_eq!(frame(&stream[19..]), Ok(Some(35)));
    assert_eq!(frame(&stream[19..40]), Ok(None));
    assert_eq!(frame(&stream[..18]), Ok(None));
    assert_eq!(frame(&[]), Ok(None));
    // A bad header is refused as soon as it is complete, before its body arrives.
    assert_eq!(
        frame(&msg("0fff 04")),
        Err(WireError::BadMessageLength(0x0fff))
    );
}

#[test]
fn emit_refuses_a_message_over_4096_bytes() {
    let update = UpdateRepr {
        withdrawn: (0..1000u32)
            .map(|i| ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(i << 8), 32).unwrap())
            .collect(),
        ..UpdateRepr::default()
    };
    assert_eq!(
        Message::Update(Box::new(update)).emit(Context::default()),
        Err(EmitError::MessageTooLong(19 + 4 + 5000))
    );
}

#[test]
fn notification_names_read_as_the_rfcs_do() {
    for (n, text) in [
        (
            NotificationRepr::new(4, 0),
            "Hold Timer Expired (4/0) Unspecific",
        ),
        (
            NotificationRepr::new(5, 2),
            "Finite State Machine Error (5/2) Unexpected Message in OpenConfirm",
        ),
        (
            NotificationRepr::new(3, 11),
            "UPDATE Message Error (3/11) Malformed AS_PATH",
        ),
        (
            NotificationRepr::new(2, 6),
            "OPEN Message Error (2/6) Unacceptable Hold Time",
        ),
    ] {
        assert_eq!(n.to_string(), text);
    }
}
