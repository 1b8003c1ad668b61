//! Poll registrations: for connectors and entities without webhooks, the poller
//! (`sluice_actors::runtime::poller`) lists the entity on a schedule and emits a P4 event
//! `"{entity}.changed"` (source = the connector, payload = the record) for each record whose
//! content changed since the last poll.
//!
//! - `POST /api/v1/tenants/{tid}/polls` `{"connector": "shopify", "entity": "order",
//!   "action"?: "listOrders", "credential"?: "cred_…", "everyMs": 60000, "cursor"?: "…",
//!   "sinceParam"?: "updated_at_min"}` → 201 with the view below. `action` defaults to the
//!   entity's list action and must be a list action of the connector; `sinceParam` defaults
//!   to the entity's; `cursor` is the change time to start from (default: list everything
//!   once). `everyMs` is at least 100 and at most one day. The first poll runs at once.
//! - `GET …/polls`, `GET …/polls/{pid}` → `{"id", "connector", "entity", "action",
//!   "credential", "everyMs", "sinceParam", "cursor", "nextDueAt", "lastRunAt", "lastError",
//!   "emitted", "createdAt"}`.
//! - `DELETE …/polls/{pid}` → 204; the hashes it kept are forgotten.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_actors::connectors::{Operation, registry};
use sluice_actors::ids::now_ms;
use sluice_storage::{PollRecord, WriteSet};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::JsonBody;
use crate::time::{rfc3339, rfc3339_opt};

/// Shortest interval accepted, ms.
const MIN_EVERY_MS: u64 = 100;
/// Longest interval accepted, ms (one day).
const MAX_EVERY_MS: u64 = 86_400_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants/{tid}/polls", post(create).get(list))
        .route(
            "/api/v1/tenants/{tid}/polls/{pid}",
            get(show).delete(remove),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreatePoll {
    connector: String,
    entity: String,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    credential: Option<String>,
    every_ms: u64,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    since_param: Option<String>,
}

fn view(p: &PollRecord) -> Value {
    json!({
        "id": p.id,
        "connector": p.connector,
        "entity": p.entity,
        "action": p.action,
        "credential": p.credential,
        "everyMs": p.every_ms,
        "sinceParam": p.since_param,
        "cursor": p.cursor,
        "nextDueAt": rfc3339(p.next_due_ms),
        "lastRunAt": rfc3339_opt(p.last_run_ms),
        "lastError": p.last_error,
        "emitted": p.emitted,
        "createdAt": rfc3339(p.created_at_ms),
    })
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    JsonBody(body): JsonBody<CreatePoll>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let def = registry()
        .get(&body.connector)
        .ok_or_else(|| ApiError::bad_request(format!("unknown connector {:?}", body.connector)))?;
    let entity = def
        .entities
        .iter()
        .find(|e| e.name == body.entity)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{} has no entity {:?}",
                body.connector, body.entity
            ))
        })?;
    let action = body.action.or_else(|| entity.list.clone()).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{}.{} has no list action; name one in \"action\"",
            body.connector, body.entity
        ))
    })?;
    if !def
        .actions
        .iter()
        .any(|a| a.name == action && a.operation == Operation::List)
    {
        return Err(ApiError::bad_request(format!(
            "{action:?} is not a list action of {}",
            body.connector
        )));
    }
    if !(MIN_EVERY_MS..=MAX_EVERY_MS).contains(&body.every_ms) {
        return Err(ApiError::bad_request(format!(
            "everyMs must be between {MIN_EVERY_MS} and {MAX_EVERY_MS}"
        )));
    }
    match &body.credential {
        Some(cid) => {
            let c = state
                .store
                .credential(caller.space(), &tenant, cid)?
                .ok_or_else(|| {
                    ApiError::bad_request(format!("credential {cid:?} does not exist"))
                })?;
            if c.connector != body.connector {
                return Err(ApiError::bad_request(format!(
                    "credential {cid:?} is for {}, not {}",
                    c.connector, body.connector
                )));
            }
        }
        None if !def.auth.types.iter().any(|t| t == "none") => {
            return Err(ApiError::bad_request(format!(
                "{} needs a credential",
                body.connector
            )));
        }
        None => {}
    }
    let now = now_ms();
    let record = PollRecord {
        id: format!("poll_{}", uuid::Uuid::now_v7().simple()),
        space_id: caller.space().to_owned(),
        tenant_id: tenant,
        connector: body.connector,
        entity: body.entity,
        action,
        credential: body.credential,
        every_ms: body.every_ms,
        since_param: body.since_param.or_else(|| entity.since_param.clone()),
        updated_field: entity.updated_field.clone(),
        id_field: entity.id_field.clone(),
        cursor: body.cursor,
        next_due_ms: now,
        last_run_ms: None,
        last_error: None,
        emitted: 0,
        created_at_ms: now,
    };
    let mut w = WriteSet::new();
    w.put_poll(&record)?;
    state.store.commit(w).await?;
    Ok((StatusCode::CREATED, Json(view(&record))))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let all: Vec<Value> = state
        .store
        .polls(caller.space(), &tenant)?
        .iter()
        .map(view)
        .collect();
    Ok(Json(json!({ "polls": all })))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, pid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let poll = state
        .store
        .poll(caller.space(), &tenant, &pid)?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(view(&poll)))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, pid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let _guard = sluice_actors::runtime::poller::write_lock().lock().await;
    state
        .store
        .poll(caller.space(), &tenant, &pid)?
        .ok_or_else(ApiError::not_found)?;
    let mut w = WriteSet::new();
    w.delete_poll(caller.space(), &tenant, &pid);
    for seen in state.store.poll_seen_all(caller.space(), &tenant, &pid)? {
        w.delete_poll_seen(caller.space(), &tenant, &pid, &seen.record_id);
    }
    state.store.commit(w).await?;
    Ok(StatusCode::NO_CONTENT)
}
