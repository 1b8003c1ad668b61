//! `GET /healthz` (no auth) and `GET /metrics` (Prometheus text format 0.0.4).

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
}

/// 200 `ok`, or 503 with the reason once writes are refused (disk full or failing).
async fn health(State(state): State<AppState>) -> (axum::http::StatusCode, String) {
    match state.store.write_failure() {
        None => (axum::http::StatusCode::OK, "ok".into()),
        Some(reason) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("storage unavailable for writes: {reason}"),
        ),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // The engine's state is read here, once per scrape, rather than on every commit.
    let engine = state.store.engine_stats();
    metrics::gauge!("sluice_storage_write_buffer_bytes").set(engine.write_buffer_bytes as f64);
    metrics::gauge!("sluice_storage_flushes_queued").set(engine.flushes_queued as f64);
    metrics::gauge!("sluice_storage_journals").set(engine.journals as f64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
