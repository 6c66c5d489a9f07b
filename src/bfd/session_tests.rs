use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

const US: u32 = 1;
const MS: u32 = 1000 * US;
const LOCAL: u32 = 7;
const REMOTE: u32 = 99;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn fast() -> Config {
    Config {
        desired_min_tx: ms(100),
        required_min_rx: ms(100),
        detect_mult: 3,
        passive: false,
    }
}

/// A session whose jitter takes nothing off (every interval is the full one).
fn session(config: Config, t0: Instant) -> Session {
    Session::new(config, LOCAL, Box::new(|| 0), t0).unwrap()
}

/// A packet from the remote (FRR-like: 100 ms both ways, ×3).
fn remote(state: State) -> ControlRepr {
    ControlRepr {
        diag: Diag::None,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: REMOTE,
        your_discriminator: if state == State::Down { 0 } else { LOCAL },
        desired_min_tx: 100 * MS,
        required_min_rx: 100 * MS,
        required_min_echo_rx: 0,
    }
}

fn drain(s: &mut Session, now: Instant) -> Vec<ControlRepr> {
    std::iter::from_fn(|| s.poll_transmit(now)).collect()
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Down → Init → Up against the remote, the Poll of going Up answered: an Up session at `t0`.
fn up(config: Config, t0: Instant) -> Session {
    let mut s = session(config, t0);
    drain(&mut s, t0);
    s.handle_packet(&remote(State::Down), t0);
    s.handle_packet(&remote(State::Up), t0);
    drain(&mut s, t0);
    s.handle_packet(
        &ControlRepr {
            final_: true,
            ..remote(State::Up)
        },
        t0,
    );
    assert_eq!(events(&mut s), [Event::Up]);
    assert!(!s.polling());
    s
}

#[test]
fn an_active_session_sends_down_at_once_then_once_a_second() {
    let t0 = Instant::now();
    let mut s = session(fast(), t0);
    assert_eq!(s.state(), State::Down);
    assert_eq!(s.poll_timeout(), Some(t0));
    let sent = drain(&mut s, t0);
    assert_eq!(sent.len(), 1);
    let p = sent[0];
    assert_eq!(
        (p.state, p.my_discriminator, p.your_discriminator),
        (State::Down, LOCAL, 0)
    );
    // §6.8.3: at least 1 s while not Up, whatever the profile says.
    assert_eq!(p.desired_min_tx, 1_000 * MS);
    assert_eq!(p.required_min_rx, 100 * MS);
    assert_eq!((p.detect_mult, p.poll, p.final_), (3, false, false));
    assert_eq!(s.poll_timeout(), Some(t0 + ms(1000)));
    assert!(drain(&mut s, t0 + ms(999)).is_empty());
    assert_eq!(drain(&mut s, t0 + ms(1000)).len(), 1);
}

#[test]
fn three_way_handshake_then_a_poll_sequence_to_the_fast_timers() {
    let t0 = Instant::now();
    let mut s = session(fast(), t0);
    drain(&mut s, t0);
    // Down heard: Init, said at once, with the remote's discriminator.
    s.handle_packet(&remote(State::Down), t0 + ms(10));
    assert_eq!(s.state(), State::Init);
    let sent = drain(&mut s, t0 + ms(10));
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].state, sent[0].your_discriminator),
        (State::Init, REMOTE)
    );
    assert!(events(&mut s).is_empty());
    // Up heard: Up, and the timers change from 1 s to 100 ms by a Poll sequence.
    s.handle_packet(&remote(State::Up), t0 + ms(20));
    assert_eq!(s.state(), State::Up);
    assert_eq!(events(&mut s), [Event::Up]);
    assert!(s.polling());
    let sent = drain(&mut s, t0 + ms(20));
    assert_eq!(sent.len(), 1);
    assert!(sent[0].poll && !sent[0].final_);
    assert_eq!(
        (sent[0].state, sent[0].desired_min_tx),
        (State::Up, 100 * MS)
    );
    // A faster rate is used at once; the Poll bit rides on every packet until the Final.
    assert_eq!(s.transmit_interval(), ms(100));
    let sent = drain(&mut s, t0 + ms(120));
    assert!(sent.len() == 1 && sent[0].poll);
    let fin = ControlRepr {
        final_: true,
        ..remote(State::Up)
    };
    s.handle_packet(&fin, t0 + ms(130));
    assert!(!s.polling());
    let sent = drain(&mut s, t0 + ms(220));
    assert!(sent.len() == 1 && !sent[0].poll);
    // Detection time: the remote's ×3 times the larger of our 100 ms RX and its 100 ms TX.
    assert_eq!(s.detection_time(), Some(ms(300)));
}

#[test]
fn down_hearing_init_goes_straight_up() {
    let t0 = Instant::now();
    let mut s = session(fast(), t0);
    s.handle_packet(&remote(State::Init), t0);
    assert_eq!(s.state(), State::Up);
    assert_eq!(events(&mut s), [Event::Up]);
    // Down ignores Up (the remote must see us first).
    let mut s = session(fast(), t0);
    s.handle_packet(&remote(State::Up), t0);
    assert_eq!(s.state(), State::Down);
}

#[test]
fn detection_time_without_a_packet_takes_an_up_session_down_with_diag_1() {
    let t0 = Instant::now();
    let mut s = up(fast(), t0);
    assert_eq!(s.poll_timeout().map(|t| t <= t0 + ms(300)), Some(true));
    s.handle_timeout(t0 + ms(299));
    assert_eq!(s.state(), State::Up);
    s.handle_timeout(t0 + ms(300));
    assert_eq!(s.state(), State::Down);
    assert_eq!(s.diag(), Diag::ControlDetectionTimeExpired);
    assert_eq!(
        events(&mut s),
        [Event::Down {
            diag: Diag::ControlDetectionTimeExpired,
            remote_admin: false
        }]
    );
    // The remote is forgotten; the next packet says why, at once, and the rate is slow again.
    assert_eq!(s.remote_discriminator(), 0);
    let sent = drain(&mut s, t0 + ms(300));
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].state, sent[0].diag, sent[0].your_discriminator),
        (State::Down, Diag::ControlDetectionTimeExpired, 0)
    );
    assert_eq!(sent[0].desired_min_tx, 1000 * MS);
    assert_eq!(s.poll_timeout(), Some(t0 + ms(1300)));
}

#[test]
fn every_packet_restarts_the_detection_time_and_it_follows_the_remote_s_tx() {
    let t0 = Instant::now();
    let mut s = up(fast(), t0);
    s.handle_packet(&remote(State::Up), t0 + ms(250));
    s.handle_timeout(t0 + ms(500));
    assert_eq!(s.state(), State::Up);
    // A remote that sends every 500 ms (×3): 1.5 s.
    let slow = ControlRepr {
        desired_min_tx: 500 * MS,
        ..remote(State::Up)
    };
    s.handle_packet(&slow, t0 + ms(500));
    assert_eq!(s.detection_time(), Some(ms(1500)));
    s.handle_timeout(t0 + ms(1999));
    assert_eq!(s.state(), State::Up);
    s.handle_timeout(t0 + ms(2000));
    assert_eq!(s.state(), State::Down);
}

#[test]
fn init_that_hears_nothing_goes_down_without_an_event() {
    let t0 = Instant::now();
    let mut s = session(fast(), t0);
    s.handle_packet(&remote(State::Down), t0);
    assert_eq!(s.state(), State::Init);
    s.handle_timeout(t0 + ms(300));
    assert_eq!(s.state(), State::Down);
    assert!(events(&mut s).is_empty());
}

#[test]
fn the_remote_saying_down_or_admin_down_takes_us_down_with_diag_3() {
    let t0 = Instant::now();
    let mut s = up(fast(), t0);
    s.handle_packet(&remote(State::Down), t0 + ms(10));
    assert_eq!(s.state(), State::Down);
    assert_eq!(
        events(&mut s),
        [Event::Down {
            diag: Diag::NeighborSignaledSessionDown,
            remote_admin: false
        }]
    );
    // AdminDown is not a failure of the path: the event says so (RFC 5882 §3.2).
    let mut s = up(fast(), t0);
    let admin = ControlRepr {
        diag: Diag::AdministrativelyDown,
        ..remote(State::AdminDown)
    };
    s.handle_packet(&admin, t0 + ms(10));
    assert_eq!(
        events(&mut s),
        [Event::Down {
            diag: Diag::NeighborSignaledSessionDown,
            remote_admin: true
        }]
    );
    // Down stays Down on AdminDown; Init goes Down.
    s.handle_packet(&admin, t0 + ms(20));
    assert_eq!(s.state(), State::Down);
    let mut s = session(fast(), t0);
    s.handle_packet(&remote(State::Down), t0);
    s.handle_packet(&admin, t0);
    assert_eq!(s.state(), State::Down);
    assert!(events(&mut s).is_empty());
}

#[test]
fn a_poll_is_answered_at_once_with_final_and_never_both_bits() {
    let t0 = Instant::now();
    let mut s = up(fast(), t0);
    drain(&mut s, t0);
    let poll = ControlRepr {
        poll: true,
        ..remote(State::Up)
    };
    s.handle_packet(&poll, t0 + ms(5));
    let sent = drain(&mut s, t0 + ms(5));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].final_ && !sent[0].poll);
    // The periodic packets go on as scheduled.
    assert_eq!(drain(&mut s, t0 + ms(100)).len(), 1);
}

#[test]
fn a_timer_increase_while_up_waits_for_the_final() {
    let t0 = Instant::now();
    let mut s = up(fast(), t0);
    let slower = Config {
        desired_min_tx: ms(500),
        required_min_rx: ms(50),
        ..fast()
    };
    s.set_config(slower, t0).unwrap();
    assert!(s.polling());
    let sent = drain(&mut s, t0);
    assert!(sent[0].poll);
    assert_eq!(
        (sent[0].desired_min_tx, sent[0].required_min_rx),
        (500 * MS, 50 * MS)
    );
    // Until the Final: the old (faster) TX and the old (longer) RX for the detection time.
    assert_eq!(s.transmit_interval(), ms(100));
    assert_eq!(s.detection_time(), Some(ms(300)));
    let fin = ControlRepr {
        final_: true,
        ..remote(State::Up)
    };
    s.handle_packet(&fin, t0 + ms(10));
    assert_eq!(s.transmit_interval(), ms(500));
    assert_eq!(
        s.detection_time(),
        Some(ms(300)),
        "3 × max(50 ms, their 100 ms)"
    );
    // A change while not Up applies at once, with no Poll.
    let mut s = session(fast(), t0);
    s.set_config(slower, t0).unwrap();
    assert!(!s.polling());
    assert_eq!(s.transmit_interval(), ms(1000));
}

#[test]
fn passive_sends_nothing_until_the_remote_has_spoken() {
    let t0 = Instant::now();
    let passive = Config {
        passive: true,
        ..fast()
    };
    let mut s = session(passive, t0);
    assert_eq!(s.poll_timeout(), None);
    assert!(drain(&mut s, t0 + ms(5000)).is_empty());
    s.handle_packet(&remote(State::Down), t0 + ms(5000));
    let sent = drain(&mut s, t0 + ms(5000));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].state, State::Init);
    s.handle_packet(&remote(State::Up), t0 + ms(5010));
    assert_eq!(s.state(), State::Up);
    // Forgotten after a detection time: silent again.
    s.handle_timeout(t0 + ms(6000));
    drain(&mut s, t0 + ms(6000));
    assert_eq!(s.poll_timeout(), None);
    // A passive session that never heard the remote sends no AdminDown either.
    let mut s = session(passive, t0);
    s.shutdown(t0);
    assert!(drain(&mut s, t0).is_empty() && s.is_finished());
}

#[test]
fn no_periodic_packets_when_the_remote_wants_none_or_asks_for_demand() {
    let t0 = Instant::now();
    let mut s = up(fast(), t0);
    drain(&mut s, t0);
    let none = ControlRepr {
        required_min_rx: 0,
        ..remote(State::Up)
    };
    s.handle_packet(&none, t0);
    assert!(drain(&mut s, t0 + ms(5000)).is_empty());
    let mut s = up(fast(), t0);
    drain(&mut s, t0);
    let demand = ControlRepr {
        demand: true,
        ..remote(State::Up)
    };
    s.handle_packet(&demand, t0);
    assert!(drain(&mut s, t0 + ms(5000)).is_empty());
    // A Poll is still answered.
    s.handle_packet(
        &ControlRepr {
            poll: true,
            ..demand
        },
        t0 + ms(5000),
    );
    assert_eq!(drain(&mut s, t0 + ms(5000)).len(), 1);
}

#[test]
fn the_transmit_interval_respects_the_remote_s_required_min_rx() {
    let t0 = Instant::now();
    let mut s = up(fast(), t0);
    let slow_rx = ControlRepr {
        required_min_rx: 400 * MS,
        ..remote(State::Up)
    };
    s.handle_packet(&slow_rx, t0);
    assert_eq!(s.transmit_interval(), ms(400));
}

#[test]
fn a_packet_for_another_discriminator_or_after_shutdown_is_ignored() {
    let t0 = Instant::now();
    let mut s = session(fast(), t0);
    let stray = ControlRepr {
        your_discriminator: LOCAL + 1,
        ..remote(State::Init)
    };
    s.handle_packet(&stray, t0);
    assert_eq!((s.state(), s.remote_discriminator()), (State::Down, 0));
    s.shutdown(t0);
    s.handle_packet(&remote(State::Init), t0);
    assert_eq!(s.state(), State::AdminDown);
}

#[test]
fn shutdown_sends_a_few_admin_down_packets_then_nothing() {
    let t0 = Instant::now();
    let mut s = up(fast(), t0);
    s.shutdown(t0);
    assert_eq!(
        events(&mut s),
        [Event::Down {
            diag: Diag::AdministrativelyDown,
            remote_admin: false
        }]
    );
    let mut sent = drain(&mut s, t0);
    let mut now = t0;
    while let Some(t) = s.poll_timeout() {
        assert_eq!(t, now + ADMIN_DOWN_SPACING);
        now = t;
        sent.extend(drain(&mut s, now));
    }
    assert_eq!(sent.len(), usize::from(ADMIN_DOWN_PACKETS));
    for p in sent {
        assert_eq!(
            (p.state, p.diag),
            (State::AdminDown, Diag::AdministrativelyDown)
        );
        assert_eq!(p.your_discriminator, REMOTE);
    }
    assert!(s.is_finished());
}

#[test]
fn jitter_takes_0_to_25_percent_off_and_10_to_25_with_a_multiplier_of_1() {
    let t0 = Instant::now();
    let gaps = |config: Config, r: u16| {
        let mut s = Session::new(config, LOCAL, Box::new(move || r), t0).unwrap();
        drain(&mut s, t0);
        s.poll_timeout().unwrap() - t0
    };
    assert_eq!(gaps(fast(), 0), ms(1000));
    let most = gaps(fast(), u16::MAX);
    assert!(most > ms(750) && most < ms(751), "{most:?}");
    let one = Config {
        detect_mult: 1,
        ..fast()
    };
    assert_eq!(gaps(one, 0), ms(900));
    let most = gaps(one, u16::MAX);
    assert!(most > ms(750) && most < ms(751), "{most:?}");
    // A real-looking source: every gap within 75–100 %.
    let seed = Arc::new(AtomicU32::new(12345));
    let next = seed.clone();
    let source: Jitter = Box::new(move || {
        let x = next
            .load(Ordering::Relaxed)
            .wrapping_mul(1_103_515_245)
            .wrapping_add(12345);
        next.store(x, Ordering::Relaxed);
        (x >> 16) as u16
    });
    let mut s = Session::new(fast(), LOCAL, source, t0).unwrap();
    let mut now = t0;
    for _ in 0..200 {
        drain(&mut s, now);
        let next = s.poll_timeout().unwrap();
        let gap = next - now;
        assert!(gap >= ms(750) && gap <= ms(1000), "{gap:?}");
        now = next;
    }
}

#[test]
fn settings_no_session_can_run_with_are_refused() {
    let t0 = Instant::now();
    let zero = Config {
        detect_mult: 0,
        ..fast()
    };
    assert_eq!(
        Session::new(zero, 1, Box::new(|| 0), t0).err(),
        Some(ConfigError::DetectMultZero)
    );
    let never = Config {
        desired_min_tx: Duration::ZERO,
        ..fast()
    };
    assert!(never.check().is_err());
    let huge = Config {
        required_min_rx: Duration::from_secs(5000),
        ..fast()
    };
    assert!(huge.check().is_err());
    assert_eq!(Config::default().detect_mult, 3);
}
