//! The proxy pattern: a third-party API key injected server-side.

use meingpt_auth::testing::MockIssuer;

use crate::common::{Gateway, THIRD_PARTY_KEY, Upstream, auth_toml, get};

async fn setup() -> (MockIssuer, Upstream, Gateway) {
    let issuer = MockIssuer::start().await;
    let api = Upstream::start().await;
    let toml = format!(
        "{}[[route]]\nprefix = \"/llm\"\nupstream = \"{}/third-party\"\nstrip_prefix = true\n\
         team_names = [\"Engineering\"]\n[route.inject_headers]\n\
         Authorization = \"Bearer ${{OPENAI_API_KEY}}\"\nX-Api-Client = \"meingpt-gateway\"\n",
        auth_toml(&issuer),
        api.url()
    );
    let gateway = Gateway::start(&toml, &[("OPENAI_API_KEY", THIRD_PARTY_KEY)]).await;
    (issuer, api, gateway)
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
    assert!(!answer.body.contains(THIRD_PARTY_KEY));
    for value in answer.headers.values() {
        assert!(!value.to_str().unwrap_or("").contains(THIRD_PARTY_KEY));
    }
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
    assert!(!answer.body.contains(THIRD_PARTY_KEY));
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
