//! Pool address entries (`10.0.0.0/24`, `10.0.0.1-10.0.0.9`) and the overlap check.
//!
//! Overlap is found by sorting every range of every pool once and sweeping, O(n log n) in the
//! number of entries: a /8 or a /64 costs the same as a /32, and no address is ever enumerated.

use std::net::IpAddr;

use ipnet::IpNet;

use super::error::{Rule, Subject, ValidationError};
use super::schema::{AddressRange, ip_to_u128};

/// One valid `addresses` entry.
#[derive(Debug, Clone)]
pub(crate) struct ParsedAddress {
    pub text: String,
    pub range: AddressRange,
    /// Shortest prefix length among the CIDRs covering the entry (a range is summarised into
    /// CIDRs first), which MetalLB compares with the aggregation length.
    pub shortest_prefix: u8,
}

/// Parses one entry, MetalLB style: a `-` makes it a range, anything else must be a CIDR.
pub(crate) fn parse_address(text: &str) -> Result<ParsedAddress, (Rule, String)> {
    let Some((first, last)) = text.split_once('-') else {
        return parse_cidr(text);
    };
    let parse_end = |s: &str, which: &str| {
        s.trim().parse::<IpAddr>().map_err(|_| {
            (
                Rule::InvalidRange,
                format!(
                    "invalid IP range {text:?}: invalid {which} IP {:?}",
                    s.trim()
                ),
            )
        })
    };
    let start = parse_end(first, "start")?;
    let end = parse_end(last, "end")?;
    if start.is_ipv4() != end.is_ipv4() {
        return Err((
            Rule::MixedFamilyRange,
            format!(
                "invalid IP range {text:?}: start IP {start} and end IP {end} are of different \
                 address families"
            ),
        ));
    }
    if ip_to_u128(start) > ip_to_u128(end) {
        return Err((
            Rule::RangeStartAfterEnd,
            format!("invalid IP range {text:?}: start IP {start} is after the end IP {end}"),
        ));
    }
    let bits = if start.is_ipv4() { 32 } else { 128 };
    Ok(ParsedAddress {
        text: text.to_owned(),
        range: AddressRange { start, end },
        shortest_prefix: shortest_summary_prefix(ip_to_u128(start), ip_to_u128(end), bits),
    })
}

fn parse_cidr(text: &str) -> Result<ParsedAddress, (Rule, String)> {
    // Like Go's net.ParseCIDR, host bits are allowed and masked off: 10.0.0.7/24 is 10.0.0.0/24.
    let net: IpNet = text.trim().parse().map_err(|_| {
        let hint = if text.trim().parse::<IpAddr>().is_ok() {
            " (a single address needs a prefix length, e.g. /32 or /128)"
        } else {
            ""
        };
        (Rule::InvalidCidr, format!("invalid CIDR {text:?}{hint}"))
    })?;
    Ok(ParsedAddress {
        text: text.to_owned(),
        range: AddressRange {
            start: net.network(),
            end: net.broadcast(),
        },
        shortest_prefix: net.prefix_len(),
    })
}

/// The shortest prefix among the CIDRs that exactly cover `[start, end]` in a `bits`-wide space.
///
/// Greedy summarisation: from `start`, take the largest aligned block that does not pass `end`.
/// At most 2 * bits blocks, so this is constant time.
/// The shortest prefix length among the CIDRs summarising `range` (a CIDR's own length).
pub(crate) fn shortest_prefix(range: &AddressRange) -> u8 {
    let bits = if range.start.is_ipv4() { 32 } else { 128 };
    shortest_summary_prefix(ip_to_u128(range.start), ip_to_u128(range.end), bits)
}

fn shortest_summary_prefix(start: u128, end: u128, bits: u32) -> u8 {
    let mut shortest = bits;
    let mut cur = start;
    loop {
        // Alignment of `cur` bounds the block size; start 0 is aligned to everything.
        let align = if cur == 0 {
            bits
        } else {
            cur.trailing_zeros().min(bits)
        };
        let span = end - cur; // addresses after cur still to cover
        // Largest k with 2^k - 1 <= span (and k <= align).
        let fit = if span == u128::MAX {
            128
        } else {
            127 - (span + 1).leading_zeros()
        };
        let k = align.min(fit);
        shortest = shortest.min(bits - k);
        if k >= 128 {
            break;
        }
        let last = cur + ((1u128 << k) - 1);
        if last >= end {
            break;
        }
        cur = last + 1;
    }
    // bits - k is at most 128, which fits in u8.
    u8::try_from(shortest).unwrap_or(u8::MAX)
}

/// A valid entry with where it came from, for the cross-pool sweep.
struct Located<'a> {
    pub pool_index: usize,
    pub entry_index: usize,
    pub pool_subject: &'a Subject,
    pub address: &'a ParsedAddress,
}

/// Reports every address entry of `pools` (each a subject and its entries, in blame order) that
/// overlaps one before it, within a pool or across pools: the one overlap rule of both config
/// sources.
pub(crate) fn report_overlaps<'a>(
    pools: impl IntoIterator<Item = (&'a Subject, &'a [ParsedAddress])>,
    errors: &mut Vec<ValidationError>,
) {
    let located = pools
        .into_iter()
        .enumerate()
        .flat_map(|(pool_index, (pool_subject, addresses))| {
            addresses
                .iter()
                .enumerate()
                .map(move |(entry_index, address)| Located {
                    pool_index,
                    entry_index,
                    pool_subject,
                    address,
                })
        })
        .collect();
    find_overlaps(located, errors);
}

/// Reports every entry that overlaps an entry defined before it (in file order), within the same
/// pool or across pools.
fn find_overlaps(mut entries: Vec<Located<'_>>, errors: &mut Vec<ValidationError>) {
    let key = |e: &Located<'_>| {
        (
            e.address.range.start.is_ipv6(),
            ip_to_u128(e.address.range.start),
        )
    };
    entries.sort_by_key(|e| key(e));
    // `reach` is the entry reaching furthest so far within the current family: any later-sorted
    // entry starting at or before its end overlaps it.
    let mut reach: Option<&Located<'_>> = None;
    for cur in &entries {
        let cur_v6 = cur.address.range.start.is_ipv6();
        if let Some(prev) = reach
            .filter(|p| p.address.range.start.is_ipv6() == cur_v6)
            .filter(|p| ip_to_u128(cur.address.range.start) <= ip_to_u128(p.address.range.end))
        {
            report_overlap(prev, cur, errors);
        }
        let extends = match reach {
            Some(p) if p.address.range.start.is_ipv6() == cur_v6 => {
                ip_to_u128(cur.address.range.end) > ip_to_u128(p.address.range.end)
            }
            _ => true,
        };
        if extends {
            reach = Some(cur);
        }
    }
}

fn report_overlap(a: &Located<'_>, b: &Located<'_>, errors: &mut Vec<ValidationError>) {
    // Blame the one defined later in the file, as MetalLB does ("already defined").
    let (earlier, later) = if (a.pool_index, a.entry_index) <= (b.pool_index, b.entry_index) {
        (a, b)
    } else {
        (b, a)
    };
    let place = if earlier.pool_index == later.pool_index {
        "in the same pool".to_owned()
    } else {
        format!("in {}", earlier.pool_subject)
    };
    errors.push(ValidationError::new(
        later.pool_subject.clone(),
        "addresses",
        Rule::OverlappingAddresses,
        format!(
            "CIDR {:?} overlaps with already defined CIDR {:?} {place}",
            later.address.text, earlier.address.text
        ),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> u128 {
        ip_to_u128(s.parse().unwrap())
    }

    #[test]
    fn summary_prefix_of_aligned_block_is_its_prefix() {
        assert_eq!(
            shortest_summary_prefix(v4("10.0.0.0"), v4("10.0.0.255"), 32),
            24
        );
    }

    #[test]
    fn summary_prefix_of_unaligned_range_is_largest_inner_block() {
        // 10.0.0.1-10.0.0.130 = .1/32 .2/31 .4/30 .8/29 .16/28 .32/27 .64/26 .128/31 .130/32
        assert_eq!(
            shortest_summary_prefix(v4("10.0.0.1"), v4("10.0.0.130"), 32),
            26
        );
        assert_eq!(
            shortest_summary_prefix(v4("10.0.0.5"), v4("10.0.0.5"), 32),
            32
        );
    }

    #[test]
    fn summary_prefix_of_whole_spaces() {
        assert_eq!(shortest_summary_prefix(0, u128::from(u32::MAX), 32), 0);
        assert_eq!(shortest_summary_prefix(0, u128::MAX, 128), 0);
        assert_eq!(shortest_summary_prefix(1, u128::MAX, 128), 1);
    }

    #[test]
    fn cidr_host_bits_are_masked_like_go() {
        let p = parse_address("192.0.2.7/24").unwrap();
        assert_eq!(p.range.start, "192.0.2.0".parse::<IpAddr>().unwrap());
        assert_eq!(p.range.end, "192.0.2.255".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn range_with_spaces_is_trimmed() {
        let p = parse_address("2001:db8::1 - 2001:db8::ff").unwrap();
        assert_eq!(p.range.len(), 255);
        assert_eq!(p.shortest_prefix, 121);
    }
}
