//! Limits: request body size (413), upstream down (502), slow upstream (504).

use meingpt_auth::testing::MockIssuer;

use crate::common::{Answer, Gateway, Upstream, auth_toml, client, get};

async fn setup(upstream_url: &str, settings: &str) -> (MockIssuer, Gateway) {
    let issuer = MockIssuer::start().await;
    let toml = format!(
        "{settings}\n{}[[route]]\nprefix = \"/\"\nupstream = \"{upstream_url}\"\n",
        auth_toml(&issuer)
    );
    let gateway = Gateway::start(&toml, &[]).await;
    (issuer, gateway)
}

#[tokio::test]
async fn body_over_the_limit_is_refused_with_413() {
    let upstream = Upstream::start().await;
    let (issuer, gateway) = setup(&upstream.url(), "max_body_bytes = 1000").await;
    let token = issuer.token().sign();

    let post = |len: usize| {
        client()
            .post(gateway.url("/upload"))
            .header("x-meingpt-jwt", &token)
            .body(vec![b'x'; len])
            .send()
    };
    let within = Answer::read(post(1000).await.unwrap()).await;
    let over = Answer::read(post(1001).await.unwrap()).await;

    assert_eq!(within.status, 200);
    assert_eq!(over.status, 413);
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_refused_with_413() {
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let upstream = Upstream::start().await;
    let (issuer, gateway) = setup(&upstream.url(), "max_body_bytes = 1000").await;
    let token = issuer.token().sign();
    // No Content-Length: the limit can only be seen while streaming.
    let chunks = (0..4).map(|_| {
        Ok::<_, std::convert::Infallible>(Frame::data(bytes::Bytes::from(vec![b'x'; 400])))
    });
    let body = StreamBody::new(futures_util::stream::iter(chunks));
    let client: Client<_, _> = Client::builder(TokioExecutor::new()).build_http();
    let request = http::Request::post(gateway.url("/upload"))
        .header("x-meingpt-jwt", &token)
        .body(body)
        .unwrap();

    let response = client.request(request).await.unwrap();

    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn unreachable_upstream_answers_502_with_a_generic_body() {
    // A port that was just free: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (issuer, gateway) = setup(&format!("http://{closed}"), "connect_timeout_secs = 2").await;
    let token = issuer.token().sign();

    let answer = get(&gateway.url("/x"), &[("x-meingpt-jwt", &token)]).await;

    assert_eq!(answer.status, 502);
    assert_eq!(answer.body, "bad gateway\n");
}

#[tokio::test]
async fn slow_upstream_answers_504_with_a_generic_body() {
    let upstream = Upstream::start().await;
    let (issuer, gateway) = setup(&upstream.url(), "response_timeout_secs = 0.3").await;
    let token = issuer.token().sign();

    let answer = get(&gateway.url("/slow/5000"), &[("x-meingpt-jwt", &token)]).await;

    assert_eq!(answer.status, 504);
    assert_eq!(answer.body, "gateway timeout\n");
}

#[tokio::test]
async fn unauthenticated_request_is_refused_before_its_body_is_checked() {
    let upstream = Upstream::start().await;
    let (_issuer, gateway) = setup(&upstream.url(), "max_body_bytes = 10").await;

    let answer = Answer::read(
        client()
            .post(gateway.url("/upload"))
            .body("short")
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(answer.status, 401);
    assert_eq!(upstream.count(), 0);
}
