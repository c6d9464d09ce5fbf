//! The verified-token cache: a repeated token is remembered, but never past
//! its `exp`, never beyond its `auth_time` limit, never once the key that
//! verified it has left the key set, and never beyond the configured size.

use std::time::Duration;

use crate::common::{app, get_with_token, serve};
use meingpt_auth::MeinGptAuth;
use meingpt_auth::testing::{MockClock, MockIssuer, key_generation, verified_token_count};

const SECOND: Duration = Duration::from_secs(1);

/// Waits until `key_generation(&auth)` moves past `generation`; fails the
/// test if it has not within 5 s.
async fn wait_for_key_change(auth: &MeinGptAuth, generation: Option<u64>) {
    for _ in 0..500 {
        if key_generation(auth) != generation {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the cached key set did not change within 5 s (generation {generation:?})");
}

#[tokio::test]
async fn a_repeated_token_is_remembered_once_and_answered_alike() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let base = serve(app(&auth)).await;
    let token = issuer.token().sub("repeat").sign();

    for _ in 0..5 {
        let seen = get_with_token(&format!("{base}/me"), &token).await;
        assert_eq!(seen.status, 200);
        assert_eq!(seen.json()["sub"], "repeat");
    }
    assert_eq!(verified_token_count(&auth), 1);
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn a_remembered_token_is_refused_once_it_expires() {
    let issuer = MockIssuer::start().await;
    let clock = MockClock::new();
    let auth = issuer.auth().clock(clock.clone()).build().unwrap();
    let base = serve(app(&auth)).await;
    let now = clock_secs(&clock);
    let token = issuer.token().expires_at(now + 5).sign();

    assert_eq!(
        get_with_token(&format!("{base}/me"), &token).await.status,
        200
    );
    assert_eq!(verified_token_count(&auth), 1);

    // Past exp plus the 30 s default leeway.
    clock.advance(36 * SECOND);
    get_with_token(&format!("{base}/me"), &token)
        .await
        .assert_invalid_token("the token has expired");
}

#[tokio::test]
async fn a_remembered_token_is_refused_once_its_authentication_is_too_old() {
    let issuer = MockIssuer::start().await;
    let clock = MockClock::new();
    let auth = issuer
        .auth()
        .clock(clock.clone())
        .max_auth_age(Duration::from_secs(300))
        .build()
        .unwrap();
    let base = serve(app(&auth)).await;
    let token = issuer
        .token()
        .claim("auth_time", clock_secs(&clock) - 200)
        .sign();

    assert_eq!(
        get_with_token(&format!("{base}/me"), &token).await.status,
        200
    );
    clock.advance(200 * SECOND);
    let seen = get_with_token(&format!("{base}/me"), &token).await;
    assert_eq!(seen.status, 401);
    assert_eq!(seen.json()["error"], "insufficient_user_authentication");
}

#[tokio::test]
async fn a_remembered_token_is_refused_once_its_key_leaves_the_key_set() {
    let issuer = MockIssuer::start().await;
    let clock = MockClock::new();
    let auth = issuer
        .auth()
        .clock(clock.clone())
        .jwks_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let base = serve(app(&auth)).await;
    let old = issuer.token().sign();
    assert_eq!(
        get_with_token(&format!("{base}/me"), &old).await.status,
        200
    );

    let new_kid = issuer.rotate();
    issuer.unpublish("key-1");
    let fresh = issuer.token().sign();
    assert_ne!(new_kid, "key-1");

    // Past the TTL the cache hit itself starts the background refresh.
    clock.advance(61 * SECOND);
    let generation = key_generation(&auth);
    assert_eq!(
        get_with_token(&format!("{base}/me"), &old).await.status,
        200
    );
    wait_for_key_change(&auth, generation).await;
    assert_eq!(issuer.fetch_count(), 2);

    get_with_token(&format!("{base}/me"), &old)
        .await
        .assert_invalid_token("the token's signature is invalid");
    assert_eq!(
        get_with_token(&format!("{base}/me"), &fresh).await.status,
        200
    );
}

#[tokio::test]
async fn a_refresh_that_keeps_every_key_keeps_remembered_tokens() {
    let issuer = MockIssuer::start().await;
    let clock = MockClock::new();
    let auth = issuer
        .auth()
        .clock(clock.clone())
        .jwks_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let base = serve(app(&auth)).await;
    let token = issuer.token().sign();
    assert_eq!(
        get_with_token(&format!("{base}/me"), &token).await.status,
        200
    );

    issuer.rotate(); // adds a key, drops none
    clock.advance(61 * SECOND);
    let generation = key_generation(&auth);
    assert_eq!(
        get_with_token(&format!("{base}/me"), &token).await.status,
        200
    );
    wait_for_key_change(&auth, generation).await;
    assert!(
        key_generation(&auth) > generation,
        "the refresh did not install a newer key set"
    );
    assert_eq!(issuer.fetch_count(), 2);
    assert_eq!(
        get_with_token(&format!("{base}/me"), &token).await.status,
        200
    );
    assert_eq!(verified_token_count(&auth), 1);
}

#[tokio::test]
async fn the_cache_is_bounded_and_can_be_turned_off() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().verified_token_cache(10).build().unwrap();
    for n in 0..100 {
        let token = issuer.token().sub(&format!("user-{n}")).sign();
        assert_eq!(
            auth.verify(&token).await.unwrap().sub(),
            format!("user-{n}")
        );
    }
    assert!(
        verified_token_count(&auth) <= 10,
        "{}",
        verified_token_count(&auth)
    );

    let off = issuer.auth().verified_token_cache(0).build().unwrap();
    let base = serve(app(&off)).await;
    let token = issuer.token().sign();
    for _ in 0..3 {
        assert_eq!(
            get_with_token(&format!("{base}/me"), &token).await.status,
            200
        );
    }
    assert_eq!(verified_token_count(&off), 0);
}

#[tokio::test]
async fn bad_tokens_are_never_remembered() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let expired = issuer.token().expires_at(1_000).sign();
    let wrong_audience = issuer.token().audience("someone-else").sign();
    for token in [&expired, &wrong_audience] {
        assert!(auth.verify(token).await.is_err());
        assert!(auth.verify(token).await.is_err());
    }
    assert_eq!(verified_token_count(&auth), 0);
}

fn clock_secs(clock: &MockClock) -> i64 {
    use meingpt_auth::Clock;
    clock.now().as_secs() as i64
}

/// A compact JWS with `claims`, MACed with HS256 under `secret`.
fn hs256_token(secret: &[u8], claims: serde_json::Value) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let input = format!("{header}.{}", B64.encode(claims.to_string()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

/// A token one authenticator remembers is never taken as verified by
/// another, even for the very same bytes on the same thread and with keys
/// (here: static secrets) that no key set withdraws.
#[tokio::test]
async fn a_token_remembered_by_one_authenticator_is_not_accepted_by_another_on_the_same_thread() {
    use meingpt_auth::{Algorithm, StaticKey};
    let build = |secret: &[u8]| {
        MeinGptAuth::static_key(
            "https://opengpts.example",
            StaticKey::secret(Algorithm::HS256, secret),
        )
        .audience("my-api")
        .build()
        .unwrap()
    };
    let ours = build(b"the first service's secret, 32 bytes or more");
    let theirs = build(b"another service's own secret, also 32+ bytes");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = hs256_token(
        b"the first service's secret, 32 bytes or more",
        serde_json::json!({
            "iss": "https://opengpts.example",
            "aud": "my-api",
            "sub": "user-1",
            "exp": now + 600,
        }),
    );

    // Verified, then remembered.
    for _ in 0..3 {
        assert_eq!(ours.verify(&token).await.unwrap().sub(), "user-1");
    }
    assert_eq!(verified_token_count(&ours), 1);
    let refusal = theirs.verify(&token).await.unwrap_err();
    assert_eq!(refusal.to_string(), "the token's signature is invalid");
    assert_eq!(verified_token_count(&theirs), 0);
    assert_eq!(ours.verify(&token).await.unwrap().sub(), "user-1");
}

#[tokio::test]
async fn the_user_carries_the_tokens_payload_segment_fresh_remembered_and_from_any_source() {
    use axum::Router;
    use axum::routing::get;
    use meingpt_auth::{MeinGptUser, TokenSource};

    let issuer = MockIssuer::start().await;
    let token = issuer
        .token()
        .sub("segment")
        .claim("note", serde_json::json!("ü/+?=="))
        .sign();
    let segment = token.split('.').nth(1).unwrap().to_owned();
    for cache in [10_000, 0] {
        let auth = issuer
            .auth()
            .verified_token_cache(cache)
            .token_sources([TokenSource::Cookie("session".into())])
            .build()
            .unwrap();
        let app = Router::new()
            .route(
                "/payload",
                get(|user: MeinGptUser| async move { user.payload_segment().to_owned() }),
            )
            .layer(auth.layer());
        let base = serve(app).await;
        // The first answer verifies the token, the others remember it.
        for round in 0..3 {
            let seen = crate::common::get_with(
                &format!("{base}/payload"),
                &[("cookie", &format!("session={token}"))],
            )
            .await;
            assert_eq!(seen.status, 200, "cache {cache}, round {round}");
            assert_eq!(seen.body, segment, "cache {cache}, round {round}");
        }
        let user = auth.verify(&token).await.unwrap();
        assert_eq!(user.payload_segment(), segment);
        assert_eq!(user.claim("note"), Some(&serde_json::json!("ü/+?==")));
    }
}

#[tokio::test]
async fn an_authenticator_with_other_token_sources_shares_the_keys_and_remembered_tokens() {
    use meingpt_auth::TokenSource;

    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let from_cookie = auth.with_token_sources([TokenSource::Cookie("session".into())]);
    assert_eq!(
        from_cookie.token_sources(),
        [TokenSource::Cookie("session".into())]
    );
    let by_header = serve(app(&auth)).await;
    let by_cookie = serve(app(&from_cookie)).await;
    let token = issuer.token().sub("shared").sign();

    let seen = get_with_token(&format!("{by_header}/me"), &token).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    let cookie = format!("session={token}");
    let seen = crate::common::get_with(&format!("{by_cookie}/me"), &[("cookie", &cookie)]).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert!(seen.body.contains("\"shared\""), "{}", seen.body);
    // Each reads its own sources only.
    let seen = get_with_token(&format!("{by_cookie}/me"), &token).await;
    assert_eq!(seen.status, 401);
    let seen = crate::common::get_with(&format!("{by_header}/me"), &[("cookie", &cookie)]).await;
    assert_eq!(seen.status, 401);

    // One key set, one remembered token, for both.
    assert_eq!(issuer.fetch_count(), 1);
    assert_eq!(verified_token_count(&auth), 1);
    assert_eq!(verified_token_count(&from_cookie), 1);
}
