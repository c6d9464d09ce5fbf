//! TLS termination with rustls, checked against a test CA made here.

use std::path::PathBuf;

use meingpt_auth::testing::MockIssuer;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::common::{Answer, Gateway, Upstream, auth_toml, temp_dir};

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

#[tokio::test]
async fn client_that_does_not_trust_the_ca_cannot_connect() {
    let pki = pki();
    let stranger = pki_ca_only();
    let issuer = MockIssuer::start().await;
    let toml = format!(
        "{}[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        auth_toml(&issuer),
        pki.cert.display(),
        pki.key.display(),
    );
    let gateway = Gateway::start(&toml, &[]).await;

    let result = trusting(&stranger)
        .get(gateway.url("/healthz"))
        .send()
        .await;
    assert!(
        result.is_err(),
        "a certificate from an untrusted CA was accepted"
    );
    let healthy = trusting(&pki.ca_pem)
        .get(gateway.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthy.status(), 200);
}

fn pki_ca_only() -> String {
    pki().ca_pem
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
