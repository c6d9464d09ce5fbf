//! The attack catalogue: one named test for each known way to get a forged,
//! confused or hostile JWT past a verifier, sent to a real server on
//! loopback over a raw TCP connection, so that what is checked is exactly
//! what a client receives, byte for byte.
//!
//! Every test says in a comment which attack it stands for, and asserts:
//!
//! - the answer: `401 invalid_token` with its fixed description (or `400
//!   invalid_request` / `431` for requests that are malformed or too large);
//! - that nothing is echoed: neither the token nor any of its segments, nor
//!   the `kid` or claim values, in any response header or the body;
//! - how often the issuer's key set was fetched (most attacks are refused
//!   before any key lookup);
//! - that a good token sent after the attack still gets `200`.

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::answers::{
    BAD_SIGNATURE, INVALID_CLAIM, MALFORMED, MALFORMED_CREDENTIALS, MISSING_CLAIM, TOO_LARGE,
    UNKNOWN_KEY, UNSUPPORTED_ALGORITHM, UNSUPPORTED_HEADER, WRONG_AUDIENCE, WRONG_ISSUER,
};
use crate::common::app;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use meingpt_auth::testing::MockIssuer;
use meingpt_auth::{AuthError, InvalidToken, MeinGptAuth, MeinGptAuthBuilder};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------
// A raw HTTP/1.1 client
// ---------------------------------------------------------------------------

/// One response as it came off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The status line and every header line, exactly as sent.
    head: String,
    body: String,
}

impl Answer {
    /// The value of the one header called `name`, if sent.
    fn header(&self, name: &str) -> Option<&str> {
        self.header_lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
    }

    /// The header lines (without the status line).
    fn header_lines(&self) -> impl Iterator<Item = &str> {
        self.head.split("\r\n").skip(1)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    /// `401 invalid_token` with this fixed description, challenge and body.
    fn assert_invalid_token(&self, description: &str) {
        assert_eq!(self.status, 401, "{}\n{}", self.head, self.body);
        let challenge = format!(
            "Bearer realm=\"meingpt\", error=\"invalid_token\", error_description=\"{description}\""
        );
        assert_eq!(self.header("www-authenticate"), Some(challenge.as_str()));
        assert_eq!(self.json()["error"], "invalid_token");
        assert_eq!(self.json()["error_description"], description);
    }

    /// `400 invalid_request` with this fixed description.
    fn assert_invalid_request(&self, description: &str) {
        assert_eq!(self.status, 400, "{}\n{}", self.head, self.body);
        let challenge = format!(
            "Bearer realm=\"meingpt\", error=\"invalid_request\", error_description=\"{description}\""
        );
        assert_eq!(self.header("www-authenticate"), Some(challenge.as_str()));
        assert_eq!(self.json()["error"], "invalid_request");
        assert_eq!(self.json()["error_description"], description);
    }

    /// The response carries only the headers a rejection is made of: no
    /// header was injected, none was split.
    fn assert_only_rejection_headers(&self) {
        const EXPECTED: [&str; 6] = [
            "content-type",
            "cache-control",
            "www-authenticate",
            "content-length",
            "connection",
            "date",
        ];
        for line in self.header_lines() {
            let name = line.split_once(':').map(|(name, _)| name).unwrap_or(line);
            assert!(
                EXPECTED.iter().any(|e| e.eq_ignore_ascii_case(name)),
                "unexpected header line {line:?} in\n{}",
                self.head
            );
        }
    }
}

/// Sends `GET path` with these headers (values as raw bytes) on a fresh
/// connection and reads the whole answer. The request is written while the
/// answer is read, so a server that answers before reading everything (as
/// for an oversize request) is seen rather than deadlocked.
async fn raw_get(addr: SocketAddr, path: &str, headers: &[(&str, &[u8])]) -> io::Result<Answer> {
    let mut request =
        format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n").into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");

    let stream = TcpStream::connect(addr).await?;
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        // The server may stop reading and close early: not our failure.
        let _ = writer.write_all(&request).await;
        let _ = writer.flush().await;
        writer
    });
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut raw))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer within 10 s"))?;
    let _writer = writing.await;
    if let Err(error) = read
        && raw.is_empty()
    {
        return Err(error);
    }
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> io::Result<Answer> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of head"))?;
    let head = String::from_utf8(raw[..end].to_vec()).map_err(|_| bad("head not UTF-8"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let mut body = raw[end + 4..].to_vec();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok(Answer {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = input.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&input[..line_end]).ok()?, 16).ok()?;
        input = &input[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(input.get(..size)?);
        input = input.get(size + 2..)?;
    }
}

// ---------------------------------------------------------------------------
// The target: an issuer and the quickstart app behind the layer
// ---------------------------------------------------------------------------

struct Target {
    issuer: MockIssuer,
    auth: MeinGptAuth,
    addr: SocketAddr,
}

/// An issuer and the app with the default configuration.
async fn start() -> Target {
    start_with(|builder| builder).await
}

/// An issuer and the app with auth configured by `configure`.
async fn start_with(configure: impl FnOnce(MeinGptAuthBuilder) -> MeinGptAuthBuilder) -> Target {
    let issuer = MockIssuer::start().await;
    let auth = configure(issuer.auth()).build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app(&auth);
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Target { issuer, auth, addr }
}

impl Target {
    /// `GET /me` with `X-meinGPT-JWT: token`.
    async fn send(&self, token: &str) -> Answer {
        self.send_headers(&[("x-meingpt-jwt", token.as_bytes())])
            .await
    }

    async fn send_headers(&self, headers: &[(&str, &[u8])]) -> Answer {
        raw_get(self.addr, "/me", headers)
            .await
            .expect("the server answers")
    }

    /// Sends `token` (in `X-meinGPT-JWT` and in `Authorization: Bearer`) and
    /// asserts `401 invalid_token` with `description`, echoing nothing of
    /// the token or of `secrets`.
    async fn refused(&self, token: &str, description: &str, secrets: &[&str]) {
        let answer = self.send(token).await;
        answer.assert_invalid_token(description);
        assert_not_echoed(&answer, token, secrets);
        let bearer = format!("Bearer {token}");
        let answer = self
            .send_headers(&[("authorization", bearer.as_bytes())])
            .await;
        answer.assert_invalid_token(description);
        assert_not_echoed(&answer, token, secrets);
    }

    /// A fresh, good token still gets in: the attack took nothing down.
    async fn still_serves_good_tokens(&self) {
        let token = self.issuer.token().sub("after-attack").sign();
        let answer = self.send(&token).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.json()["sub"], "after-attack");
    }

    fn fetches(&self) -> usize {
        self.issuer.fetch_count()
    }
}

/// Neither the token, nor any of its segments, nor any of `secrets` (a
/// `kid`, a claim value) appears in a header or the body.
fn assert_not_echoed(answer: &Answer, token: &str, secrets: &[&str]) {
    let pieces = std::iter::once(token)
        .chain(token.split('.'))
        .chain(secrets.iter().copied())
        .filter(|piece| piece.len() >= 6);
    for piece in pieces {
        assert!(
            !answer.head.contains(piece),
            "a header echoes {piece:?}:\n{}",
            answer.head
        );
        assert!(
            !answer.body.contains(piece),
            "the body echoes {piece:?}: {}",
            answer.body
        );
    }
}

// ---------------------------------------------------------------------------
// Token building
// ---------------------------------------------------------------------------

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `base64url(header).base64url(claims)`.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", b64(header.to_string()), b64(claims.to_string()))
}

/// The header and claims of a good token from `issuer`, unsigned.
fn good_parts(issuer: &MockIssuer) -> (Value, Value) {
    let (header, claims) = issuer.token().into_parts();
    (Value::Object(header), Value::Object(claims))
}

/// Good claims as JSON text, for `sign_raw`.
fn good_claims_text(issuer: &MockIssuer) -> String {
    good_parts(issuer).1.to_string()
}

/// A good header as JSON text, for `sign_raw`.
fn good_header_text(issuer: &MockIssuer) -> String {
    format!(
        r#"{{"alg":"RS256","typ":"JWT","kid":"{}"}}"#,
        issuer.current_kid()
    )
}

/// The three segments of a compact token.
fn segments(token: &str) -> [String; 3] {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {token}");
    [parts[0].into(), parts[1].into(), parts[2].into()]
}

/// An attacker's own RSA-2048 key.
fn attacker_rsa_key() -> RsaKeyPair {
    RsaKeyPair::generate(KeySize::Rsa2048).unwrap()
}

/// A compact JWS over `header` and `claims`, signed RS256 with `key`.
fn rs256_signed_by(key: &RsaKeyPair, header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{input}.{}", b64(signature))
}

/// The public JWK of an attacker's RSA key.
fn rsa_public_jwk(key: &RsaKeyPair) -> Value {
    let public = key.public_key();
    json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    })
}

/// PEM text around `der`.
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

/// One DER element: `tag`, definite length, `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// `SubjectPublicKeyInfo` DER for a PKCS#1 `RSAPublicKey`, as
/// `-----BEGIN PUBLIC KEY-----` carries it.
fn spki_der(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption, NULL }
    let algorithm = der(
        0x30,
        &[
            &der(
                0x06,
                &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
            )[..],
            &[0x05, 0x00],
        ]
        .concat(),
    );
    let key = der(0x03, &[&[0u8][..], pkcs1].concat());
    der(0x30, &[algorithm, key].concat())
}

/// Tokens whose header says HS256 (with the issuer's `kid`), MACed with
/// each of `secrets`: by hand with aws-lc-rs and as an attacker would with
/// jsonwebtoken.
fn hs256_tokens(issuer: &MockIssuer, secrets: &[Vec<u8>]) -> Vec<String> {
    let (mut header, claims) = good_parts(issuer);
    header["alg"] = json!("HS256");
    let mut tokens = Vec::new();
    for secret in secrets {
        let input = signing_input(&header, &claims);
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
        tokens.push(format!("{input}.{}", b64(tag.as_ref())));
        let mut jwt_header = Header::new(Algorithm::HS256);
        jwt_header.kid = Some(issuer.current_kid());
        tokens.push(
            jsonwebtoken::encode(&jwt_header, &claims, &EncodingKey::from_secret(secret)).unwrap(),
        );
    }
    tokens
}

/// A TCP listener on loopback that a test can ask, without waiting, whether
/// anyone connected to it.
struct Tripwire {
    listener: StdTcpListener,
}

impl Tripwire {
    fn start() -> Self {
        let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Self { listener }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listener.local_addr().unwrap())
    }

    /// Completed connections wait in the accept queue, so an empty queue
    /// means nobody connected.
    fn assert_untouched(&self) {
        match self.listener.accept() {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Ok((_, peer)) => panic!("the verifier connected to a URL from the token ({peer})"),
            Err(error) => panic!("listener failed: {error}"),
        }
    }
}

/// A good token whose total length is exactly `target` bytes.
fn token_of_length(issuer: &MockIssuer, target: usize) -> String {
    let b64_len = |bytes: usize| (4 * bytes).div_ceil(3);
    let signature_len = b64_len(256);
    for header_pad in 0..4 {
        let base = issuer.token().header("x", "h".repeat(header_pad));
        for pad in (target * 3 / 4).saturating_sub(800)..target {
            let builder = base.clone().claim("pad", "p".repeat(pad));
            let (header, claims) = builder.clone().into_parts();
            let length = b64_len(Value::Object(header).to_string().len())
                + 1
                + b64_len(Value::Object(claims).to_string().len())
                + 1
                + signature_len;
            if length == target {
                let token = builder.sign();
                assert_eq!(token.len(), target);
                return token;
            }
            if length > target {
                break;
            }
        }
    }
    panic!("no token of exactly {target} bytes");
}

// ---------------------------------------------------------------------------
// alg "none"
// ---------------------------------------------------------------------------

#[tokio::test]
async fn alg_none_in_any_spelling_with_a_signature_is_refused_before_any_key_lookup() {
    // Attack: "alg":"none" (CVE-2015-9235) in any letter case, with a made-up
    // signature or the signature of a real token pasted on.
    let target = start().await;
    let real_signature = segments(&target.issuer.token().sign())[2].clone();
    let (_, claims) = good_parts(&target.issuer);

    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": target.issuer.current_kid()});
        let unsigned = signing_input(&header, &claims);
        for signature in [b64("x"), real_signature.clone()] {
            let token = format!("{unsigned}.{signature}");
            target.refused(&token, UNSUPPORTED_ALGORITHM, &[]).await;
        }
    }

    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn alg_none_in_any_spelling_without_a_signature_is_refused_before_any_key_lookup() {
    // Attack: the classic unsigned token "header.payload." (and "header.payload")
    // with "alg":"none". Empty and missing segments are found before the
    // header is read, so this is "malformed"; no key is looked up either way.
    let target = start().await;
    let (_, claims) = good_parts(&target.issuer);

    for alg in ["none", "None", "NONE", "nOnE"] {
        for header in [json!({"alg": alg, "typ": "JWT"}), json!({"alg": alg})] {
            let unsigned = signing_input(&header, &claims);
            target
                .refused(&format!("{unsigned}."), MALFORMED, &[])
                .await;
            target.refused(&unsigned, MALFORMED, &[]).await;
        }
    }

    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn alg_names_are_matched_exactly_and_must_be_strings() {
    // Attack: parser differentials on "alg" (case, whitespace, NUL, unknown
    // names, wrong JSON type, absent).
    let target = start().await;
    let (header, claims) = good_parts(&target.issuer);
    let with_alg = |alg: Value| {
        let mut header = header.clone();
        header["alg"] = alg;
        format!("{}.{}", signing_input(&header, &claims), b64("sig"))
    };

    for alg in [
        "rs256",
        "Rs256",
        "RS256 ",
        " RS256",
        "RS256\u{0}",
        "",
        "EdDSA",
        "HS512",
    ] {
        target
            .refused(&with_alg(json!(alg)), UNSUPPORTED_ALGORITHM, &[])
            .await;
    }
    for alg in [json!(256), json!(["RS256"]), Value::Null] {
        target.refused(&with_alg(alg), MALFORMED, &[]).await;
    }
    let mut no_alg = header.clone();
    no_alg.as_object_mut().unwrap().remove("alg");
    let token = format!("{}.{}", signing_input(&no_alg, &claims), b64("sig"));
    target.refused(&token, MALFORMED, &[]).await;

    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

// ---------------------------------------------------------------------------
// HS256 keyed with the issuer's public key (RS256/HS256 key confusion)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn hs256_keyed_with_the_public_key_as_spki_pem_is_refused_before_any_key_lookup() {
    // Attack: key confusion (CVE-2016-10555 and kin) — the attacker MACs with
    // the public key as a "-----BEGIN PUBLIC KEY-----" PEM, hoping the
    // verifier feeds its RSA key to HMAC.
    let target = start().await;
    let spki = pem("PUBLIC KEY", &spki_der(&target.issuer.public_key_der()));
    assert!(
        spki.starts_with(
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"
        )
    );
    let secrets = [
        spki.clone().into_bytes(),
        spki.trim_end().as_bytes().to_vec(),
        spki.replace('\n', "\r\n").into_bytes(),
    ];

    for token in hs256_tokens(&target.issuer, &secrets) {
        target.refused(&token, UNSUPPORTED_ALGORITHM, &[]).await;
    }

    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn hs256_keyed_with_the_public_key_as_pkcs1_der_is_refused_before_any_key_lookup() {
    // Attack: key confusion with the public key's PKCS#1 DER bytes (and its
    // "-----BEGIN RSA PUBLIC KEY-----" PEM) as the HMAC secret.
    let target = start().await;
    let pkcs1 = target.issuer.public_key_der();
    let secrets = [
        pkcs1.clone(),
        spki_der(&pkcs1),
        pem("RSA PUBLIC KEY", &pkcs1).into_bytes(),
    ];

    for token in hs256_tokens(&target.issuer, &secrets) {
        target.refused(&token, UNSUPPORTED_ALGORITHM, &[]).await;
    }

    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn hs256_keyed_with_the_public_key_as_jwk_json_is_refused_before_any_key_lookup() {
    // Attack: key confusion with the published JWK (as the JWKS serves it)
    // as the HMAC secret, for verifiers that hand a JWK to HMAC unchecked.
    let target = start().await;
    let jwk = target.issuer.public_jwk();
    let secrets = [
        jwk.to_string().into_bytes(),
        serde_json::to_vec_pretty(&jwk).unwrap(),
        json!({"keys": [jwk]}).to_string().into_bytes(),
    ];

    for token in hs256_tokens(&target.issuer, &secrets) {
        target.refused(&token, UNSUPPORTED_ALGORITHM, &[]).await;
    }

    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn hs256_keyed_with_the_raw_modulus_is_refused_before_any_key_lookup() {
    // Attack: key confusion with the bare modulus n (bytes, and as the
    // base64url text the JWK carries) as the HMAC secret.
    let target = start().await;
    let n_text = target.issuer.public_jwk()["n"].as_str().unwrap().to_owned();
    let n = URL_SAFE_NO_PAD.decode(&n_text).unwrap();
    assert_eq!(n.len(), 256);
    let secrets = [n, n_text.into_bytes()];

    for token in hs256_tokens(&target.issuer, &secrets) {
        target.refused(&token, UNSUPPORTED_ALGORITHM, &[]).await;
    }

    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

// ---------------------------------------------------------------------------
// Other algorithms with the real key
// ---------------------------------------------------------------------------

#[tokio::test]
async fn ps256_rs384_and_rs512_signed_with_the_real_key_are_refused_when_only_rs256_is_allowed() {
    // Attack: algorithm substitution — a genuine signature by the issuer's own
    // key, under an algorithm the deployment never allowed.
    let target = start().await;

    for alg in [
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::RS384,
        Algorithm::RS512,
    ] {
        let token = target.issuer.token().role("admin").sign_with(alg);
        target.refused(&token, UNSUPPORTED_ALGORITHM, &[]).await;
    }

    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn es256_with_an_all_zero_signature_is_refused_before_any_key_lookup() {
    // Attack: "psychic signatures" (CVE-2022-21449) — ECDSA with r = s = 0,
    // as 64 zero bytes (JWS form) or as DER, with and without a kid; and a
    // genuine ES256 signature by the attacker's own P-256 key.
    let target = start().await;
    let (mut header, claims) = good_parts(&target.issuer);
    header["alg"] = json!("ES256");
    let mut kidless = header.clone();
    kidless.as_object_mut().unwrap().remove("kid");

    let mut tokens = Vec::new();
    for header in [&header, &kidless] {
        let input = signing_input(header, &claims);
        tokens.push(format!("{input}.{}", b64([0u8; 64])));
        tokens.push(format!("{input}.{}", b64([0x30, 6, 2, 1, 0, 2, 1, 0])));
    }
    let input = signing_input(&header, &claims);
    let ec_key = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let real = ec_key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    tokens.push(format!("{input}.{}", b64(real.as_ref())));

    for token in &tokens {
        target.refused(token, UNSUPPORTED_ALGORITHM, &[]).await;
    }

    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

// ---------------------------------------------------------------------------
// Keys offered by the token itself
// ---------------------------------------------------------------------------

#[tokio::test]
async fn embedded_jwk_of_the_attackers_key_is_never_used() {
    // Attack: key injection inline (CVE-2018-0114) — the header carries the
    // attacker's public key, under the issuer's kid, under its own kid, or
    // with no kid at all. The embedded key also names a jku that must not be
    // followed.
    let target = start().await;
    let tripwire = Tripwire::start();
    let attacker = attacker_rsa_key();
    let (header, mut claims) = good_parts(&target.issuer);
    claims["role"] = json!("admin");

    for kid in [
        Some(target.issuer.current_kid()),
        None,
        Some("attacker-key".to_owned()),
    ] {
        let mut jwk = rsa_public_jwk(&attacker);
        jwk["jku"] = json!(tripwire.url("/jwks.json"));
        let mut forged = header.clone();
        match &kid {
            Some(kid) => {
                jwk["kid"] = json!(kid);
                forged["kid"] = json!(kid);
            }
            None => {
                forged.as_object_mut().unwrap().remove("kid");
            }
        }
        forged["jwk"] = jwk;
        let token = rs256_signed_by(&attacker, &forged, &claims);
        // A kid the issuer does not publish is unknown; with the issuer's kid,
        // or none while it publishes one key, the issuer's key checks the
        // signature and finds it forged.
        let expected = match kid.as_deref() {
            Some("attacker-key") => UNKNOWN_KEY,
            _ => BAD_SIGNATURE,
        };
        target.refused(&token, expected, &["attacker-key"]).await;
    }

    // The unknown kid comes within the refetch cooldown of the first fetch.
    assert_eq!(target.fetches(), 1);
    tripwire.assert_untouched();
    target.still_serves_good_tokens().await;
    assert_eq!(target.fetches(), 1);
}

#[tokio::test]
async fn jku_pointing_at_the_attackers_key_set_is_never_fetched() {
    // Attack: key injection by URL — "jku" names a JWKS the attacker serves
    // (here a loopback listener that must see no connection).
    let target = start().await;
    let tripwire = Tripwire::start();
    let attacker = attacker_rsa_key();
    let (header, mut claims) = good_parts(&target.issuer);
    claims["role"] = json!("admin");

    let mut with_url = header.clone();
    with_url["jku"] = json!(tripwire.url("/jwks.json"));
    target
        .refused(
            &rs256_signed_by(&attacker, &with_url, &claims),
            BAD_SIGNATURE,
            &[],
        )
        .await;
    with_url.as_object_mut().unwrap().remove("kid");
    target
        .refused(
            &rs256_signed_by(&attacker, &with_url, &claims),
            BAD_SIGNATURE,
            &[],
        )
        .await;

    tripwire.assert_untouched();
    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
    tripwire.assert_untouched();
}

#[tokio::test]
async fn x5u_pointing_at_the_attackers_certificate_is_never_fetched() {
    // Attack: key injection by URL — "x5u" names a certificate chain the
    // attacker serves (a loopback listener that must see no connection).
    let target = start().await;
    let tripwire = Tripwire::start();
    let attacker = attacker_rsa_key();
    let (header, mut claims) = good_parts(&target.issuer);
    claims["role"] = json!("admin");

    let mut with_url = header.clone();
    with_url["x5u"] = json!(tripwire.url("/cert.pem"));
    target
        .refused(
            &rs256_signed_by(&attacker, &with_url, &claims),
            BAD_SIGNATURE,
            &[],
        )
        .await;
    with_url.as_object_mut().unwrap().remove("kid");
    target
        .refused(
            &rs256_signed_by(&attacker, &with_url, &claims),
            BAD_SIGNATURE,
            &[],
        )
        .await;

    tripwire.assert_untouched();
    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
    tripwire.assert_untouched();
}

#[tokio::test]
async fn x5c_carrying_the_attackers_key_is_never_used() {
    // Attack: key injection inline by certificate chain — "x5c" carries the
    // attacker's key (here its SubjectPublicKeyInfo, as a certificate would),
    // with "x5u" beside it for good measure.
    let target = start().await;
    let tripwire = Tripwire::start();
    let attacker = attacker_rsa_key();
    let (header, mut claims) = good_parts(&target.issuer);
    claims["role"] = json!("admin");
    let chain = json!([STANDARD.encode(spki_der(attacker.public_key().as_ref()))]);

    let mut with_chain = header.clone();
    with_chain["x5c"] = chain.clone();
    with_chain["x5u"] = json!(tripwire.url("/chain.pem"));
    target
        .refused(
            &rs256_signed_by(&attacker, &with_chain, &claims),
            BAD_SIGNATURE,
            &[],
        )
        .await;
    with_chain.as_object_mut().unwrap().remove("kid");
    target
        .refused(
            &rs256_signed_by(&attacker, &with_chain, &claims),
            BAD_SIGNATURE,
            &[],
        )
        .await;

    tripwire.assert_untouched();
    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
}

// ---------------------------------------------------------------------------
// Hostile kids
// ---------------------------------------------------------------------------

/// Sends a validly signed token (the issuer's own key) for each `kid` and
/// asserts it is an unknown key, with no second fetch.
async fn assert_kids_are_unknown_keys(target: &Target, kids: &[&str]) {
    for kid in kids {
        let token = target.issuer.token().kid(kid).sign();
        target.refused(&token, UNKNOWN_KEY, &[kid]).await;
    }
    // The first token fetched the key set; the others come within the
    // cooldown of that fetch and are refused from the cache.
    assert_eq!(target.fetches(), 1);
}

#[tokio::test]
async fn kid_with_path_traversal_is_an_unknown_key() {
    // Attack: kid as a file path (verifiers that load "keys/{kid}.pem"):
    // ../../etc/passwd, its Windows and URL-encoded forms, /dev/zero.
    let target = start().await;
    assert_kids_are_unknown_keys(
        &target,
        &[
            "../../etc/passwd",
            "../../../../../../../../etc/passwd",
            "..\\..\\windows\\win.ini",
            "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
            "/dev/zero",
            "file:///etc/passwd",
        ],
    )
    .await;
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn kid_with_sql_is_an_unknown_key() {
    // Attack: kid as SQL (verifiers that look keys up in a database):
    // ' OR 1=1 --, UNION SELECT of a known secret.
    let target = start().await;
    assert_kids_are_unknown_keys(
        &target,
        &[
            "' OR 1=1 --",
            "key-1' OR '1'='1",
            "x' UNION SELECT 'secret' --",
            "key-1\"; DROP TABLE keys; --",
        ],
    )
    .await;
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn kid_with_a_nul_byte_is_an_unknown_key() {
    // Attack: NUL truncation — "key-1\0anything" read as "key-1" by C-string
    // code, so that a forged token borrows the real key's name.
    let target = start().await;
    let kid = format!("{}\u{0}attacker", target.issuer.current_kid());
    assert_kids_are_unknown_keys(&target, &[&kid, "\u{0}", "\u{0}key-1"]).await;

    // The NUL-suffixed kid does not select the real key: a signature by the
    // attacker under it is an unknown key too, not a signature check.
    let (mut header, claims) = good_parts(&target.issuer);
    header["kid"] = json!(kid);
    let forged = rs256_signed_by(&attacker_rsa_key(), &header, &claims);
    target.refused(&forged, UNKNOWN_KEY, &[]).await;
    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn kid_of_100_kb_is_refused_without_a_fetch() {
    // Attack: resource exhaustion through the key cache — a huge kid to be
    // hashed, stored in the negative cache and sent to the issuer.
    let target = start().await;
    let kid = "k".repeat(100 * 1024);
    let token = target.issuer.token().kid(&kid).sign();
    target.refused(&token, TOO_LARGE, &[]).await;
    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;

    // Even where the size cap lets it through, a kid longer than any real
    // one is unknown without a key lookup.
    let roomy = start_with(|b| b.max_token_size(256 * 1024)).await;
    let token = roomy.issuer.token().kid(&kid).sign();
    roomy.refused(&token, UNKNOWN_KEY, &[]).await;
    let token = roomy.issuer.token().kid(&"k".repeat(257)).sign();
    roomy.refused(&token, UNKNOWN_KEY, &[]).await;
    assert_eq!(roomy.fetches(), 0);
    roomy.still_serves_good_tokens().await;
}

#[tokio::test]
async fn kid_that_is_not_a_string_is_malformed() {
    // Attack: type confusion on kid — numbers, arrays, objects, null, bools
    // that a loose lookup might stringify into the real key's name.
    let target = start().await;
    for kid in [
        json!(1),
        json!(["key-1"]),
        json!({"kid": "key-1"}),
        Value::Null,
        json!(true),
    ] {
        let token = target.issuer.token().header("kid", kid).sign();
        target.refused(&token, MALFORMED, &[]).await;
    }
    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn kid_with_cr_lf_injects_no_response_header() {
    // Attack: response splitting / header injection — a kid holding CR LF and
    // a header of the attacker's, in case it is reflected into a response
    // header (or a log line).
    let target = start().await;
    let kids = [
        "key-1\r\nSet-Cookie: pwned=1".to_owned(),
        "\r\n\r\n<script>pwned()</script>".to_owned(),
        format!("{}\nX-Injected: pwned", target.issuer.current_kid()),
        "key-1\rLocation: http://pwned.example".to_owned(),
    ];
    for kid in &kids {
        let token = target.issuer.token().kid(kid).sign();
        for answer in [
            target.send(&token).await,
            target
                .send_headers(&[("authorization", format!("Bearer {token}").as_bytes())])
                .await,
        ] {
            answer.assert_invalid_token(UNKNOWN_KEY);
            answer.assert_only_rejection_headers();
            assert!(!answer.head.contains("pwned"), "{}", answer.head);
            assert!(!answer.body.contains("pwned"), "{}", answer.body);
            assert_not_echoed(&answer, &token, &[kid]);
        }
    }
    assert_eq!(target.fetches(), 1);

    // CR inside the header value itself never reaches the layer: the HTTP
    // server refuses the request, and injects nothing either.
    let good = target.issuer.token().sign();
    let smuggled = format!("{good}\rSet-Cookie: pwned=1");
    let answer = target
        .send_headers(&[("x-meingpt-jwt", smuggled.as_bytes())])
        .await;
    assert!((400..500).contains(&answer.status), "{}", answer.head);
    assert!(!answer.head.to_ascii_lowercase().contains("set-cookie"));
    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn token_without_kid_is_refused_against_a_two_key_set() {
    // Attack: key ambiguity — without a kid the verifier must not try the
    // keys until one fits (which would also let an attacker probe them).
    let target = start().await;
    let before = target.issuer.token().sign();
    target.issuer.rotate();
    // A fresh authenticator, so that its first fetch sees both keys.
    let fresh = start_with_issuer_of(&target).await;

    let kidless = target.issuer.token().without_header("kid").sign();
    fresh.refused(&kidless, UNKNOWN_KEY, &[]).await;
    let kidless_old = {
        let (mut header, claims) = good_parts(&target.issuer);
        header.as_object_mut().unwrap().remove("kid");
        format!(
            "{}.{}",
            signing_input(&header, &claims),
            segments(&before)[2]
        )
    };
    fresh.refused(&kidless_old, UNKNOWN_KEY, &[]).await;
    assert_eq!(target.fetches(), 1);

    // Tokens that name their key keep working, old and new.
    assert_eq!(fresh.send(&before).await.status, 200);
    fresh.still_serves_good_tokens().await;
    assert_eq!(target.fetches(), 1);
}

/// The app with a fresh authenticator for the issuer of `target`.
async fn start_with_issuer_of(target: &Target) -> FreshApp<'_> {
    let auth = target.issuer.auth().build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app(&auth);
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    FreshApp {
        issuer: &target.issuer,
        addr,
    }
}

/// A second app in front of an existing issuer.
struct FreshApp<'a> {
    issuer: &'a MockIssuer,
    addr: SocketAddr,
}

impl FreshApp<'_> {
    async fn send(&self, token: &str) -> Answer {
        raw_get(self.addr, "/me", &[("x-meingpt-jwt", token.as_bytes())])
            .await
            .unwrap()
    }

    async fn refused(&self, token: &str, description: &str, secrets: &[&str]) {
        let answer = self.send(token).await;
        answer.assert_invalid_token(description);
        assert_not_echoed(&answer, token, secrets);
    }

    async fn still_serves_good_tokens(&self) {
        let answer = self.send(&self.issuer.token().sign()).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
}

// ---------------------------------------------------------------------------
// Header parameters that change how a token is processed
// ---------------------------------------------------------------------------

#[tokio::test]
async fn crit_naming_an_unknown_extension_is_refused_before_any_key_lookup() {
    // Attack: RFC 7515 §4.1.11 — a critical extension the verifier does not
    // implement must make it refuse, not silently ignore it.
    let target = start().await;
    for crit in [
        json!(["http://pwned.example/ext"]),
        json!(["exp"]),
        json!(["b64"]),
        json!("b64"),
    ] {
        let token = target.issuer.token().header("crit", crit).sign();
        target.refused(&token, UNSUPPORTED_HEADER, &[]).await;
    }
    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn crit_as_an_empty_list_is_refused_before_any_key_lookup() {
    // Attack: "crit": [] is forbidden by RFC 7515 and a classic parser
    // differential (some libraries accept it, some refuse it).
    let target = start().await;
    let token = target.issuer.token().header("crit", json!([])).sign();
    target.refused(&token, UNSUPPORTED_HEADER, &[]).await;
    let token = target.issuer.token().header("crit", Value::Null).sign();
    target.refused(&token, UNSUPPORTED_HEADER, &[]).await;
    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn b64_false_unencoded_payload_is_refused_before_any_key_lookup() {
    // Attack: RFC 7797 unencoded payloads — with "b64": false the signature
    // covers the raw payload, so a verifier that ignores it checks other bytes.
    let target = start().await;
    let (mut header, claims) = good_parts(&target.issuer);
    header["b64"] = json!(false);
    header["crit"] = json!(["b64"]);
    let raw_payload = format!("{}.{}", b64(header.to_string()), claims);
    let signed = target
        .issuer
        .sign_raw(&header.to_string(), &claims.to_string());
    for token in [
        target.issuer.token().header("b64", false).sign(),
        target.issuer.token().header("b64", true).sign(),
        signed,
    ] {
        target.refused(&token, UNSUPPORTED_HEADER, &[]).await;
    }
    // The detached / raw-payload form is not even a bearer token.
    let answer = target.send(&format!("{raw_payload}.{}", b64("sig"))).await;
    answer.assert_invalid_request(MALFORMED_CREDENTIALS);
    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn nested_jwt_with_cty_jwt_is_refused_before_any_key_lookup() {
    // Attack: nested tokens (RFC 7519 §5.2) — an outer token signed by
    // anyone's key wrapping an inner one, for verifiers that check only one
    // layer.
    let target = start().await;
    let inner = target.issuer.token().role("admin").sign();
    let (mut header, _) = good_parts(&target.issuer);
    header["cty"] = json!("JWT");
    let wrapped = target.issuer.sign_raw(&header.to_string(), &inner);
    for token in [
        wrapped,
        target.issuer.token().header("cty", "JWT").sign(),
        target.issuer.token().header("cty", "jwt").sign(),
        target.issuer.token().header("cty", 5).sign(),
    ] {
        target.refused(&token, UNSUPPORTED_HEADER, &[]).await;
    }
    assert_eq!(target.fetches(), 0);

    // An ordinary content type is no reason to refuse.
    let json_cty = target
        .issuer
        .token()
        .header("cty", "application/json")
        .sign();
    assert_eq!(target.send(&json_cty).await.status, 200);
    target.still_serves_good_tokens().await;
}

// ---------------------------------------------------------------------------
// Shape of the compact serialization
// ---------------------------------------------------------------------------

#[tokio::test]
async fn jwe_shaped_five_segment_tokens_are_malformed_before_any_key_lookup() {
    // Attack: JWE/JWS confusion — a five-part encrypted token (header, key,
    // IV, ciphertext, tag) for verifiers that would decrypt with their own key
    // or read the claims unauthenticated.
    let target = start().await;
    let good = target.issuer.token().sign();
    let [header, payload, signature] = segments(&good);
    let (_, claims) = good_parts(&target.issuer);
    let jwe_header = |alg: &str| {
        b64(json!({"alg": alg, "enc": "A256GCM", "kid": target.issuer.current_kid()}).to_string())
    };

    for token in [
        format!(
            "{}.{}.{}.{}.{}",
            jwe_header("RSA-OAEP-256"),
            b64([7u8; 256]),
            b64([1u8; 12]),
            b64(claims.to_string()),
            b64([2u8; 16])
        ),
        format!(
            "{}..{}.{}.{}",
            jwe_header("dir"),
            b64([1u8; 12]),
            b64(claims.to_string()),
            b64([2u8; 16])
        ),
        format!("{header}.AAAA.{payload}.BBBB.{signature}"),
        format!("{header}.{payload}.{signature}.{signature}.{signature}"),
    ] {
        target.refused(&token, MALFORMED, &[]).await;
    }

    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn tokens_without_exactly_three_segments_are_malformed() {
    // Attack: serialization confusion — one or two parts, a fourth part.
    let target = start().await;
    let good = target.issuer.token().sign();
    let [header, payload, signature] = segments(&good);

    for token in [
        header.clone(),
        format!("{header}.{payload}"),
        format!("{good}.{signature}"),
        format!("{good}."),
    ] {
        target.refused(&token, MALFORMED, &[]).await;
    }

    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn empty_segments_are_malformed() {
    // Attack: empty parts that some parsers read as "no header", "no claims"
    // or "no signature".
    let target = start().await;
    let [header, payload, signature] = segments(&target.issuer.token().sign());

    for token in [
        "..".to_owned(),
        format!(".{payload}.{signature}"),
        format!("{header}..{signature}"),
        format!("{header}.."),
    ] {
        target.refused(&token, MALFORMED, &[]).await;
    }

    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn json_serialization_sent_as_the_token_is_an_invalid_request() {
    // Attack: serialization confusion — the JWS JSON serialization (general
    // and flattened, RFC 7515 §7.2) instead of the compact form, for verifiers
    // that accept both and read "header" (unprotected) members.
    let target = start().await;
    let [header, payload, signature] = segments(&target.issuer.token().sign());
    let flattened = json!({
        "protected": header,
        "header": {"alg": "none", "kid": "attacker"},
        "payload": payload,
        "signature": signature,
    })
    .to_string();
    let general = json!({
        "payload": payload,
        "signatures": [{"protected": header, "signature": signature}],
    })
    .to_string();

    for token in [&flattened, &general] {
        for answer in [
            target.send(token).await,
            target
                .send_headers(&[("authorization", format!("Bearer {token}").as_bytes())])
                .await,
        ] {
            answer.assert_invalid_request(MALFORMED_CREDENTIALS);
            assert_not_echoed(&answer, token, &[&header, &payload, &signature]);
        }
        // Handed to the verifier directly, it is a malformed token.
        assert_eq!(
            target.auth.verify(token).await.unwrap_err(),
            AuthError::InvalidToken(InvalidToken::Malformed)
        );
    }

    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn base64_padding_in_a_segment_is_malformed() {
    // Attack: base64 variant confusion — '=' padding decodes in lenient
    // decoders, giving one token several spellings (and cache keys).
    let target = start().await;
    let [header, payload, signature] = segments(&target.issuer.token().sign());

    for token in [
        format!("{header}.{payload}.{signature}=="),
        format!("{header}.{payload}.{signature}="),
    ] {
        target.refused(&token, MALFORMED, &[]).await;
    }
    // '=' before the end is not even a bearer token (RFC 6750 b64token).
    for token in [
        format!("{header}==.{payload}.{signature}"),
        format!("{header}.{payload}=.{signature}"),
    ] {
        let answer = target.send(&token).await;
        answer.assert_invalid_request(MALFORMED_CREDENTIALS);
        assert_not_echoed(&answer, &token, &[]);
    }

    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn standard_base64_plus_and_slash_are_malformed() {
    // Attack: base64 variant confusion — '+' and '/' (standard alphabet)
    // decode to the same bytes as '-' and '_' in lenient decoders.
    let target = start().await;
    let [header, payload, signature] = segments(&target.issuer.token().sign());
    let replace_first = |segment: &str, with: char| format!("{with}{}", &segment[1..]);

    for token in [
        format!("{header}.{payload}.{}", replace_first(&signature, '+')),
        format!("{header}.{payload}.{}", replace_first(&signature, '/')),
        format!("{header}.{}.{signature}", replace_first(&payload, '+')),
        format!("{}.{payload}.{signature}", replace_first(&header, '/')),
        format!(
            "{header}.{payload}.{}",
            STANDARD.encode(URL_SAFE_NO_PAD.decode(&signature).unwrap())
        ),
    ] {
        target.refused(&token, MALFORMED, &[]).await;
    }

    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn whitespace_inside_the_token_is_an_invalid_request() {
    // Attack: smuggling — tokens split by spaces or tabs, which lenient
    // decoders skip.
    let target = start().await;
    let [header, payload, signature] = segments(&target.issuer.token().sign());

    for token in [
        format!("{header}. {payload}.{signature}"),
        format!("{header}.{payload}\t.{signature}"),
        format!(
            "{header}.{payload}.{} {}",
            &signature[..10],
            &signature[10..]
        ),
    ] {
        let answer = target.send(&token).await;
        answer.assert_invalid_request(MALFORMED_CREDENTIALS);
        assert_not_echoed(&answer, &token, &[]);
        let bearer = format!("Bearer {token}");
        let answer = target
            .send_headers(&[("authorization", bearer.as_bytes())])
            .await;
        answer.assert_invalid_request(MALFORMED_CREDENTIALS);
        assert_not_echoed(&answer, &token, &[]);
    }

    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn segments_that_are_not_json_objects_are_malformed() {
    // Attack: parser confusion with non-object JSON, non-UTF-8 bytes or
    // trailing garbage, in the header and (validly signed) in the claims.
    let target = start().await;
    let kid = target.issuer.current_kid();
    let claims = good_claims_text(&target.issuer);

    for header in [
        "not json".to_owned(),
        r#"["RS256"]"#.to_owned(),
        r#""RS256""#.to_owned(),
        format!(r#"{{"alg":"RS256","kid":"{kid}"}} trailing"#),
        format!(r#"{{"alg":"RS256","kid":"{kid}"}}{{}}"#),
    ] {
        let token = target.issuer.sign_raw(&header, &claims);
        target.refused(&token, MALFORMED, &[]).await;
    }
    let not_utf8 = format!(
        "{}.{}.{}",
        b64([0xff, 0xfe, 0xfd]),
        b64(&claims),
        b64("sig")
    );
    target.refused(&not_utf8, MALFORMED, &[]).await;
    assert_eq!(target.fetches(), 0);

    // Bad claims are only found after the signature checks out.
    let header = good_header_text(&target.issuer);
    for claims in ["[]", "null", "not json", "{\"sub\":\"u\"", "{} {}"] {
        let token = target.issuer.sign_raw(&header, claims);
        target.refused(&token, MALFORMED, &[]).await;
    }
    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
}

// ---------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------

#[tokio::test]
async fn signature_that_is_too_short_is_refused() {
    // Attack: truncated signatures, for verifiers that compare only as many
    // bytes as they were given.
    let target = start().await;
    let [header, payload, signature] = segments(&target.issuer.token().sign());
    let raw = URL_SAFE_NO_PAD.decode(&signature).unwrap();

    for bad in [&raw[..1], &raw[..32], &raw[..128], &raw[..255]] {
        let token = format!("{header}.{payload}.{}", b64(bad));
        target.refused(&token, BAD_SIGNATURE, &[]).await;
    }

    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn signature_that_is_too_long_is_refused() {
    // Attack: extended signatures (trailing bytes, a leading zero, the
    // signature twice) for verifiers that ignore what follows the modulus
    // length.
    let target = start().await;
    let [header, payload, signature] = segments(&target.issuer.token().sign());
    let raw = URL_SAFE_NO_PAD.decode(&signature).unwrap();

    for bad in [
        [&raw[..], &[0u8]].concat(),
        [&[0u8][..], &raw[..]].concat(),
        [&raw[..], &raw[..]].concat(),
        vec![0xff; 4096],
    ] {
        let token = format!("{header}.{payload}.{}", b64(bad));
        target.refused(&token, BAD_SIGNATURE, &[]).await;
    }

    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn empty_signature_is_malformed_before_any_key_lookup() {
    // Attack: an empty signature for verifiers that treat "nothing to check"
    // as "checked".
    let target = start().await;
    let [header, payload, _] = segments(&target.issuer.token().role("admin").sign());
    target
        .refused(&format!("{header}.{payload}."), MALFORMED, &[])
        .await;
    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn signature_forged_with_another_key_under_the_issuers_kid_is_refused() {
    // Attack: forgery — the attacker signs with their own RSA key and borrows
    // the issuer's kid.
    let target = start().await;
    let attacker = attacker_rsa_key();
    let (header, mut claims) = good_parts(&target.issuer);
    claims["role"] = json!("admin");
    assert_eq!(header["kid"], target.issuer.current_kid());
    let forged = rs256_signed_by(&attacker, &header, &claims);

    target.refused(&forged, BAD_SIGNATURE, &[]).await;
    let answer = raw_get(
        target.addr,
        "/admin",
        &[("x-meingpt-jwt", forged.as_bytes())],
    )
    .await
    .unwrap();
    answer.assert_invalid_token(BAD_SIGNATURE);

    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
    assert_eq!(target.fetches(), 1);
}

#[tokio::test]
async fn payload_swapped_for_an_admin_payload_fails_the_signature_check() {
    // Attack: tampering — keep header and signature of a real token, rewrite
    // the claims.
    let target = start().await;
    let genuine = target.issuer.token().role("member").sign();
    let [header, payload, signature] = segments(&genuine);
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&payload).unwrap()).unwrap();
    claims["role"] = json!("admin");
    claims["sub"] = json!("root");
    let tampered = format!("{header}.{}.{signature}", b64(claims.to_string()));

    target.refused(&tampered, BAD_SIGNATURE, &[]).await;
    let answer = raw_get(
        target.addr,
        "/admin",
        &[("x-meingpt-jwt", tampered.as_bytes())],
    )
    .await
    .unwrap();
    answer.assert_invalid_token(BAD_SIGNATURE);
    // The genuine token is untouched by the attempt.
    assert_eq!(target.send(&genuine).await.status, 200);
    let answer = raw_get(
        target.addr,
        "/admin",
        &[("x-meingpt-jwt", genuine.as_bytes())],
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 403);

    assert_eq!(target.fetches(), 1);
}

#[tokio::test]
async fn signature_with_a_flipped_bit_or_from_another_token_is_refused() {
    // Attack: signature malleability — a flipped bit, all zeros, or a valid
    // signature of another token by the same key.
    let target = start().await;
    let [header, payload, signature] = segments(&target.issuer.token().sign());
    let raw = URL_SAFE_NO_PAD.decode(&signature).unwrap();
    let other = segments(&target.issuer.token().sub("someone-else").sign())[2].clone();

    let mut bad = vec![other, b64([0u8; 256])];
    for position in [0, 100, 255] {
        let mut flipped = raw.clone();
        flipped[position] ^= 0x01;
        bad.push(b64(flipped));
    }
    for signature in bad {
        let token = format!("{header}.{payload}.{signature}");
        target.refused(&token, BAD_SIGNATURE, &[]).await;
    }

    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
}

// ---------------------------------------------------------------------------
// Size and depth
// ---------------------------------------------------------------------------

#[tokio::test]
async fn token_over_16_kib_is_refused_before_decoding_or_fetching() {
    // Attack: resource exhaustion with huge tokens (decoding, hashing, JSON).
    let target = start().await;

    let just_over = token_of_length(&target.issuer, 16 * 1024 + 1);
    target.refused(&just_over, TOO_LARGE, &[]).await;
    let junk = "A".repeat(64 * 1024);
    target.refused(&junk, TOO_LARGE, &[]).await;
    let huge_header = format!("{}.e30.e30", "A".repeat(20_000));
    target.refused(&huge_header, TOO_LARGE, &[]).await;
    assert_eq!(target.fetches(), 0);

    let at_limit = token_of_length(&target.issuer, 16 * 1024);
    assert_eq!(target.send(&at_limit).await.status, 200);
}

#[tokio::test]
async fn token_of_one_megabyte_gets_a_4xx_and_the_server_keeps_serving() {
    // Attack: resource exhaustion at the HTTP layer — a 1 MB header. The HTTP
    // server may refuse it itself (431) before the layer sees it; whatever is
    // answered must be a 4xx, and nothing may fall over.
    let target = start().await;
    let [header, payload, signature] = segments(&target.issuer.token().sign());
    let padding = "A".repeat(1024 * 1024);
    let token = format!("{header}.{payload}{padding}.{signature}");

    for name in ["x-meingpt-jwt", "authorization"] {
        let value = if name == "authorization" {
            format!("Bearer {token}")
        } else {
            token.clone()
        };
        match raw_get(target.addr, "/me", &[(name, value.as_bytes())]).await {
            Ok(answer) => {
                assert!(
                    (400..500).contains(&answer.status),
                    "{name}: {}",
                    answer.head
                );
                assert_not_echoed(&answer, &token, &[]);
            }
            // The server may close the connection on the unread rest of the
            // request before its answer is read: a refusal too.
            Err(error) => assert!(
                matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                ),
                "{name}: {error}"
            ),
        }
    }

    // Through the verifier's API (no HTTP limit in front), the size cap.
    assert_eq!(
        target.auth.verify(&token).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::TooLarge)
    );
    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn token_of_100_000_dots_is_refused() {
    // Attack: resource exhaustion in splitting — 100,000 empty segments.
    let target = start().await;
    let dots = ".".repeat(100_000);
    target.refused(&dots, TOO_LARGE, &[]).await;
    let wrapped = format!("eyJ{dots}e30");
    target.refused(&wrapped, TOO_LARGE, &[]).await;
    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;

    // With a cap that lets it through, it is malformed, and still fast.
    let roomy = start_with(|b| b.max_token_size(256 * 1024)).await;
    roomy.refused(&dots, MALFORMED, &[]).await;
    roomy.refused(&wrapped, MALFORMED, &[]).await;
    assert_eq!(roomy.fetches(), 0);
    roomy.still_serves_good_tokens().await;
}

#[tokio::test]
async fn header_nested_10_000_deep_is_refused_without_overflowing_the_stack() {
    // Attack: stack exhaustion in the JSON parser — {"a":[[[[…]]]]} 10,000
    // deep in the header, and (validly signed) in the claims.
    let depth = 10_000;
    let deep = format!(
        r#"{{"alg":"RS256","a":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let target = start().await;
    let claims = good_claims_text(&target.issuer);
    let token = target.issuer.sign_raw(&deep, &claims);
    target.refused(&token, TOO_LARGE, &[]).await;
    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;

    // Past a cap that lets it through, the parser's depth limit refuses it.
    let roomy = start_with(|b| b.max_token_size(256 * 1024)).await;
    let token = roomy
        .issuer
        .sign_raw(&deep, &good_claims_text(&roomy.issuer));
    roomy.refused(&token, MALFORMED, &[]).await;
    let deep_object = format!(
        r#"{{"alg":"RS256","a":{}1{}}}"#,
        "{\"a\":".repeat(depth),
        "}".repeat(depth)
    );
    let token = roomy
        .issuer
        .sign_raw(&deep_object, &good_claims_text(&roomy.issuer));
    roomy.refused(&token, MALFORMED, &[]).await;
    assert_eq!(roomy.fetches(), 0);

    let deep_claims = good_claims_text(&roomy.issuer).replacen(
        '{',
        &format!(r#"{{"deep":{}{},"#, "[".repeat(depth), "]".repeat(depth)),
        1,
    );
    let token = roomy
        .issuer
        .sign_raw(&good_header_text(&roomy.issuer), &deep_claims);
    roomy.refused(&token, MALFORMED, &[]).await;
    assert_eq!(roomy.fetches(), 1);
    roomy.still_serves_good_tokens().await;
}

// ---------------------------------------------------------------------------
// Duplicate JSON members
// ---------------------------------------------------------------------------

#[tokio::test]
async fn duplicate_header_members_are_malformed_before_any_key_lookup() {
    // Attack: JSON parser differential — {"alg":"RS256","alg":"none"} means
    // different things to first-wins and last-wins parsers.
    let target = start().await;
    let kid = target.issuer.current_kid();
    let claims = good_claims_text(&target.issuer);

    for header in [
        r#"{"alg":"RS256","alg":"none"}"#.to_owned(),
        r#"{"alg":"none","alg":"RS256"}"#.to_owned(),
        r#"{"alg":"RS256","alg":"RS256"}"#.to_owned(),
        r#"{"alg":"RS256","al\u0067":"none"}"#.to_owned(),
        format!(r#"{{"alg":"RS256","kid":"{kid}","kid":"other"}}"#),
        format!(r#"{{"alg":"RS256","kid":"{kid}","crit":[],"crit":[]}}"#),
    ] {
        let token = target.issuer.sign_raw(&header, &claims);
        target.refused(&token, MALFORMED, &[]).await;
    }

    assert_eq!(target.fetches(), 0);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn duplicate_claims_are_malformed_even_under_a_valid_signature() {
    // Attack: JSON parser differential in the claims — two subs, two exps,
    // two auds, two roles, nested duplicates; each signed by the real key.
    let target = start().await;
    let header = good_header_text(&target.issuer);
    let iss = target.issuer.issuer();
    let exp = now() + 3600;
    let expired = now() - 3600;

    let valid = format!(r#"{{"iss":"{iss}","aud":"org-test","exp":{exp},"sub":"user-1"}}"#);
    let answer = target.send(&target.issuer.sign_raw(&header, &valid)).await;
    assert_eq!(answer.status, 200, "sign_raw makes good tokens");

    for claims in [
        format!(r#"{{"iss":"{iss}","aud":"org-test","exp":{exp},"sub":"user-1","sub":"admin"}}"#),
        format!(r#"{{"iss":"{iss}","aud":"org-test","exp":{expired},"sub":"user-1","exp":{exp}}}"#),
        format!(r#"{{"iss":"{iss}","aud":"org-test","exp":{exp},"exp":{expired},"sub":"user-1"}}"#),
        format!(r#"{{"iss":"{iss}","aud":"org-test","aud":"org-other","exp":{exp},"sub":"u"}}"#),
        format!(
            r#"{{"iss":"{iss}","aud":"org-test","exp":{exp},"sub":"u","role":"member","role":"admin"}}"#
        ),
        format!(
            r#"{{"iss":"{iss}","aud":"org-test","exp":{exp},"sub":"u","teams":[{{"id":"t1","id":"t2","name":"Engineering"}}]}}"#
        ),
    ] {
        let token = target.issuer.sign_raw(&header, &claims);
        target.refused(&token, MALFORMED, &["admin"]).await;
    }

    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
}

// ---------------------------------------------------------------------------
// Wrongly typed claims
// ---------------------------------------------------------------------------

#[tokio::test]
async fn time_claims_that_are_not_numbers_are_invalid_claims() {
    // Attack: type confusion on NumericDate — "exp":"123", null, bools,
    // arrays — read differently (or as "no expiry") across parsers.
    // (Fractions are valid NumericDates: see claims_and_config.rs.)
    let target = start().await;
    let later = now() + 3600;

    for (name, value) in [
        ("exp", json!("123")),
        ("exp", json!(later.to_string())),
        ("exp", Value::Null),
        ("exp", json!(true)),
        ("exp", json!([later])),
        ("nbf", json!("0")),
        ("nbf", Value::Null),
        ("iat", json!({})),
    ] {
        let token = target.issuer.token().claim(name, value).sign();
        target.refused(&token, INVALID_CLAIM, &[]).await;
    }

    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn exp_that_overflows_every_number_type_is_refused() {
    // Attack: numeric overflow — exp 1e400 (infinite as a double), 1e300,
    // past u64, written as text only a hostile signer would produce.
    let target = start().await;
    let header = good_header_text(&target.issuer);
    let iss = target.issuer.issuer();
    let claims =
        |exp: &str| format!(r#"{{"iss":"{iss}","aud":"org-test","sub":"user-1","exp":{exp}}}"#);

    // Not representable at all: not strictly well-formed JSON for us.
    for exp in ["1e400", "-1e400", "1E999"] {
        let token = target.issuer.sign_raw(&header, &claims(exp));
        target.refused(&token, MALFORMED, &[]).await;
    }
    // Representable as a double, but beyond 2^63 seconds.
    for exp in ["1e300", "18446744073709551616", "99999999999999999999999"] {
        let token = target.issuer.sign_raw(&header, &claims(exp));
        target.refused(&token, INVALID_CLAIM, &[]).await;
    }
    // A huge integer is simply far in the future.
    let token = target
        .issuer
        .sign_raw(&header, &claims("18446744073709551615"));
    assert_eq!(target.send(&token).await.status, 200);

    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn aud_as_a_number_or_a_mixed_array_is_an_invalid_claim() {
    // Attack: type confusion on "aud" — number, bool, null, object, mixed or
    // nested arrays.
    let target = start().await;

    for aud in [
        json!(42),
        json!(true),
        Value::Null,
        json!({"org-test": true}),
        json!(["org-test", 5]),
        json!(["org-test", null]),
        json!([["org-test"]]),
    ] {
        let token = target.issuer.token().audience(aud).sign();
        target.refused(&token, INVALID_CLAIM, &[]).await;
    }

    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn aud_missing_or_empty_is_refused() {
    // Attack: audience stripping — a token with no audience (or "aud": [])
    // that a lax verifier takes as valid for every audience.
    let target = start().await;
    let token = target.issuer.token().without("aud").sign();
    target.refused(&token, MISSING_CLAIM, &[]).await;
    let token = target.issuer.token().audience(json!([])).sign();
    target.refused(&token, INVALID_CLAIM, &[]).await;
    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn token_for_another_organization_is_refused() {
    // Attack: audience confusion — replaying a token meant for another
    // organization's app (or a near miss of this one's id).
    let target = start().await;

    for aud in [
        json!("org-other"),
        json!("ORG-TEST"),
        json!("org-test "),
        json!(""),
        json!(["org-other"]),
        json!(["org-other", "org-test2"]),
    ] {
        let token = target.issuer.token().audience(aud.clone()).sign();
        target
            .refused(&token, WRONG_AUDIENCE, &["org-other", "org-test2"])
            .await;
    }

    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn iss_as_an_array_or_other_non_string_is_an_invalid_claim() {
    // Attack: type confusion on "iss" — an array holding the right issuer,
    // for verifiers that check "contains".
    let target = start().await;
    let iss = target.issuer.issuer().to_owned();
    for value in [
        json!([iss]),
        json!([iss, "https://pwned.example"]),
        json!({"iss": iss}),
        json!(1),
        Value::Null,
    ] {
        let token = target.issuer.token().claim("iss", value).sign();
        target.refused(&token, INVALID_CLAIM, &[]).await;
    }
    let token = target.issuer.token().without("iss").sign();
    target.refused(&token, MISSING_CLAIM, &[]).await;
    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn iss_with_a_trailing_slash_is_another_issuer() {
    // Attack: issuer confusion — "https://host/" vs "https://host", case,
    // paths and other instances, for verifiers that normalize URLs.
    let target = start().await;
    let iss = target.issuer.issuer().to_owned();
    for other in [
        format!("{iss}/"),
        format!("{iss}//"),
        iss.to_uppercase(),
        format!("{iss}/api"),
        format!("{iss}#"),
        format!("{iss}?"),
        format!(" {iss}"),
        "https://app.meingpt.com".to_owned(),
        String::new(),
    ] {
        let token = target.issuer.token().issuer(&other).sign();
        target.refused(&token, WRONG_ISSUER, &[]).await;
    }
    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
}

#[tokio::test]
async fn sub_that_is_not_a_string_is_an_invalid_claim() {
    // Attack: type confusion on "sub" — numeric ids colliding with string
    // ids, arrays and objects read as "the first" id.
    let target = start().await;
    for sub in [
        json!(42),
        json!(["user-1"]),
        json!({"id": "user-1"}),
        Value::Null,
    ] {
        let token = target.issuer.token().claim("sub", sub).sign();
        target.refused(&token, INVALID_CLAIM, &[]).await;
    }
    assert_eq!(target.fetches(), 1);
    target.still_serves_good_tokens().await;
}

// ---------------------------------------------------------------------------
// Reflection
// ---------------------------------------------------------------------------

#[tokio::test]
async fn rejections_never_echo_the_token_its_kid_or_claim_values() {
    // Attack: reflection — making the server repeat attacker-chosen bytes
    // (XSS in an error page, log or header injection).
    let target = start().await;
    let marker = "ZZmarkerZZ";
    let tokens = [
        target.issuer.token().kid(&format!("{marker}-kid")).sign(),
        target
            .issuer
            .token()
            .audience(format!("{marker}-org"))
            .sign(),
        target
            .issuer
            .token()
            .issuer(&format!("https://{marker}.example"))
            .sign(),
        target.issuer.token().claim("sub", json!([marker])).sign(),
        target.issuer.token().claim("exp", marker).sign(),
        target.issuer.sign_raw(
            &json!({"alg": format!("<script>{marker}</script>")}).to_string(),
            &good_claims_text(&target.issuer),
        ),
    ];
    for token in &tokens {
        let answer = target.send(token).await;
        assert_eq!(answer.status, 401, "{}", answer.body);
        answer.assert_only_rejection_headers();
        assert_not_echoed(&answer, token, &[marker]);
    }
    target.still_serves_good_tokens().await;
}
