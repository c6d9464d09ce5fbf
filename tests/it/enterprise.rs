//! Enterprise networks: an issuer behind a private certificate authority,
//! reached over real HTTPS on loopback.
//!
//! A test CA and a certificate for 127.0.0.1 are made here with `rcgen`; a
//! TLS front (rustls) terminates HTTPS and passes each connection on to a
//! plain-HTTP `MockIssuer`, which counts the fetches that got through.
//! Without the CA the fetch fails at the TLS handshake; with it
//! (`JWKS_CA_FILE` for the quickstart, `http_client` for the builder)
//! tokens verify after exactly one fetch.
//!
//! The quickstart tests run the compiled example; when only this module is
//! selected, build it first: `cargo build --all-features --example quickstart`.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use meingpt_auth::MeinGptAuth;
use meingpt_auth::testing::{Fault, MockIssuer};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tower::ServiceExt;

use crate::common::example::{
    PATIENCE, Running, assert_refused, command, example_binary, free_port,
};
use crate::common::{CapturedLog, Seen, app, get_with_token, serve};

/// A test CA and a server configuration for 127.0.0.1 signed by it.
struct TestPki {
    ca_pem: String,
    server: Arc<ServerConfig>,
}

impl TestPki {
    fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "meingpt-auth test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let server = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(leaf.der().to_vec())], key)
            .unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            server: Arc::new(server),
        }
    }

    /// The CA certificate as reqwest trusts it.
    fn ca(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap()
    }

    /// The CA certificate in a PEM file, as `JWKS_CA_FILE` names it.
    fn ca_file(&self) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "meingpt-auth-enterprise-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("corporate-ca.pem");
        std::fs::write(&path, &self.ca_pem).unwrap();
        path
    }
}

/// HTTPS on 127.0.0.1 in front of a plain-HTTP backend: each connection's
/// TLS is terminated here and its bytes are passed on. Stops when dropped.
struct TlsFront {
    addr: SocketAddr,
    /// Why handshakes failed, as the server saw it.
    handshake_failures: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    async fn start(pki: &TestPki, backend: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(pki.server.clone());
        let handshake_failures = Arc::new(Mutex::new(Vec::new()));
        let failures = handshake_failures.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let failures = failures.clone();
                tokio::spawn(async move {
                    let mut tls = match acceptor.accept(stream).await {
                        Ok(tls) => tls,
                        Err(error) => {
                            failures.lock().unwrap().push(error.to_string());
                            return;
                        }
                    };
                    let Ok(mut plain) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Self {
            addr,
            handshake_failures,
            task,
        }
    }

    /// `issuer`'s JWKS URL, over HTTPS through this front.
    fn jwks_url(&self, issuer: &MockIssuer) -> String {
        let plain = issuer.jwks_url();
        let path = plain
            .strip_prefix(issuer.issuer())
            .expect("the JWKS URL is under the issuer");
        format!("https://{}{path}", self.addr)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client that trusts the platform's roots and `pki`'s CA, and never
/// follows redirects.
fn client_trusting(pki: &TestPki) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_merge([pki.ca()])
        .build()
        .unwrap()
}

async fn get_me(auth: &MeinGptAuth, token: &str) -> Seen {
    let base = serve(app(auth)).await;
    get_with_token(&format!("{base}/me"), token).await
}

// ---------------------------------------------------------------------------
// The builder: `http_client`
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn without_the_private_ca_the_fetch_fails_with_503_and_a_warning_naming_the_tls_cause() {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // `tracing` caches each callsite's interest globally; with a second
    // dispatcher alive, every callsite asks both (see verification.rs).
    let _second = tracing::Dispatch::new(tracing_subscriber::fmt().with_writer(io::sink).finish());

    let pki = TestPki::new();
    let issuer = MockIssuer::start().await;
    let front = TlsFront::start(&pki, issuer.addr()).await;
    let auth = issuer
        .auth()
        .jwks_url(front.jwks_url(&issuer))
        .build()
        .unwrap();
    let token = issuer.token().sign();

    let request = Request::get("/me")
        .header("x-meingpt-jwt", token.as_str())
        .body(Body::empty())
        .unwrap();
    let response = app(&auth).oneshot(request).await.unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let text = log.text();
    let warning = text
        .lines()
        .find(|line| line.contains("JWKS fetch failed"))
        .unwrap_or_else(|| panic!("no warning about the fetch: {text}"));
    assert!(warning.contains(" WARN "), "{warning}");
    assert!(
        warning.contains("invalid peer certificate: UnknownIssuer"),
        "the warning does not name the TLS cause: {warning}"
    );
    assert!(warning.contains(&front.jwks_url(&issuer)), "{warning}");
    assert!(!text.contains(&token), "the token was logged");
    assert_eq!(issuer.fetch_count(), 0, "the handshake should have failed");
}

#[tokio::test]
async fn with_an_application_client_that_trusts_the_private_ca_tokens_verify_after_one_fetch() {
    let pki = TestPki::new();
    let issuer = MockIssuer::start().await;
    let front = TlsFront::start(&pki, issuer.addr()).await;
    let auth = issuer
        .auth()
        .jwks_url(front.jwks_url(&issuer))
        .http_client(client_trusting(&pki))
        .build()
        .unwrap();

    for sub in ["user-1", "user-2", "user-3"] {
        let seen = get_me(&auth, &issuer.token().sub(sub).sign()).await;
        assert_eq!(seen.status, 200, "{}", seen.body);
        assert_eq!(seen.json()["sub"], sub);
    }
    assert_eq!(issuer.fetch_count(), 1);
    assert!(front.handshake_failures.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_application_client_that_follows_redirects_gets_no_keys_through_one() {
    // The configured JWKS URL redirects to another server that serves a key
    // set; a client built without `Policy::none()` follows. The answer
    // comes from a URL that was not configured, so it is refused.
    let issuer = MockIssuer::start().await;
    let elsewhere = MockIssuer::start().await;
    issuer.fail(Fault::Redirect(elsewhere.jwks_url()));
    let auth = issuer
        .auth()
        .http_client(reqwest::Client::new())
        .build()
        .unwrap();
    let token = elsewhere.token().issuer(issuer.issuer()).sign();

    let seen = get_me(&auth, &token).await;

    assert_eq!(seen.status, 503, "{}", seen.body);
    assert_eq!(seen.retry_after.as_deref(), Some("5"));
    assert_eq!(issuer.fetch_count(), 1);
    assert_eq!(elsewhere.fetch_count(), 1, "the client followed");
}

#[tokio::test]
async fn the_size_cap_holds_with_an_application_client() {
    let issuer = MockIssuer::start().await;
    let auth = issuer
        .auth()
        .http_client(reqwest::Client::new())
        .jwks_max_size(64)
        .build()
        .unwrap();

    let error = auth.preload().await.unwrap_err();

    assert_eq!(
        error.to_string(),
        format!(
            "cannot load signing keys from {} (set by MEINGPT_ORG_ID / `organization`): \
             the answer is larger than 64 bytes",
            issuer.jwks_url()
        )
    );
    let seen = get_me(&auth, &issuer.token().sign()).await;
    assert_eq!(seen.status, 503);
}

#[tokio::test]
async fn the_fetch_timeout_holds_with_an_application_client_without_one() {
    let issuer = MockIssuer::start().await;
    issuer.fail(Fault::Hang);
    let timeout = Duration::from_millis(300);
    let auth = issuer
        .auth()
        .http_client(reqwest::Client::new())
        .jwks_timeout(timeout)
        .build()
        .unwrap();

    let error = tokio::time::timeout(Duration::from_secs(10), auth.preload())
        .await
        .expect("the fetch was given up")
        .unwrap_err();

    assert!(
        error
            .to_string()
            .ends_with("no complete answer within 300ms"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------
// The environment: `JWKS_CA_FILE`, through the quickstart
// ---------------------------------------------------------------------------

fn quickstart(vars: &[(&str, &str)]) -> std::process::Command {
    command(
        &example_binary("quickstart", &["examples/quickstart.rs"]),
        vars,
    )
}

/// The quickstart with `vars`, once it serves; returns it and its base URL.
fn start_quickstart(vars: &[(&str, &str)]) -> (Running, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut all = vec![("LISTEN_ADDR", listen.as_str())];
    all.extend_from_slice(vars);
    let mut running = Running::spawn(quickstart(&all));
    running.read_until(|seen| {
        seen.iter()
            .any(|line| line.contains("Verifying tokens from the configured issuer"))
    });
    (running, format!("http://{listen}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn with_jwks_ca_file_the_quickstart_verifies_tokens_from_an_https_issuer() {
    let pki = TestPki::new();
    let ca_file = pki.ca_file();
    let issuer = MockIssuer::start().await;
    let front = TlsFront::start(&pki, issuer.addr()).await;
    let jwks_url = front.jwks_url(&issuer);
    let (_running, base) = start_quickstart(&[
        ("MEINGPT_ORG_ID", issuer.organization()),
        ("MEINGPT_ISSUER", issuer.issuer()),
        ("MEINGPT_JWKS_URL", &jwks_url),
        ("JWKS_CA_FILE", ca_file.to_str().unwrap()),
    ]);

    for sub in ["user-1", "user-2"] {
        let seen = get_with_token(&format!("{base}/me"), &issuer.token().sub(sub).sign()).await;
        assert_eq!(seen.status, 200, "{}", seen.body);
        assert_eq!(seen.json()["sub"], sub);
    }
    assert_eq!(issuer.fetch_count(), 1);
    assert!(front.handshake_failures.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_jwks_ca_file_the_quickstart_answers_503_and_names_the_tls_cause_once() {
    let pki = TestPki::new();
    let issuer = MockIssuer::start().await;
    let front = TlsFront::start(&pki, issuer.addr()).await;
    let jwks_url = front.jwks_url(&issuer);
    let (running, base) = start_quickstart(&[
        ("MEINGPT_ORG_ID", issuer.organization()),
        ("MEINGPT_ISSUER", issuer.issuer()),
        ("MEINGPT_JWKS_URL", &jwks_url),
    ]);

    let seen = get_with_token(&format!("{base}/me"), &issuer.token().sign()).await;

    assert_eq!(seen.status, 503, "{}", seen.body);
    assert_eq!(seen.retry_after.as_deref(), Some("5"));
    // The start-up warning precedes the listening line; stderr is read on
    // another thread.
    let deadline = std::time::Instant::now() + PATIENCE;
    let stderr = loop {
        let stderr = running.stderr();
        if stderr.contains("warning: ") || std::time::Instant::now() > deadline {
            break stderr;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let warning = stderr
        .lines()
        .find(|line| line.starts_with("warning: cannot load signing keys"))
        .unwrap_or_else(|| panic!("no warning about the fetch: {stderr}"));
    assert!(
        warning.contains("invalid peer certificate: UnknownIssuer"),
        "{warning}"
    );
    assert_eq!(stderr.matches(&jwks_url).count(), 1, "{stderr}");
    assert_eq!(issuer.fetch_count(), 0);
}

#[test]
fn a_jwks_ca_file_that_does_not_exist_stops_the_quickstart_with_one_line() {
    let line = assert_refused(quickstart(&[
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("MEINGPT_ORG_ID", "org-1"),
        ("JWKS_CA_FILE", "/nonexistent/corporate-ca.pem"),
    ]));
    assert_eq!(
        line,
        "error: JWKS_CA_FILE is invalid: /nonexistent/corporate-ca.pem does not exist; \
         set it to the path of a PEM file of root certificates"
    );
}
