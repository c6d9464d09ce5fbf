//! The proxy pattern: a third-party API key injected server-side.

use meingpt_auth::testing::MockIssuer;

use crate::common::{Answer, Gateway, THIRD_PARTY_KEY, Upstream, auth_toml, get};

const INJECT: &str = "[route.inject_headers]\n\
    Authorization = \"Bearer ${OPENAI_API_KEY}\"\nX-Api-Client = \"meingpt-gateway\"\n";

async fn setup() -> (MockIssuer, Upstream, Gateway) {
    let issuer = MockIssuer::start().await;
    let api = Upstream::start().await;
    // A closed port for a route whose API is down.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let toml = format!(
        "response_timeout_secs = 0.3\n{}\
         [[route]]\nprefix = \"/llm\"\nupstream = \"{api}/third-party\"\nstrip_prefix = true\n\
         team_names = [\"Engineering\"]\n{INJECT}\
         [[route]]\nprefix = \"/llm-slow\"\nupstream = \"{api}\"\nstrip_prefix = true\n{INJECT}\
         [[route]]\nprefix = \"/llm-down\"\nupstream = \"http://{down}\"\n{INJECT}",
        auth_toml(&issuer),
        api = api.url()
    );
    let gateway = Gateway::start(&toml, &[("OPENAI_API_KEY", THIRD_PARTY_KEY)]).await;
    (issuer, api, gateway)
}

/// Panics when `answer` carries the key in its headers or body.
fn assert_no_key(answer: &Answer, what: &str) {
    assert!(
        !answer.body.contains(THIRD_PARTY_KEY),
        "{what}: the body holds the key"
    );
    for (name, value) in &answer.headers {
        assert!(
            !String::from_utf8_lossy(value.as_bytes()).contains(THIRD_PARTY_KEY),
            "{what}: {name} holds the key"
        );
    }
}

#[tokio::test]
async fn injected_secret_reaches_the_api_but_never_the_client() {
    let (issuer, api, gateway) = setup().await;
    let engineer = issuer.demo_admin().sign();

    // The client's own bearer token is the meinGPT token; the API must get the key instead.
    let answer = get(
        &gateway.url("/llm/v1/chat"),
        &[("authorization", &format!("Bearer {engineer}"))],
    )
    .await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["completion"], "Hello from the API");
    let seen = api.last();
    assert_eq!(seen.uri, "/third-party/v1/chat");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {THIRD_PARTY_KEY}").as_str())
    );
    assert_eq!(seen.header("x-api-client"), Some("meingpt-gateway"));
    assert_no_key(&answer, "the API's answer");
}

#[tokio::test]
async fn injected_secret_is_in_no_answer_the_gateway_makes_itself() {
    let (issuer, api, gateway) = setup().await;
    let engineer = issuer.demo_admin().sign();
    let marketing = issuer.demo_member().sign();

    // Each answer is the gateway's own, made while it held the key for
    // the request: no token, the wrong team, a bad path, an API that is
    // down, an API that does not answer in time.
    let cases: [(&str, Option<&str>, u16); 5] = [
        ("/llm/v1/chat", None, 401),
        ("/llm/v1/chat", Some(&marketing), 403),
        ("/%6clm/v1/chat", Some(&engineer), 400),
        ("/llm-down/v1/chat", Some(&engineer), 502),
        ("/llm-slow/slow/5000", Some(&engineer), 504),
    ];
    for (path, token, status) in cases {
        let headers: Vec<(&str, &str)> = token.map(|t| ("x-meingpt-jwt", t)).into_iter().collect();
        let answer = get(&gateway.url(path), &headers).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        assert_no_key(&answer, path);
    }
    // Only the slow request reached the API (and got the key there).
    assert_eq!(api.count(), 1);
    assert_eq!(
        api.last().header("authorization"),
        Some(format!("Bearer {THIRD_PARTY_KEY}").as_str())
    );
}

#[tokio::test]
async fn member_outside_the_allowed_team_gets_403_and_the_api_sees_nothing() {
    let (issuer, api, gateway) = setup().await;
    let marketing = issuer.demo_member().sign();

    let answer = get(
        &gateway.url("/llm/v1/chat"),
        &[("x-meingpt-jwt", &marketing)],
    )
    .await;
    let anonymous = get(&gateway.url("/llm/v1/chat"), &[]).await;

    assert_eq!(answer.status, 403);
    assert_eq!(answer.json()["error"], "insufficient_scope");
    assert_eq!(anonymous.status, 401);
    assert_no_key(&answer, "403");
    assert_no_key(&anonymous, "401");
    assert_eq!(api.count(), 0);
}

#[tokio::test]
async fn client_cannot_override_an_injected_header() {
    let (issuer, api, gateway) = setup().await;
    let engineer = issuer.demo_admin().sign();

    let answer = get(
        &gateway.url("/llm/v1/chat"),
        &[("x-meingpt-jwt", &engineer), ("x-api-client", "evil")],
    )
    .await;

    assert_eq!(answer.status, 200);
    let seen = api.last();
    assert_eq!(seen.headers.get_all("x-api-client").iter().count(), 1);
    assert_eq!(seen.header("x-api-client"), Some("meingpt-gateway"));
}
