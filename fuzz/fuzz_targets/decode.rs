//! Fuzzes `catalog_core::decode` with arbitrary bytes: it must never panic, and whatever it
//! accepts must encode to a message that decodes to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(event) = catalog_core::decode(bytes) {
        let encoded = catalog_core::encode(&event);
        assert_eq!(catalog_core::decode(encoded.as_bytes()), Ok(event), "encode then decode is the identity");
    }
});
