//! Any bytes: BFD Control packet parsing never panics, and whatever parses emits again to bytes
//! that parse to the same value; a session fed whatever parses never panics either.
#![no_main]

use std::time::{Duration, Instant};

use ferrolb::bfd::{Config, ControlRepr, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut session = Session::new(Config::default(), 1, Box::new(|| 0), now).expect("defaults");
    for (i, chunk) in data.chunks(24).enumerate() {
        let now = now + Duration::from_millis(i as u64 * 50);
        if let Ok(parsed) = ControlRepr::parse(chunk) {
            assert_eq!(ControlRepr::parse(&parsed.to_bytes()), Ok(parsed));
            session.handle_packet(&parsed, now);
        }
        session.handle_timeout(now);
        while session.poll_transmit(now).is_some() {}
        while session.poll_event().is_some() {}
    }
});
