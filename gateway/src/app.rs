//! Starting the gateway from [`Settings`]: the authenticator (or the
//! development issuer), the listeners, the key preloading `/readyz`
//! reports, the Tower stack, and serving until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use meingpt_auth::MeinGptAuth;
use tower::ServiceBuilder;
use tower_http::body::Limited;
use tower_http::limit::RequestBodyLimitLayer;

use crate::access_log::AccessLogLayer;
use crate::config::{AuthSource, ConfigError, Settings};
use crate::gateway::{Gateway, GatewayParts, Readiness};
use crate::metrics::Metrics;
use crate::proxy::{Body, plain, upstream_client};
use crate::server::{self, Listener};

/// How long in-flight requests get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A gateway whose sockets are bound; [`serve`](Self::serve) runs it.
pub struct Started {
    listener: Listener,
    metrics_listener: Option<Listener>,
    stack: Stack,
    metrics: Arc<Metrics>,
    development: DevelopmentIssuer,
}

type Stack = crate::access_log::AccessLog<
    tower_http::limit::RequestBodyLimit<
        tower::util::MapRequest<Gateway, fn(Request<Limited<Body>>) -> Request<Body>>,
    >,
>;

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
pub async fn start(settings: Settings) -> Result<Started, ConfigError> {
    let (auth, development) = resolve_auth(settings.auth).await?;
    let tls = settings
        .tls
        .as_ref()
        .map(crate::tls::server_config)
        .transpose()?;
    let listener = Listener::bind(settings.listen, tls).await.map_err(|e| {
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

    let metrics = Arc::new(Metrics::default());
    let readiness = Readiness::default();
    tokio::spawn(preload(auth.clone(), readiness.clone()));

    let gateway = Gateway::new(GatewayParts {
        auth,
        routes: settings.routes,
        forward_auth_path: settings.forward_auth_path.clone(),
        client: upstream_client(settings.connect_timeout),
        response_timeout: settings.response_timeout,
        metrics: metrics.clone(),
        readiness,
    });
    let to_body: fn(Request<Limited<Body>>) -> Request<Body> = |request| request.map(Body::new);
    let stack = ServiceBuilder::new()
        .layer(AccessLogLayer::new(metrics.clone()))
        .layer(RequestBodyLimitLayer::new(settings.max_body_bytes))
        .map_request(to_body)
        .service(gateway);

    let started = Started {
        listener,
        metrics_listener,
        stack,
        metrics,
        development,
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
        self.development.as_ref()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests
    /// finish (up to [`SHUTDOWN_GRACE`]).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        // The development issuer keeps serving its keys until the very end.
        let Self {
            listener,
            metrics_listener,
            stack,
            metrics,
            development: _development,
        } = self;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!(target: "meingpt_gateway", "shutting down: finishing in-flight requests");
            let _ = stop.send(true);
        });
        let wait = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let main = server::serve(listener, stack, wait(stopped.clone()), SHUTDOWN_GRACE);
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
                );
                tokio::join!(main, metrics_server);
            }
            None => main.await,
        }
    }
}

/// Starts the gateway, prints `meingpt-gateway listening on URL` to stderr
/// (and, with the development issuer, demo tokens and an nginx snippet to
/// stdout), and serves until `shutdown` completes.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ConfigError> {
    #[cfg(feature = "dev-issuer")]
    let (forward_auth_path, proxying) = (
        settings.forward_auth_path.clone(),
        !settings.routes.is_empty(),
    );
    let started = start(settings).await?;
    let base = started.base_url();
    eprintln!("meingpt-gateway listening on {base}");
    if let Some(metrics_addr) = started.metrics_addr() {
        eprintln!("meingpt-gateway metrics on http://{metrics_addr}/metrics");
    }
    #[cfg(feature = "dev-issuer")]
    if let Some(issuer) = started.development_issuer() {
        println!(
            "{}",
            crate::dev::banner(&base, issuer, &forward_auth_path, proxying)
        );
    }
    started.serve(shutdown).await;
    Ok(())
}

#[cfg(feature = "dev-issuer")]
type DevelopmentIssuer = Option<meingpt_auth::testing::MockIssuer>;
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
            Ok((auth, Some(issuer)))
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
