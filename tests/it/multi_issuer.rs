//! Several issuers in one authenticator: meinGPT beside a company's own
//! OpenID Connect provider, each with its own keys, audiences, role claim
//! and maximum authentication age; the token's `iss` chooses the issuer
//! before any key is looked up. Over a real server on loopback, with the
//! key and discovery fetches each issuer saw.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::answers::{NOT_VERIFIED, STEP_UP_CHALLENGE, WRONG_AUDIENCE};
use crate::common::example::Running;
use crate::common::{app, everything_seen, get_with_token, serve};
use crate::quickstart::{get, start_configured};
use jsonwebtoken::{EncodingKey, Header};
use meingpt_auth::testing::MockIssuer;
use meingpt_auth::{Algorithm, MeinGptAuth, MeinGptAuthBuilder, StaticKey};
use serde_json::{Value, json};

/// The audience the company's API is registered under at its IdP.
const API: &str = "api://my-api";

/// The issuer of tokens signed with a static key (`jwt_local`).
const LOCAL_ISSUER: &str = "https://opengpts.example";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A meinGPT instance and a company IdP (OpenID Connect with discovery),
/// each on its own loopback port.
struct World {
    meingpt: MockIssuer,
    idp: MockIssuer,
}

impl World {
    async fn start() -> Self {
        Self {
            meingpt: MockIssuer::for_organization("org-m").await,
            idp: MockIssuer::start().await,
        }
    }

    /// The IdP's configuration: discovery, audience [`API`], roles in `roles`.
    fn idp_config(&self) -> MeinGptAuthBuilder {
        MeinGptAuth::oidc(self.idp.issuer()).audience(API)
    }

    /// meinGPT and the IdP in one authenticator.
    fn auth(&self) -> MeinGptAuth {
        MeinGptAuth::from_issuers([self.meingpt.auth(), self.idp_config()]).unwrap()
    }

    /// A member of the meinGPT organization.
    fn meingpt_token(&self) -> meingpt_auth::testing::TokenBuilder {
        self.meingpt.token().sub("chat-user")
    }

    /// A user of the IdP, shaped as Entra ID issues them: `roles` array, no
    /// meinGPT claims.
    fn idp_token(&self) -> meingpt_auth::testing::TokenBuilder {
        self.idp
            .token()
            .sub("idp-user")
            .audience(API)
            .without("role")
            .without("teams")
            .without("organizationName")
    }

    /// Fetches so far: meinGPT JWKS, IdP discovery, IdP JWKS.
    fn fetches(&self) -> (usize, usize, usize) {
        (
            self.meingpt.fetch_count(),
            self.idp.discovery_count(),
            self.idp.fetch_count(),
        )
    }
}

#[tokio::test]
async fn tokens_from_either_issuer_verify_and_name_the_issuer_that_vouched() {
    let world = World::start().await;
    let auth = world.auth();
    let me = format!("{}/me", serve(app(&auth)).await);

    let chat = world.meingpt_token().sign();
    let seen = get_with_token(&me, &chat).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.json()["sub"], "chat-user");
    assert_eq!(seen.json()["iss"], world.meingpt.issuer());
    assert_eq!(seen.json()["organization_id"], "org-m");
    assert_eq!(world.fetches(), (1, 0, 0));

    let company = world.idp_token().sign();
    let seen = get_with_token(&me, &company).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.json()["sub"], "idp-user");
    assert_eq!(seen.json()["iss"], world.idp.issuer());
    assert_eq!(seen.json()["organization_id"], API);
    assert_eq!(world.fetches(), (1, 1, 1));

    // Outside HTTP too, the user says who vouched.
    let user = auth.verify(&chat).await.unwrap();
    assert_eq!(user.issuer(), world.meingpt.issuer());
    let user = auth.verify(&company).await.unwrap();
    assert_eq!(user.issuer(), world.idp.issuer());

    // Repeated tokens, fresh tokens: no further fetch from either.
    for _ in 0..3 {
        assert_eq!(get_with_token(&me, &chat).await.status, 200);
        assert_eq!(get_with_token(&me, &company).await.status, 200);
    }
    assert_eq!(
        get_with_token(&me, &world.meingpt_token().sub("other").sign())
            .await
            .status,
        200
    );
    assert_eq!(
        get_with_token(&me, &world.idp_token().sub("other").sign())
            .await
            .status,
        200
    );
    assert_eq!(world.fetches(), (1, 1, 1));
}

#[tokio::test]
async fn a_token_whose_issuer_is_not_configured_is_refused_without_any_fetch() {
    let world = World::start().await;
    let stranger = MockIssuer::for_organization("org-m").await;
    let me = format!("{}/me", serve(app(&world.auth())).await);
    let meingpt = world.meingpt.issuer().to_owned();

    let tokens = [
        // Another instance, same organization and `kid`.
        stranger.token().sign(),
        stranger.token().audience(API).sign(),
        // Near misses of a configured issuer.
        world.meingpt_token().issuer(&format!("{meingpt}/")).sign(),
        world.meingpt_token().issuer(&meingpt.to_uppercase()).sign(),
        world
            .idp_token()
            .issuer(&format!(" {}", world.idp.issuer()))
            .sign(),
        // No `iss`, or not a string.
        world.meingpt_token().without("iss").sign(),
        world.meingpt_token().claim("iss", json!([meingpt])).sign(),
        world.meingpt_token().claim("iss", Value::Null).sign(),
    ];
    for token in &tokens {
        get_with_token(&me, token)
            .await
            .assert_invalid_token(NOT_VERIFIED);
    }
    assert_eq!(world.fetches(), (0, 0, 0));
    assert_eq!((stranger.fetch_count(), stranger.discovery_count()), (0, 0));

    // On the wire the refusal is the one for a bad signature.
    let (forged, donor) = (world.meingpt_token().sign(), stranger.token().sign());
    let (signed, _) = forged.rsplit_once('.').unwrap();
    let (_, signature) = donor.rsplit_once('.').unwrap();
    let bad_signature = format!("{signed}.{signature}");
    let reference = everything_seen(&me, &bad_signature).await;
    assert_eq!(reference.0, 401);
    assert_eq!(everything_seen(&me, &tokens[0]).await, reference);
    assert_eq!(world.fetches(), (1, 0, 0));
}

#[tokio::test]
async fn a_token_of_one_issuer_signed_with_the_other_issuers_key_is_refused() {
    let world = World::start().await;
    let me = format!("{}/me", serve(app(&world.auth())).await);
    // Both issuers sign with a key whose `kid` is `key-1`.
    assert_eq!(world.meingpt.current_kid(), world.idp.current_kid());

    let meingpt_claims_idp_key = world
        .idp
        .token()
        .issuer(world.meingpt.issuer())
        .audience("org-m")
        .sign();
    get_with_token(&me, &meingpt_claims_idp_key)
        .await
        .assert_invalid_token(NOT_VERIFIED);

    let idp_claims_meingpt_key = world
        .meingpt
        .token()
        .issuer(world.idp.issuer())
        .audience(API)
        .sign();
    get_with_token(&me, &idp_claims_meingpt_key)
        .await
        .assert_invalid_token(NOT_VERIFIED);

    // Each was checked against its claimed issuer's keys only.
    assert_eq!(world.fetches(), (1, 1, 1));
    assert_eq!(
        get_with_token(&me, &world.meingpt_token().sign())
            .await
            .status,
        200
    );
    assert_eq!(
        get_with_token(&me, &world.idp_token().sign()).await.status,
        200
    );
    assert_eq!(world.fetches(), (1, 1, 1));
}

#[tokio::test]
async fn a_token_of_one_issuer_carrying_the_other_issuers_audience_is_refused() {
    let world = World::start().await;
    let me = format!("{}/me", serve(app(&world.auth())).await);

    for aud in [json!(API), json!(["elsewhere", API])] {
        let token = world.meingpt_token().audience(aud).sign();
        get_with_token(&me, &token)
            .await
            .assert_invalid_token(WRONG_AUDIENCE);
    }
    for aud in [json!("org-m"), json!(["org-m"])] {
        let token = world.idp_token().audience(aud).sign();
        get_with_token(&me, &token)
            .await
            .assert_invalid_token(WRONG_AUDIENCE);
    }
    assert_eq!(world.fetches(), (1, 1, 1));
}

#[tokio::test]
async fn each_issuer_reads_roles_from_its_own_claim() {
    let world = World::start().await;
    let admin = format!("{}/admin", serve(app(&world.auth())).await);

    let meingpt_admin = world.meingpt_token().role("admin").sign();
    let seen = get_with_token(&admin, &meingpt_admin).await;
    assert_eq!((seen.status, seen.body.as_str()), (200, "admin area"));

    let idp_admin = world.idp_token().claim("roles", json!(["admin"])).sign();
    let seen = get_with_token(&admin, &idp_admin).await;
    assert_eq!((seen.status, seen.body.as_str()), (200, "admin area"));

    // Each issuer's role claim only: the other's name does not count.
    let meingpt_with_roles = world
        .meingpt_token()
        .role("member")
        .claim("roles", json!(["admin"]))
        .sign();
    let idp_with_role = world.idp_token().claim("role", "admin").sign();
    for token in [meingpt_with_roles, idp_with_role] {
        let seen = get_with_token(&admin, &token).await;
        assert_eq!(seen.status, 403, "{}", seen.body);
        assert_eq!(seen.json()["error"], "insufficient_scope");
    }
}

#[tokio::test]
async fn each_issuer_keeps_its_own_maximum_authentication_age() {
    let world = World::start().await;
    // The IdP first: its limit must not reach meinGPT's tokens.
    let auth = MeinGptAuth::from_issuers([
        world.idp_config().max_auth_age(Duration::from_secs(300)),
        world.meingpt.auth(),
    ])
    .unwrap();
    let me = format!("{}/me", serve(app(&auth)).await);

    // meinGPT sends no `auth_time` and needs none here.
    let chat = world.meingpt_token().without("auth_time").sign();
    assert_eq!(get_with_token(&me, &chat).await.status, 200);
    let old_chat = world.meingpt_token().claim("auth_time", now() - 86_400);
    assert_eq!(get_with_token(&me, &old_chat.sign()).await.status, 200);

    let recent = world.idp_token().claim("auth_time", now() - 60).sign();
    assert_eq!(get_with_token(&me, &recent).await.status, 200);
    for token in [
        world.idp_token().claim("auth_time", now() - 3600).sign(),
        world.idp_token().without("auth_time").sign(),
    ] {
        let seen = get_with_token(&me, &token).await;
        assert_eq!(seen.status, 401, "{}", seen.body);
        assert_eq!(seen.www_authenticate.as_deref(), Some(STEP_UP_CHALLENGE));
        assert_eq!(seen.json()["error"], "insufficient_user_authentication");
    }
    assert_eq!(get_with_token(&me, &chat).await.status, 200);
    assert_eq!(world.fetches(), (1, 1, 1));
}

#[tokio::test]
async fn a_remembered_token_answers_to_the_issuer_that_verified_it() {
    // First a static key (its keys never change) that requires a recent
    // sign-in; then meinGPT, which requires none.
    let world = World::start().await;
    let secret = [7u8; 32];
    let auth = MeinGptAuth::from_issuers([
        MeinGptAuth::static_key(LOCAL_ISSUER, StaticKey::secret(Algorithm::HS256, secret))
            .audience("my-api")
            .max_auth_age(Duration::from_secs(300)),
        world.meingpt.auth(),
    ])
    .unwrap();
    let me = format!("{}/me", serve(app(&auth)).await);

    let chat = world.meingpt_token().sign();
    for _ in 0..3 {
        let seen = get_with_token(&me, &chat).await;
        assert_eq!(seen.status, 200, "{}", seen.body);
        assert_eq!(seen.json()["iss"], world.meingpt.issuer());
    }
    assert_eq!(meingpt_auth::testing::verified_token_count(&auth), 1);

    let local = |auth_time: i64| {
        let claims = json!({
            "iss": LOCAL_ISSUER, "aud": "my-api", "sub": "local-user",
            "iat": now(), "exp": now() + 600, "auth_time": auth_time,
        });
        let key = EncodingKey::from_secret(&secret);
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    };
    let recent = local(now() - 60);
    for _ in 0..2 {
        let seen = get_with_token(&me, &recent).await;
        assert_eq!(seen.status, 200, "{}", seen.body);
        assert_eq!(seen.json()["iss"], LOCAL_ISSUER);
    }
    let seen = get_with_token(&me, &local(now() - 3600)).await;
    assert_eq!(seen.www_authenticate.as_deref(), Some(STEP_UP_CHALLENGE));
    assert_eq!(world.meingpt.fetch_count(), 1);
}

#[tokio::test]
async fn one_issuer_configured_twice_is_refused() {
    let world = World::start().await;
    let err = MeinGptAuth::from_issuers([
        world.meingpt.auth(),
        world.idp_config(),
        MeinGptAuth::builder()
            .issuer(format!("{}/", world.meingpt.issuer()))
            .organization("org-other"),
    ])
    .unwrap_err();
    assert_eq!(err.setting(), "issuer");
    assert_eq!(
        err.to_string(),
        "issuer is invalid: another configuration already has this issuer; one issuer takes \
         one configuration (give it several audiences instead)"
    );

    let err = MeinGptAuth::from_issuers(Vec::<MeinGptAuthBuilder>::new()).unwrap_err();
    assert_eq!(err.to_string(), "issuers is not set");

    // The second configuration's own mistakes are refused by name.
    let err =
        MeinGptAuth::from_issuers([world.meingpt.auth(), MeinGptAuth::oidc(world.idp.issuer())])
            .unwrap_err();
    assert_eq!(err.to_string(), "audience is not set");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quickstart_with_meingpt_and_an_oidc_issuer_accepts_tokens_from_either() {
    let world = World::start().await;
    let (mut running, base): (Running, String) = start_configured(&[
        ("MEINGPT_ORG_ID", world.meingpt.organization()),
        ("MEINGPT_ISSUER", world.meingpt.issuer()),
        ("AUTH_TYPE", "jwt_oidc"),
        ("JWT_ISS", world.idp.issuer()),
        ("JWT_AUD", API),
    ]);
    // Start-up loads both issuers' keys.
    assert_eq!(world.fetches(), (1, 1, 1));

    let chat = world.meingpt_token().role("admin").sign();
    let (status, body) = get(&format!("{base}/me"), &[("x-meingpt-jwt", &chat)]).await;
    assert_eq!(status, 200, "{body}");
    let user: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&user["sub"], &user["iss"]),
        (&json!("chat-user"), &json!(world.meingpt.issuer()))
    );
    assert_eq!(
        get(&format!("{base}/admin"), &[("x-meingpt-jwt", &chat)])
            .await
            .0,
        200
    );

    let company = format!(
        "Bearer {}",
        world.idp_token().claim("roles", json!(["admin"])).sign()
    );
    let (status, body) = get(&format!("{base}/me"), &[("authorization", &company)]).await;
    assert_eq!(status, 200, "{body}");
    let user: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&user["sub"], &user["iss"]),
        (&json!("idp-user"), &json!(world.idp.issuer()))
    );
    assert_eq!(
        get(&format!("{base}/admin"), &[("authorization", &company)])
            .await
            .0,
        200
    );

    let stranger = MockIssuer::for_organization("org-m").await;
    let (status, _) = get(
        &format!("{base}/me"),
        &[("x-meingpt-jwt", &stranger.token().sign())],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(stranger.fetch_count(), 0);
    assert_eq!(world.fetches(), (1, 1, 1));
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "the server exited while serving"
    );
}
