//! Sync pairs, their changes and conflicts, and the ID maps.
//!
//! - `POST /api/v1/tenants/{tid}/syncs` `{"name"?, "source": {"connector", "entity",
//!   "credential"?}, "target": {…}, "strategy": "source_wins" | "target_wins" |
//!   "last_write_wins" | "merge" | "manual", "fields"?: ["email", …]}` → 201; `GET` lists;
//!   `GET …/syncs/{sid}` shows one.
//! - `POST …/syncs/{sid}/changes` `{"source"?: {"id", "record", "updatedAt"?}, "target"?:
//!   {…}}` (what a webhook or a poll observed on either or both sides; `updatedAt` is Unix
//!   ms or RFC 3339, default now) → `{"outcome": "unchanged" | "converged" | "written" |
//!   "conflict", …}`. `unchanged` includes echoes of the engine's own writes.
//! - `GET …/syncs/{sid}/conflicts?status=open|resolved`, `POST
//!   …/syncs/{sid}/conflicts/{id}/resolve` `{"resolution": "source" | "target" | "merge" |
//!   "custom", "value"?}`.
//! - `GET /api/v1/tenants/{tid}/id-maps?system=shopify&entity=order&id=…` → `{"links":
//!   [{"system", "entity", "id", "otherSystem", "otherEntity", "otherId", …}]}`; ask with
//!   either side's id (links are stored both ways).
//!
//! A connector failure is 400 `DATASOURCE_CONNECTION_ERROR` with `datasourceDebug`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_actors::connectors::registry;
use sluice_actors::ids::now_ms;
use sluice_actors::sync::{Applied, Change, RecordRef, Resolution, Strategy, SyncError};
use sluice_storage::{SyncConflictRecord, SyncPairRecord, WriteSet};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::JsonBody;
use super::extract::QueryParams;
use crate::time::{rfc3339, rfc3339_opt};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants/{tid}/syncs", post(create).get(list))
        .route("/api/v1/tenants/{tid}/syncs/{sid}", get(show))
        .route("/api/v1/tenants/{tid}/syncs/{sid}/changes", post(changes))
        .route(
            "/api/v1/tenants/{tid}/syncs/{sid}/conflicts",
            get(conflicts),
        )
        .route(
            "/api/v1/tenants/{tid}/syncs/{sid}/conflicts/{cid}/resolve",
            post(resolve),
        )
        .route("/api/v1/tenants/{tid}/id-maps", get(id_maps))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Side {
    connector: String,
    entity: String,
    #[serde(default)]
    credential: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSync {
    #[serde(default)]
    name: Option<String>,
    source: Side,
    target: Side,
    strategy: String,
    #[serde(default)]
    fields: Vec<String>,
}

fn view(p: &SyncPairRecord) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "source": {"connector": p.source_connector, "entity": p.source_entity, "credential": p.source_credential},
        "target": {"connector": p.target_connector, "entity": p.target_entity, "credential": p.target_credential},
        "strategy": p.strategy,
        "fields": p.fields,
        "createdAt": rfc3339(p.created_at_ms),
    })
}

fn check_side(state: &AppState, space: &str, tenant: &str, side: &Side) -> Result<(), ApiError> {
    let def = registry()
        .get(&side.connector)
        .ok_or_else(|| ApiError::bad_request(format!("unknown connector {:?}", side.connector)))?;
    let entity = def
        .entities
        .iter()
        .find(|e| e.name == side.entity)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{} has no entity {:?}",
                side.connector, side.entity
            ))
        })?;
    if entity.create.is_none() && entity.update.is_none() {
        return Err(ApiError::bad_request(format!(
            "{}.{} cannot be written (no create or update action)",
            side.connector, side.entity
        )));
    }
    match &side.credential {
        Some(cid) => {
            let c = state.store.credential(space, tenant, cid)?.ok_or_else(|| {
                ApiError::bad_request(format!("credential {cid:?} does not exist"))
            })?;
            if c.connector != side.connector {
                return Err(ApiError::bad_request(format!(
                    "credential {cid:?} is for {}, not {}",
                    c.connector, side.connector
                )));
            }
        }
        None if !def.auth.types.iter().any(|t| t == "none") => {
            return Err(ApiError::bad_request(format!(
                "{} needs a credential",
                side.connector
            )));
        }
        None => {}
    }
    Ok(())
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    JsonBody(body): JsonBody<CreateSync>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let strategy: Strategy = body.strategy.parse().map_err(ApiError::bad_request)?;
    check_side(&state, caller.space(), &tenant, &body.source)?;
    check_side(&state, caller.space(), &tenant, &body.target)?;
    let record = SyncPairRecord {
        id: format!("sync_{}", uuid::Uuid::now_v7().simple()),
        tenant_id: tenant,
        name: body.name.unwrap_or_else(|| {
            format!(
                "{}.{} ↔ {}.{}",
                body.source.connector,
                body.source.entity,
                body.target.connector,
                body.target.entity
            )
        }),
        source_connector: body.source.connector,
        source_entity: body.source.entity,
        source_credential: body.source.credential,
        target_connector: body.target.connector,
        target_entity: body.target.entity,
        target_credential: body.target.credential,
        strategy: strategy.as_str().to_owned(),
        fields: body.fields,
        created_at_ms: now_ms(),
    };
    let mut w = WriteSet::new();
    w.put_sync_pair(caller.space(), &record)?;
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
        .sync_pairs(caller.space(), &tenant)?
        .iter()
        .map(view)
        .collect();
    Ok(Json(json!({ "syncs": all })))
}

fn load(
    state: &AppState,
    caller: &Caller,
    tid: &str,
    sid: &str,
) -> Result<(String, SyncPairRecord), ApiError> {
    let tenant = caller.tenant(state, tid)?;
    let pair = state
        .store
        .sync_pair(caller.space(), &tenant, sid)?
        .ok_or_else(ApiError::not_found)?;
    Ok((tenant, pair))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, sid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (_, pair) = load(&state, &caller, &tid, &sid)?;
    Ok(Json(view(&pair)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Observed {
    id: Value,
    record: Value,
    #[serde(default)]
    updated_at: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Changes {
    #[serde(default)]
    source: Option<Observed>,
    #[serde(default)]
    target: Option<Observed>,
}

fn to_change(o: Option<Observed>, side: &str) -> Result<Option<Change>, ApiError> {
    let Some(o) = o else { return Ok(None) };
    let id = sluice_actors::connectors::select::id_text(&o.id)
        .ok_or_else(|| ApiError::bad_request(format!("{side}.id must be a string or integer")))?;
    let updated_at_ms = match &o.updated_at {
        None | Some(Value::Null) => now_ms(),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| ApiError::bad_request(format!("{side}.updatedAt must be Unix ms")))?,
        Some(Value::String(s)) => humantime::parse_rfc3339_weak(s)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)
            .ok_or_else(|| ApiError::bad_request(format!("{side}.updatedAt is not RFC 3339")))?,
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "{side}.updatedAt: Unix ms or RFC 3339"
            )));
        }
    };
    Ok(Some(Change {
        id,
        record: o.record,
        updated_at_ms,
    }))
}

fn applied_json(a: &Applied) -> Value {
    match a {
        Applied::Unchanged => json!({"outcome": "unchanged"}),
        Applied::Converged => json!({"outcome": "converged"}),
        Applied::Written {
            source_id,
            target_id,
            to_source,
            to_target,
            value,
        } => json!({
            "outcome": "written", "sourceId": source_id, "targetId": target_id,
            "toSource": to_source, "toTarget": to_target, "value": value,
        }),
        Applied::Conflict(id) => json!({"outcome": "conflict", "conflictId": id}),
    }
}

fn sync_error(e: SyncError) -> Response {
    match e {
        SyncError::Action { action, error } => {
            let body = json!({
                "code": "DATASOURCE_CONNECTION_ERROR",
                "statusCode": 400,
                "isCustomAuthError": error.auth,
                "message": error.message,
                "datasourceDebug": {"name": action, "statusCode": error.status, "jsonObject": error.debug},
            });
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
        SyncError::Invalid(m) => ApiError::bad_request(m).into_response(),
        SyncError::Storage(e) => ApiError::internal(e).into_response(),
    }
}

async fn changes(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, sid)): Path<(String, String)>,
    JsonBody(body): JsonBody<Changes>,
) -> Result<Response, ApiError> {
    let (tenant, pair) = load(&state, &caller, &tid, &sid)?;
    let source = to_change(body.source, "source")?;
    let target = to_change(body.target, "target")?;
    if source.is_none() && target.is_none() {
        return Err(ApiError::bad_request("give source, target or both"));
    }
    Ok(
        match state
            .sync
            .apply(caller.space(), &tenant, &pair, source, target)
            .await
        {
            Ok(a) => {
                let outcome = match &a {
                    Applied::Unchanged => "unchanged",
                    Applied::Converged => "converged",
                    Applied::Written { .. } => "written",
                    Applied::Conflict(_) => "conflict",
                };
                metrics::counter!("sluice_sync_changes_total", "outcome" => outcome).increment(1);
                Json(applied_json(&a)).into_response()
            }
            Err(e) => sync_error(e),
        },
    )
}

fn conflict_view(c: &SyncConflictRecord) -> Value {
    let parse = |t: &str| serde_json::from_str::<Value>(t).unwrap_or(Value::Null);
    json!({
        "id": c.id,
        "syncId": c.pair_id,
        "sourceId": c.source_id,
        "targetId": c.target_id,
        "source": parse(&c.source_json),
        "target": parse(&c.target_json),
        "base": parse(&c.base_json),
        "status": c.status,
        "resolution": c.resolution,
        "resolved": c.resolved_json.as_deref().map(parse),
        "createdAt": rfc3339(c.created_at_ms),
        "resolvedAt": rfc3339_opt(c.resolved_at_ms),
    })
}

#[derive(Deserialize)]
struct ConflictQuery {
    status: Option<String>,
}

async fn conflicts(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, sid)): Path<(String, String)>,
    QueryParams(q): QueryParams<ConflictQuery>,
) -> Result<Json<Value>, ApiError> {
    let (tenant, pair) = load(&state, &caller, &tid, &sid)?;
    let all: Vec<Value> = state
        .store
        .sync_conflicts(caller.space(), &tenant, &pair.id)?
        .iter()
        .filter(|c| q.status.as_deref().is_none_or(|s| s == c.status))
        .map(conflict_view)
        .collect();
    Ok(Json(json!({ "conflicts": all })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resolve {
    resolution: String,
    #[serde(default)]
    value: Option<Value>,
}

async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, sid, cid)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<Resolve>,
) -> Result<Response, ApiError> {
    let (tenant, pair) = load(&state, &caller, &tid, &sid)?;
    let resolution = match (body.resolution.as_str(), body.value) {
        ("source", None) => Resolution::Source,
        ("target", None) => Resolution::Target,
        ("merge", None) => Resolution::Merge,
        ("custom", Some(v)) if v.is_object() => Resolution::Custom(v),
        _ => {
            return Err(ApiError::bad_request(
                "resolution is source, target or merge, or custom with an object value",
            ));
        }
    };
    if !state
        .store
        .sync_conflicts(caller.space(), &tenant, &pair.id)?
        .iter()
        .any(|c| c.id == cid)
    {
        return Err(ApiError::not_found());
    }
    Ok(
        match state
            .sync
            .resolve(caller.space(), &tenant, &pair, &cid, resolution)
            .await
        {
            Ok(a) => Json(applied_json(&a)).into_response(),
            Err(SyncError::Invalid(m)) if m.contains("already resolved") => {
                ApiError::conflict(m).into_response()
            }
            Err(e) => sync_error(e),
        },
    )
}

#[derive(Deserialize)]
struct IdMapQuery {
    system: String,
    entity: String,
    id: String,
}

async fn id_maps(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    QueryParams(q): QueryParams<IdMapQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let from = RecordRef {
        system: q.system,
        entity: q.entity,
        id: q.id,
    };
    let links: Vec<Value> = state
        .store
        .id_links(
            caller.space(),
            &tenant,
            &from.system,
            &from.entity,
            &from.id,
        )?
        .iter()
        .map(|l| {
            json!({
                "system": l.system, "entity": l.entity, "id": l.id,
                "otherSystem": l.other_system, "otherEntity": l.other_entity, "otherId": l.other_id,
                "createdAt": rfc3339(l.created_at_ms), "updatedAt": rfc3339(l.updated_at_ms),
            })
        })
        .collect();
    Ok(Json(json!({ "links": links })))
}
