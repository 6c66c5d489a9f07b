//! One BFD session in asynchronous mode (RFC 5880 §6), as a pure state machine: fed received
//! packets and `now`, it says which packets to send ([`Session::poll_transmit`]), when to call it
//! again ([`Session::poll_timeout`]) and what happened ([`Session::poll_event`]). No clock, no
//! socket; the jitter of the transmit interval comes from a source the owner hands in, so tests
//! are deterministic.
//!
//! What it does: the three-way handshake (Down → Init → Up, §6.8.6), the detection time (the
//! remote's detect multiplier × the larger of our required min RX and its desired min TX,
//! §6.8.4), the transmit interval (the larger of our desired min TX and its required min RX,
//! reduced by 0–25 % per packet, 10–25 % when our detect multiplier is 1, §6.8.7), 1 s between
//! packets while not Up (§6.8.3), a Poll sequence when our timers change (going Up is such a
//! change: from the slow 1 s to the configured interval), the Final answer to a Poll, the
//! passive role (nothing sent until the remote's discriminator is known, §6.1), and AdminDown
//! when stopped ([`Session::shutdown`]: a few AdminDown packets, so the remote takes the end as
//! administrative and not as a failure, RFC 5882 §3.2). Not done: Demand mode (we never ask for
//! it; a remote that does is honoured by stopping periodic packets, §6.8.7), the Echo function,
//! authentication (such packets never parse, [`super::wire`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::wire::{ControlRepr, Diag, State};

/// The slowest rate RFC 5880 §6.8.3 asks for while the session is not Up.
pub const SLOW_TX: Duration = Duration::from_secs(1);
/// AdminDown packets sent on [`Session::shutdown`].
pub const ADMIN_DOWN_PACKETS: u8 = 3;
/// Between two AdminDown packets.
pub const ADMIN_DOWN_SPACING: Duration = Duration::from_millis(20);

/// A session's settings (a BFDProfile's supported fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Config {
    /// bfd.DesiredMinTxInterval once Up (`transmitInterval`).
    pub desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval (`receiveInterval`).
    pub required_min_rx: Duration,
    /// bfd.DetectMult (`detectMultiplier`).
    pub detect_mult: u8,
    /// Send nothing until the remote has sent (`passiveMode`).
    pub passive: bool,
}

impl Default for Config {
    /// MetalLB's (FRR's) defaults: 300 ms each way, ×3, active.
    fn default() -> Self {
        Config {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
            passive: false,
        }
    }
}

/// Settings no session can run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("BFD detect multiplier 0")]
    DetectMultZero,
    #[error("BFD {0} interval out of range: between 1 µs and 4294 s")]
    Interval(&'static str),
}

impl Config {
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.detect_mult == 0 {
            return Err(ConfigError::DetectMultZero);
        }
        for (name, d) in [
            ("transmit", self.desired_min_tx),
            ("receive", self.required_min_rx),
        ] {
            if d < Duration::from_micros(1) || d.as_micros() > u128::from(u32::MAX) {
                return Err(ConfigError::Interval(name));
            }
        }
        Ok(())
    }
}

/// What happened to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Up,
    /// The session left Up. `remote_admin`: the remote said AdminDown, which RFC 5882 §3.2 says
    /// is not a failure of the path (its client must not be torn down for it).
    Down {
        diag: Diag,
        remote_admin: bool,
    },
}

/// The transmit jitter's randomness: any `u16`, uniformly.
pub type Jitter = Box<dyn FnMut() -> u16 + Send>;

/// One session; see the module documentation.
pub struct Session {
    config: Config,
    local_discr: u32,
    remote_discr: u32,
    state: State,
    remote_state: State,
    diag: Diag,
    remote_demand: bool,
    /// bfd.RemoteMinRxInterval (µs): 1 until the remote says (§6.8.1).
    remote_min_rx: u32,
    remote_min_tx: u32,
    remote_detect_mult: u8,
    /// What our packets say (µs).
    adv_tx: u32,
    adv_rx: u32,
    /// What our own timers use (µs): the advertised values, except during a Poll sequence
    /// (§6.8.3: a larger TX interval or a smaller RX interval waits for the Final).
    use_tx: u32,
    use_rx: u32,
    poll: bool,
    poll_again: bool,
    send_final: bool,
    send_now: bool,
    next_tx: Option<Instant>,
    detect: Option<Instant>,
    admin_down_left: u8,
    jitter: Jitter,
    events: VecDeque<Event>,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn from_micros(us: u32) -> Duration {
    Duration::from_micros(u64::from(us))
}

impl Session {
    /// A session in Down with discriminator `local_discr` (non-zero, unique on this system);
    /// an active one sends its first packet at `now`.
    pub fn new(
        config: Config,
        local_discr: u32,
        jitter: Jitter,
        now: Instant,
    ) -> Result<Session, ConfigError> {
        config.check()?;
        let slow = micros(config.desired_min_tx.max(SLOW_TX));
        let rx = micros(config.required_min_rx);
        let mut session = Session {
            config,
            local_discr: local_discr.max(1),
            remote_discr: 0,
            state: State::Down,
            remote_state: State::Down,
            diag: Diag::None,
            remote_demand: false,
            remote_min_rx: 1,
            remote_min_tx: 0,
            remote_detect_mult: 0,
            adv_tx: slow,
            adv_rx: rx,
            use_tx: slow,
            use_rx: rx,
            poll: false,
            poll_again: false,
            send_final: false,
            send_now: false,
            next_tx: None,
            detect: None,
            admin_down_left: 0,
            jitter,
            events: VecDeque::new(),
        };
        if session.may_transmit() {
            session.next_tx = Some(now);
        }
        Ok(session)
    }

    pub fn state(&self) -> State {
        self.state
    }
    pub fn remote_state(&self) -> State {
        self.remote_state
    }
    pub fn local_discriminator(&self) -> u32 {
        self.local_discr
    }
    /// 0 until the remote has been heard (and again after a detection time without it).
    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discr
    }
    pub fn diag(&self) -> Diag {
        self.diag
    }
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// Whether a Poll sequence is under way.
    pub fn polling(&self) -> bool {
        self.poll
    }

    /// The detection time now (§6.8.4), once the remote has been heard.
    pub fn detection_time(&self) -> Option<Duration> {
        (self.remote_detect_mult > 0).then(|| {
            from_micros(self.use_rx.max(self.remote_min_tx)) * u32::from(self.remote_detect_mult)
        })
    }

    /// The transmit interval before jitter (§6.8.7).
    pub fn transmit_interval(&self) -> Duration {
        from_micros(self.use_tx.max(self.remote_min_rx))
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest time [`Self::handle_timeout`] or [`Self::poll_transmit`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tx = if self.state == State::AdminDown || self.may_transmit() {
            self.next_tx
        } else {
            None
        };
        [tx, self.detect].into_iter().flatten().min()
    }

    /// Handles the detection timer if it ran out by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.detect.is_some_and(|t| t <= now) {
            self.detect = None;
            // §6.8.1: a detection time without a packet forgets the remote.
            self.remote_discr = 0;
            self.remote_state = State::Down;
            self.remote_detect_mult = 0;
            if matches!(self.state, State::Init | State::Up) {
                self.go_down(Diag::ControlDetectionTimeExpired, false, now);
            }
            if !self.may_transmit() {
                self.next_tx = None;
            }
        }
    }

    /// A received packet, already parsed (so §6.8.6's packet-only rules held) and found to be
    /// this session's (by Your Discriminator, or by address while it is 0).
    pub fn handle_packet(&mut self, packet: &ControlRepr, now: Instant) {
        if self.state == State::AdminDown {
            return;
        }
        if packet.your_discriminator != 0 && packet.your_discriminator != self.local_discr {
            return;
        }
        self.remote_discr = packet.my_discriminator;
        self.remote_state = packet.state;
        self.remote_demand = packet.demand;
        self.remote_min_rx = packet.required_min_rx;
        self.remote_min_tx = packet.desired_min_tx;
        self.remote_detect_mult = packet.detect_mult;
        if packet.final_ && self.poll {
            self.poll = false;
            self.use_tx = self.adv_tx;
            self.use_rx = self.adv_rx;
            if std::mem::take(&mut self.poll_again) {
                self.start_poll();
            }
        }
        if let Some(detection) = self.detection_time() {
            self.detect = Some(now + detection);
        }
        match (self.state, packet.state) {
            (State::Down, _) if packet.state == State::AdminDown => {}
            (_, State::AdminDown) => self.go_down(Diag::NeighborSignaledSessionDown, true, now),
            (State::Down, State::Down) => self.set_state(State::Init),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => self.go_up(now),
            (State::Up, State::Down) => self.go_down(Diag::NeighborSignaledSessionDown, false, now),
            _ => {}
        }
        if packet.poll {
            self.send_final = true;
        }
        // Start sending (passive: the remote is known now), or send sooner when the interval
        // shrank (the remote's required min RX did).
        if self.may_transmit() {
            let soonest = now + self.jittered();
            self.next_tx = Some(self.next_tx.map_or(now, |t| t.min(soonest)));
        }
    }

    /// The next packet to send at `now`, if one is due; call until `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<ControlRepr> {
        if self.state == State::AdminDown {
            if self.admin_down_left == 0 || self.next_tx.is_none_or(|t| t > now) {
                return None;
            }
            self.admin_down_left -= 1;
            self.next_tx = (self.admin_down_left > 0).then(|| now + ADMIN_DOWN_SPACING);
            return Some(self.packet(false, false));
        }
        if std::mem::take(&mut self.send_final) {
            // §6.8.7: a Final goes at once, whatever the timers; never with the Poll bit.
            return Some(self.packet(false, true));
        }
        if !self.may_transmit() {
            self.next_tx = None;
            self.send_now = false;
            return None;
        }
        if std::mem::take(&mut self.send_now) || self.next_tx.is_some_and(|t| t <= now) {
            self.next_tx = Some(now + self.jittered());
            return Some(self.packet(self.poll, false));
        }
        None
    }

    /// Stops the session: AdminDown (diag 7), [`ADMIN_DOWN_PACKETS`] packets from `now` on,
    /// [`ADMIN_DOWN_SPACING`] apart (none from a passive session that never heard the remote).
    pub fn shutdown(&mut self, now: Instant) {
        if self.state == State::AdminDown {
            return;
        }
        if self.state == State::Up {
            self.events.push_back(Event::Down {
                diag: Diag::AdministrativelyDown,
                remote_admin: false,
            });
        }
        self.state = State::AdminDown;
        self.diag = Diag::AdministrativelyDown;
        self.poll = false;
        self.send_final = false;
        self.detect = None;
        let heard = self.remote_discr != 0 || !self.config.passive;
        self.admin_down_left = if heard { ADMIN_DOWN_PACKETS } else { 0 };
        self.next_tx = heard.then_some(now);
    }

    /// Stopped and every AdminDown packet sent.
    pub fn is_finished(&self) -> bool {
        self.state == State::AdminDown && self.admin_down_left == 0
    }

    /// New settings: applied at once while not Up, through a Poll sequence while Up.
    pub fn set_config(&mut self, config: Config, now: Instant) -> Result<(), ConfigError> {
        config.check()?;
        self.config = config;
        let tx = if self.state == State::Up {
            config.desired_min_tx
        } else {
            config.desired_min_tx.max(SLOW_TX)
        };
        self.set_timers(micros(tx), micros(config.required_min_rx));
        if self.may_transmit() && self.next_tx.is_none() {
            self.next_tx = Some(now);
        }
        Ok(())
    }

    fn packet(&self, poll: bool, final_: bool) -> ControlRepr {
        ControlRepr {
            diag: self.diag,
            state: self.state,
            poll,
            final_,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.config.detect_mult,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx: self.adv_tx,
            required_min_rx: self.adv_rx,
            required_min_echo_rx: 0,
        }
    }

    /// Whether periodic packets go out (§6.8.7).
    fn may_transmit(&self) -> bool {
        if self.state == State::AdminDown || self.remote_min_rx == 0 {
            return false;
        }
        if self.config.passive && self.remote_discr == 0 {
            return false;
        }
        let remote_demand =
            self.remote_demand && self.state == State::Up && self.remote_state == State::Up;
        !remote_demand || self.poll
    }

    /// The transmit interval less 0–25 % (10–25 % with a detect multiplier of 1).
    fn jittered(&mut self) -> Duration {
        let interval = self.transmit_interval();
        let r = u32::from((self.jitter)());
        // Parts per 65536 * 100 of the interval taken off.
        let percent_scaled = if self.config.detect_mult == 1 {
            10 * 65_536 + 15 * r
        } else {
            25 * r
        };
        let off = interval.as_nanos() * u128::from(percent_scaled) / (100 * 65_536);
        interval.saturating_sub(Duration::from_nanos(u64::try_from(off).unwrap_or(u64::MAX)))
    }

    fn set_state(&mut self, state: State) {
        if self.state != state {
            self.state = state;
            self.send_now = true;
        }
    }

    fn go_up(&mut self, _now: Instant) {
        self.set_state(State::Up);
        self.diag = Diag::None;
        self.events.push_back(Event::Up);
        // From the slow rate to the configured one: a Poll sequence (§6.8.3).
        self.set_timers(
            micros(self.config.desired_min_tx),
            micros(self.config.required_min_rx),
        );
    }

    fn go_down(&mut self, diag: Diag, remote_admin: bool, _now: Instant) {
        let was_up = self.state == State::Up;
        if self.state == State::Down {
            return;
        }
        self.set_state(State::Down);
        self.diag = diag;
        self.poll = false;
        self.poll_again = false;
        // Back to the slow rate at once: not Up, so no Poll sequence.
        let slow = micros(self.config.desired_min_tx.max(SLOW_TX));
        let rx = micros(self.config.required_min_rx);
        self.adv_tx = slow;
        self.use_tx = slow;
        self.adv_rx = rx;
        self.use_rx = rx;
        if was_up {
            self.events.push_back(Event::Down { diag, remote_admin });
        }
    }

    /// Our timers change to `tx` / `rx` (µs): at once while not Up, else by a Poll sequence.
    fn set_timers(&mut self, tx: u32, rx: u32) {
        if (tx, rx) == (self.adv_tx, self.adv_rx) {
            return;
        }
        self.adv_tx = tx;
        self.adv_rx = rx;
        if self.state != State::Up {
            self.use_tx = tx;
            self.use_rx = rx;
            return;
        }
        // A faster transmit rate and a longer detection time are safe at once.
        self.use_tx = self.use_tx.min(tx);
        self.use_rx = self.use_rx.max(rx);
        if self.poll {
            self.poll_again = true;
        } else {
            self.start_poll();
        }
    }

    fn start_poll(&mut self) {
        self.poll = true;
        self.send_now = true;
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
