//! Limits: request body size (413), upstream down, unresponsive or broken
//! (502, each counted by kind on the metrics listener), slow upstream (504).

use meingpt_auth::testing::MockIssuer;

use crate::common::raw::ScriptedUpstream;
use crate::common::{Answer, Gateway, PATIENCE, Upstream, auth_toml, client, get};

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
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"payload too large\n");
    assert!(
        upstream.body_bytes() <= 1000,
        "the upstream read {} bytes of a body limited to 1000",
        upstream.body_bytes()
    );
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
    // No token, no Content-Length, a first chunk already over the limit and
    // a body that never ends: the answer cannot wait for the body, nor be
    // the body limit's 413.
    let first =
        futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 400]))]);
    let body = reqwest::Body::wrap_stream(futures_util::StreamExt::chain(
        first,
        futures_util::stream::pending(),
    ));

    let response = tokio::time::timeout(
        PATIENCE,
        client().post(gateway.url("/upload")).body(body).send(),
    )
    .await
    .expect("answered without waiting for the body")
    .unwrap();

    assert_eq!(response.status(), 401);
    assert_eq!(upstream.count(), 0);
}

/// The value of `meingpt_gateway_upstream_failures_total{kind="…"}`.
async fn upstream_failures(gateway: &Gateway, kind: &str) -> u64 {
    let metrics = get(
        &format!(
            "http://{}/metrics",
            gateway.metrics.expect("a metrics listener")
        ),
        &[],
    )
    .await;
    let prefix = format!("meingpt_gateway_upstream_failures_total{{kind=\"{kind}\"}} ");
    metrics
        .body
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {}", metrics.body))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn upstream_that_does_not_accept_the_connection_in_time_answers_502_counted_as_connect() {
    // A listener whose accept queue is full: further connection attempts
    // get no answer at all (Linux drops their SYN), as from a host that is down.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let full = socket.listen(0).unwrap();
    let addr = full.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..2 {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            queued.push(stream);
        }
    }
    let (issuer, gateway) = setup(
        &format!("http://{addr}"),
        "metrics_listen = \"127.0.0.1:0\"\nconnect_timeout_secs = 0.2",
    )
    .await;
    let token = issuer.token().sign();

    let answer = get(&gateway.url("/x"), &[("x-meingpt-jwt", &token)]).await;

    assert_eq!(answer.status, 502);
    assert_eq!(answer.body, "bad gateway\n");
    assert_eq!(upstream_failures(&gateway, "connect").await, 1);
    assert_eq!(upstream_failures(&gateway, "timeout").await, 0);
}

#[tokio::test]
async fn upstream_that_breaks_off_its_response_head_answers_502_counted_as_other() {
    let upstream =
        ScriptedUpstream::start(|_| b"HTTP/1.1 200 OK\r\nContent-Type: text/pl".to_vec()).await;
    let (issuer, gateway) = setup(&upstream.url(), "metrics_listen = \"127.0.0.1:0\"").await;
    let token = issuer.token().sign();

    let answer = get(&gateway.url("/x"), &[("x-meingpt-jwt", &token)]).await;

    assert_eq!(answer.status, 502);
    assert_eq!(answer.body, "bad gateway\n");
    assert_eq!(upstream_failures(&gateway, "other").await, 1);
    assert_eq!(upstream_failures(&gateway, "connect").await, 0);
}

#[tokio::test]
async fn upstream_that_breaks_off_its_response_body_cuts_the_client_response_counted_as_broken() {
    let upstream = ScriptedUpstream::start(|_| {
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly the first bytes".to_vec()
    })
    .await;
    let (issuer, gateway) = setup(&upstream.url(), "metrics_listen = \"127.0.0.1:0\"").await;
    let token = issuer.token().sign();

    let response = client()
        .get(gateway.url("/x"))
        .header("x-meingpt-jwt", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = tokio::time::timeout(PATIENCE, response.bytes())
        .await
        .expect("the response ended");

    assert!(
        body.is_err(),
        "the client got a complete-looking body: {body:?}"
    );
    assert_eq!(upstream_failures(&gateway, "broken").await, 1);
}
