//! Requests sent byte for byte over TCP, for the spellings an HTTP client
//! would refuse or rewrite, and the path spellings to send. Shared by the
//! `it` and `rig` test binaries.

use std::time::Duration;

/// How long the server may take to answer.
const PATIENCE: Duration = Duration::from_secs(20);

/// GET `target` over a new connection to `base` (`http://host:port`) exactly as written, bytes
/// an HTTP client would refuse or rewrite (`\`, `//`) included; returns
/// the status.
pub async fn get_as_written(base: &str, target: &str, headers: &[(&str, &str)]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response))
        .await
        .expect("the server answers in time")
        .expect("the answer can be read");
    let text = String::from_utf8_lossy(&response);
    text.split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

/// Request paths an upstream could read as another route than the gateway
/// would match them to (the `/admin` route being the one to reach), with
/// `{public}` standing for a public route's prefix.
pub const PATHS_READ_AS_ANOTHER_ROUTE: [&str; 12] = [
    "{public}/..;/admin",
    "{public}/..;x=1/admin",
    "{public}/.;/../admin",
    "//admin",
    "///admin/x",
    "/\\admin",
    "/%5cadmin",
    "/%5Cadmin",
    "/%2561dmin",
    "/admin%00",
    "/admin%09",
    "{public}/%2e%2e;/admin",
];
