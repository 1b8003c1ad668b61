//! Executions of a tenant.
//!
//! - `GET /api/v1/tenants/{tid}/executions?limit=50&cursor=…` → `{"executions": […],
//!   "nextCursor": "…" | null}`, newest first; `limit` is 1-500 (default 50); `cursor` is the
//!   opaque value of the previous page's `nextCursor`.
//! - `GET …/executions/{eid}` → status, timestamps and every journaled step's input, output,
//!   error and attempts. Another tenant's execution is 404.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_storage::{ExecutionRecord, StepRecord};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::QueryParams;
use crate::time::{rfc3339, rfc3339_opt};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants/{tid}/executions", get(list))
        .route("/api/v1/tenants/{tid}/executions/{eid}", get(show))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

fn json_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn summary(e: &ExecutionRecord) -> Value {
    json!({
        "id": e.id,
        "flowId": e.flow_id,
        "flowName": e.flow_name,
        "flowVersion": e.flow_version,
        "status": e.status.as_str(),
        "eventId": e.event_id,
        "triggerType": e.trigger_kind,
        "priority": format!("P{}", e.priority),
        "attempt": e.attempt,
        "replayOf": e.replay_of,
        "createdAt": rfc3339(e.created_at_ms),
        "startedAt": rfc3339_opt(e.started_at_ms),
        "finishedAt": rfc3339_opt(e.finished_at_ms),
        "error": e.error_json.as_deref().map(json_text),
    })
}

fn step_view(s: &StepRecord) -> Value {
    json!({
        "name": s.name,
        "status": s.status.as_str(),
        "input": json_text(&s.input_json),
        "output": json_text(&s.output_json),
        "error": s.error_json.as_deref().map(json_text),
        "attempts": s.attempts.iter().map(|a| json!({
            "startedAt": rfc3339(a.started_at_ms),
            "finishedAt": rfc3339(a.finished_at_ms),
            "durationMs": a.finished_at_ms.saturating_sub(a.started_at_ms),
            "error": a.error_json.as_deref().map(json_text),
        })).collect::<Vec<_>>(),
        "startedAt": rfc3339(s.started_at_ms),
        "finishedAt": rfc3339(s.finished_at_ms),
        "durationMs": s.finished_at_ms.saturating_sub(s.started_at_ms),
    })
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
    let cursor = match q.cursor.as_deref() {
        Some(c) => Some(hex::decode(c).map_err(|_| ApiError::bad_request("invalid cursor"))?),
        None => None,
    };
    let (page, next) =
        state
            .store
            .executions_page(caller.space(), &tenant, cursor.as_deref(), limit)?;
    Ok(Json(json!({
        "executions": page.iter().map(summary).collect::<Vec<_>>(),
        "nextCursor": next.map(hex::encode),
    })))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, eid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let space = caller.space();
    let exec = state
        .store
        .execution(space, &tenant, &eid)?
        .ok_or_else(ApiError::not_found)?;
    let steps = state.store.journal(space, &tenant, &eid)?;
    let mut view = summary(&exec);
    if let Some(obj) = view.as_object_mut() {
        obj.insert("trigger".into(), json_text(&exec.trigger_json));
        obj.insert(
            "steps".into(),
            Value::Array(steps.iter().map(step_view).collect()),
        );
    }
    Ok(Json(view))
}
