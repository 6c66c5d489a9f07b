//! Any byte stream from a peer, cut into reads anywhere: the session never panics, and after
//! each read, a session waiting for the peer's OPEN has a deadline.
//! The first input byte is the read size (1 to 256 bytes).
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ferrolb::bgp::session::{Input, PeerAs, Session, SessionConfig, State};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let mut config = SessionConfig::new(64512, PeerAs::External, Ipv4Addr::new(10, 0, 0, 2));
    config.route_refresh = true;
    let Ok(mut session) = Session::new(config) else {
        return;
    };
    let mut now = Instant::now();
    session.handle(Input::ManualStart, now);
    session.handle(Input::Connected, now);
    for read in stream.chunks(usize::from(chunk) + 1) {
        now += Duration::from_millis(10);
        session.handle(Input::Received(read), now);
        while session.poll_output().is_some() {}
        // Waiting for the peer's OPEN, the hold timer always runs.
        if session.state() == State::OpenSent {
            assert!(session.poll_timeout().is_some());
        }
        if let Some(deadline) = session.poll_timeout().filter(|d| *d <= now) {
            session.handle_timeout(deadline);
        }
    }
});
