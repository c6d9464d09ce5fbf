//! What deciding whether a request may be decided on costs, per request
//! (`cargo bench -p meingpt-gateway --bench admission`).
//!
//! - `path/*`: [`RequestPath::parse`] (one percent-decoding, dot and empty
//!   segments) plus [`route_for`] (unusual characters, the longest prefix,
//!   the `;parameters` and case readings) over six routes, for paths as
//!   they come: plain, percent-encoded, with `;parameters`, long.
//! - `forward_auth/*`: [`OriginalRequest::read`] over the headers nginx's
//!   `auth_request` sends (a token, a cookie, browser headers), then the
//!   path checks and the route, as the forward-auth endpoint does them.
//! - `baseline/parse_request_target`: what hyper already spends on each
//!   request's target (`http::Uri` from the plain path), to read the
//!   figures above against in one run on a busy machine.
//! - `proxy/*`: the proxy's header work this package adds per request:
//!   the trusted-proxy lookup, and removing the original-request headers
//!   from a browser's twelve headers (none of them such a header; the
//!   header map's clone is set up outside the measurement).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::uri::Authority;
use http::{HeaderMap, HeaderValue};
use meingpt_gateway::admission::{
    OriginalRequest, OriginalRequestHeaders, RequestPath, TrustedProxies,
    remove_original_request_headers,
};
use meingpt_gateway::routes::{Policy, Route, Upstream, route_for};
use meingpt_gateway::upgrade::Upgrades;

fn route(prefix: &str, policy: Policy) -> Route {
    Route {
        prefix: prefix.to_owned(),
        upstream: Upstream::new(Authority::from_static("127.0.0.1:9000"), String::new()),
        policy,
        forward_token: false,
        strip_prefix: false,
        frame_ancestors: None,
        inject_headers: Vec::new(),
        allow_unusual_path_characters: false,
        upgrades: Upgrades::default(),
        protected_resource: None,
        embed: None,
    }
}

fn routes() -> Vec<Route> {
    vec![
        route("/", Policy::signed_in()),
        route("/api", Policy::signed_in()),
        route(
            "/admin",
            Policy::new(vec!["admin".into()], Vec::new(), Vec::new()),
        ),
        route("/mcp", Policy::signed_in()),
        route("/public", Policy::public()),
        route("/files", Policy::signed_in()),
    ]
}

const PATHS: [(&str, &str); 5] = [
    ("plain", "/api/v1/users/42/profile"),
    ("root", "/"),
    (
        "encoded",
        "/files/Jahresbericht%202026%20%C3%BCbersicht.pdf",
    ),
    ("parameters", "/api/v1/session;jsessionid=4f2a9c/items"),
    (
        "long",
        "/public/static/js/vendor/chunks/app.3f2a1b9c.module.min.js/sourcemaps/deep/path/segment/here",
    ),
];

/// The headers nginx's `auth_request` sends the gateway for a browser's
/// request (`deploy/nginx.conf`).
fn nginx_subrequest(uri: &'static str) -> HeaderMap {
    let token = format!(
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImtleS0xIiwidHlwIjoiSldUIn0.{}.{}",
        "e".repeat(600),
        "s".repeat(342)
    );
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "meingpt_gateway"),
        ("x-original-uri", uri),
        ("x-original-method", "GET"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "de-DE,de;q=0.9,en;q=0.8"),
        ("accept-encoding", "gzip, deflate, br"),
        (
            "cookie",
            "theme=dark; _ga=GA1.1.123456789.1700000000; lang=de",
        ),
        ("referer", "https://app.example.com/dashboard"),
        ("sec-fetch-site", "same-origin"),
        ("sec-fetch-mode", "navigate"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert("x-meingpt-jwt", HeaderValue::try_from(token).unwrap());
    headers
}

fn admission(c: &mut Criterion) {
    let routes = routes();

    c.bench_function("baseline/parse_request_target", |b| {
        b.iter(|| black_box(http::Uri::try_from(black_box(PATHS[0].1)).unwrap()))
    });

    let mut group = c.benchmark_group("path");
    for (name, path) in PATHS {
        group.bench_function(name, |b| {
            b.iter(|| {
                let path = RequestPath::parse(black_box(path)).unwrap();
                black_box(route_for(&routes, &path).unwrap().map(|(index, _)| index))
            })
        });
    }
    group.finish();

    let names = OriginalRequestHeaders::default();
    let mut group = c.benchmark_group("forward_auth");
    for (name, uri) in [
        ("plain", "/api/v1/users/42/profile?page=2&sort=name"),
        (
            "encoded",
            "/files/Jahresbericht%202026%20%C3%BCbersicht.pdf",
        ),
    ] {
        let headers = nginx_subrequest(uri);
        group.bench_function(name, |b| {
            b.iter(|| {
                let original = OriginalRequest::read(black_box(&headers), None, &names).unwrap();
                let path = RequestPath::parse(original.path.unwrap()).unwrap();
                black_box(route_for(&routes, &path).unwrap().map(|(index, _)| index))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("proxy");
    let trusted = TrustedProxies::parse(["10.0.0.0/8", "192.168.0.0/16", "::1"]).unwrap();
    let peer = "203.0.113.9".parse().unwrap();
    group.bench_function("trusted_proxies_lookup", |b| {
        b.iter(|| black_box(trusted.contains(black_box(peer))))
    });
    let mut browser = nginx_subrequest("/");
    browser.remove("x-original-uri");
    browser.remove("x-original-method");
    group.bench_function("remove_original_request_headers", |b| {
        b.iter_batched(
            || browser.clone(),
            |mut headers| {
                remove_original_request_headers(&mut headers);
                headers
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, admission);
criterion_main!(benches);
