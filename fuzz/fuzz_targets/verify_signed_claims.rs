//! Arbitrary header and claims JSON, validly signed (HS256 with the
//! configured secret): claim parsing and checks never panic, and whatever
//! verifies really has the configured issuer and audience and a future exp.
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use meingpt_auth::{Algorithm, MeinGptAuth, StaticKey};

const SECRET: [u8; 32] = [7u8; 32];
/// The clock skew tolerated on `exp`, in seconds.
const LEEWAY: u64 = 30;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
});
static AUTH: LazyLock<MeinGptAuth> = LazyLock::new(|| {
    MeinGptAuth::static_key("iss", StaticKey::secret(Algorithm::HS256, SECRET))
        .audience("aud")
        .leeway(Duration::from_secs(LEEWAY))
        .verified_token_cache(64)
        .build()
        .unwrap()
});

fuzz_target!(|data: &[u8]| {
    // header \0 claims
    let mut parts = data.splitn(2, |b| *b == 0);
    let (Some(header), Some(claims)) = (parts.next(), parts.next()) else {
        return;
    };
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, &SECRET);
    let tag = hmac::sign(&key, message.as_bytes());
    let token = format!("{message}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    for _ in 0..2 {
        // The second round is served by the verified-token cache.
        if let Ok(user) = RUNTIME.block_on(AUTH.verify(&token)) {
            assert_eq!(user.issuer(), "iss");
            assert_eq!(user.organization_id(), "aud");
            assert!(!user.sub().is_empty());
            // Read after verifying: the clock only moves forward.
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            let exp = user.expires_at();
            assert!(
                exp.saturating_add(LEEWAY as i64) > now,
                "accepted exp {exp} at {now}"
            );
        }
    }
});
