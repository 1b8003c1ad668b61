//! Events of a tenant.
//!
//! - `POST /api/v1/tenants/{tid}/events` `{"source": "myapp", "event": "user.signup",
//!   "payload": {…}, "idempotencyKey"?: "…"}` → an app event (P2) enters the pipeline like a
//!   webhook: 202 `{"eventId", "duplicate": false}` once durable, 200 with `duplicate: true`
//!   for a repeated idempotency key (or, without one, the same event name and payload); 508
//!   `LOOP_DETECTED` when its `CDN-Loop` header puts it too deep in, or past the budget
//!   of, a chain of calls Sluice made to itself (see `sluice_actors::pipeline::hops`).
//! - `GET /api/v1/tenants/{tid}/events?limit=50&cursor=…` → `{"events": […], "nextCursor":
//!   "…" | null}`: routed events, newest first, with their normalized name and the executions
//!   they started (the reference's event history); `limit` is 1-1000 (default 50); `cursor`
//!   is the opaque value of the previous page's `nextCursor`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_actors::pipeline::submit::{P2_EVENT, Submission, submit};
use sluice_storage::IngestOutcome;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::JsonBody;
use super::extract::{QueryParams, page_cursor};
use super::lineage::{IncomingLineage, admit};
use crate::time::rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/tenants/{tid}/events",
        get(events).post(submit_event),
    )
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let cursor = page_cursor(q.cursor.as_deref())?;
    let (page, next) =
        state
            .store
            .events_page(caller.space(), &tenant, cursor.as_deref(), limit)?;
    let events: Vec<Value> = page
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
    Ok(Json(
        json!({ "events": events, "nextCursor": next.map(hex::encode) }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AppEvent {
    source: String,
    event: String,
    #[serde(default)]
    payload: Value,
    idempotency_key: Option<String>,
}

fn is_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b':'))
}

async fn submit_event(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    IncomingLineage(lineage): IncomingLineage,
    JsonBody(body): JsonBody<AppEvent>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    if !is_name(&body.source) || !is_name(&body.event) {
        return Err(ApiError::bad_request(
            "source and event must be 1-128 characters of letters, digits and _ - . / :",
        ));
    }
    admit(&state, &tenant, &lineage)?;
    let payload = serde_json::to_vec(&body.payload).map_err(ApiError::internal)?;
    let outcome = submit(
        &state.store,
        Submission {
            space_id: caller.space().to_owned(),
            tenant_id: tenant,
            source: body.source,
            event: body.event,
            payload,
            priority: P2_EVENT,
            idempotency_key: body.idempotency_key,
            lineage,
        },
    )
    .await?;
    Ok(match outcome {
        IngestOutcome::Accepted { event_id, .. } => (
            StatusCode::ACCEPTED,
            Json(json!({"eventId": event_id, "duplicate": false})),
        ),
        IngestOutcome::Duplicate { event_id } => (
            StatusCode::OK,
            Json(json!({"eventId": event_id, "duplicate": true})),
        ),
    })
}
