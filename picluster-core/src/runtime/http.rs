//! The HTTP endpoint Prometheus scrapes (hyper, HTTP/1.1): `GET /metrics` answers
//! with whatever the program renders in the OpenMetrics text format, `GET /` says
//! where the metrics are, anything else is 404. The coordinator and the worker both
//! serve theirs through it; what they render is theirs.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// The content type of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds the metrics endpoint's TCP listener; the error names the address.
pub async fn bind_metrics(
    address: SocketAddr,
) -> Result<tokio::net::TcpListener, crate::net::NetError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| crate::net::NetError::BindMetrics { address, source })
}

/// Scrapers connected at once; more are closed at once (Prometheus keeps one).
pub const MAX_METRICS_CONNECTIONS: usize = 64;
/// A request's header must arrive within this long after the connection or the
/// previous request.
pub const METRICS_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is closed this long after it opened, whatever it does (a scraper
/// that keeps it alive opens another).
pub const METRICS_CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

/// Serves `GET /metrics` on `listener` until dropped (abort the task): each scrape
/// calls `render`, whose text is the answer (`None`: 503, the service is stopping).
/// `GET /` says where the metrics are; anything else is 404. At most
/// [`MAX_METRICS_CONNECTIONS`] connections at once, each given
/// [`METRICS_HEADER_TIMEOUT`] for a request's header and
/// [`METRICS_CONNECTION_LIFETIME`] in all: half-sent requests hold nothing for long.
pub async fn serve_metrics<F, Fut>(listener: tokio::net::TcpListener, render: F)
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Option<String>> + Send + 'static,
{
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_METRICS_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Full: the connection is dropped, closing it.
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |request: Request<_>| {
                let render = render.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(request, render).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(METRICS_HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(METRICS_CONNECTION_LIFETIME, connection).await;
        });
    }
}

async fn answer<B, F, Fut>(request: Request<B>, render: F) -> Response<Full<Bytes>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<String>>,
{
    let reply = |status: StatusCode, kind: &'static str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(kind),
        );
        response
    };
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => match render().await {
            Some(text) => reply(StatusCode::OK, OPENMETRICS, text),
            None => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                "stopping\n".into(),
            ),
        },
        (&Method::GET, "/") => reply(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "picluster: metrics at /metrics\n".into(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".into(),
        ),
    }
}
