//! BGP community values: `AA:NN` (RFC 1997) and `large:GA:LD1:LD2` (RFC 8092).

use std::collections::BTreeMap;
use std::str::FromStr;

use super::error::{Rule, Subject, ValidationError};
use super::schema::Community;

/// Go's `strconv.ParseUint(s, 10, n)`: decimal digits only (Rust's `from_str` also takes `+`).
fn section<T: FromStr>(s: &str, which: &str, whole: &str) -> Result<T, String> {
    let bad = || format!("invalid {which} section {s:?} of community {whole:?}");
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    s.parse().map_err(|_| bad())
}

/// Parses a community value.
pub fn parse_community(text: &str) -> Result<Community, String> {
    if let Some(rest) = text.strip_prefix("large:") {
        let parts: Vec<&str> = rest.split(':').collect();
        let [ga, ld1, ld2] = parts[..] else {
            return Err(format!(
                "invalid large community {text:?}: expected large:GlobalAdmin:LocalData1:LocalData2"
            ));
        };
        return Ok(Community::Large {
            global_admin: section(ga, "global administrator", text)?,
            local_data1: section(ld1, "first local data", text)?,
            local_data2: section(ld2, "second local data", text)?,
        });
    }
    let parts: Vec<&str> = text.split(':').collect();
    let [asn, value] = parts[..] else {
        return Err(format!(
            "invalid community string {text:?}: expected AA:NN or large:AA:BB:CC"
        ));
    };
    let asn: u16 = section(asn, "first", text)?;
    let value: u16 = section(value, "second", text)?;
    Ok(Community::Standard(
        (u32::from(asn) << 16) | u32::from(value),
    ))
}

/// Validates `bgp-communities`; an alias with an invalid value maps to `None` so references to it
/// are not reported a second time.
pub(crate) fn named_communities(
    raw: &BTreeMap<String, String>,
    errors: &mut Vec<ValidationError>,
) -> BTreeMap<String, Option<Community>> {
    raw.iter()
        .map(|(name, value)| {
            let parsed = parse_community(value)
                .map_err(|msg| {
                    errors.push(ValidationError::new(
                        Subject::Community { name: name.clone() },
                        "bgp-communities",
                        Rule::InvalidCommunity,
                        msg,
                    ));
                })
                .ok();
            (name.clone(), parsed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_community_packs_asn_high() {
        assert_eq!(
            parse_community("65535:65282"),
            Ok(Community::Standard(0xffff_ff02))
        );
        assert_eq!(parse_community("64512:1").unwrap().to_string(), "64512:1");
    }

    #[test]
    fn large_community_round_trips() {
        let c = parse_community("large:4200000000:1:2").unwrap();
        assert_eq!(
            c,
            Community::Large {
                global_admin: 4_200_000_000,
                local_data1: 1,
                local_data2: 2
            }
        );
        assert_eq!(c.to_string(), "large:4200000000:1:2");
    }

    #[test]
    fn rejects_out_of_range_and_malformed() {
        assert!(
            parse_community("65536:1")
                .unwrap_err()
                .contains("first section")
        );
        assert!(
            parse_community("1:+2")
                .unwrap_err()
                .contains("second section")
        );
        assert!(
            parse_community("1:2:3")
                .unwrap_err()
                .contains("expected AA:NN")
        );
        assert!(
            parse_community("large:1:2")
                .unwrap_err()
                .contains("large community")
        );
        assert!(parse_community("large:1:2:4294967296").is_err());
    }
}
