//! The tenant's dead letter queue.
//!
//! - `GET /api/v1/tenants/{tid}/dlq?source=&event=&reason=&state=&limit=50&cursor=` → items
//!   oldest first, each with its full payload, error context, attempts, time and replays;
//!   `nextCursor` pages on.
//! - `GET …/dlq/{id}` → one item.
//! - `POST …/dlq/{id}/replay` `{"version": "pinned" | "live"}` (body optional, pinned by
//!   default) → 202 with the item now `replaying`; 409 when it is not pending.
//! - `POST …/dlq/replay` `{"source"?, "event"?, "reason"?, "version"?}` → replays every
//!   pending item that matches: `{"replayed", "skipped", "failed", "errors": […]}`.
//! - Both replay endpoints take part in loop detection (see `sluice_actors::pipeline::hops`):
//!   a request a flow made (its `CDN-Loop` header) is refused with 508 `LOOP_DETECTED` like
//!   any other past the limits, and its replays continue that flow's chain.
//! - `DELETE …/dlq/{id}` → 204.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_actors::dlq::{self, DlqFilter, ReplayError, VersionChoice};
use sluice_storage::{DlqRecord, DlqState};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::JsonBody;
use super::extract::QueryParams;
use super::lineage::{IncomingLineage, admit};
use crate::time::rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants/{tid}/dlq", get(list))
        .route("/api/v1/tenants/{tid}/dlq/replay", post(replay_bulk))
        .route("/api/v1/tenants/{tid}/dlq/{id}", get(show).delete(remove))
        .route("/api/v1/tenants/{tid}/dlq/{id}/replay", post(replay_one))
}

fn view(d: &DlqRecord) -> Value {
    json!({
        "id": d.id,
        "kind": d.kind.as_str(),
        "state": d.state.as_str(),
        "eventId": d.event_id,
        "executionId": d.execution_id,
        "flowId": d.flow_id,
        "flowVersion": d.flow_version,
        "source": d.source,
        "eventType": d.event_type,
        "priority": d.priority,
        "headers": d.headers.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<serde_json::Map<_, _>>(),
        "payload": payload_text(&d.body),
        "payloadEncoding": if std::str::from_utf8(&d.body).is_ok() { "utf-8" } else { "base64" },
        "error": dlq::error_value(d),
        "attempts": d.attempts,
        "failedAt": rfc3339(d.failed_at_ms),
        "replays": d.replays.iter().map(|r| json!({
            "at": rfc3339(r.at_ms),
            "attempt": r.attempt,
            "executionId": r.execution_id,
            "outcome": r.outcome,
        })).collect::<Vec<_>>(),
    })
}

/// The payload as text when it is UTF-8, else base64 (so no byte is lost).
fn payload_text(body: &[u8]) -> String {
    use base64::Engine as _;
    match std::str::from_utf8(body) {
        Ok(text) => text.to_owned(),
        Err(_) => base64::engine::general_purpose::STANDARD.encode(body),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    source: Option<String>,
    event: Option<String>,
    reason: Option<String>,
    state: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 500"));
    }
    if let Some(st) = q.state.as_deref()
        && !["pending", "replaying", "resolved"].contains(&st)
    {
        return Err(ApiError::bad_request(
            "state must be pending, replaying or resolved",
        ));
    }
    if let Some(c) = q.cursor.as_deref()
        && !(c.starts_with("dlq_") && c[4..].bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ApiError::bad_request("invalid cursor"));
    }
    let filter = DlqFilter {
        source: q.source,
        event: q.event,
        reason: q.reason,
        state: q.state,
    };
    let items: Vec<DlqRecord> = state
        .store
        .dlq(caller.space(), &tenant)?
        .into_iter()
        .filter(|d| q.cursor.as_ref().is_none_or(|c| &d.id > c))
        .filter(|d| filter.matches(d))
        .take(limit + 1)
        .collect();
    let more = items.len() > limit;
    let page = &items[..items.len().min(limit)];
    Ok(Json(json!({
        "items": page.iter().map(view).collect::<Vec<_>>(),
        "nextCursor": if more { page.last().map(|d| d.id.clone()) } else { None },
    })))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let item = state
        .store
        .dlq_item(caller.space(), &tenant, &id)?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(view(&item)))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    dlq::remove(&state.store, caller.space(), &tenant, &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReplayOptions {
    version: Option<String>,
}

fn version_choice(v: Option<&str>) -> Result<VersionChoice, ApiError> {
    match v {
        None | Some("pinned") => Ok(VersionChoice::Pinned),
        Some("live") => Ok(VersionChoice::Live),
        Some(other) => Err(ApiError::bad_request(format!(
            "version must be \"pinned\" or \"live\", not {other:?}"
        ))),
    }
}

fn replay_error(e: ReplayError) -> ApiError {
    match e {
        ReplayError::NotFound => ApiError::not_found(),
        ReplayError::NotPending(_) | ReplayError::FlowUnavailable(_) => {
            ApiError::conflict(e.to_string())
        }
        ReplayError::Storage(e) => e.into(),
        ReplayError::Runtime => ApiError::internal(e),
    }
}

async fn replay_one(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, id)): Path<(String, String)>,
    IncomingLineage(lineage): IncomingLineage,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    admit(&state, &tenant, &lineage)?;
    let options: ReplayOptions = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayOptions::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let version = version_choice(options.version.as_deref())?;
    let item = dlq::replay(
        &state.store,
        &state.root,
        caller.space(),
        &tenant,
        &id,
        version,
        &lineage,
    )
    .await
    .map_err(replay_error)?;
    Ok((StatusCode::ACCEPTED, Json(view(&item))))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BulkReplay {
    source: Option<String>,
    event: Option<String>,
    reason: Option<String>,
    version: Option<String>,
}

async fn replay_bulk(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    IncomingLineage(lineage): IncomingLineage,
    JsonBody(body): JsonBody<BulkReplay>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    admit(&state, &tenant, &lineage)?;
    let version = version_choice(body.version.as_deref())?;
    let filter = DlqFilter {
        source: body.source,
        event: body.event,
        reason: body.reason,
        state: None,
    };
    let (mut replayed, mut skipped, mut failed) = (0usize, 0usize, 0usize);
    let mut errors = Vec::new();
    for item in state.store.dlq(caller.space(), &tenant)? {
        if !filter.matches(&item) {
            continue;
        }
        if item.state != DlqState::Pending {
            skipped += 1;
            continue;
        }
        // A flow's bulk replay starts one execution per item: each counts against its
        // chain's budget, not only the request.
        if !state
            .loop_budget
            .admit(&tenant, &lineage, sluice_actors::ids::now_ms())
        {
            metrics::counter!("sluice_loops_refused_total").increment(1);
            failed += 1;
            errors.push(json!({"id": item.id, "message": format!(
                "not replayed: the chain started by {} has used its loop budget (CDN-Loop)",
                lineage.correlation_id
            )}));
            continue;
        }
        match dlq::replay(
            &state.store,
            &state.root,
            caller.space(),
            &tenant,
            &item.id,
            version,
            &lineage,
        )
        .await
        {
            Ok(_) => replayed += 1,
            Err(ReplayError::Storage(e)) => return Err(e.into()),
            Err(e) => {
                failed += 1;
                errors.push(json!({"id": item.id, "message": e.to_string()}));
            }
        }
    }
    Ok(Json(json!({
        "replayed": replayed,
        "skipped": skipped,
        "failed": failed,
        "errors": errors,
    })))
}
