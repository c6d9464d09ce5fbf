//! TLS termination with rustls, checked against a test CA made here.

use std::path::PathBuf;

use meingpt_auth::testing::MockIssuer;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::common::raw::{self, closed_by_peer};
use crate::common::{Answer, Gateway, PATIENCE, Upstream, auth_toml, temp_dir};

struct TestPki {
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

/// A CA and a certificate for 127.0.0.1 and localhost signed by it.
fn pki() -> TestPki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "meingpt-gateway test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let dir = temp_dir("tls");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        cert,
        key,
    }
}

fn trusting(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .build()
        .unwrap()
}

#[tokio::test]
async fn tls_is_terminated_with_the_configured_certificate() {
    let pki = pki();
    let issuer = MockIssuer::start().await;
    let upstream = Upstream::start().await;
    let toml = format!(
        "{}[tls]\ncert = \"{}\"\nkey = \"{}\"\n[[route]]\nprefix = \"/\"\nupstream = \"{}\"\n",
        auth_toml(&issuer),
        pki.cert.display(),
        pki.key.display(),
        upstream.url()
    );
    let gateway = Gateway::start(&toml, &[]).await;
    assert!(gateway.base.starts_with("https://"), "{}", gateway.base);
    let token = issuer.token().sub("tls-user").sign();

    let response = trusting(&pki.ca_pem)
        .get(gateway.url("/secure"))
        .header("x-meingpt-jwt", &token)
        .send()
        .await
        .expect("the certificate verifies against the test CA");
    let answer = Answer::read(response).await;

    assert_eq!(answer.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-auth-request-user"), Some("tls-user"));
}

/// A TLS connection to `addr` from a client that trusts only `ca_pem`,
/// offering `alpn`.
async fn tls_connect(
    addr: &str,
    ca_pem: &str,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await
}

async fn tls_gateway(pki: &TestPki, settings: &str) -> (MockIssuer, Upstream, Gateway) {
    let issuer = MockIssuer::start().await;
    let upstream = Upstream::start().await;
    let toml = format!(
        "{settings}\n{}[tls]\ncert = \"{}\"\nkey = \"{}\"\n[[route]]\nprefix = \"/\"\nupstream = \"{}\"\n",
        auth_toml(&issuer),
        pki.cert.display(),
        pki.key.display(),
        upstream.url()
    );
    let gateway = Gateway::start(&toml, &[]).await;
    (issuer, upstream, gateway)
}

#[tokio::test]
async fn tls_listener_presents_the_configured_certificate_and_offers_http2() {
    let pki = pki();
    let (_issuer, _upstream, gateway) = tls_gateway(&pki, "").await;
    let configured = {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_file(&pki.cert).unwrap()
    };

    let stream = tls_connect(
        &raw::addr_of(&gateway.base),
        &pki.ca_pem,
        &[b"h2", b"http/1.1"],
    )
    .await
    .expect("the handshake succeeds for a client that trusts the test CA");
    let (_, connection) = stream.get_ref();

    let presented = connection.peer_certificates().expect("a certificate");
    assert_eq!(presented.len(), 1);
    assert_eq!(presented[0], configured, "not the configured certificate");
    assert_eq!(connection.alpn_protocol(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn plain_http_on_the_tls_listener_gets_no_http_answer() {
    let pki = pki();
    let (_issuer, upstream, gateway) = tls_gateway(&pki, "").await;

    let mut plain = raw::send(
        &gateway.base,
        b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    let mut answer = Vec::new();
    use tokio::io::AsyncReadExt;
    let _ = tokio::time::timeout(PATIENCE, plain.read_to_end(&mut answer)).await;

    assert!(
        !answer.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn http2_over_tls_reaches_the_upstream_with_the_identity_headers() {
    let pki = pki();
    let (issuer, upstream, gateway) = tls_gateway(&pki, "").await;
    let token = issuer.token().sub("h2-user").sign();

    let response = trusting(&pki.ca_pem)
        .get(gateway.url("/over-h2"))
        .header("x-meingpt-jwt", &token)
        .send()
        .await
        .unwrap();

    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let seen = upstream.last();
    assert_eq!(seen.uri, "/over-h2");
    assert_eq!(seen.header("x-auth-request-user"), Some("h2-user"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
}

#[tokio::test]
async fn tls_handshake_that_never_starts_is_closed_after_the_handshake_timeout() {
    let pki = pki();
    let (_issuer, _upstream, gateway) = tls_gateway(
        &pki,
        "[connections]\ntls_handshake_timeout_secs = 0.3\nheader_read_timeout_secs = 600",
    )
    .await;

    let mut silent = raw::send(&gateway.base, b"").await;

    assert!(
        closed_by_peer(&mut silent).await,
        "a connection that never started its handshake was open after {PATIENCE:?}"
    );
}

#[tokio::test]
async fn tls_connection_that_sends_no_request_is_closed_after_the_header_read_timeout() {
    let pki = pki();
    let (_issuer, _upstream, gateway) =
        tls_gateway(&pki, "[connections]\nheader_read_timeout_secs = 0.3").await;

    for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
        let mut stream = tls_connect(&raw::addr_of(&gateway.base), &pki.ca_pem, &[alpn])
            .await
            .expect("a TLS connection");
        assert!(
            closed_by_peer(&mut stream).await,
            "{}: a TLS connection without a request was open after {PATIENCE:?}",
            String::from_utf8_lossy(alpn)
        );
    }
}

#[tokio::test]
async fn key_that_does_not_match_the_certificate_is_refused_naming_tls_key() {
    let first = pki();
    let second = pki();
    let issuer = MockIssuer::start().await;
    let toml = format!(
        "{}[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        auth_toml(&issuer),
        first.cert.display(),
        second.key.display(),
    );

    let error = Gateway::try_start(&toml, &[]).await.err().expect("refused");

    assert_eq!(error.key(), "tls.key");
}
