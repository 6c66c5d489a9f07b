//! Prefixes as NLRI carry them (RFC 4271 §4.3, RFC 4760 §5): a length in bits, then the fewest
//! octets that hold it. Bits past the length are ignored when read and written as zero.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use super::Reader;

/// Reads one prefix of at most `max_bits`; `None` when it is cut short or too long.
fn read(r: &mut Reader<'_>, max_bits: u8) -> Option<(u8, [u8; 16])> {
    let bits = r.u8()?;
    if bits > max_bits {
        return None;
    }
    let octets = r.take(usize::from(bits).div_ceil(8))?;
    let mut addr = [0u8; 16];
    addr.get_mut(..octets.len())?.copy_from_slice(octets);
    Some((bits, addr))
}

fn write(out: &mut Vec<u8>, bits: u8, octets: &[u8]) {
    out.push(bits);
    out.extend(octets.iter().take(usize::from(bits).div_ceil(8)).copied());
}

/// Every IPv4 prefix in `field`, or `None` if any is malformed.
pub(crate) fn parse_v4(field: &[u8]) -> Option<Vec<Ipv4Net>> {
    let mut r = Reader::new(field);
    let mut out = Vec::new();
    while !r.is_empty() {
        let (bits, [a, b, c, d, ..]) = read(&mut r, 32)?;
        let addr = Ipv4Addr::new(a, b, c, d);
        out.push(Ipv4Net::new(addr, bits).ok()?.trunc());
    }
    Some(out)
}

/// Every IPv6 prefix in `field`, or `None` if any is malformed.
pub(crate) fn parse_v6(field: &[u8]) -> Option<Vec<Ipv6Net>> {
    let mut r = Reader::new(field);
    let mut out = Vec::new();
    while !r.is_empty() {
        let (bits, a) = read(&mut r, 128)?;
        out.push(Ipv6Net::new(Ipv6Addr::from(a), bits).ok()?.trunc());
    }
    Some(out)
}

pub(crate) fn emit_v4(out: &mut Vec<u8>, prefixes: &[Ipv4Net]) {
    for p in prefixes {
        write(out, p.prefix_len(), &p.trunc().addr().octets());
    }
}

pub(crate) fn emit_v6(out: &mut Vec<u8>, prefixes: &[Ipv6Net]) {
    for p in prefixes {
        write(out, p.prefix_len(), &p.trunc().addr().octets());
    }
}
