//! Connector credentials of a tenant. Secrets are sealed at rest and never returned.
//!
//! - `POST /api/v1/tenants/{tid}/credentials` `{"connector": "xero", "name": "…",
//!   "auth": {"type": "oauth2" | "apiKey" | "basic" | "custom" | "smtp", …},
//!   "baseUrl"?: "https://…", "params"?: {"xeroTenantId": "…"}}` → 201 with the view below.
//!   `auth` shapes: see `connectors::credentials`. The auth type must be one the connector
//!   accepts.
//! - `GET …/credentials`, `GET …/credentials/{cid}` → `{"id", "connector", "name",
//!   "authType", "baseUrl", "params", "version", "createdAt", "updatedAt"}`.
//! - `PUT …/credentials/{cid}` `{"auth", "name"?, "baseUrl"?, "params"?}` rotates (the
//!   connector cannot change); `version` goes up.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sluice_actors::connectors::registry;
use sluice_actors::flow::FlowSpec;
use sluice_actors::ids::now_ms;
use sluice_storage::{CredentialRecord, WriteSet};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::JsonBody;
use crate::connectors::credentials::{Auth, seal_into};
use crate::time::rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants/{tid}/credentials", post(create).get(list))
        .route(
            "/api/v1/tenants/{tid}/credentials/{cid}",
            get(show).put(rotate),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateCredential {
    connector: String,
    #[serde(default)]
    name: Option<String>,
    auth: Value,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    params: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RotateCredential {
    auth: Value,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    params: Option<Map<String, Value>>,
}

fn view(c: &CredentialRecord) -> Value {
    json!({
        "id": c.id,
        "connector": c.connector,
        "name": c.name,
        "authType": c.auth_type,
        "baseUrl": c.base_url,
        "params": serde_json::from_str::<Value>(&c.params_json).unwrap_or(Value::Null),
        "version": c.version,
        "createdAt": rfc3339(c.created_at_ms),
        "updatedAt": rfc3339(c.updated_at_ms),
    })
}

fn parse_auth(connector: &str, auth: Value) -> Result<Auth, ApiError> {
    let auth: Auth = serde_json::from_value(auth)
        .map_err(|e| ApiError::bad_request(format!("invalid auth: {e}")))?;
    let def = registry()
        .get(connector)
        .ok_or_else(|| ApiError::bad_request(format!("unknown connector {connector:?}")))?;
    if !def.auth.types.iter().any(|t| t == auth.kind()) {
        return Err(ApiError::bad_request(format!(
            "connector {connector} does not accept auth type {:?} (accepts: {})",
            auth.kind(),
            def.auth.types.join(", ")
        )));
    }
    Ok(auth)
}

fn check_base_url(url: Option<&String>) -> Result<(), ApiError> {
    if let Some(u) = url {
        let parsed = reqwest::Url::parse(u)
            .map_err(|e| ApiError::bad_request(format!("invalid baseUrl: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ApiError::bad_request("baseUrl must be http or https"));
        }
    }
    Ok(())
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    JsonBody(body): JsonBody<CreateCredential>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let auth = parse_auth(&body.connector, body.auth)?;
    check_base_url(body.base_url.as_ref())?;
    let now = now_ms();
    let mut record = CredentialRecord {
        id: format!("cred_{}", uuid::Uuid::now_v7().simple()),
        tenant_id: tenant,
        name: body.name.unwrap_or_else(|| body.connector.clone()),
        connector: body.connector,
        auth_type: auth.kind().to_owned(),
        base_url: body.base_url,
        params_json: Value::Object(body.params.unwrap_or_default()).to_string(),
        nonce: Vec::new(),
        ciphertext: Vec::new(),
        version: 1,
        created_at_ms: now,
        updated_at_ms: now,
    };
    seal_into(&state.vault, &mut record, &auth).map_err(ApiError::internal)?;
    let mut w = WriteSet::new();
    w.put_credential(caller.space(), &record)?;
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
        .credentials(caller.space(), &tenant)?
        .iter()
        .map(view)
        .collect();
    Ok(Json(json!({ "credentials": all })))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, cid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let c = state
        .store
        .credential(caller.space(), &tenant, &cid)?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(view(&c)))
}

async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, cid)): Path<(String, String)>,
    JsonBody(body): JsonBody<RotateCredential>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let mut record = state
        .store
        .credential(caller.space(), &tenant, &cid)?
        .ok_or_else(ApiError::not_found)?;
    let auth = parse_auth(&record.connector, body.auth)?;
    check_base_url(body.base_url.as_ref())?;
    if let Some(n) = body.name {
        record.name = n;
    }
    if body.base_url.is_some() {
        record.base_url = body.base_url;
    }
    if let Some(p) = body.params {
        record.params_json = Value::Object(p).to_string();
    }
    record.auth_type = auth.kind().to_owned();
    record.version += 1;
    record.updated_at_ms = now_ms();
    seal_into(&state.vault, &mut record, &auth).map_err(ApiError::internal)?;
    let mut w = WriteSet::new();
    w.put_credential(caller.space(), &record)?;
    state.store.commit(w).await?;
    Ok(Json(view(&record)))
}

/// Checks, when a flow is saved, that every step's credential exists in the tenant and is
/// for the step's connector.
///
/// # Errors
/// 400 `INVALID_FLOW` naming the step.
pub fn check_flow_credentials(
    state: &AppState,
    space: &str,
    tenant: &str,
    spec: &FlowSpec,
) -> Result<(), ApiError> {
    check_steps_credentials(state, space, tenant, &spec.steps)
}

/// Checks `steps` and, recursively, the nested steps of loops.
fn check_steps_credentials(
    state: &AppState,
    space: &str,
    tenant: &str,
    steps: &[sluice_actors::flow::StepSpec],
) -> Result<(), ApiError> {
    for step in steps {
        if let Some(nested) = &step.steps {
            check_steps_credentials(state, space, tenant, nested)?;
        }
        let Some(cid) = &step.credential else {
            continue;
        };
        let Some(c) = state.store.credential(space, tenant, cid)? else {
            return Err(ApiError::invalid_flow(
                format!(
                    "step {:?}: credential {cid:?} does not exist in this tenant",
                    step.name
                ),
                Some(step.name.clone()),
            ));
        };
        if step.connector.as_deref() != Some(c.connector.as_str()) {
            return Err(ApiError::invalid_flow(
                format!(
                    "step {:?}: credential {cid:?} is for {}, not {}",
                    step.name,
                    c.connector,
                    step.connector.as_deref().unwrap_or("(no connector)")
                ),
                Some(step.name.clone()),
            ));
        }
    }
    Ok(())
}
