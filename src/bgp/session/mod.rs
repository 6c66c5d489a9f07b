//! One BGP session as the RFC 4271 §8 finite state machine, sans I/O: the owner feeds it
//! [`Input`]s (start, stop, the TCP connection's fate, received bytes) and expired timers with
//! `now`, and takes [`Output`]s (bytes to send, "connect", "close", events) and the next
//! deadline ([`Session::poll_timeout`]). It frames messages out of the byte stream itself.
//!
//! The session connects out, and takes a connection the peer opened ([`Session::accept`]) while
//! it has none of its own up: an existing TCP connection always wins, so the collision of §6.8
//! (two connections both sending OPEN) never arises on our side, and the peer, which sees ours
//! refused, never has two in OpenConfirm either. The optional session attributes of §8.1.1 are
//! off except AutomaticStart (with MetalLB's reconnect backoff), and passive TCP establishment
//! in that a peer's connection ends the backoff. Deviations from the letter of §8, each on
//! purpose: a malformed message is answered with the NOTIFICATION §6 names for it in every state
//! (§8 says FSM Error for some in Established); a NOTIFICATION received in OpenSent is not
//! answered with another (as OpenConfirm and Established already do); a message of a type the
//! state does not expect is refused (FSM Error, RFC 6608 subcodes) before its body is parsed.

mod events;
mod negotiate;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::bgp::wire::{
    self, Context, Message, MessageType, NotificationRepr, UpdateRepr, WireError, cease, code,
};

pub use events::{DownReason, Input, Output, SendError, SessionEvent, State, Timer};
pub use negotiate::{ConfigError, Negotiated, PeerAs, SessionConfig};

/// One BGP session: see the module documentation.
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    state: State,
    rx: Vec<u8>,
    out: VecDeque<Output>,
    connect_retry_counter: u32,
    connect_retry: Option<Instant>,
    hold: Option<Instant>,
    keepalive: Option<Instant>,
    idle_hold: Option<Instant>,
    restart_delay: Duration,
    negotiated: Option<Negotiated>,
}

impl Session {
    pub fn new(config: SessionConfig) -> Result<Session, ConfigError> {
        config.check()?;
        Ok(Session {
            config,
            state: State::Idle,
            rx: Vec::new(),
            out: VecDeque::new(),
            connect_retry_counter: 0,
            connect_retry: None,
            hold: None,
            keepalive: None,
            idle_hold: None,
            restart_delay: Duration::ZERO,
            negotiated: None,
        })
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Sets the BGP Identifier the next OPEN carries: an owner that derives it from the
    /// connection's local address learns that address only once the connection is up, which is
    /// before [`Input::Connected`] sends the OPEN.
    pub fn set_router_id(&mut self, router_id: std::net::Ipv4Addr) -> Result<(), ConfigError> {
        if router_id.is_unspecified() {
            return Err(ConfigError::RouterId);
        }
        self.config.router_id = router_id;
        Ok(())
    }

    /// What was agreed with the peer, from OpenConfirm on.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// RFC 4271's ConnectRetryCounter: failures since the last start or stop.
    pub fn connect_retry_counter(&self) -> u32 {
        self.connect_retry_counter
    }

    /// When `timer` expires, if it runs.
    pub fn timer(&self, timer: Timer) -> Option<Instant> {
        match timer {
            Timer::ConnectRetry => self.connect_retry,
            Timer::Hold => self.hold,
            Timer::Keepalive => self.keepalive,
            Timer::IdleHold => self.idle_hold,
        }
    }

    /// The earliest running timer: call [`handle_timeout`](Self::handle_timeout) then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.connect_retry,
            self.hold,
            self.keepalive,
            self.idle_hold,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next thing to do, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn handle(&mut self, input: Input<'_>, now: Instant) {
        match input {
            Input::ManualStart => {
                if self.state == State::Idle {
                    self.start(now);
                }
            }
            Input::ManualStop => self.shutdown("", now),
            Input::Connected => self.connected(now),
            Input::ConnectionFailed => self.connection_failed(now),
            Input::Received(bytes) => self.receive(bytes, now),
            Input::BfdDown => {
                // A connection being opened or not yet made is left to its own timers.
                if self.is_connected() {
                    let n = NotificationRepr::new(code::CEASE, cease::BFD_DOWN);
                    self.fail(DownReason::BfdDown, Some(n), now);
                }
            }
        }
    }

    /// Stops the session (ManualStop), telling a connected peer why: Cease / Administrative
    /// Shutdown with `message` (RFC 8203, RFC 9003; none when empty). It stays Idle until
    /// [`Input::ManualStart`].
    pub fn shutdown(&mut self, message: &str, now: Instant) {
        let notification = self
            .is_connected()
            .then(|| NotificationRepr::administrative_shutdown(message));
        if self.state != State::Idle {
            self.go_idle(DownReason::Stopped, notification, now);
        }
        self.idle_hold = None;
        self.connect_retry_counter = 0;
    }

    /// Handles every timer due at `now`; a timer that one of them stops or starts waits for
    /// the next call (so a failure's automatic restart is not taken in the same breath).
    pub fn handle_timeout(&mut self, now: Instant) {
        let entry = [
            self.hold,
            self.keepalive,
            self.connect_retry,
            self.idle_hold,
        ];
        let due = |t: Option<Instant>, i: usize| {
            t.is_some_and(|t| t <= now) && entry.get(i).is_some_and(|e| *e == t)
        };
        if due(self.hold, 0) {
            self.hold = None;
            let n = NotificationRepr::new(code::HOLD_TIMER_EXPIRED, 0);
            self.fail(DownReason::HoldTimerExpired, Some(n), now);
        }
        if due(self.keepalive, 1) {
            self.send(&Message::Keepalive);
            self.keepalive = Some(now + self.keepalive_interval());
        }
        if due(self.connect_retry, 2) {
            self.connect_retry = Some(now + self.config.connect_retry);
            match self.state {
                // Give up the attempt and try again.
                State::Connect => {
                    self.out.push_back(Output::Close);
                    self.out.push_back(Output::Connect);
                }
                State::Active => {
                    self.out.push_back(Output::Connect);
                    self.state = State::Connect;
                }
                // It runs in no other state.
                _ => self.connect_retry = None,
            }
        }
        if due(self.idle_hold, 3) {
            self.idle_hold = None;
            if self.state == State::Idle {
                self.start(now);
            }
        }
    }

    /// Sends an UPDATE; Established only. Restarts the keepalive timer (RFC 4271 §4.4).
    pub fn send_update(&mut self, update: &UpdateRepr, now: Instant) -> Result<(), SendError> {
        if self.state != State::Established {
            return Err(SendError::NotEstablished(self.state));
        }
        let bytes = Message::Update(Box::new(update.clone())).emit(self.context())?;
        self.out.push_back(Output::Send(bytes));
        if self.keepalive.is_some() {
            self.keepalive = Some(now + self.keepalive_interval());
        }
        Ok(())
    }

    fn is_connected(&self) -> bool {
        matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        )
    }

    fn context(&self) -> Context {
        Context {
            four_octet_as: self.negotiated.as_ref().is_some_and(|n| n.four_octet_as),
        }
    }

    fn keepalive_interval(&self) -> Duration {
        self.negotiated
            .as_ref()
            .map_or(Duration::ZERO, |n| n.keepalive)
    }

    fn send(&mut self, msg: &Message) {
        if let Ok(bytes) = msg.emit(self.context()) {
            self.out.push_back(Output::Send(bytes));
        }
    }

    /// ManualStart or AutomaticStart in Idle (§8.2.2).
    fn start(&mut self, now: Instant) {
        self.idle_hold = None;
        self.connect_retry_counter = 0;
        self.connect_retry = Some(now + self.config.connect_retry);
        self.out.push_back(Output::Connect);
        self.state = State::Connect;
    }

    /// A connection the peer opened (event 17 for it): taken, moving to Active so that
    /// [`Input::Connected`] sends our OPEN on it, unless this session already has a TCP
    /// connection (OpenSent or later: refused, the owner closes it) or was stopped by hand. It
    /// also ends an automatic restart's wait: the peer is there. The owner drops its own dial.
    pub fn accept(&mut self, now: Instant) -> bool {
        match self.state {
            State::Idle if self.idle_hold.is_some() => {
                self.idle_hold = None;
                self.connect_retry_counter = 0;
            }
            State::Connect | State::Active => {}
            _ => return false,
        }
        self.connect_retry = Some(now + self.config.connect_retry);
        self.state = State::Active;
        true
    }

    /// Events 16/17: in Connect or Active, send OPEN and wait for the peer's.
    fn connected(&mut self, now: Instant) {
        if !matches!(self.state, State::Connect | State::Active) {
            // Idle: no attempt was asked for; later states: we never take a second connection.
            return;
        }
        self.connect_retry = None;
        self.rx.clear();
        self.send(&Message::Open(self.config.open()));
        self.hold = Some(now + self.config.open_hold);
        self.state = State::OpenSent;
    }

    /// Event 18.
    fn connection_failed(&mut self, now: Instant) {
        match self.state {
            State::Idle => {}
            // §8.2.2 Connect, no DelayOpen: to Idle, the counter unchanged.
            State::Connect => self.go_idle(DownReason::ConnectionFailed, None, now),
            // OpenSent: close, and wait for ConnectRetry in Active.
            State::OpenSent => {
                self.hold = None;
                self.rx.clear();
                self.out.push_back(Output::Close);
                self.out.push_back(Output::Event(SessionEvent::Down(
                    DownReason::ConnectionFailed,
                )));
                self.connect_retry = Some(now + self.config.connect_retry);
                self.state = State::Active;
            }
            State::Active | State::OpenConfirm | State::Established => {
                self.fail(DownReason::ConnectionFailed, None, now);
            }
        }
    }

    /// Frames and handles every whole message in what has arrived.
    fn receive(&mut self, bytes: &[u8], now: Instant) {
        match self.state {
            State::Idle => return,
            State::Connect | State::Active => {
                return self.fail(DownReason::UnexpectedBytes, None, now);
            }
            _ => {}
        }
        self.rx.extend_from_slice(bytes);
        while self.is_connected() {
            let len = match wire::frame(&self.rx) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => return self.malformed(&e, now),
            };
            let msg: Vec<u8> = self.rx.drain(..len).collect();
            self.message(&msg, now);
        }
    }

    /// One whole message, its header already checked.
    fn message(&mut self, msg: &[u8], now: Instant) {
        let Ok(Some(header)) = wire::Header::parse(msg) else {
            return;
        };
        let expected = match (self.state, header.kind) {
            (_, MessageType::Notification) => true,
            (State::OpenSent, kind) => kind == MessageType::Open,
            (State::OpenConfirm, kind) => kind == MessageType::Keepalive,
            (_, kind) => kind != MessageType::Open,
        };
        if !expected {
            let subcode = match self.state {
                State::OpenSent => 1,
                State::OpenConfirm => 2,
                _ => 3,
            };
            let n = NotificationRepr::new(code::FSM, subcode);
            return self.fail(DownReason::NotificationSent(n.clone()), Some(n), now);
        }
        match Message::parse(msg, self.context()) {
            Ok(parsed) => self.handle_message(parsed, now),
            Err(e) => self.malformed(&e, now),
        }
    }

    fn handle_message(&mut self, msg: Message, now: Instant) {
        match msg {
            Message::Notification(n) => {
                // Event 24 (version error) leaves the counter alone; Event 25 counts.
                if n.is_version_error() {
                    self.go_idle(DownReason::NotificationReceived(n), None, now);
                } else {
                    self.fail(DownReason::NotificationReceived(n), None, now);
                }
            }
            Message::Open(open) => match self.config.negotiate(&open) {
                Ok(negotiated) => {
                    let hold = negotiated.hold_time;
                    let keepalive = negotiated.keepalive;
                    self.negotiated = Some(negotiated);
                    self.send(&Message::Keepalive);
                    let running = !hold.is_zero();
                    self.hold = running.then(|| now + hold);
                    self.keepalive = running.then(|| now + keepalive);
                    self.state = State::OpenConfirm;
                }
                Err(e) => self.malformed(&e, now),
            },
            Message::Keepalive => {
                self.restart_hold(now);
                if self.state == State::OpenConfirm {
                    self.state = State::Established;
                    self.restart_delay = Duration::ZERO;
                    if let Some(n) = self.negotiated.clone() {
                        self.event(SessionEvent::Established(n));
                    }
                }
            }
            Message::Update(update) => {
                self.restart_hold(now);
                self.event(SessionEvent::Update(update));
            }
            Message::RouteRefresh(refresh) => {
                if !self.config.route_refresh {
                    // We never said we understand it: to us it is an unknown type.
                    let e = WireError::BadMessageType(MessageType::RouteRefresh as u8);
                    return self.malformed(&e, now);
                }
                // RFC 2918 §4: a family we did not agree on is ignored.
                let wanted = self
                    .negotiated
                    .as_ref()
                    .is_some_and(|n| n.route_refresh && n.families.contains(&refresh.family));
                self.restart_hold(now);
                if wanted {
                    self.event(SessionEvent::RouteRefreshRequested(refresh));
                }
            }
        }
    }

    fn restart_hold(&mut self, now: Instant) {
        if let Some(n) = &self.negotiated
            && !n.hold_time.is_zero()
        {
            self.hold = Some(now + n.hold_time);
        }
    }

    fn event(&mut self, event: SessionEvent) {
        self.out.push_back(Output::Event(event));
    }

    /// A message that breaks the rules: its NOTIFICATION, then Idle.
    fn malformed(&mut self, e: &WireError, now: Instant) {
        let n = e.notification();
        self.fail(DownReason::NotificationSent(n.clone()), Some(n), now);
    }

    /// An error: to Idle, counted (ConnectRetryCounter + 1).
    fn fail(&mut self, reason: DownReason, notification: Option<NotificationRepr>, now: Instant) {
        self.go_idle(reason, notification, now);
        self.connect_retry_counter = self.connect_retry_counter.saturating_add(1);
    }

    /// Sends `notification`, closes, stops every timer, reports `reason`, and arms the
    /// automatic restart unless stopped by hand.
    fn go_idle(
        &mut self,
        reason: DownReason,
        notification: Option<NotificationRepr>,
        now: Instant,
    ) {
        if let Some(mut n) = notification {
            n.data
                .truncate(wire::MAX_MESSAGE_LEN - wire::HEADER_LEN - 2);
            self.send(&Message::Notification(n));
        }
        self.out.push_back(Output::Close);
        let stopped = reason == DownReason::Stopped;
        self.event(SessionEvent::Down(reason));
        self.state = State::Idle;
        self.rx.clear();
        self.negotiated = None;
        self.connect_retry = None;
        self.hold = None;
        self.keepalive = None;
        self.idle_hold = None;
        if self.config.automatic_start && !stopped {
            self.idle_hold = Some(now + self.restart_delay);
            let next = (self.restart_delay * 2).max(Duration::from_secs(1));
            self.restart_delay = next.min(self.config.max_restart_delay);
        }
    }
}

#[cfg(test)]
#[path = "fsm_tests.rs"]
mod fsm_tests;

#[cfg(test)]
#[path = "negotiate_tests.rs"]
mod negotiate_tests;

#[cfg(test)]
#[path = "pair_tests.rs"]
mod pair_tests;
