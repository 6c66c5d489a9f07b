//! ARP and NDP codecs (pure), AF_PACKET socket I/O and the announce schedule.

pub mod iface;
pub mod socket;
mod sys;
