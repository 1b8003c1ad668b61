//! Webhook endpoint registrations of a tenant.
//!
//! - `POST /api/v1/tenants/{tid}/webhooks` `{"connector": "shopify", "secret": "…"}` → 201
//!   `{"id", "url", "connector", "scheme", "rotation"}`; `GET` lists them and `GET …/{id}`
//!   shows one (scheme and rotation state, never secrets).
//! - `POST …/webhooks/{id}/rotate` `{"secret": "…", "overlapSeconds": 86400}` → the new secret
//!   verifies at once and the old one keeps verifying until the overlap ends (default 24 h,
//!   at most 30 days; 0 retires it immediately).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_actors::ids::now_ms;
use sluice_actors::pipeline::signature::Scheme;
use sluice_storage::{WebhookRecord, WriteSet};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::JsonBody;
use crate::time::rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants/{tid}/webhooks", post(create).get(list))
        .route("/api/v1/tenants/{tid}/webhooks/{id}", get(show))
        .route("/api/v1/tenants/{tid}/webhooks/{id}/rotate", post(rotate))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWebhook {
    connector: String,
    secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Rotate {
    secret: String,
    overlap_seconds: Option<u64>,
}

/// Default overlap of a rotation, seconds (24 h).
const DEFAULT_OVERLAP_SECS: u64 = 24 * 3600;
/// Longest overlap accepted, seconds (30 days).
const MAX_OVERLAP_SECS: u64 = 30 * 24 * 3600;

fn view(w: &WebhookRecord) -> Value {
    let scheme = Scheme::for_connector(&w.connector).map(Scheme::name);
    let overlap_active = w
        .previous_secret_expires_at_ms
        .is_some_and(|until| until > now_ms() && w.previous_secret.is_some());
    json!({
        "id": w.id,
        "url": format!("/api/v1/clients/{}/webhooks/{}", w.space_id, w.id),
        "connector": w.connector,
        "scheme": scheme,
        "createdAt": rfc3339(w.created_at_ms),
        "rotation": w.rotated_at_ms.map(|at| json!({
            "rotatedAt": rfc3339(at),
            "previousSecretValidUntil": w.previous_secret_expires_at_ms.map(rfc3339),
            "overlapActive": overlap_active,
        })),
    })
}

fn check_secret(scheme: Scheme, secret: &str) -> Result<(), ApiError> {
    if secret.is_empty() || secret.len() > 1024 {
        return Err(ApiError::bad_request("secret must be 1-1024 bytes"));
    }
    if scheme == Scheme::Standard {
        use base64::Engine as _;
        let raw = secret.strip_prefix("whsec_").unwrap_or(secret);
        if base64::engine::general_purpose::STANDARD
            .decode(raw)
            .is_err()
        {
            return Err(ApiError::bad_request(
                "a Standard Webhooks secret is whsec_ followed by base64",
            ));
        }
    }
    Ok(())
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    JsonBody(body): JsonBody<CreateWebhook>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let Some(scheme) = Scheme::for_connector(&body.connector) else {
        return Err(ApiError::bad_request(format!(
            "unknown connector {:?} (one of: shopify, github, stripe, slack, standard)",
            body.connector
        )));
    };
    check_secret(scheme, &body.secret)?;
    let record = WebhookRecord {
        id: format!("wh_{}", uuid::Uuid::now_v7().simple()),
        space_id: caller.space().to_owned(),
        tenant_id: tenant,
        connector: body.connector,
        secret: body.secret,
        previous_secret: None,
        previous_secret_expires_at_ms: None,
        rotated_at_ms: None,
        created_at_ms: now_ms(),
    };
    let mut w = WriteSet::new();
    w.put_webhook(&record)?;
    state.store.commit(w).await?;
    Ok((StatusCode::CREATED, Json(view(&record))))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let hooks: Vec<Value> = state
        .store
        .webhooks(caller.space(), &tenant)?
        .iter()
        .map(view)
        .collect();
    Ok(Json(json!({ "webhooks": hooks })))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    match state.store.webhook(&id)? {
        Some(w) if w.space_id == caller.space() && w.tenant_id == tenant => Ok(Json(view(&w))),
        _ => Err(ApiError::not_found()),
    }
}

async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Rotate>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    let mut hook = match state.store.webhook(&id)? {
        Some(w) if w.space_id == caller.space() && w.tenant_id == tenant => w,
        _ => return Err(ApiError::not_found()),
    };
    let scheme = Scheme::for_connector(&hook.connector)
        .ok_or_else(|| ApiError::internal("webhook has an unknown scheme"))?;
    check_secret(scheme, &body.secret)?;
    let overlap = body.overlap_seconds.unwrap_or(DEFAULT_OVERLAP_SECS);
    if overlap > MAX_OVERLAP_SECS {
        return Err(ApiError::bad_request(format!(
            "overlapSeconds must be at most {MAX_OVERLAP_SECS}"
        )));
    }
    let now = now_ms();
    hook.previous_secret = Some(std::mem::replace(&mut hook.secret, body.secret));
    hook.previous_secret_expires_at_ms = Some(now + overlap * 1000);
    hook.rotated_at_ms = Some(now);
    let mut w = WriteSet::new();
    w.put_webhook(&hook)?;
    state.store.commit(w).await?;
    Ok(Json(view(&hook)))
}
