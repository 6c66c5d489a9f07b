//! Authenticated envelope around every gossip datagram, and replay protection (pure).
//!
//! Wire format (all integers big-endian):
//!
//! ```text
//! version u8 (=1) | epoch u64 | seq u64 | name_len u8 | sender name | foca payload | HMAC-SHA256 tag (32)
//! ```
//!
//! The tag covers every byte before it, under a key derived from the shared secret. Replays are
//! refused with a per-sender sliding window over `(epoch, seq)`, keyed by the *authenticated*
//! sender name (never by the UDP source address, which an attacker can spoof):
//!
//! - `epoch` is fixed for the life of a sender process (its start time in ms); a higher epoch means
//!   the sender restarted and resets its window, a lower one is an old capture and is refused;
//! - `seq` counts up per packet; the last [`WINDOW`] sequence numbers are remembered in a bitmap,
//!   so reordering on the wire is tolerated but each packet is accepted once.
//!
//! This is IPsec's anti-replay scheme. It was chosen over a timestamp window because it needs no
//! clock agreement between nodes: a node with a skewed clock would otherwise be silently unable to
//! gossip and its IPs would fail over for no reason. The cost is one small entry per sender.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::key::GossipKey;

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 1;
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
    pub epoch: u64,
    pub seq: u64,
    pub payload: &'a [u8],
}

/// Seals outgoing payloads for one sender.
pub struct Sealer {
    key: PacketKey,
    name: Vec<u8>,
    epoch: u64,
    next_seq: u64,
}

impl Sealer {
    /// `name` must be at most [`MAX_NAME_LEN`] bytes (checked by the config).
    pub fn new(key: PacketKey, name: &str, epoch: u64) -> Self {
        let mut name = name.as_bytes().to_vec();
        name.truncate(MAX_NAME_LEN);
        Self {
            key,
            name,
            epoch,
            next_seq: 1,
        }
    }

    pub fn seal(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut packet =
            Vec::with_capacity(FIXED_HEADER + self.name.len() + payload.len() + TAG_LEN);
        packet.push(VERSION);
        packet.extend_from_slice(&self.epoch.to_be_bytes());
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
    if packet.len() < FIXED_HEADER + TAG_LEN || packet[0] != VERSION {
        return Err(Rejected::Malformed);
    }
    let (body, tag) = packet.split_at(packet.len() - TAG_LEN);
    let mut mac = key.0.clone();
    mac.update(body);
    mac.verify_slice(tag).map_err(|_| Rejected::BadTag)?;

    let epoch = u64::from_be_bytes(body[1..9].try_into().map_err(|_| Rejected::Malformed)?);
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
        epoch,
        seq,
        payload,
    })
}

struct SenderWindow {
    epoch: u64,
    highest: u64,
    /// Bit `i` set: `highest - i` was seen.
    seen: u64,
    last_heard: u64,
}

/// Remembers which `(epoch, seq)` each sender has used.
#[derive(Default)]
pub struct ReplayGuard {
    senders: HashMap<String, SenderWindow>,
    tick: u64,
}

impl ReplayGuard {
    /// Records the packet and says whether it is fresh.
    pub fn accept(&mut self, sender: &str, epoch: u64, seq: u64) -> bool {
        self.tick += 1;
        let tick = self.tick;
        let Some(window) = self.senders.get_mut(sender) else {
            self.forget_oldest_if_full();
            self.senders.insert(
                sender.to_string(),
                SenderWindow {
                    epoch,
                    highest: seq,
                    seen: 1,
                    last_heard: tick,
                },
            );
            return true;
        };
        if epoch < window.epoch {
            return false;
        }
        if epoch > window.epoch {
            *window = SenderWindow {
                epoch,
                highest: seq,
                seen: 1,
                last_heard: tick,
            };
            return true;
        }
        if seq > window.highest {
            let shift = seq - window.highest;
            window.seen = if shift >= WINDOW {
                0
            } else {
                window.seen << shift
            };
            window.seen |= 1;
            window.highest = seq;
        } else {
            let age = window.highest - seq;
            if age >= WINDOW || window.seen & (1 << age) != 0 {
                return false;
            }
            window.seen |= 1 << age;
        }
        window.last_heard = tick;
        true
    }

    fn forget_oldest_if_full(&mut self) {
        if self.senders.len() < MAX_SENDERS {
            return;
        }
        let oldest = self
            .senders
            .iter()
            .min_by_key(|(_, w)| w.last_heard)
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
                epoch: 42,
                seq: 1,
                payload: b"hello"
            }
        );
        assert_eq!(open(&key(b"0123456789abcdef"), &second).unwrap().seq, 2);
        assert_eq!(
            open(&key(b"fedcba9876543210"), &first),
            Err(Rejected::BadTag)
        );
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
        other_version[0] = 2;
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
        // A restart (higher epoch) resets; the old epoch is refused from then on.
        assert!(guard.accept("a", 11, 1));
        assert!(!guard.accept("a", 10, 101));
        assert!(guard.accept("a", 11, 2));
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
