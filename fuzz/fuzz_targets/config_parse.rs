//! Any text: config parsing never panics (and never hangs: the parser has input budgets), and
//! an accepted config names each pool once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = ferrolb::config::parse(text) {
        let mut names = HashSet::new();
        for pool in &config.address_pools {
            assert!(names.insert(pool.name.as_str()), "duplicate pool {}", pool.name);
        }
    }
});
