use proptest::prelude::*;

use super::*;

/// A Down packet as a system starting a session sends it: version 1, no diagnostic, state Down,
/// no flags, detect mult 3, length 24, My Discriminator 1, Your Discriminator 0, desired min TX
/// 1 s (RFC 5880 §6.8.3: at least 1 s while not Up), required min RX 300 ms, no echo.
const DOWN: [u8; 24] = [
    0x20, // vers 1, diag 0
    0x40, // Sta 1 (Down), P F C A D M clear
    3,    // detect mult
    24,   // length
    0x00, 0x00, 0x00, 0x01, // my discriminator
    0x00, 0x00, 0x00, 0x00, // your discriminator
    0x00, 0x0f, 0x42, 0x40, // desired min TX 1_000_000 µs
    0x00, 0x04, 0x93, 0xe0, // required min RX 300_000 µs
    0x00, 0x00, 0x00, 0x00, // required min echo RX
];

fn down() -> ControlRepr {
    ControlRepr {
        diag: Diag::None,
        state: State::Down,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 1,
        your_discriminator: 0,
        desired_min_tx: 1_000_000,
        required_min_rx: 300_000,
        required_min_echo_rx: 0,
    }
}

/// Up with Poll, diag 1 (detection time expired), discriminators 0x11223344 / 0xaabbccdd,
/// 100 ms / 100 ms, echo 50 ms.
const UP_POLL: [u8; 24] = [
    0x21, // vers 1, diag 1
    0xe0, // Sta 3 (Up), P
    5, 24, 0x11, 0x22, 0x33, 0x44, 0xaa, 0xbb, 0xcc, 0xdd, 0x00, 0x01, 0x86, 0xa0, // 100_000
    0x00, 0x01, 0x86, 0xa0, 0x00, 0x00, 0xc3, 0x50, // 50_000
];

#[test]
fn parses_and_emits_the_hand_written_down_packet() {
    assert_eq!(ControlRepr::parse(&DOWN), Ok(down()));
    assert_eq!(down().to_bytes(), DOWN);
}

#[test]
fn parses_and_emits_up_with_poll_and_every_flag_where_it_belongs() {
    let want = ControlRepr {
        diag: Diag::ControlDetectionTimeExpired,
        state: State::Up,
        poll: true,
        detect_mult: 5,
        my_discriminator: 0x1122_3344,
        your_discriminator: 0xaabb_ccdd,
        desired_min_tx: 100_000,
        required_min_rx: 100_000,
        required_min_echo_rx: 50_000,
        ..down()
    };
    assert_eq!(ControlRepr::parse(&UP_POLL), Ok(want));
    assert_eq!(want.to_bytes(), UP_POLL);
    // Final, C and D: bits 0x10, 0x08, 0x02 of the second byte.
    let flags = ControlRepr {
        poll: false,
        final_: true,
        control_plane_independent: true,
        demand: true,
        ..want
    };
    assert_eq!(flags.to_bytes()[1], 0xc0 | 0x10 | 0x08 | 0x02);
    assert_eq!(ControlRepr::parse(&flags.to_bytes()), Ok(flags));
}

#[test]
fn the_checked_view_reads_each_field() {
    let p = Packet::new_checked(&UP_POLL[..]).unwrap();
    assert_eq!(p.version(), 1);
    assert_eq!(p.state(), State::Up);
    assert!(p.poll() && !p.final_() && !p.auth_present() && !p.multipoint());
    assert_eq!(p.length(), 24);
    assert_eq!(p.your_discriminator(), 0xaabb_ccdd);
    assert_eq!(
        Packet::new_checked(&UP_POLL[..23]).err(),
        Some(ParseError::Truncated(23))
    );
}

#[test]
fn trailing_bytes_past_the_length_are_ignored() {
    let mut long = DOWN.to_vec();
    long.extend([0xde, 0xad]);
    assert_eq!(ControlRepr::parse(&long), Ok(down()));
}

fn with(f: impl Fn(&mut [u8; 24])) -> [u8; 24] {
    let mut p = DOWN;
    f(&mut p);
    p
}

#[test]
fn discards_what_rfc_5880_6_8_6_says_to_discard() {
    let cases: Vec<([u8; 24], ParseError)> = vec![
        (with(|p| p[0] = 0x40), ParseError::Version(2)),
        (with(|p| p[0] = 0x00), ParseError::Version(0)),
        (
            with(|p| p[3] = 23),
            ParseError::LengthTooSmall {
                length: 23,
                minimum: 24,
            },
        ),
        (
            with(|p| p[3] = 25),
            ParseError::LengthTooLarge {
                length: 25,
                got: 24,
            },
        ),
        (with(|p| p[2] = 0), ParseError::DetectMultZero),
        (with(|p| p[1] |= 0x01), ParseError::Multipoint),
        (with(|p| p[4..8].fill(0)), ParseError::MyDiscriminatorZero),
        // Your Discriminator 0 is only for Down and AdminDown.
        (
            with(|p| p[1] = 0xc0),
            ParseError::YourDiscriminatorZero(State::Up),
        ),
        (
            with(|p| p[1] = 0x80),
            ParseError::YourDiscriminatorZero(State::Init),
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(ControlRepr::parse(&bytes), Err(want), "{bytes:02x?}");
    }
    assert_eq!(
        ControlRepr::parse(&DOWN[..10]),
        Err(ParseError::Truncated(10))
    );
    // AdminDown with Your Discriminator 0 is fine.
    assert!(ControlRepr::parse(&with(|p| p[1] = 0x00)).is_ok());
}

#[test]
fn authentication_is_not_supported_and_says_so() {
    // A bit with a Simple Password section (type 1, len 4, key id 1, one byte): 28 bytes.
    let mut auth = with(|p| {
        p[1] |= 0x04;
        p[3] = 28;
    })
    .to_vec();
    auth.extend([1, 4, 1, b'x']);
    let e = ControlRepr::parse(&auth).unwrap_err();
    assert_eq!(e, ParseError::Authentication);
    assert!(e.to_string().contains("not supported"), "{e}");
    // With the A bit the shortest legal length is 26.
    let short = with(|p| {
        p[1] |= 0x04;
        p[3] = 25;
    });
    assert_eq!(
        ControlRepr::parse(&short),
        Err(ParseError::LengthTooSmall {
            length: 25,
            minimum: 26
        })
    );
}

#[test]
fn reserved_diagnostics_are_kept_and_emit_needs_24_bytes() {
    let p = with(|p| p[0] = 0x20 | 17);
    assert_eq!(ControlRepr::parse(&p).unwrap().diag, Diag::Reserved(17));
    assert_eq!(ControlRepr::parse(&p).unwrap().to_bytes(), p);
    assert_eq!(down().emit(&mut [0u8; 23]), Err(BufferTooSmall(23)));
    for code in 0..32 {
        assert_eq!(Diag::from_code(code).code(), code);
    }
}

fn state() -> impl Strategy<Value = State> {
    prop_oneof![
        Just(State::AdminDown),
        Just(State::Down),
        Just(State::Init),
        Just(State::Up)
    ]
}

prop_compose! {
    fn repr()(
        diag in 0u8..32, state in state(), poll: bool, final_: bool, cpi: bool, demand: bool,
        detect_mult in 1u8.., my in 1u32.., your: u32, tx: u32, rx: u32, echo: u32,
    ) -> ControlRepr {
        let your = if matches!(state, State::Init | State::Up) { your.max(1) } else { your };
        ControlRepr {
            diag: Diag::from_code(diag), state, poll, final_, control_plane_independent: cpi,
            demand, detect_mult, my_discriminator: my, your_discriminator: your,
            desired_min_tx: tx, required_min_rx: rx, required_min_echo_rx: echo,
        }
    }
}

proptest! {
    #[test]
    fn every_valid_packet_round_trips(r in repr()) {
        prop_assert_eq!(ControlRepr::parse(&r.to_bytes()), Ok(r));
    }

    #[test]
    fn any_bytes_parse_or_fail_without_panicking_and_reparse_alike(
        bytes in proptest::collection::vec(any::<u8>(), 0..40)
    ) {
        if let Ok(r) = ControlRepr::parse(&bytes) {
            prop_assert_eq!(ControlRepr::parse(&r.to_bytes()), Ok(r));
        }
    }
}
