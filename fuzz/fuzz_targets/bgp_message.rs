//! Any bytes: BGP framing and message parsing never panic, in either AS width, and whatever
//! parses re-emits to a message that parses to the same value. The first input byte chooses the
//! AS width (bit 0: 4-octet AS numbers) and whether the header's length is repaired to the
//! input's (bit 1), so the fuzzer gets past the header into the OPEN, UPDATE and attribute rules.
#![no_main]

use ferrolb::bgp::wire::{Context, HEADER_LEN, Message, frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let context = Context {
        four_octet_as: flags & 1 == 1,
    };
    let mut msg = rest.to_vec();
    if flags & 2 == 2 && msg.len() >= HEADER_LEN && msg.len() <= u16::MAX as usize {
        let len = (msg.len() as u16).to_be_bytes();
        msg[16] = len[0];
        msg[17] = len[1];
    }
    let _ = frame(&msg);
    if let Ok(parsed) = Message::parse(&msg, context) {
        let again = parsed
            .emit(context)
            .expect("a parsed message always emits again");
        assert_eq!(Message::parse(&again, context), Ok(parsed));
    }
});
