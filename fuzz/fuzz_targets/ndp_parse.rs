//! Any bytes: NDP parsing never panics, and whatever parses re-emits to a frame that parses to
//! the same value. The first input byte chooses whether the ICMPv6 checksum is repaired before
//! parsing, so the fuzzer gets past the checksum to the option walker and the RFC 4861 rules.
#![no_main]

#[path = "checksum.rs"]
mod checksum;

use checksum::frame_from_input;
use ferrolb::layer2::NdpRepr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(frame) = frame_from_input(data) else {
        return;
    };
    if let Ok(repr) = NdpRepr::parse(&frame) {
        let again = NdpRepr::parse(&repr.to_vec());
        assert_eq!(again, Ok(repr));
    }
});
