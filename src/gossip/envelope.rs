//! Authenticated envelope around every gossip datagram, and replay protection (pure).
//!
//! Wire format (all integers big-endian):
//!
//! ```text
//! version u8 (=2) | incarnation u64 | seq u64 | name_len u8 | sender name | foca payload | HMAC-SHA256 tag (32)
//! ```
//!
//! The tag covers every byte before it, under a key derived from the shared secret. Replays are
//! refused with a sliding window over `seq` per *authenticated* sender name and incarnation (never
//! by the UDP source address, which an attacker can spoof):
//!
//! - `incarnation` is a random non-zero number drawn when the sender process starts; it is never
//!   compared for order, so no clock is involved: a sender restarted with its clock stepped back is
//!   simply a new incarnation, accepted like any other;
//! - `seq` counts up per packet from 1; the last [`WINDOW`] sequence numbers of each incarnation
//!   are remembered in a bitmap, so reordering on the wire is tolerated but each packet is
//!   accepted once.
//!
//! The last [`INCARNATIONS_PER_SENDER`] incarnations of each sender keep their windows, so replays
//! of a recent former process are refused too. What a replay can still do: deliver, once, a
//! packet of an incarnation this receiver has not heard (or has forgotten). SWIM then sees a member
//! identity that cannot answer probes (its process is gone) and declares it down within one
//! failure-detection round; see `NodeId` for why that identity never displaces the live one.
//! This is IPsec's anti-replay window with a random epoch instead of an ordered one; it needs no
//! clock agreement between nodes nor a clock that only moves forward.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::key::GossipKey;

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 2;
const FIXED_HEADER: usize = 1 + 8 + 8 + 1;
const TAG_LEN: usize = 32;
/// Longest node name (a DNS subdomain, as Kubernetes node names are).
pub const MAX_NAME_LEN: usize = 253;
/// Envelope bytes around a foca payload in the worst case (longest name).
pub const MAX_OVERHEAD: usize = FIXED_HEADER + MAX_NAME_LEN + TAG_LEN;
/// Sequence numbers remembered per sender.
pub const WINDOW: u64 = 64;
/// Senders remembered at most; the least recently heard is forgotten first. Only authenticated
/// packets create entries, so this bounds memory, not an attacker's reach.
const MAX_SENDERS: usize = 4096;
/// Incarnations (process lifetimes) remembered per sender; the least recently heard goes first.
pub const INCARNATIONS_PER_SENDER: usize = 4;

/// Keyed MAC, derived once so the raw shared secret is used for nothing but this derivation
/// (domain separation if the same secret ever serves another purpose).
#[derive(Clone)]
pub struct PacketKey(HmacSha256);

impl PacketKey {
    pub fn derive(key: &GossipKey) -> Self {
        let mut kdf = keyed(key.as_bytes());
        kdf.update(b"ferrolb gossip v1");
        Self(keyed(&kdf.finalize().into_bytes()))
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC hashes or pads keys of any length, so this error cannot happen whatever the input
    // (hmac's `InvalidLength` exists only for MACs with fixed key sizes).
    #[allow(clippy::expect_used)]
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// Why a datagram was dropped before reaching SWIM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Too short, unknown version or a bad name: not one of our packets.
    Malformed,
    /// The tag does not match: wrong key or tampered.
    BadTag,
    /// Authentic but already seen, or older than the sender's current window.
    Replayed,
}

/// An authenticated packet.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    pub sender: &'a str,
    pub incarnation: u64,
    pub seq: u64,
    pub payload: &'a [u8],
}

/// Seals outgoing payloads for one sender.
pub struct Sealer {
    key: PacketKey,
    name: Vec<u8>,
    incarnation: u64,
    next_seq: u64,
}

impl Sealer {
    /// `name` must be at most [`MAX_NAME_LEN`] bytes (checked by the config).
    pub fn new(key: PacketKey, name: &str, incarnation: u64) -> Self {
        let mut name = name.as_bytes().to_vec();
        name.truncate(MAX_NAME_LEN);
        Self {
            key,
            name,
            incarnation,
            next_seq: 1,
        }
    }

    /// Seals from now on with `key` (a key rotation); the counter goes on.
    pub fn set_key(&mut self, key: PacketKey) {
        self.key = key;
    }

    pub fn seal(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut packet =
            Vec::with_capacity(FIXED_HEADER + self.name.len() + payload.len() + TAG_LEN);
        packet.push(VERSION);
        packet.extend_from_slice(&self.incarnation.to_be_bytes());
        packet.extend_from_slice(&self.next_seq.to_be_bytes());
        // `Sealer::new` truncated the name, so the length fits in a byte.
        packet.push(self.name.len() as u8);
        packet.extend_from_slice(&self.name);
        packet.extend_from_slice(payload);
        let mut mac = self.key.0.clone();
        mac.update(&packet);
        packet.extend_from_slice(&mac.finalize().into_bytes());
        self.next_seq = self.next_seq.wrapping_add(1);
        packet
    }
}

/// Checks the tag (in constant time) and splits the packet. Does not check for replay.
pub fn open<'a>(key: &PacketKey, packet: &'a [u8]) -> Result<Opened<'a>, Rejected> {
    open_with(std::slice::from_ref(key), packet)
}

/// [`open`] with any of `keys` (during a key rotation): the packet is authentic if one matches.
pub fn open_with<'a>(keys: &[PacketKey], packet: &'a [u8]) -> Result<Opened<'a>, Rejected> {
    if packet.len() < FIXED_HEADER + TAG_LEN || packet[0] != VERSION {
        return Err(Rejected::Malformed);
    }
    let (body, tag) = packet.split_at(packet.len() - TAG_LEN);
    let authentic = keys.iter().any(|key| {
        let mut mac = key.0.clone();
        mac.update(body);
        mac.verify_slice(tag).is_ok()
    });
    if !authentic {
        return Err(Rejected::BadTag);
    }

    let incarnation = u64::from_be_bytes(body[1..9].try_into().map_err(|_| Rejected::Malformed)?);
    let seq = u64::from_be_bytes(body[9..17].try_into().map_err(|_| Rejected::Malformed)?);
    let name_len = usize::from(body[17]);
    let rest = &body[FIXED_HEADER..];
    if name_len == 0 || name_len > rest.len() {
        return Err(Rejected::Malformed);
    }
    let (name, payload) = rest.split_at(name_len);
    let sender = std::str::from_utf8(name).map_err(|_| Rejected::Malformed)?;
    Ok(Opened {
        sender,
        incarnation,
        seq,
        payload,
    })
}

struct Window {
    incarnation: u64,
    highest: u64,
    /// Bit `i` set: `highest - i` was seen.
    seen: u64,
    last_heard: u64,
}

impl Window {
    fn new(incarnation: u64, seq: u64, tick: u64) -> Self {
        Self {
            incarnation,
            highest: seq,
            seen: 1,
            last_heard: tick,
        }
    }

    fn accept(&mut self, seq: u64, tick: u64) -> bool {
        if seq > self.highest {
            let shift = seq - self.highest;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = seq;
        } else {
            let age = self.highest - seq;
            if age >= WINDOW || self.seen & (1 << age) != 0 {
                return false;
            }
            self.seen |= 1 << age;
        }
        self.last_heard = tick;
        true
    }
}

struct Sender {
    /// At most [`INCARNATIONS_PER_SENDER`].
    windows: Vec<Window>,
    last_heard: u64,
}

/// Remembers which `(incarnation, seq)` each sender has used.
#[derive(Default)]
pub struct ReplayGuard {
    senders: HashMap<String, Sender>,
    tick: u64,
}

impl ReplayGuard {
    /// Records the packet and says whether it is fresh. An incarnation not heard before is a new
    /// process of that sender (or one this receiver never heard): it gets a window of its own,
    /// and the windows of the sender's other incarnations are kept, not reset.
    pub fn accept(&mut self, sender: &str, incarnation: u64, seq: u64) -> bool {
        self.tick += 1;
        let tick = self.tick;
        if !self.senders.contains_key(sender) {
            self.forget_oldest_if_full();
        }
        let entry = self
            .senders
            .entry(sender.to_string())
            .or_insert_with(|| Sender {
                windows: Vec::new(),
                last_heard: tick,
            });
        let fresh = match entry
            .windows
            .iter_mut()
            .find(|w| w.incarnation == incarnation)
        {
            Some(window) => window.accept(seq, tick),
            None => {
                if entry.windows.len() >= INCARNATIONS_PER_SENDER
                    && let Some(oldest) = entry
                        .windows
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, w)| w.last_heard)
                        .map(|(i, _)| i)
                {
                    entry.windows.swap_remove(oldest);
                }
                entry.windows.push(Window::new(incarnation, seq, tick));
                true
            }
        };
        if fresh {
            entry.last_heard = tick;
        }
        fresh
    }

    fn forget_oldest_if_full(&mut self) {
        if self.senders.len() < MAX_SENDERS {
            return;
        }
        let oldest = self
            .senders
            .iter()
            .min_by_key(|(_, s)| s.last_heard)
            .map(|(name, _)| name.clone());
        if let Some(name) = oldest {
            self.senders.remove(&name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(text: &[u8]) -> PacketKey {
        PacketKey::derive(&GossipKey::from_bytes(text, "test").unwrap())
    }

    #[test]
    fn sealed_packets_open_with_the_same_key_only() {
        let mut sealer = Sealer::new(key(b"0123456789abcdef"), "node-a", 42);
        let first = sealer.seal(b"hello");
        let second = sealer.seal(b"");
        let opened = open(&key(b"0123456789abcdef"), &first).unwrap();
        assert_eq!(
            opened,
            Opened {
                sender: "node-a",
                incarnation: 42,
                seq: 1,
                payload: b"hello"
            }
        );
        assert_eq!(open(&key(b"0123456789abcdef"), &second).unwrap().seq, 2);
        assert_eq!(
            open(&key(b"fedcba9876543210"), &first),
            Err(Rejected::BadTag)
        );
        // Either key of a rotation opens it; neither of two wrong ones does.
        let both = [key(b"fedcba9876543210"), key(b"0123456789abcdef")];
        assert_eq!(open_with(&both, &first).unwrap().seq, 1);
        let wrong = [key(b"fedcba9876543210"), key(b"another-key-0123")];
        assert_eq!(open_with(&wrong, &first), Err(Rejected::BadTag));
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let k = key(b"0123456789abcdef");
        let packet = Sealer::new(k.clone(), "node-a", 7).seal(b"payload");
        for byte in 0..packet.len() {
            for bit in 0..8 {
                let mut bad = packet.clone();
                bad[byte] ^= 1 << bit;
                assert!(open(&k, &bad).is_err(), "flip {byte}:{bit} accepted");
            }
        }
    }

    #[test]
    fn truncated_and_foreign_packets_are_malformed() {
        let k = key(b"0123456789abcdef");
        let packet = Sealer::new(k.clone(), "node-a", 7).seal(b"payload");
        assert_eq!(
            open(&k, &packet[..FIXED_HEADER + TAG_LEN - 1]),
            Err(Rejected::Malformed)
        );
        assert_eq!(open(&k, &[]), Err(Rejected::Malformed));
        let mut other_version = packet.clone();
        other_version[0] = 1;
        assert_eq!(open(&k, &other_version), Err(Rejected::Malformed));
    }

    #[test]
    fn authentic_but_lying_name_length_is_malformed() {
        // A key holder with a bug must not make us read past the body.
        let k = key(b"0123456789abcdef");
        let mut body = vec![VERSION];
        body.extend_from_slice(&1u64.to_be_bytes());
        body.extend_from_slice(&1u64.to_be_bytes());
        body.push(200);
        body.extend_from_slice(b"short");
        let mut mac = k.0.clone();
        mac.update(&body);
        body.extend_from_slice(&mac.finalize().into_bytes());
        assert_eq!(open(&k, &body), Err(Rejected::Malformed));
    }

    #[test]
    fn replay_window_accepts_each_packet_once_and_tolerates_reordering() {
        let mut guard = ReplayGuard::default();
        assert!(guard.accept("a", 10, 5));
        assert!(!guard.accept("a", 10, 5), "exact replay");
        assert!(guard.accept("a", 10, 3), "late but unseen");
        assert!(!guard.accept("a", 10, 3));
        assert!(guard.accept("a", 10, 100));
        assert!(
            !guard.accept("a", 10, 100 - WINDOW),
            "fell out of the window"
        );
        assert!(guard.accept("a", 10, 100 - WINDOW + 1));
        // Another sender has its own window.
        assert!(guard.accept("b", 10, 5));
        // A restart is a new incarnation, whatever its number: a window of its own, while the
        // former incarnation's packets stay refused once seen.
        assert!(guard.accept("a", 3, 1));
        assert!(!guard.accept("a", 10, 100), "former incarnation, replayed");
        assert!(guard.accept("a", 3, 2));
        assert!(!guard.accept("a", 3, 1));
    }

    #[test]
    fn a_sender_keeps_its_recent_incarnations_and_forgets_the_oldest() {
        let mut guard = ReplayGuard::default();
        for incarnation in 1..=INCARNATIONS_PER_SENDER as u64 {
            assert!(guard.accept("a", incarnation, 1));
        }
        for incarnation in 1..=INCARNATIONS_PER_SENDER as u64 {
            assert!(
                !guard.accept("a", incarnation, 1),
                "incarnation {incarnation}"
            );
        }
        // Incarnation 1 was the least recently heard when a fifth one appeared.
        assert!(guard.accept("a", 99, 1));
        assert!(guard.accept("a", 1, 1), "forgotten, so accepted once more");
        assert!(!guard.accept("a", 99, 1));
    }

    #[test]
    fn forgets_the_least_recently_heard_sender_when_full() {
        let mut guard = ReplayGuard::default();
        for i in 0..MAX_SENDERS {
            assert!(guard.accept(&format!("n{i}"), 1, 1));
        }
        assert!(
            guard.accept("n0", 1, 2),
            "n0 heard again, n1 is now the oldest"
        );
        assert!(guard.accept("newcomer", 1, 1));
        assert_eq!(guard.senders.len(), MAX_SENDERS);
        assert!(!guard.senders.contains_key("n1"));
        assert!(guard.senders.contains_key("n0"));
    }

    proptest! {
        #[test]
        fn open_never_panics_and_random_bytes_never_authenticate(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert!(open(&key(b"0123456789abcdef"), &bytes).is_err());
        }

        #[test]
        fn replay_guard_accepts_a_sequence_number_at_most_once(seqs in proptest::collection::vec(0u64..200, 0..300)) {
            let mut guard = ReplayGuard::default();
            let mut accepted = std::collections::HashSet::new();
            for seq in seqs {
                if guard.accept("a", 1, seq) {
                    prop_assert!(accepted.insert(seq), "{} accepted twice", seq);
                }
            }
        }
    }
}
