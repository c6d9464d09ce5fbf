//! Verification cost, side by side in one run (`cargo bench --bench verify`).
//!
//! - `floor/rsa2048_pkcs1_sha256`: one raw RSA-2048 signature check with
//!   aws-lc-rs, key parsed once — the physical floor.
//! - `jsonwebtoken/decode`: `jsonwebtoken::decode` with the same key.
//! - `ours/verify_fresh`: our verifier on a token it has not seen.
//! - `ours/verify_repeated`: the same token again (verified-token cache).
//! - `layer/fresh`, `layer/repeated`: the full layer, `oneshot` through an
//!   axum router; `layer/no_auth` is the same route without the layer;
//!   `layer/repeated_with_resource` is `layer/repeated` with a protected
//!   resource (RFC 9728) configured; `layer/refused` and
//!   `layer/refused_with_resource` answer a request without a token (`401`,
//!   the challenge naming the metadata in the latter).
//! - `extract/*`: finding the token in the request headers.
//! - `cold_start/200_concurrent`: 200 requests at once against an empty
//!   cache (one JWKS fetch).
//! - `token_size/*`, `jwks_keys/*`: how the fresh cost grows with token size
//!   and with the number of keys in the JWKS.

use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Request};
use meingpt_auth::testing::{Fault, MockIssuer};
use meingpt_auth::{MeinGptAuth, MeinGptUser, ProtectedResource, TokenSource};
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use tower::ServiceExt;

struct Fixture {
    runtime: Runtime,
    issuer: MockIssuer,
}

fn fixture() -> Fixture {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let issuer = runtime.block_on(MockIssuer::start());
    Fixture { runtime, issuer }
}

fn auth(fixture: &Fixture, cache: u64) -> MeinGptAuth {
    let auth = fixture
        .issuer
        .auth()
        .verified_token_cache(cache)
        .max_token_size(64 * 1024)
        .build()
        .unwrap();
    fixture.runtime.block_on(auth.preload()).unwrap();
    auth
}

/// `auth(fixture, 10_000)` with a protected resource, whose metadata every
/// challenge names.
fn auth_with_resource(fixture: &Fixture) -> MeinGptAuth {
    let auth = fixture
        .issuer
        .auth()
        .verified_token_cache(10_000)
        .max_token_size(64 * 1024)
        .protected_resource(
            ProtectedResource::new("https://mcp.example.com/mcp").scopes_supported(["mcp:tools"]),
        )
        .build()
        .unwrap();
    fixture.runtime.block_on(auth.preload()).unwrap();
    auth
}

fn router(auth: &MeinGptAuth) -> Router {
    Router::new()
        .route(
            "/me",
            get(|user: MeinGptUser| async move { user.sub().len().to_string() }),
        )
        .layer(auth.layer())
}

fn request(token: &str) -> Request<Body> {
    Request::get("/me")
        .header("x-meingpt-jwt", token)
        .body(Body::empty())
        .unwrap()
}

fn side_by_side(c: &mut Criterion) {
    let fixture = fixture();
    let token = fixture.issuer.token().sign();
    let jwk = fixture.issuer.public_jwk();
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();

    let mut group = c.benchmark_group("verify");

    // The floor: the signature check alone.
    let components = aws_lc_rs::signature::RsaPublicKeyComponents {
        n: &n[..],
        e: &e[..],
    };
    let parsed: ParsedPublicKey = components
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .unwrap();
    let (message, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    group.bench_function("floor/rsa2048_pkcs1_sha256", |b| {
        b.iter(|| {
            parsed
                .verify_sig(message.as_bytes(), std::hint::black_box(&signature))
                .unwrap()
        })
    });

    // jsonwebtoken's own decode, same key, same checks (iss, aud, exp).
    let key = jsonwebtoken::DecodingKey::from_rsa_raw_components(&n, &e);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[fixture.issuer.organization()]);
    validation.set_issuer(&[fixture.issuer.issuer()]);
    group.bench_function("jsonwebtoken/decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<Value>(std::hint::black_box(&token), &key, &validation).unwrap()
        })
    });

    let fresh = auth(&fixture, 0);
    group.bench_function("ours/verify_fresh", |b| {
        b.to_async(&fixture.runtime)
            .iter(|| async { fresh.verify(std::hint::black_box(&token)).await.unwrap() })
    });
    let cached = auth(&fixture, 10_000);
    group.bench_function("ours/verify_repeated", |b| {
        b.to_async(&fixture.runtime)
            .iter(|| async { cached.verify(std::hint::black_box(&token)).await.unwrap() })
    });

    let plain = Router::new().route("/me", get(|| async { "1" }));
    group.bench_function("layer/no_auth", |b| {
        b.to_async(&fixture.runtime)
            .iter(|| async { plain.clone().oneshot(request(&token)).await.unwrap() })
    });
    let fresh_router = router(&fresh);
    group.bench_function("layer/fresh", |b| {
        b.to_async(&fixture.runtime).iter(|| async {
            let response = fresh_router.clone().oneshot(request(&token)).await.unwrap();
            assert_eq!(response.status(), 200);
        })
    });
    let cached_router = router(&cached);
    group.bench_function("layer/repeated", |b| {
        b.to_async(&fixture.runtime).iter(|| async {
            let response = cached_router
                .clone()
                .oneshot(request(&token))
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        })
    });

    // The same, with a protected resource configured (RFC 9728): the
    // accepted path must cost what `layer/repeated` costs.
    let resource = auth_with_resource(&fixture);
    let resource_router = router(&resource);
    group.bench_function("layer/repeated_with_resource", |b| {
        b.to_async(&fixture.runtime).iter(|| async {
            let response = resource_router
                .clone()
                .oneshot(request(&token))
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        })
    });

    // A refusal (no token): the challenge, with and without the
    // `resource_metadata` parameter.
    let missing = || Request::get("/me").body(Body::empty()).unwrap();
    group.bench_function("layer/refused", |b| {
        b.to_async(&fixture.runtime).iter(|| async {
            let response = cached_router.clone().oneshot(missing()).await.unwrap();
            assert_eq!(response.status(), 401);
        })
    });
    group.bench_function("layer/refused_with_resource", |b| {
        b.to_async(&fixture.runtime).iter(|| async {
            let response = resource_router.clone().oneshot(missing()).await.unwrap();
            assert_eq!(response.status(), 401);
        })
    });

    let mut headers = HeaderMap::new();
    headers.insert("x-meingpt-jwt", HeaderValue::from_str(&token).unwrap());
    let mut bearer = HeaderMap::new();
    bearer.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    group.bench_function("extract/meingpt_header", |b| {
        b.iter(|| TokenSource::MeinGptHeader.find(std::hint::black_box(&headers)))
    });
    group.bench_function("extract/bearer_after_missing_meingpt_header", |b| {
        b.iter(|| {
            let headers = std::hint::black_box(&bearer);
            TokenSource::MeinGptHeader
                .find(headers)
                .unwrap()
                .or(TokenSource::AuthorizationBearer.find(headers).unwrap())
        })
    });
    group.finish();
}

fn cold_start(c: &mut Criterion) {
    let fixture = fixture();
    let token = fixture.issuer.token().sign();
    let mut group = c.benchmark_group("cold_start");
    group.sample_size(20);
    group.bench_function("200_concurrent", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let auth = fixture.issuer.auth().build().unwrap();
                let router = router(&auth);
                let before = fixture.issuer.fetch_count();
                let started = Instant::now();
                fixture.runtime.block_on(async {
                    let mut tasks = tokio::task::JoinSet::new();
                    for _ in 0..200 {
                        let router = router.clone();
                        let request = request(&token);
                        tasks.spawn(async move { router.oneshot(request).await.unwrap().status() });
                    }
                    while let Some(status) = tasks.join_next().await {
                        assert_eq!(status.unwrap(), 200);
                    }
                });
                total += started.elapsed();
                assert_eq!(
                    fixture.issuer.fetch_count() - before,
                    1,
                    "one fetch per cold start"
                );
            }
            total
        })
    });
    group.finish();
}

fn scaling(c: &mut Criterion) {
    let fixture = fixture();
    let fresh = auth(&fixture, 0);

    let mut group = c.benchmark_group("token_size");
    for size in [1024usize, 4096, 16 * 1024] {
        let base = fixture.issuer.token().sign().len();
        // Base64 grows 4/3: pad the claims so the whole token is ~`size`.
        let padding = (size.saturating_sub(base + 20)) * 3 / 4;
        let token = fixture
            .issuer
            .token()
            .claim("padding", "x".repeat(padding))
            .sign();
        group.throughput(Throughput::Bytes(token.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("verify_fresh", size),
            &token,
            |b, token| {
                b.to_async(&fixture.runtime)
                    .iter(|| async { fresh.verify(token).await.unwrap() })
            },
        );
    }
    group.finish();

    let mut group = c.benchmark_group("jwks_keys");
    let real = fixture.issuer.public_jwk();
    for count in [1usize, 10, 100] {
        // Other keys first, the signing key last: the worst case for a scan.
        let mut keys: Vec<Value> = (1..count)
            .map(|i| {
                let mut other = real.clone();
                other["kid"] = json!(format!("other-{i}"));
                other
            })
            .collect();
        keys.push(real.clone());
        fixture
            .issuer
            .fail(Fault::Body(json!({ "keys": keys }).to_string()));
        let auth = auth(&fixture, 0);
        let token = fixture.issuer.token().sign();
        group.bench_with_input(
            BenchmarkId::new("verify_fresh", count),
            &token,
            |b, token| {
                b.to_async(&fixture.runtime)
                    .iter(|| async { auth.verify(token).await.unwrap() })
            },
        );
    }
    fixture.issuer.recover();
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = side_by_side, cold_start, scaling
}
criterion_main!(benches);
