//! Arbitrary bytes as a JWKS document: parsing never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = meingpt_auth::fuzzing::parse_jwks(data);
});
