//! Arbitrary bytes as a token: parsing and verification never panic, and
//! nothing the fuzzer makes verifies (it cannot sign with the HS256 secret).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use meingpt_auth::{Algorithm, MeinGptAuth, StaticKey};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
});
static AUTH: LazyLock<MeinGptAuth> = LazyLock::new(|| {
    MeinGptAuth::static_key(
        "https://issuer.example",
        StaticKey::secret(Algorithm::HS256, [42u8; 32]),
    )
    .audience("fuzz")
    .build()
    .unwrap()
});

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let outcome = RUNTIME.block_on(AUTH.verify(token));
    assert!(outcome.is_err(), "an unsigned input verified");
});
