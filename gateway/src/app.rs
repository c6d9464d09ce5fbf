//! Starting the gateway from [`Settings`]: the authenticator (or the
//! development issuer), the listeners, the key preloading `/readyz`
//! reports, the Tower stack, and serving until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use meingpt_auth::MeinGptAuth;
use tower::Layer;

use crate::access_log::{AccessLog, AccessLogLayer};
use crate::answer::{Body, plain};
use crate::config::{AuthSource, ConfigError, Settings};
use crate::gateway::{Gateway, GatewayParts, Readiness};
use crate::metrics::Metrics;
use crate::server::{self, ConnectionLimits, Listener};

/// How long in-flight requests get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Open connections to the metrics listener at most (a scraper needs one).
const METRICS_MAX_CONNECTIONS: usize = 64;

/// A gateway whose sockets are bound; [`serve`](Self::serve) runs it.
pub struct Started {
    listener: Listener,
    metrics_listener: Option<Listener>,
    parts: GatewayParts,
    development: DevelopmentIssuer,
    connections: ConnectionLimits,
}

/// The Tower stack one serving thread runs: the access log around its own
/// [`Gateway`].
fn stack(parts: &GatewayParts) -> AccessLog<Gateway> {
    AccessLogLayer::new(parts.metrics.clone()).layer(Gateway::new(parts))
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("listener", &self.listener)
            .field("metrics_listener", &self.metrics_listener)
            .finish_non_exhaustive()
    }
}

/// Builds the authenticator (or starts the development issuer), binds the
/// listeners, starts loading the issuer's keys and builds the stack. Errors
/// (a socket that cannot be bound, TLS files that do not load) name the key
/// at fault.
pub async fn start(mut settings: Settings) -> Result<Started, ConfigError> {
    let (auth, development) = resolve_auth(settings.auth).await?;
    let listener = Listener::bind(settings.listen, settings.tls)
        .await
        .map_err(|e| {
            ConfigError::new(
                "listen",
                format!("cannot listen on {}: {e}", settings.listen),
            )
        })?;
    let metrics_listener = match settings.metrics_listen {
        Some(addr) => Some(Listener::bind(addr, None).await.map_err(|e| {
            ConfigError::new("metrics_listen", format!("cannot listen on {addr}: {e}"))
        })?),
        None => None,
    };

    // meinGPT's origins, for the embed routes (the development stand-in's
    // depend on the bound port).
    let port = listener.local_addr().map_or(0, |addr| addr.port());
    let meingpt_origins = settings.meingpt_origins.resolve(listener.scheme(), port);
    for route in &mut settings.routes {
        if let Some(embed) = &mut route.embed {
            embed.meingpt_origins = meingpt_origins.clone();
        }
    }
    #[cfg(feature = "dev-issuer")]
    let stand_in = development
        .clone()
        .map(crate::embed::stand_in::StandIn::new);
    #[cfg(not(feature = "dev-issuer"))]
    let stand_in = None;

    let metrics = Arc::new(Metrics::default());
    let readiness = Readiness::default();
    tokio::spawn(preload(auth.clone(), readiness.clone()));

    let parts = GatewayParts {
        auth,
        routes: settings.routes,
        forward_auth: settings.forward_auth,
        trusted_proxies: settings.trusted_proxies,
        connect_timeout: settings.connect_timeout,
        response_timeout: settings.response_timeout,
        max_body_bytes: settings.max_body_bytes,
        metrics,
        readiness,
        stand_in,
    };

    let started = Started {
        listener,
        metrics_listener,
        parts,
        development,
        connections: settings.connections,
    };
    Ok(started)
}

impl Started {
    /// The main listener's address.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// The main listener's base URL, `http://…` or `https://…`.
    pub fn base_url(&self) -> String {
        match self.listener.local_addr() {
            Ok(addr) => format!("{}://{addr}", self.listener.scheme()),
            Err(_) => String::new(),
        }
    }

    /// The metrics listener's address, when configured.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The embedded development issuer, when nothing was configured.
    #[cfg(feature = "dev-issuer")]
    pub fn development_issuer(&self) -> Option<&meingpt_auth::testing::MockIssuer> {
        self.development.as_deref()
    }

    /// Serves on the current runtime until `shutdown` completes, then lets
    /// in-flight requests finish (up to [`SHUTDOWN_GRACE`]).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        self.serve_on_threads(shutdown, 1).await;
    }

    /// Like [`serve`](Self::serve), but accepts and serves connections on
    /// `threads` threads: the current runtime's and `threads - 1` more,
    /// each with a single-threaded runtime and its own upstream connection
    /// pool (as nginx runs one event loop per worker process). A connection
    /// and the upstream requests made for it stay on the thread that
    /// accepted it, with no hand-over between threads per request.
    pub async fn serve_on_threads(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
        threads: usize,
    ) {
        // The development issuer keeps serving its keys until the very end.
        let Self {
            listener,
            metrics_listener,
            parts,
            development: _development,
            connections,
        } = self;
        let threads = threads.max(1);
        let limits = connections.per_thread(threads);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!(target: "meingpt_gateway", "shutting down: finishing in-flight requests");
            let _ = stop.send(true);
        });
        let wait = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let mut workers = Vec::new();
        for index in 1..threads.max(1) {
            let shared = match listener.share() {
                Ok(shared) => shared,
                Err(error) => {
                    tracing::warn!(target: "meingpt_gateway", %error, "cannot share the listener; serving on fewer threads");
                    break;
                }
            };
            let parts = parts.clone();
            let stopped = stopped.clone();
            let worker = std::thread::Builder::new()
                .name(format!("meingpt-gateway-{index}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(async move {
                        let listener = shared.into_listener()?;
                        server::serve(
                            listener,
                            stack(&parts),
                            wait(stopped),
                            SHUTDOWN_GRACE,
                            limits,
                        )
                        .await;
                        Ok::<_, std::io::Error>(())
                    })
                });
            match worker {
                Ok(worker) => workers.push(worker),
                Err(error) => {
                    tracing::warn!(target: "meingpt_gateway", %error, "cannot start a serving thread; serving on fewer threads");
                    break;
                }
            }
        }
        let metrics = parts.metrics.clone();
        let main_stopped = stopped.clone();
        let main = async move {
            server::serve(
                listener,
                stack(&parts),
                wait(main_stopped),
                SHUTDOWN_GRACE,
                limits,
            )
            .await;
            if !workers.is_empty() {
                let joined = tokio::task::spawn_blocking(move || {
                    for worker in workers {
                        match worker.join() {
                            Ok(Ok(())) => {}
                            Ok(Err(error)) => {
                                tracing::warn!(target: "meingpt_gateway", %error, "a serving thread failed")
                            }
                            Err(_) => {
                                tracing::warn!(target: "meingpt_gateway", "a serving thread panicked")
                            }
                        }
                    }
                });
                let _ = joined.await;
            }
        };
        match metrics_listener {
            Some(metrics_listener) => {
                let metrics_service = tower::service_fn(move |request: Request<Body>| {
                    let metrics = metrics.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(metrics_response(&metrics, &request))
                    }
                });
                let metrics_server = server::serve(
                    metrics_listener,
                    metrics_service,
                    wait(stopped),
                    SHUTDOWN_GRACE,
                    ConnectionLimits {
                        max_connections: METRICS_MAX_CONNECTIONS,
                        ..connections
                    },
                );
                tokio::join!(main, metrics_server);
            }
            None => main.await,
        }
    }
}

/// Starts the gateway, prints `meingpt-gateway listening on URL` to stderr
/// (and, with the development issuer, demo tokens, an nginx snippet and a
/// working curl command for each route to stdout), and serves until
/// `shutdown` completes.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ConfigError> {
    #[cfg(feature = "dev-issuer")]
    let (forward_auth, routes) = (settings.forward_auth.clone(), settings.routes.clone());
    let started = start(settings).await?;
    let base = started.base_url();
    eprintln!("meingpt-gateway listening on {base}");
    if let Some(metrics_addr) = started.metrics_addr() {
        eprintln!("meingpt-gateway metrics on http://{metrics_addr}/metrics");
    }
    #[cfg(feature = "dev-issuer")]
    if let Some(issuer) = started.development_issuer() {
        println!("{}", crate::dev::banner(&base, issuer, &forward_auth));
        if routes.iter().any(|route| route.embed.is_some()) {
            println!("{}", crate::dev::stand_in(&base));
        }
        if !routes.is_empty() {
            let auth = &started.parts.auth;
            println!(
                "{}",
                crate::dev::route_tokens(&base, issuer, auth, &routes).await
            );
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    started.serve_on_threads(shutdown, threads).await;
    Ok(())
}

#[cfg(feature = "dev-issuer")]
type DevelopmentIssuer = Option<Arc<meingpt_auth::testing::MockIssuer>>;
#[cfg(not(feature = "dev-issuer"))]
type DevelopmentIssuer = Option<NoDevelopmentIssuer>;

/// This build has no development issuer.
#[cfg(not(feature = "dev-issuer"))]
enum NoDevelopmentIssuer {}

async fn resolve_auth(source: AuthSource) -> Result<(MeinGptAuth, DevelopmentIssuer), ConfigError> {
    match source {
        AuthSource::Configured(auth) => Ok((auth, None)),
        #[cfg(feature = "dev-issuer")]
        AuthSource::Development => {
            let issuer = meingpt_auth::testing::MockIssuer::start().await;
            let auth = issuer
                .auth()
                .build()
                .map_err(|e| ConfigError::new(e.setting(), e.to_string()))?;
            Ok((auth, Some(Arc::new(issuer))))
        }
        #[cfg(not(feature = "dev-issuer"))]
        AuthSource::Development => Err(ConfigError::new(
            "MEINGPT_ORG_ID",
            "not set, and this build has no development issuer (feature dev-issuer)",
        )),
    }
}

/// Loads the issuer's keys, retrying with backoff, and then reports ready.
async fn preload(auth: MeinGptAuth, readiness: Readiness) {
    let mut delay = Duration::from_millis(500);
    loop {
        match auth.preload().await {
            Ok(()) => {
                readiness.set_ready();
                tracing::info!(target: "meingpt_gateway", "issuer keys loaded; ready");
                return;
            }
            Err(error) => {
                tracing::warn!(
                    target: "meingpt_gateway",
                    %error,
                    retry_in_ms = delay.as_millis() as u64,
                    "issuer keys not loaded yet; /readyz answers 503"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

fn metrics_response(metrics: &Metrics, request: &Request<Body>) -> Response<Body> {
    if request.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    let mut response = Response::new(Body::from(metrics.render()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
