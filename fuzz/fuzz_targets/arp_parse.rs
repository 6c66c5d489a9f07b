//! Any bytes: ARP parsing never panics, and whatever parses re-emits to a frame that parses to
//! the same value.
#![no_main]

use ferrolb::layer2::ArpRepr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    if let Ok(repr) = ArpRepr::parse(frame) {
        let again = ArpRepr::parse(&repr.to_vec());
        assert_eq!(again, Ok(repr));
    }
});
