//! The HTTP front: routes under `/api/v1` (the reference's paths), `/healthz` and `/metrics`.
//! One file per resource; each exposes its routes.

mod auth;
mod cdm;
mod connection;
mod connectors;
mod credentials;
mod dlq;
mod environments;
mod error;
mod events;
mod execute;
mod executions;
mod extract;
mod head_limits;
mod lineage;
pub mod listen;
mod oauth;
mod ops;
mod polls;
mod receipt;
mod sync;
mod tenants;
mod transform;
mod webhooks;
mod workflows;

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use ractor::ActorRef;
use sluice_actors::runtime::RootMsg;
use sluice_storage::Store;

/// Shared by every handler: one allocation, cloned per request as a single reference count
/// (cloning the fields one by one showed up in ingest profiles).
#[derive(Clone)]
pub struct AppState(std::sync::Arc<AppParts>);

impl AppState {
    /// Wraps the parts.
    pub fn new(parts: AppParts) -> Self {
        Self(std::sync::Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// What handlers share.
pub struct AppParts {
    /// Serializes the read-check-write sequences of management writes that must not race:
    /// flow names (unique per tenant) and approval decisions (one per approval). These are
    /// rare writes; ingestion never takes it.
    pub admin_writes: tokio::sync::Mutex<()>,
    /// The data directory.
    pub store: Store,
    /// The root supervisor (flow changes are announced to it).
    pub root: ActorRef<RootMsg>,
    /// The engine (cancellation, completion notices for the execute API).
    pub engine: std::sync::Arc<sluice_actors::engine::Engine>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Largest webhook body accepted, bytes.
    pub max_webhook_bytes: usize,
    /// Seals and opens credential secrets.
    pub vault: std::sync::Arc<crate::connectors::Vault>,
    /// Applies sync changes and conflict resolutions.
    pub sync: sluice_actors::sync::SyncRunner,
    /// The connector executor's HTTP client (network policy applied), for OAuth2 code
    /// exchanges.
    pub oauth_http: reqwest::Client,
    /// Requests accepted per chain of calls Sluice made to itself (loop detection).
    pub loop_budget: sluice_actors::pipeline::hops::CorrelationBudget,
    /// The HTTP calls this server's executions have in flight (the execute API recognises
    /// their synchronous calls by it).
    pub own_calls: crate::own_calls::OwnCalls,
    /// Executions each tenant runs outside its slots, kept by the tenant supervisors.
    pub slot_free_counts: sluice_actors::runtime::slot_free::SlotFreeCounts,
    /// Past this many of them, a tenant's synchronous calls from flows are refused for now
    /// (429); see `sluice_actors::runtime::slot_free::tenant_bound`.
    pub slot_free_bound: usize,
    /// Held while an execute call with an `Idempotency-Key` looks for its execution and
    /// creates it, so two calls with one key cannot both create it; one per shard of the
    /// derived execution ids.
    pub keyed_executes: [tokio::sync::Mutex<()>; 16],
}

/// All routes; a request taking longer than `timeout` (body upload included) is cut with 408.
pub fn router(state: AppState, timeout: std::time::Duration) -> Router {
    Router::new()
        .merge(ops::routes())
        .merge(receipt::routes())
        .merge(tenants::routes())
        .merge(webhooks::routes())
        .merge(workflows::routes())
        .merge(executions::routes())
        .merge(events::routes())
        .merge(cdm::routes())
        .merge(transform::routes())
        .merge(connectors::routes())
        .merge(credentials::routes())
        .merge(sync::routes())
        .merge(dlq::routes())
        .merge(environments::routes())
        .merge(execute::routes())
        .merge(polls::routes())
        .merge(oauth::routes())
        .fallback(|| async { error::ApiError::not_found() })
        .method_not_allowed_fallback(|| async { error::ApiError::method_not_allowed() })
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        // Outside the timeout layer, so that its bare 408 gets the error body.
        .layer(axum::middleware::map_response(bare_errors_as_api_errors))
        .layer(axum::middleware::from_fn(head_limits::check))
        // 5xx answers at debug level: the errors worth a log line say so where they arise
        // (`ApiError::internal`, storage refusals), while 508 loop refusals come in bursts
        // and are counted in `/metrics`.
        .layer(
            tower_http::trace::TraceLayer::new_for_http().on_failure(
                tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
            ),
        )
        .with_state(state)
}

/// Gives error answers made outside our handlers the API's error body: the timeout layer's
/// bare 408, and axum's plain-text rejections (a path segment that is not valid UTF-8 after
/// percent-decoding, for one). Our own errors are JSON already and pass untouched, as do 5xx
/// answers (the health check's plain-text 503 is meant for load balancers).
async fn bare_errors_as_api_errors(response: axum::response::Response) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !status.is_client_error() {
        return response;
    }
    match status {
        StatusCode::REQUEST_TIMEOUT => error::ApiError::timed_out().into_response(),
        StatusCode::NOT_FOUND => error::ApiError::not_found().into_response(),
        StatusCode::METHOD_NOT_ALLOWED => error::ApiError::method_not_allowed().into_response(),
        s => {
            let text = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let message = if text.trim().is_empty() {
                s.canonical_reason().unwrap_or("bad request").to_owned()
            } else {
                text
            };
            let mut answer = error::ApiError::bad_request(message).into_response();
            *answer.status_mut() = s;
            answer
        }
    }
}
