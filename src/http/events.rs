//! What became of received events.
//!
//! - `GET /api/v1/tenants/{tid}/events?limit=50` → the newest routed events with their
//!   normalized name and the executions they started (the reference's event history).
//! - `GET /api/v1/tenants/{tid}/dlq` → dead-lettered items with the full payload and reason.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::time::rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants/{tid}/events", get(events))
        .route("/api/v1/tenants/{tid}/dlq", get(dlq))
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    Query(q): Query<Limit>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let events: Vec<Value> = state
        .store
        .events(caller.space(), &tenant, limit)?
        .iter()
        .map(|e| {
            json!({
                "eventId": e.event_id,
                "source": e.source,
                "eventType": e.event_type,
                "receivedAt": rfc3339(e.received_at_ms),
                "idempotencyKey": e.idempotency_key,
                "executionIds": e.execution_ids,
                "error": e.error,
            })
        })
        .collect();
    Ok(Json(json!({ "events": events })))
}

async fn dlq(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let items: Vec<Value> = state
        .store
        .dlq(caller.space(), &tenant)?
        .iter()
        .map(|d| {
            json!({
                "seq": d.seq,
                "kind": d.kind,
                "eventId": d.event_id,
                "executionId": d.execution_id,
                "source": d.source,
                "headers": d.headers.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect::<serde_json::Map<_, _>>(),
                "payload": String::from_utf8_lossy(&d.body),
                "error": d.error,
                "attempts": d.attempts,
                "failedAt": rfc3339(d.failed_at_ms),
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}
