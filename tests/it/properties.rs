//! Properties that must hold for any input, checked with `proptest` on a
//! bounded number of cases each (the whole file runs in seconds):
//!
//! - any header map sent through the layer gets `200` only when it carries
//!   the valid token where the token sources say it is read, and otherwise
//!   exactly the `400` or `401` those rules give; nothing panics;
//! - any string given to the verifier, random or built from real token
//!   pieces, never panics and never verifies unless it is a valid token;
//! - a valid token with any single byte changed never verifies, whether
//!   the verified-token cache is off or warm with the original token.
//!
//! The issuer is a `MockIssuer` on loopback, so the key set is real and
//! fetched once; the layer is driven with `tower::ServiceExt::oneshot`.

use std::cell::Cell;

use axum::Router;
use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderName, HeaderValue, Request, StatusCode};
use meingpt_auth::testing::{MockIssuer, verified_token_count};
use meingpt_auth::{AuthError, MeinGptAuth};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// Cases per property: enough to reach every branch many times over, few
/// enough that the file stays fast in CI.
const CASES: u32 = 512;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        // A failing case is kept in tests/properties.proptest-regressions
        // and tried first from then on.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// An issuer, tokens it signed, and the runtime it runs on (dropped last).
struct World {
    issuer: MockIssuer,
    /// Valid tokens, the first the one the strategies build on.
    valid: Vec<String>,
    runtime: Runtime,
}

impl World {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let issuer = runtime.block_on(MockIssuer::start());
        let valid = (0..3)
            .map(|i| issuer.token().sub(&format!("prop-user-{i}")).sign())
            .collect();
        Self {
            issuer,
            valid,
            runtime,
        }
    }

    fn token(&self) -> &str {
        &self.valid[0]
    }

    /// An authenticator for this issuer; `cache` is the verified-token
    /// cache's capacity (0: off). Its keys are fetched before it is handed
    /// out.
    fn auth(&self, cache: u64) -> MeinGptAuth {
        let auth = self
            .issuer
            .auth()
            .verified_token_cache(cache)
            .build()
            .unwrap();
        self.runtime.block_on(auth.preload()).unwrap();
        auth
    }

    /// Whether `token` verifies; a verification error other than an invalid
    /// token (such as keys becoming unavailable) fails the test.
    fn verifies(&self, auth: &MeinGptAuth, token: &str) -> bool {
        match self.runtime.block_on(auth.verify(token)) {
            Ok(_) => true,
            Err(AuthError::InvalidToken(_)) => false,
            Err(other) => panic!("not a token verdict: {other:?}"),
        }
    }

    /// `GET /me` with these headers through the layer: status and body.
    fn send(&self, router: &Router, headers: &[(HeaderName, HeaderValue)]) -> (StatusCode, String) {
        let mut request = Request::get("/me").body(Body::empty()).unwrap();
        for (name, value) in headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        self.runtime.block_on(async {
            let response = router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        })
    }
}

// ---------------------------------------------------------------------------
// The token sources, as DESIGN states them
// ---------------------------------------------------------------------------

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes
        && is_space(*first)
    {
        bytes = rest;
    }
    while let [rest @ .., last] = bytes
        && is_space(*last)
    {
        bytes = rest;
    }
    bytes
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(value: &[u8]) -> bool {
    let body_len = value.len() - value.iter().rev().take_while(|b| **b == b'=').count();
    body_len > 0
        && value[..body_len]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b))
}

/// The status the layer must answer: `X-meinGPT-JWT` wins when present,
/// then `Authorization: Bearer` (scheme case-insensitive, then space or
/// tab); a source sent twice, empty or not a `b64token` is `400`; the
/// valid token (exactly) is `200`; anything else, or no token, is `401`.
fn expected_status(headers: &[(HeaderName, HeaderValue)], valid: &str) -> StatusCode {
    let verdict = |token: &[u8]| {
        if token.is_empty() || !is_b64token(token) {
            StatusCode::BAD_REQUEST
        } else if token == valid.as_bytes() {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        }
    };
    let meingpt: Vec<&[u8]> = headers
        .iter()
        .filter(|(name, _)| name == "x-meingpt-jwt")
        .map(|(_, value)| trim(value.as_bytes()))
        .collect();
    match meingpt.as_slice() {
        [] => {}
        [token] => return verdict(token),
        _ => return StatusCode::BAD_REQUEST,
    }
    let bearer: Vec<&[u8]> = headers
        .iter()
        .filter(|(name, _)| name == "authorization")
        .map(|(_, value)| trim(value.as_bytes()))
        .filter(|value| {
            value.len() >= 6
                && value[..6].eq_ignore_ascii_case(b"bearer")
                && (value.len() == 6 || is_space(value[6]))
        })
        .map(|value| trim(&value[6..]))
        .collect();
    match bearer.as_slice() {
        [] => StatusCode::UNAUTHORIZED,
        [token] => verdict(token),
        _ => StatusCode::BAD_REQUEST,
    }
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Header names: the token sources in any letter case, near misses, other
/// common headers and random valid names.
fn header_name() -> impl Strategy<Value = HeaderName> {
    let known = prop::sample::select(vec![
        "x-meingpt-jwt",
        "X-meinGPT-JWT",
        "X-MEINGPT-JWT",
        "authorization",
        "Authorization",
        "AUTHORIZATION",
        "x-meingpt-jwt2",
        "x-meingpt",
        "proxy-authorization",
        "cookie",
        "x-forwarded-for",
    ])
    .prop_map(|name| HeaderName::from_bytes(name.as_bytes()).unwrap());
    let random = prop::collection::vec(any::<u8>(), 1..24)
        .prop_filter_map("not a header name", |bytes| {
            HeaderName::from_bytes(&bytes).ok()
        });
    prop_oneof![4 => known, 1 => random]
}

/// Header values: the valid token bare or behind any spelling of `Bearer`
/// with any spacing, mutated tokens, other tokens, token-like noise and
/// random bytes.
fn header_value(valid: String) -> impl Strategy<Value = HeaderValue> {
    let scheme = prop::sample::select(vec![
        "", "Bearer", "bearer", "BEARER", "bEaReR", "Bearerx", "Basic", "Bear", "Token",
    ]);
    let space = prop::sample::select(vec!["", " ", "  ", "\t", " \t "]);
    let tail = prop::sample::select(vec!["", " ", "\t", "=", "==", ".", " x"]);
    let token = {
        let valid = valid.clone();
        prop_oneof![
            4 => Just(valid.clone()),
            1 => (any::<Index>(), 1u8..=255).prop_map({
                let valid = valid.clone();
                move |(at, flip)| {
                    let mut bytes = valid.clone().into_bytes();
                    let at = at.index(bytes.len());
                    bytes[at] ^= flip;
                    String::from_utf8_lossy(&bytes).into_owned()
                }
            }),
            1 => Just(format!("{valid},{valid}")),
            1 => "[A-Za-z0-9._~+/=-]{0,80}",
            1 => Just(String::new()),
        ]
    };
    let composed = (space.clone(), scheme, space.clone(), token, tail)
        .prop_map(|(lead, scheme, gap, token, tail)| format!("{lead}{scheme}{gap}{token}{tail}"));
    let random_text = "[ -~]{0,64}";
    let random_bytes = prop::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        6 => composed.prop_map(String::into_bytes),
        1 => random_text.prop_map(String::into_bytes),
        1 => random_bytes,
    ]
    .prop_filter_map("not a header value", |bytes| {
        HeaderValue::from_bytes(&bytes).ok()
    })
}

/// A proper placement of the valid token, as a client would send it.
fn placement(valid: String) -> impl Strategy<Value = (HeaderName, HeaderValue)> {
    let scheme = prop::sample::select(vec!["Bearer", "bearer", "BEARER"]);
    let space = prop::sample::select(vec![" ", "  ", "\t"]);
    prop_oneof![
        Just((
            HeaderName::from_static("x-meingpt-jwt"),
            HeaderValue::from_str(&valid).unwrap(),
        )),
        (scheme, space).prop_map(move |(scheme, space)| {
            (
                HeaderName::from_static("authorization"),
                HeaderValue::from_str(&format!("{scheme}{space}{valid}")).unwrap(),
            )
        }),
    ]
}

/// Random header entries, half the time with a proper placement of the
/// valid token among them (anywhere).
fn headers(valid: String) -> impl Strategy<Value = Vec<(HeaderName, HeaderValue)>> {
    let random = prop::collection::vec((header_name(), header_value(valid.clone())), 0..5);
    (random, prop::option::of(placement(valid)), any::<Index>()).prop_map(
        |(mut headers, placed, at)| {
            if let Some(entry) = placed {
                headers.insert(at.index(headers.len() + 1), entry);
            }
            headers
        },
    )
}

/// Strings for the verifier: random text, random bytes read as UTF-8,
/// token-shaped noise, and real segments recombined.
fn token_like(world: &World) -> impl Strategy<Value = String> + use<> {
    let segments: Vec<String> = world
        .valid
        .iter()
        .flat_map(|token| token.split('.').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let segment = prop_oneof![
        3 => prop::sample::select(segments),
        1 => "[A-Za-z0-9_-]{0,64}",
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
    ];
    let recombined = prop::collection::vec(segment, 1..6).prop_map(|parts| parts.join("."));
    // Header, claims and signature each from one of the valid tokens: only
    // claims and signature from the same token make a valid one.
    let parts: Vec<Vec<String>> = world
        .valid
        .iter()
        .map(|token| token.split('.').map(str::to_owned).collect())
        .collect();
    let count = parts.len();
    let spliced = (0..count, 0..count, 0..count)
        .prop_map(move |(h, c, s)| format!("{}.{}.{}", parts[h][0], parts[c][1], parts[s][2]));
    prop_oneof![
        2 => spliced,
        1 => any::<String>(),
        1 => prop::collection::vec(any::<u8>(), 0..400)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => "[A-Za-z0-9._=+/ -]{0,400}",
        3 => recombined,
        2 => forged(world),
    ]
}

/// Tokens whose header and claims are hostile variations on a real token,
/// with a random signature.
fn forged(world: &World) -> impl Strategy<Value = String> + use<> {
    let (header, claims) = world.issuer.token().into_parts();
    let kid = world.issuer.current_kid();
    let alg = prop::sample::select(vec![
        json!("RS256"),
        json!("none"),
        json!("HS256"),
        json!("ES256"),
        json!("PS256"),
        json!("rs256"),
        Value::Null,
        json!(["RS256"]),
    ]);
    let kid = prop::sample::select(vec![
        json!(kid),
        json!("../../etc/passwd"),
        json!(""),
        json!(1),
        Value::Null,
    ]);
    let extra = prop::sample::select(vec![
        ("typ", json!("JWT")),
        ("crit", json!([])),
        ("b64", json!(false)),
        ("cty", json!("JWT")),
        ("jku", json!("http://127.0.0.1:9/jwks")),
        ("jwk", json!({"kty": "oct", "k": "AAAA"})),
    ]);
    let claim = prop::sample::select(vec![
        ("exp", json!("9999999999")),
        ("exp", json!(1e300)),
        ("aud", json!([])),
        ("aud", json!(7)),
        ("iss", json!([world.issuer.issuer()])),
        ("sub", Value::Null),
        ("role", json!("admin")),
    ]);
    let signature = prop_oneof![
        prop::collection::vec(any::<u8>(), 256..=256),
        prop::collection::vec(any::<u8>(), 0..600),
    ];
    (alg, kid, extra, claim, signature).prop_map(
        move |(alg, kid, (name, value), (claim, claim_value), signature)| {
            let mut header = header.clone();
            header.insert("alg".into(), alg);
            header.insert("kid".into(), kid);
            header.insert(name.into(), value);
            let mut claims = claims.clone();
            claims.insert(claim.into(), claim_value);
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(Value::Object(header).to_string()),
                URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string()),
                URL_SAFE_NO_PAD.encode(signature)
            )
        },
    )
}

/// A position in the token and a byte different from the one there.
fn single_byte_change() -> impl Strategy<Value = (Index, u8)> {
    (any::<Index>(), 1u8..=255)
}

/// `token` with the byte at `at` XORed with `flip` (never 0).
fn changed(token: &str, at: Index, flip: u8) -> Vec<u8> {
    let mut bytes = token.as_bytes().to_vec();
    let at = at.index(bytes.len());
    bytes[at] ^= flip;
    bytes
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

#[test]
fn any_header_map_gets_200_only_with_the_valid_token_where_the_sources_say() {
    let world = World::new();
    let auth = world.auth(10_000);
    let router = crate::common::app(&auth);
    let valid = world.token().to_owned();
    let seen: [Cell<usize>; 3] = Default::default();

    proptest!(config(), |(headers in headers(valid.clone()))| {
        let (status, body) = world.send(&router, &headers);

        // The safety property on its own: a 200 carries the valid token's
        // user, and the valid token was sent in a token header.
        if status == StatusCode::OK {
            prop_assert!(body.contains("\"sub\":\"prop-user-0\""), "{}", body);
            let sent = headers.iter().any(|(name, value)| {
                (name == "x-meingpt-jwt" || name == "authorization")
                    && value.to_str().is_ok_and(|v| v.contains(valid.as_str()))
            });
            prop_assert!(sent, "{:?}", headers);
        }
        // And exactly what the token-source rules give.
        prop_assert_eq!(status, expected_status(&headers, &valid), "{:?}", headers);
        let outcome = &seen[match status.as_u16() { 200 => 0, 400 => 1, _ => 2 }];
        outcome.set(outcome.get() + 1);
    });

    // The strategies reach every outcome, so the property is not vacuous.
    assert!(seen.iter().all(|count| count.get() > 10), "{seen:?}");
    assert_eq!(world.issuer.fetch_count(), 1);
}

#[test]
fn any_string_given_to_verify_never_panics_and_never_verifies() {
    let world = World::new();
    let auth = world.auth(10_000);

    proptest!(config(), |(token in token_like(&world))| {
        let verified = world.verifies(&auth, &token);
        prop_assert!(!verified || world.valid.contains(&token), "{}", token);
    });

    for token in &world.valid {
        assert!(world.verifies(&auth, token));
    }
    // Random kids cost at most one refetch (the cooldown is 30 s).
    assert!(
        world.issuer.fetch_count() <= 2,
        "{}",
        world.issuer.fetch_count()
    );
}

#[test]
fn a_valid_token_with_any_single_byte_changed_never_verifies() {
    let world = World::new();
    let auth = world.auth(0);
    let router = crate::common::app(&auth);
    let token = world.token().to_owned();
    assert!(world.verifies(&auth, &token));

    proptest!(config(), |((at, flip) in single_byte_change())| {
        let bytes = changed(&token, at, flip);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            prop_assert!(!world.verifies(&auth, text), "{}", text);
        }
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            let header = (HeaderName::from_static("x-meingpt-jwt"), value);
            let (status, _) = world.send(&router, &[header]);
            prop_assert_ne!(status, StatusCode::OK);
        }
    });

    assert!(world.verifies(&auth, &token));
}

#[test]
fn a_changed_byte_never_verifies_while_the_original_token_is_remembered() {
    let world = World::new();
    let auth = world.auth(10_000);
    let token = world.token().to_owned();

    proptest!(config(), |((at, flip) in single_byte_change())| {
        // The original is verified (and remembered) before every mutation,
        // and still verifies after it.
        prop_assert!(world.verifies(&auth, &token));
        let bytes = changed(&token, at, flip);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            prop_assert!(!world.verifies(&auth, text), "{}", text);
        }
        prop_assert!(world.verifies(&auth, &token));
    });

    assert_eq!(verified_token_count(&auth), 1);
    assert_eq!(world.issuer.fetch_count(), 1);
}
