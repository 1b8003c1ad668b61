//! The HTTP front: routes under `/api/v1` (the reference's paths), `/healthz` and `/metrics`.
//! One file per resource; each exposes its routes.

mod auth;
mod cdm;
mod error;
mod events;
mod executions;
mod extract;
mod ops;
mod receipt;
mod tenants;
mod transform;
mod webhooks;
mod workflows;

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use ractor::ActorRef;
use sluice_actors::runtime::RootMsg;
use sluice_storage::Store;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The data directory.
    pub store: Store,
    /// The root supervisor (flow changes are announced to it).
    pub root: ActorRef<RootMsg>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Largest webhook body accepted, bytes.
    pub max_webhook_bytes: usize,
}

/// All routes.
pub fn router(state: AppState) -> Router {
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
        .fallback(|| async { error::ApiError::not_found() })
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
