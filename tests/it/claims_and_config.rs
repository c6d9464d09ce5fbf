//! What the configuration and the claims may and may not mean, end to end:
//! an HMAC secret that is really a public key, roles that only resemble a
//! role, e-mail addresses a user can choose, NumericDates with fractions,
//! the optional access-token profile, team guards by id, and scopes and
//! nested role claims as Keycloak and Entra ID issue them.

use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use meingpt_auth::testing::{MockClock, MockIssuer};
use meingpt_auth::{
    Algorithm, MeinGptAuth, MeinGptAuthBuilder, MeinGptUser, Role, StaticKey, require_all_scopes,
    require_any_scope, require_role, require_scope, require_user,
};
use serde_json::{Value, json};

use crate::common::answers::{
    EXPIRED, INVALID_CLAIM, LIFETIME_TOO_LONG, MISSING_CLAIM, NOT_YET_VALID,
    WRONG_AUTHORIZED_PARTY, WRONG_TOKEN_TYPE,
};
use crate::common::example::{Running, command, example_binary};
use crate::common::{Seen, app, get_with_token, serve};

/// Asserts a `403 insufficient_scope` from a guard.
fn assert_forbidden(seen: &Seen) {
    assert_eq!(seen.status, 403, "body: {}", seen.body);
    let challenge = seen.www_authenticate.as_deref().unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer realm=\"meingpt\", error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert_eq!(seen.json()["error"], "insufficient_scope");
}

// --- A public key is never an HMAC secret --------------------------------------

/// An RSA public key (PKCS#1 DER and SPKI DER) and an EC one (SPKI DER).
struct PublicKeys {
    rsa_pkcs1: Vec<u8>,
    rsa_spki: Vec<u8>,
    ec_spki: Vec<u8>,
    rsa_jwk: Value,
}

fn public_keys(issuer: &MockIssuer) -> PublicKeys {
    let pkcs1 = issuer.public_key_der();
    let rsa = aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        &pkcs1,
    )
    .unwrap();
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    PublicKeys {
        rsa_pkcs1: pkcs1,
        // aws-lc-rs keeps a parsed key as SubjectPublicKeyInfo DER.
        rsa_spki: rsa.as_ref().to_vec(),
        ec_spki: ec.public_key().as_der().unwrap().as_ref().to_vec(),
        rsa_jwk: issuer.public_jwk(),
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Every way the review smuggled a public key into an HS256 secret, named.
fn disguised_public_keys(keys: &PublicKeys) -> Vec<(&'static str, Vec<u8>)> {
    let spki_pem = pem("PUBLIC KEY", &keys.rsa_spki);
    let random_prefix = {
        let mut bytes = vec![0u8; 40];
        SystemRandom::new().fill(&mut bytes).unwrap();
        bytes
    };
    vec![
        ("PEM after a newline", format!("\n{spki_pem}").into_bytes()),
        ("PEM after a space", format!(" {spki_pem}").into_bytes()),
        (
            "PEM after a byte-order mark",
            format!("\u{feff}{spki_pem}").into_bytes(),
        ),
        (
            "PEM with CRLF line ends after a CRLF",
            format!("\r\n{}", spki_pem.replace('\n', "\r\n")).into_bytes(),
        ),
        (
            "PEM inside other text",
            format!("our signing key:\n{spki_pem}thanks").into_bytes(),
        ),
        (
            "PKCS#1 RSA PEM after a tab",
            format!("\t{}", pem("RSA PUBLIC KEY", &keys.rsa_pkcs1)).into_bytes(),
        ),
        ("RSA SPKI DER", keys.rsa_spki.clone()),
        ("RSA PKCS#1 DER", keys.rsa_pkcs1.clone()),
        ("EC SPKI DER", keys.ec_spki.clone()),
        (
            "RSA SPKI DER after random bytes",
            [&random_prefix[..], &keys.rsa_spki, &random_prefix[..8]].concat(),
        ),
        ("JWK JSON", keys.rsa_jwk.to_string().into_bytes()),
        (
            "JWK JSON pretty-printed after a BOM",
            format!(
                "\u{feff}{}",
                serde_json::to_string_pretty(&keys.rsa_jwk).unwrap()
            )
            .into_bytes(),
        ),
        (
            "JWKS JSON",
            json!({"keys": [keys.rsa_jwk]}).to_string().into_bytes(),
        ),
        (
            "JWK JSON with an escaped member name",
            keys.rsa_jwk
                .to_string()
                .replace("\"kty\"", "\"k\\u0074y\"")
                .into_bytes(),
        ),
        (
            "PEM body without armour",
            STANDARD.encode(&keys.rsa_spki).into_bytes(),
        ),
    ]
}

#[tokio::test]
async fn an_hs256_secret_that_holds_a_public_key_in_any_encoding_is_refused_at_build() {
    let issuer = MockIssuer::start().await;
    for (what, secret) in disguised_public_keys(&public_keys(&issuer)) {
        let error = MeinGptAuth::static_key(
            "https://opengpts.example",
            StaticKey::secret(Algorithm::HS256, &secret),
        )
        .audience("my-api")
        .build()
        .map(|_| ())
        .expect_err(what);
        assert_eq!(error.setting(), "static_key", "{what}");
        let line = error.to_string();
        assert!(!line.contains('\n'), "{what}: {line:?}");
        assert!(line.contains("public key"), "{what}: {line}");
    }
    // A random secret of the same lengths is fine.
    for len in [32, 65, 294] {
        let mut secret = vec![0u8; len];
        SystemRandom::new().fill(&mut secret).unwrap();
        MeinGptAuth::static_key(
            "https://opengpts.example",
            StaticKey::secret(Algorithm::HS256, &secret),
        )
        .audience("my-api")
        .build()
        .unwrap();
    }
    assert_eq!(issuer.fetch_count(), 0);
}

#[test]
fn jwt_local_with_a_public_key_as_hs256_secret_exits_with_one_line_naming_jwt_decode_key_b64() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = runtime.block_on(MockIssuer::start());
    let binary = example_binary("quickstart", &["examples/quickstart.rs"]);
    for (what, secret) in disguised_public_keys(&public_keys(&issuer)) {
        let encoded = STANDARD.encode(&secret);
        let mut running = Running::spawn(command(
            &binary,
            &[
                ("AUTH_TYPE", "jwt_local"),
                ("JWT_ISS", "https://opengpts.example"),
                ("JWT_AUD", "my-api"),
                ("JWT_ALG", "HS256"),
                ("JWT_DECODE_KEY_B64", &encoded),
                ("LISTEN_ADDR", "127.0.0.1:0"),
            ],
        ));
        let started = Instant::now();
        let status = running.wait_exit();
        let stdout = running.read_to_end().join("\n");
        let stderr = running.stderr();
        assert!(!status.success(), "{what}: exited with {status}");
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: {stderr:?}");
        assert!(
            lines[0].starts_with("error: JWT_DECODE_KEY_B64 is invalid:"),
            "{what}: {stderr:?}"
        );
        assert!(!stderr.contains(&encoded), "{what}: the key was echoed");
        assert!(!stdout.contains("listening"), "{what}: {stdout:?}");
    }
}

// --- Roles are compared exactly ------------------------------------------------

#[tokio::test]
async fn role_strings_that_only_resemble_admin_do_not_reach_the_admin_route() {
    let issuer = MockIssuer::start().await;
    let base = serve(app(&issuer.auth().build().unwrap())).await;
    let admin = format!("{base}/admin");

    for role in [
        "member,admin",
        "admin,member",
        " admin",
        "admin ",
        "admin\u{3000}",
        "\u{2028}admin",
        "\u{a0}admin",
        "Admin",
    ] {
        let token = issuer.token().role(role).sign();
        assert_forbidden(&get_with_token(&admin, &token).await);
        let me = get_with_token(&format!("{base}/me"), &token).await;
        assert_eq!(me.json()["roles"], json!([role]), "kept verbatim");
    }
    let token = issuer.token().role("admin").sign();
    assert_eq!(get_with_token(&admin, &token).await.status, 200);
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn a_role_array_holds_one_exact_role_per_item() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().role_claim("roles").build().unwrap();
    let base = serve(app(&auth)).await;
    let admin = format!("{base}/admin");

    for roles in [
        json!(["member", "admin\u{a0}"]),
        json!(["member", " admin"]),
        json!(["member,admin"]),
    ] {
        let token = issuer.token().claim("roles", roles.clone()).sign();
        let seen = get_with_token(&admin, &token).await;
        assert_forbidden(&seen);
        let me = get_with_token(&format!("{base}/me"), &token).await;
        assert_eq!(me.json()["roles"], roles);
    }
    let token = issuer
        .token()
        .claim("roles", json!(["member", "admin"]))
        .sign();
    assert_eq!(get_with_token(&admin, &token).await.status, 200);
}

#[tokio::test]
async fn comma_separated_roles_are_split_only_when_configured() {
    let issuer = MockIssuer::start().await;
    let exact = serve(app(&issuer.auth().role_claim("roles").build().unwrap())).await;
    let split = serve(app(&issuer
        .auth()
        .role_claim("roles")
        .roles_comma_separated(true)
        .build()
        .unwrap()))
    .await;

    let listed = issuer.token().claim("roles", "editor,  admin").sign();
    assert_forbidden(&get_with_token(&format!("{exact}/admin"), &listed).await);
    assert_eq!(
        get_with_token(&format!("{split}/admin"), &listed)
            .await
            .status,
        200
    );
    let seen = get_with_token(&format!("{split}/me"), &listed).await;
    assert_eq!(seen.json()["roles"], json!(["editor", "admin"]));

    // Only ASCII spaces around an item are dropped.
    for roles in [
        "editor,\u{a0}admin",
        "editor,admin\u{3000}",
        "editor,\tadmin",
    ] {
        let token = issuer.token().claim("roles", roles).sign();
        assert_forbidden(&get_with_token(&format!("{split}/admin"), &token).await);
    }
}

// --- E-mail from `email` only -----------------------------------------------------

/// `/company` admits e-mail addresses at example.com, as the `require_user`
/// docs show.
async fn serve_company_route(auth: &MeinGptAuth) -> String {
    let router = Router::new()
        .route(
            "/company",
            get(|| async { "company only" }).route_layer(require_user(|user: &MeinGptUser| {
                user.email()
                    .is_some_and(|email| email.ends_with("@example.com"))
            })),
        )
        .route(
            "/me",
            get(|user: MeinGptUser| async move { axum::Json(user) }),
        )
        .layer(auth.layer());
    serve(router).await
}

#[tokio::test]
async fn email_comes_from_the_email_claim_only_and_not_when_unverified() {
    let issuer = MockIssuer::start().await;
    let auth = MeinGptAuth::oidc(issuer.issuer())
        .audience("api")
        .build()
        .unwrap();
    let base = serve_company_route(&auth).await;
    let company = format!("{base}/company");

    // A user who chose their user name to look like a company address.
    for name in ["upn", "preferred_username"] {
        let token = issuer
            .token()
            .audience("api")
            .without("email")
            .claim(name, "mallory@example.com")
            .sign();
        assert_forbidden(&get_with_token(&company, &token).await);
        let me = get_with_token(&format!("{base}/me"), &token).await;
        assert_eq!(me.json()["email"], Value::Null, "{name}");
    }
    // An address the issuer says it has not verified.
    for verified in [json!(false), json!("false")] {
        let token = issuer
            .token()
            .audience("api")
            .email("mallory@example.com")
            .claim("email_verified", verified)
            .sign();
        assert_forbidden(&get_with_token(&company, &token).await);
    }
    let token = issuer
        .token()
        .audience("api")
        .email("ada@example.com")
        .claim("email_verified", true)
        .sign();
    assert_eq!(get_with_token(&company, &token).await.status, 200);
    let token = issuer
        .token()
        .audience("api")
        .claim("email_verified", "yes")
        .sign();
    get_with_token(&company, &token)
        .await
        .assert_invalid_token(INVALID_CLAIM);
}

#[tokio::test]
async fn email_falls_back_to_upn_only_when_the_configuration_asks() {
    let issuer = MockIssuer::start().await;
    let auth = MeinGptAuth::oidc(issuer.issuer())
        .audience("api")
        .email_fallback(true)
        .build()
        .unwrap();
    let base = serve_company_route(&auth).await;
    let token = issuer
        .token()
        .audience("api")
        .without("email")
        .claim("upn", "ada@example.com")
        .sign();
    assert_eq!(
        get_with_token(&format!("{base}/company"), &token)
            .await
            .status,
        200
    );
}

// --- NumericDate as RFC 7519 defines it -------------------------------------------

/// The app on a clock the test moves, with no leeway.
async fn serve_on_clock(issuer: &MockIssuer, configure: MeinGptAuthBuilder) -> (String, MockClock) {
    let clock = MockClock::new();
    let auth = configure
        .clock(clock.clone())
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    let _ = issuer;
    (serve(app(&auth)).await, clock)
}

/// How far `clock` must move to reach `at` (seconds since the epoch, exact).
fn until(clock: &MockClock, at_nanos: u128) -> Duration {
    use meingpt_auth::Clock;
    Duration::from_nanos((at_nanos - clock.now().as_nanos()) as u64)
}

#[tokio::test]
async fn a_fractional_exp_is_accepted_and_expires_at_its_exact_instant() {
    let issuer = MockIssuer::start().await;
    let (base, clock) = serve_on_clock(&issuer, issuer.auth()).await;
    let me = format!("{base}/me");
    let whole = {
        use meingpt_auth::Clock;
        clock.now().as_secs() + 10
    };
    let token = issuer
        .token()
        .claim("exp", whole as f64 + 0.5)
        .claim("iat", whole as f64 - 20.25)
        .sign();
    let exp_nanos = u128::from(whole) * 1_000_000_000 + 500_000_000;

    let seen = get_with_token(&me, &token).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    // Reported in whole seconds, rounded down (never later than the truth).
    assert_eq!(seen.json()["exp"], json!(whole));
    assert_eq!(seen.json()["iat"], json!(whole - 21));

    clock.advance(until(&clock, exp_nanos - 1));
    assert_eq!(get_with_token(&me, &token).await.status, 200);
    clock.advance(Duration::from_nanos(1));
    // At exp itself: expired, though rounding up would have given 0.5 s more.
    get_with_token(&me, &token)
        .await
        .assert_invalid_token(EXPIRED);
    clock.advance(Duration::from_millis(250));
    get_with_token(&me, &token)
        .await
        .assert_invalid_token(EXPIRED);
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn fractional_nbf_iat_and_auth_time_are_accepted_and_compared_exactly() {
    let issuer = MockIssuer::start().await;
    let (base, clock) =
        serve_on_clock(&issuer, issuer.auth().max_auth_age(Duration::from_secs(60))).await;
    let me = format!("{base}/me");
    let whole = {
        use meingpt_auth::Clock;
        clock.now().as_secs() + 5
    };
    let nbf_nanos = u128::from(whole) * 1_000_000_000 + 250_000_000;
    let token = issuer
        .token()
        .claim("nbf", whole as f64 + 0.25)
        .claim("iat", whole as f64 - 1.5)
        .claim("auth_time", whole as f64 - 2.75)
        .sign();

    get_with_token(&me, &token)
        .await
        .assert_invalid_token(NOT_YET_VALID);
    clock.advance(until(&clock, nbf_nanos - 1));
    get_with_token(&me, &token)
        .await
        .assert_invalid_token(NOT_YET_VALID);
    clock.advance(Duration::from_nanos(1));
    let seen = get_with_token(&me, &token).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
}

#[tokio::test]
async fn time_claims_that_are_not_numbers_or_out_of_range_stay_refused() {
    let issuer = MockIssuer::start().await;
    let base = serve(app(&issuer.auth().build().unwrap())).await;
    let me = format!("{base}/me");

    for name in ["exp", "nbf", "iat", "auth_time"] {
        for value in [
            json!("1700000000.5"),
            json!(true),
            Value::Null,
            json!(1e300),
            json!(-1e300),
            json!(9.3e18),
            json!([1.5]),
        ] {
            let token = issuer.token().claim(name, value.clone()).sign();
            let seen = get_with_token(&me, &token).await;
            assert_eq!(seen.status, 401, "{name}: {value}: {}", seen.body);
            seen.assert_invalid_token(INVALID_CLAIM);
        }
    }
    assert_eq!(issuer.fetch_count(), 1);
}

// --- Optional access-token profile -------------------------------------------------

fn oidc(issuer: &MockIssuer) -> MeinGptAuthBuilder {
    MeinGptAuth::oidc(issuer.issuer()).audience("api")
}

#[tokio::test]
async fn without_profile_settings_typ_azp_and_lifetime_are_not_checked() {
    let issuer = MockIssuer::start().await;
    let base = serve(app(&oidc(&issuer).build().unwrap())).await;
    let token = issuer
        .token()
        .audience("api")
        .header("typ", "id+jwt")
        .claim("azp", "anyone")
        .expires_in(Duration::from_secs(30 * 24 * 3600))
        .sign();
    assert_eq!(
        get_with_token(&format!("{base}/me"), &token).await.status,
        200
    );
}

#[tokio::test]
async fn a_required_token_type_refuses_tokens_of_another_type() {
    let issuer = MockIssuer::start().await;
    let auth = oidc(&issuer).require_token_type("at+jwt").build().unwrap();
    let base = serve(app(&auth)).await;
    let me = format!("{base}/me");

    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/AT+JWT",
    ] {
        let token = issuer.token().audience("api").header("typ", typ).sign();
        assert_eq!(get_with_token(&me, &token).await.status, 200, "{typ}");
    }
    for typ in [
        json!("JWT"),
        json!("at+jwt "),
        json!("application/jwt"),
        json!(1),
    ] {
        let token = issuer.token().audience("api").header("typ", typ).sign();
        get_with_token(&me, &token)
            .await
            .assert_invalid_token(WRONG_TOKEN_TYPE);
    }
    let untyped = issuer.token().audience("api").without_header("typ").sign();
    get_with_token(&me, &untyped)
        .await
        .assert_invalid_token(WRONG_TOKEN_TYPE);
}

#[tokio::test]
async fn azp_must_be_a_configured_client() {
    let issuer = MockIssuer::start().await;
    let auth = oidc(&issuer)
        .authorized_party("web-app")
        .authorized_party("cli")
        .build()
        .unwrap();
    let base = serve(app(&auth)).await;
    let me = format!("{base}/me");

    for client in ["web-app", "cli"] {
        let token = issuer.token().audience("api").claim("azp", client).sign();
        assert_eq!(get_with_token(&me, &token).await.status, 200, "{client}");
    }
    let other = issuer
        .token()
        .audience("api")
        .claim("azp", "Web-App")
        .sign();
    get_with_token(&me, &other)
        .await
        .assert_invalid_token(WRONG_AUTHORIZED_PARTY);
    let missing = issuer.token().audience("api").sign();
    get_with_token(&me, &missing)
        .await
        .assert_invalid_token(MISSING_CLAIM);
    let typed = issuer
        .token()
        .audience("api")
        .claim("azp", json!(["web-app"]))
        .sign();
    get_with_token(&me, &typed)
        .await
        .assert_invalid_token(INVALID_CLAIM);
}

#[tokio::test]
async fn a_maximum_token_lifetime_refuses_longer_tokens_and_requires_iat() {
    let issuer = MockIssuer::start().await;
    let auth = oidc(&issuer)
        .max_token_lifetime(Duration::from_secs(3600))
        .build()
        .unwrap();
    let base = serve(app(&auth)).await;
    let me = format!("{base}/me");

    let hour = issuer
        .token()
        .audience("api")
        .expires_in(Duration::from_secs(3600))
        .sign();
    assert_eq!(get_with_token(&me, &hour).await.status, 200);
    let day = issuer
        .token()
        .audience("api")
        .expires_in(Duration::from_secs(24 * 3600))
        .sign();
    get_with_token(&me, &day)
        .await
        .assert_invalid_token(LIFETIME_TOO_LONG);
    let (_, claims) = issuer.token().into_parts();
    let iat = claims["iat"].as_i64().unwrap();
    let a_hair_over = issuer
        .token()
        .audience("api")
        .claim("iat", iat)
        .claim("exp", iat as f64 + 3600.001)
        .sign();
    get_with_token(&me, &a_hair_over)
        .await
        .assert_invalid_token(LIFETIME_TOO_LONG);
    let no_iat = issuer.token().audience("api").without("iat").sign();
    get_with_token(&me, &no_iat)
        .await
        .assert_invalid_token(MISSING_CLAIM);
}

// --- Team guards by id ------------------------------------------------------------

#[tokio::test]
async fn the_quickstart_team_route_admits_by_team_id_not_by_name() {
    let issuer = MockIssuer::start().await;
    let base = serve(app(&issuer.auth().build().unwrap())).await;
    let url = format!("{base}/engineering");

    // Anyone can name a new team "Engineering"; only the team's id counts.
    let namesake = issuer.token().team("team-new", "Engineering").sign();
    assert_forbidden(&get_with_token(&url, &namesake).await);
    let renamed = issuer.token().team("team-eng", "Platform").sign();
    assert_eq!(get_with_token(&url, &renamed).await.status, 200);
}

// --- Scopes and nested role claims (Keycloak, Entra ID) -----------------------------

/// Routes guarded by scopes and by the admin role, behind `auth`.
async fn serve_scoped(auth: &MeinGptAuth) -> String {
    let router = Router::new()
        .route(
            "/read",
            get(|| async { "read" }).route_layer(require_scope("Files.Read")),
        )
        .route(
            "/any",
            get(|| async { "any" }).route_layer(require_any_scope(["Files.Write", "Files.Read"])),
        )
        .route(
            "/all",
            get(|| async { "all" }).route_layer(require_all_scopes(["Files.Read", "Files.Write"])),
        )
        .route(
            "/admin",
            get(|| async { "admin" }).route_layer(require_role(Role::Admin)),
        )
        .layer(auth.layer());
    serve(router).await
}

/// An access token shaped as Entra ID (v2) issues it.
fn entra_token(issuer: &MockIssuer, scp: &str, roles: Value) -> String {
    issuer
        .token()
        .audience("api")
        .without("email")
        .without("username")
        .without("organizationName")
        .without("teams")
        .without("role")
        .claim("ver", "2.0")
        .claim("tid", "9188040d-6c67-4c5b-b112-36a304b66dad")
        .claim("oid", "00000000-0000-0000-66f3-3332eca7ea81")
        .claim("azp", "6731de76-14a6-49ae-97bc-6eba6914391e")
        .claim("preferred_username", "ada@contoso.example")
        .claim("scp", scp)
        .claim("roles", roles)
        .sign()
}

#[tokio::test]
async fn entra_scp_scopes_and_app_roles_drive_the_guards() {
    let issuer = MockIssuer::start().await;
    let base = serve_scoped(&oidc(&issuer).build().unwrap()).await;

    let reader = entra_token(&issuer, "User.Read Files.Read", json!(["Reader"]));
    for route in ["read", "any"] {
        let seen = get_with_token(&format!("{base}/{route}"), &reader).await;
        assert_eq!(seen.status, 200, "{route}: {}", seen.body);
    }
    assert_forbidden(&get_with_token(&format!("{base}/all"), &reader).await);
    assert_forbidden(&get_with_token(&format!("{base}/admin"), &reader).await);

    let writer = entra_token(&issuer, "Files.Read Files.Write", json!(["admin"]));
    for route in ["read", "any", "all", "admin"] {
        let seen = get_with_token(&format!("{base}/{route}"), &writer).await;
        assert_eq!(seen.status, 200, "{route}: {}", seen.body);
    }

    // Scope names compare exactly.
    let lower = entra_token(&issuer, "files.read Files.Read.All", json!([]));
    for route in ["read", "any", "all"] {
        assert_forbidden(&get_with_token(&format!("{base}/{route}"), &lower).await);
    }
    assert_eq!(issuer.fetch_count(), 1);
}

/// An access token shaped as Keycloak issues it, for client `my-app`.
fn keycloak_token(issuer: &MockIssuer, scope: &str, realm: Value, client: Value) -> String {
    issuer
        .token()
        .audience("api")
        .without("role")
        .without("teams")
        .claim("typ", "Bearer")
        .claim("azp", "my-app")
        .claim("scope", scope)
        .claim("email_verified", true)
        .claim("preferred_username", "ada")
        .claim("realm_access", json!({"roles": realm}))
        .claim(
            "resource_access",
            json!({"my-app": {"roles": client}, "account": {"roles": ["manage-account"]}}),
        )
        .sign()
}

#[tokio::test]
async fn keycloak_realm_and_client_roles_are_read_from_dotted_paths() {
    let issuer = MockIssuer::start().await;
    let realm = serve_scoped(
        &oidc(&issuer)
            .role_claim("realm_access.roles")
            .build()
            .unwrap(),
    )
    .await;
    let client = serve_scoped(
        &oidc(&issuer)
            .role_claim("resource_access.my-app.roles")
            .build()
            .unwrap(),
    )
    .await;

    let realm_admin = keycloak_token(
        &issuer,
        "openid email profile",
        json!(["offline_access", "admin"]),
        json!(["viewer"]),
    );
    assert_eq!(
        get_with_token(&format!("{realm}/admin"), &realm_admin)
            .await
            .status,
        200
    );
    assert_forbidden(&get_with_token(&format!("{client}/admin"), &realm_admin).await);

    let client_admin = keycloak_token(
        &issuer,
        "openid Files.Read",
        json!(["offline_access"]),
        json!(["admin"]),
    );
    assert_forbidden(&get_with_token(&format!("{realm}/admin"), &client_admin).await);
    assert_eq!(
        get_with_token(&format!("{client}/admin"), &client_admin)
            .await
            .status,
        200
    );
    // Keycloak's space-separated `scope` claim drives the scope guards.
    assert_eq!(
        get_with_token(&format!("{client}/read"), &client_admin)
            .await
            .status,
        200
    );
    assert_forbidden(&get_with_token(&format!("{client}/all"), &client_admin).await);

    // A path that leads nowhere is no role; a path to the wrong type is invalid.
    let no_client = issuer
        .token()
        .audience("api")
        .without("role")
        .claim("resource_access", json!({"account": {"roles": ["admin"]}}))
        .sign();
    assert_forbidden(&get_with_token(&format!("{client}/admin"), &no_client).await);
    let wrong_type = issuer
        .token()
        .audience("api")
        .claim("realm_access", json!({"roles": {"admin": true}}))
        .sign();
    get_with_token(&format!("{realm}/admin"), &wrong_type)
        .await
        .assert_invalid_token(INVALID_CLAIM);
    // One key set fetch for each of the two authenticators.
    assert_eq!(issuer.fetch_count(), 2);
}

#[tokio::test]
async fn a_scope_claim_of_the_wrong_type_is_an_invalid_claim() {
    let issuer = MockIssuer::start().await;
    let base = serve_scoped(&oidc(&issuer).build().unwrap()).await;
    for (name, value) in [
        ("scope", json!(7)),
        ("scp", json!({"Files.Read": true})),
        ("scope", json!(["Files.Read", 1])),
    ] {
        let token = issuer.token().audience("api").claim(name, value).sign();
        get_with_token(&format!("{base}/read"), &token)
            .await
            .assert_invalid_token(INVALID_CLAIM);
    }
    // Okta sends `scp` as an array: one scope per item.
    let okta = issuer
        .token()
        .audience("api")
        .claim("scp", json!(["openid", "Files.Read"]))
        .sign();
    assert_eq!(
        get_with_token(&format!("{base}/read"), &okta).await.status,
        200
    );
}
