//! `MockIssuer` as a minimal OAuth 2.1 authorization server (the test kit's
//! `OAuthServer`): what an OAuth client sees of its metadata, registration,
//! authorization and token endpoints, and that its tokens verify.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use meingpt_auth::MeinGptAuth;
use meingpt_auth::testing::{MockIssuer, OAuthServer};
use serde_json::{Value, json};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const REDIRECT: &str = "http://127.0.0.1:1/callback";
const VERIFIER: &str = "a-code-verifier-of-at-least-forty-three-characters-0123456789";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn register(issuer: &MockIssuer, metadata: Value) -> (u16, Value) {
    let response = client()
        .post(format!("{}/oauth/register", issuer.issuer()))
        .json(&metadata)
        .send()
        .await
        .unwrap();
    // A 404 has no JSON body.
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// `GET /oauth/authorize` with `params`: the status and the `Location`.
async fn authorize(issuer: &MockIssuer, params: &[(&str, &str)]) -> (u16, Option<url::Url>) {
    let response = client()
        .get(format!("{}/oauth/authorize", issuer.issuer()))
        .query(params)
        .send()
        .await
        .unwrap();
    let location = response
        .headers()
        .get("location")
        .map(|value| url::Url::parse(value.to_str().unwrap()).unwrap());
    (response.status().as_u16(), location)
}

fn query(location: &url::Url, name: &str) -> Option<String> {
    location
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

async fn token(issuer: &MockIssuer, form: &[(&str, &str)]) -> (u16, Value) {
    let response = client()
        .post(format!("{}/oauth/token", issuer.issuer()))
        .form(form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// A public client registered for the authorization-code flow, and a code
/// for `resource` with the `scope`.
async fn code_for(issuer: &MockIssuer, scope: &str) -> (String, String) {
    let (status, registered) = register(
        issuer,
        json!({ "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none" }),
    )
    .await;
    assert_eq!(status, 201, "{registered}");
    assert!(registered.get("client_secret").is_none(), "{registered}");
    let client_id = registered["client_id"].as_str().unwrap().to_owned();
    let challenge = challenge(VERIFIER);
    let (status, location) = authorize(
        issuer,
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("state", "xyz"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("scope", scope),
            ("resource", RESOURCE),
        ],
    )
    .await;
    assert_eq!(status, 302);
    let location = location.unwrap();
    assert!(location.as_str().starts_with(REDIRECT), "{location}");
    assert_eq!(query(&location, "state").as_deref(), Some("xyz"));
    assert_eq!(query(&location, "iss").as_deref(), Some(issuer.issuer()));
    (client_id, query(&location, "code").expect("a code"))
}

fn bound_auth(issuer: &MockIssuer) -> MeinGptAuth {
    MeinGptAuth::oidc(issuer.issuer())
        .audience(RESOURCE)
        .require_token_type("at+jwt")
        .build()
        .unwrap()
}

#[tokio::test]
async fn without_serve_oauth_the_oauth_endpoints_answer_404() {
    let issuer = MockIssuer::start().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/oauth/authorize",
    ] {
        let response = client()
            .get(format!("{}{path}", issuer.issuer()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    for path in ["/oauth/token", "/oauth/register"] {
        let response = client()
            .post(format!("{}{path}", issuer.issuer()))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    assert!(issuer.oauth_grants().is_empty());
}

#[tokio::test]
async fn the_metadata_names_the_endpoints_and_registration_only_when_enabled() {
    let issuer = MockIssuer::start().await;
    let base = issuer.issuer().to_owned();
    let metadata_url = format!("{base}/.well-known/oauth-authorization-server");
    let fetch_metadata = || async {
        let response = client().get(&metadata_url).send().await.unwrap();
        response.json::<Value>().await.unwrap()
    };
    issuer.serve_oauth(OAuthServer::new().scopes_supported(["mcp:tools"]));
    let metadata = fetch_metadata().await;
    assert_eq!(
        metadata,
        json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}/oauth/authorize"),
            "token_endpoint": format!("{base}/oauth/token"),
            "jwks_uri": issuer.jwks_url(),
            "scopes_supported": ["mcp:tools"],
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "token_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
        })
    );
    let (status, _) = register(&issuer, json!({ "redirect_uris": [REDIRECT] })).await;
    assert_eq!(status, 404, "registration is off by default");

    issuer.serve_oauth(OAuthServer::new().dynamic_registration(true));
    let metadata = fetch_metadata().await;
    assert_eq!(
        metadata["registration_endpoint"],
        format!("{base}/oauth/register")
    );
}

#[tokio::test]
async fn the_authorization_code_flow_with_pkce_gives_a_token_for_the_resource_and_the_user() {
    let issuer = MockIssuer::start().await;
    issuer.serve_oauth(
        OAuthServer::new()
            .dynamic_registration(true)
            .user("alice")
            .user_claim("email", "alice@example.com"),
    );
    let (client_id, code) = code_for(&issuer, "mcp:tools").await;

    let (status, answer) = token(
        &issuer,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", VERIFIER),
            ("resource", RESOURCE),
        ],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 3600);
    assert_eq!(answer["scope"], "mcp:tools");

    let user = bound_auth(&issuer)
        .verify(answer["access_token"].as_str().unwrap())
        .await
        .expect("the token verifies for the resource");
    assert_eq!(user.sub(), "alice");
    assert_eq!(user.email(), Some("alice@example.com"));
    assert_eq!(user.organization_id(), RESOURCE);
    assert!(user.has_scope("mcp:tools"));
    assert_eq!(user.claim("client_id"), Some(&json!(client_id)));

    let grants = issuer.oauth_grants();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].grant_type, "authorization_code");
    assert_eq!(grants[0].sub, "alice");
    assert_eq!(grants[0].scopes, ["mcp:tools"]);
    assert_eq!(grants[0].resources, [RESOURCE]);
}

#[tokio::test]
async fn a_wrong_code_verifier_is_refused_and_spends_the_code() {
    let issuer = MockIssuer::start().await;
    issuer.serve_oauth(OAuthServer::new().dynamic_registration(true));
    let (client_id, code) = code_for(&issuer, "").await;
    let exchange = |verifier: &'static str| {
        let (issuer, code, client_id) = (&issuer, code.clone(), client_id.clone());
        async move {
            token(
                issuer,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("client_id", &client_id),
                    ("code_verifier", verifier),
                ],
            )
            .await
        }
    };
    let (status, answer) =
        exchange("another-verifier-of-at-least-forty-three-characters-0123456789").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, answer) = exchange(VERIFIER).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(issuer.oauth_grants().is_empty());
}

#[tokio::test]
async fn authorization_without_s256_pkce_is_refused_in_the_redirect() {
    let issuer = MockIssuer::start().await;
    issuer.serve_oauth(OAuthServer::new().dynamic_registration(true));
    let (_, registered) = register(&issuer, json!({ "redirect_uris": [REDIRECT] })).await;
    let client_id = registered["client_id"].as_str().unwrap();
    for method in ["plain", ""] {
        let (status, location) = authorize(
            &issuer,
            &[
                ("response_type", "code"),
                ("client_id", client_id),
                ("state", "s"),
                ("code_challenge", VERIFIER),
                ("code_challenge_method", method),
            ],
        )
        .await;
        assert_eq!(status, 302);
        let location = location.unwrap();
        assert_eq!(
            query(&location, "error").as_deref(),
            Some("invalid_request")
        );
        assert_eq!(query(&location, "code"), None);
        assert_eq!(query(&location, "state").as_deref(), Some("s"));
    }
}

#[tokio::test]
async fn an_unregistered_redirect_uri_is_refused_without_a_redirect() {
    let issuer = MockIssuer::start().await;
    issuer.serve_oauth(OAuthServer::new().dynamic_registration(true));
    let (_, registered) = register(&issuer, json!({ "redirect_uris": [REDIRECT] })).await;
    let challenge = challenge(VERIFIER);
    let (status, location) = authorize(
        &issuer,
        &[
            ("response_type", "code"),
            ("client_id", registered["client_id"].as_str().unwrap()),
            ("redirect_uri", "https://attacker.example/callback"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!((status, location), (400, None));
}

#[tokio::test]
async fn client_credentials_give_the_client_a_token_with_the_scopes_it_may_have_only() {
    let issuer = MockIssuer::start().await;
    issuer.serve_oauth(OAuthServer::new().client("ci-bot", "s3cret", ["mcp:tools"]));

    let (status, answer) = token(
        &issuer,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "ci-bot"),
            ("client_secret", "s3cret"),
            ("scope", "mcp:tools mcp:admin"),
        ],
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_scope"))
    );

    let (status, answer) = token(
        &issuer,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "ci-bot"),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("invalid_client"))
    );

    let response = client()
        .post(format!("{}/oauth/token", issuer.issuer()))
        .basic_auth("ci-bot", Some("s3cret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "mcp:tools"),
            ("resource", RESOURCE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let answer: Value = response.json().await.unwrap();
    let user = bound_auth(&issuer)
        .verify(answer["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(user.sub(), "ci-bot");
    assert!(user.has_scope("mcp:tools"));
    assert_eq!(issuer.oauth_grants().len(), 1);
}
