//! OAuth2 authorization code with PKCE (RFC 6749 §4.1, RFC 7636 S256) for a tenant's
//! `oauth2` credential.
//!
//! - `POST /api/v1/tenants/{tid}/credentials/{cid}/authorize` `{"redirectUri": "https://…/api/v1/oauth/callback",
//!   "scopes"?: ["…"]}` → `{"authorizeUrl", "state", "expiresAt"}`. The credential must be
//!   `oauth2` with a `clientId`; the authorization endpoint is the connector's
//!   (`auth.oauth2.authUrl`, `{param}` placeholders from the credential's params) and scopes
//!   default to the connector's. The PKCE verifier is kept server-side, sealed by the vault,
//!   for [`PENDING_TTL_MS`]; the state is single-use.
//! - `GET /api/v1/oauth/callback?code=…&state=…` (where the provider sends the user back; no
//!   API key: the state authenticates) exchanges the code with the verifier at the
//!   credential's token URL (else the connector's), stores the tokens sealed in the
//!   credential (`version` goes up) and answers `{"credential", "authorized": true,
//!   "expiresAt"?}`. An unknown, used or expired state, or a provider `error`, is 400; a
//!   refused exchange is 400 `DATASOURCE_CONNECTION_ERROR` with the provider's answer under
//!   `datasourceDebug` and `isCustomAuthError: true`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_actors::connectors::registry;
use sluice_actors::ids::now_ms;
use sluice_storage::{OAuthPendingRecord, WriteSet};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use crate::connectors::credentials::{self, Auth};
use crate::connectors::oauth;
use crate::time::rfc3339;

/// How long an authorization may take, ms.
pub const PENDING_TTL_MS: u64 = 10 * 60 * 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/tenants/{tid}/credentials/{cid}/authorize",
            post(authorize),
        )
        .route("/api/v1/oauth/callback", get(callback))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AuthorizeBody {
    redirect_uri: String,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

fn fill(template: &str, params: &serde_json::Map<String, Value>) -> String {
    let mut out = template.to_owned();
    for (k, v) in params {
        if let Some(s) = v.as_str() {
            out = out.replace(&format!("{{{k}}}"), s);
        }
    }
    out
}

async fn authorize(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, cid)): Path<(String, String)>,
    JsonBody(body): JsonBody<AuthorizeBody>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant(&state, &tid)?;
    if state
        .store
        .credential(caller.space(), &tenant, &cid)?
        .is_none()
    {
        return Err(ApiError::not_found());
    }
    let opened = credentials::open(&state.vault, &state.store, caller.space(), &tenant, &cid)
        .map_err(ApiError::internal)?;
    let Auth::OAuth2(secret) = &opened.auth else {
        return Err(ApiError::bad_request(format!(
            "credential {cid:?} is not an oauth2 credential"
        )));
    };
    let client_id = secret
        .client_id
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("the credential has no clientId"))?;
    let endpoints = registry()
        .get(&opened.record.connector)
        .and_then(|d| d.auth.oauth2.as_ref())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{} has no OAuth2 authorization endpoint",
                opened.record.connector
            ))
        })?;
    let scopes = body.scopes.unwrap_or_else(|| endpoints.scopes.clone());
    let auth_url = fill(&endpoints.auth_url, &opened.params);
    let started = oauth::authorize(&auth_url, client_id, &body.redirect_uri, &scopes)
        .map_err(ApiError::bad_request)?;
    let (nonce, ciphertext) = state
        .vault
        .seal(&started.state, started.verifier.as_bytes())
        .map_err(ApiError::internal)?;
    let expires_at_ms = now_ms() + PENDING_TTL_MS;
    let mut w = WriteSet::new();
    w.put_oauth_pending(&OAuthPendingRecord {
        state: started.state.clone(),
        space_id: caller.space().to_owned(),
        tenant_id: tenant,
        credential_id: cid,
        redirect_uri: body.redirect_uri,
        nonce,
        ciphertext,
        expires_at_ms,
    })?;
    state.store.commit(w).await?;
    Ok(Json(json!({
        "authorizeUrl": started.url,
        "state": started.state,
        "expiresAt": rfc3339(expires_at_ms),
    })))
}

#[derive(Deserialize)]
struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

async fn callback(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<CallbackQuery>,
) -> Result<Response, ApiError> {
    let key = q
        .state
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("state is missing"))?;
    let pending = state
        .store
        .oauth_pending(&key)?
        .ok_or_else(|| ApiError::bad_request("unknown or already used state"))?;
    // Single use, whatever happens next.
    let mut w = WriteSet::new();
    w.delete_oauth_pending(&key);
    state.store.commit(w).await?;
    if pending.expires_at_ms < now_ms() {
        return Err(ApiError::bad_request(
            "the authorization expired; start again",
        ));
    }
    if let Some(e) = q.error {
        return Err(ApiError::bad_request(format!(
            "the provider refused the authorization: {e}{}",
            q.error_description
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        )));
    }
    let code = q
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("code is missing"))?;
    let verifier = state
        .vault
        .open_sealed(&pending.state, &pending.nonce, &pending.ciphertext)
        .map_err(ApiError::internal)?;
    let verifier = String::from_utf8(verifier).map_err(ApiError::internal)?;
    let mut opened = credentials::open(
        &state.vault,
        &state.store,
        &pending.space_id,
        &pending.tenant_id,
        &pending.credential_id,
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let Auth::OAuth2(secret) = &opened.auth else {
        return Err(ApiError::bad_request(
            "the credential is no longer an oauth2 credential",
        ));
    };
    let default_token_url = registry()
        .get(&opened.record.connector)
        .and_then(|d| d.auth.oauth2.as_ref())
        .map(|o| fill(&o.token_url, &opened.params));
    let next = match oauth::exchange_code(
        &state.oauth_http,
        secret,
        default_token_url.as_deref(),
        &pending.redirect_uri,
        &code,
        &verifier,
        now_ms() / 1000,
    )
    .await
    {
        Ok(next) => next,
        Err(error) => {
            let body = json!({
                "code": "DATASOURCE_CONNECTION_ERROR",
                "statusCode": 400,
                "isCustomAuthError": error.auth,
                "message": error.message,
                "datasourceDebug": {"name": "oauth2.token", "statusCode": error.status, "jsonObject": error.debug},
            });
            return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
        }
    };
    let expires_at = next.expires_at;
    credentials::save_tokens(
        &state.vault,
        &state.store,
        &pending.space_id,
        &mut opened,
        next,
    )
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(json!({
        "credential": pending.credential_id,
        "authorized": true,
        "expiresAt": expires_at.map(|s| rfc3339(s * 1000)),
    }))
    .into_response())
}
