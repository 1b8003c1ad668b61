//! Authentication and tenancy for `/api/v1` (all but webhook receipt).
//!
//! - `x-fastn-api-key`: required; looked up by its SHA-256 (keys are never stored). Missing or
//!   unknown → 401 `UNAUTHORIZED`.
//! - `x-fastn-space-id`: required; must be the key's space. Missing → 401; another space →
//!   403 `FORBIDDEN`.
//! - `x-fastn-space-tenantid`: selects the tenant for routes without one in the path; empty
//!   means `default`. On `/tenants/{tid}/…` routes, a non-empty header that names another
//!   tenant than the path is 403.
//! - A key limited to one tenant gets 403 for any other; a tenant that does not exist is 404.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sluice_storage::ApiKeyRecord;

use super::AppState;
use super::error::ApiError;
use crate::bootstrap::sha256;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's metadata.
    pub key: ApiKeyRecord,
    /// The `x-fastn-space-tenantid` header, if non-empty.
    pub tenant_header: Option<String>,
}

impl Caller {
    /// The space the caller acts in.
    pub fn space(&self) -> &str {
        &self.key.space_id
    }

    /// Checks that the caller may act for tenant `tid` and that it exists.
    ///
    /// # Errors
    /// 403 for a tenant outside the key's scope or contradicting the header; 404 for an
    /// unknown tenant.
    pub fn tenant(&self, state: &AppState, tid: &str) -> Result<String, ApiError> {
        if let Some(h) = &self.tenant_header
            && h != tid
        {
            return Err(ApiError::forbidden(format!(
                "x-fastn-space-tenantid {h:?} does not match tenant {tid:?} in the path"
            )));
        }
        if let Some(only) = &self.key.tenant_id
            && only != tid
        {
            return Err(ApiError::forbidden(
                "this API key is not valid for that tenant",
            ));
        }
        match state.store.tenant(self.space(), tid)? {
            Some(_) => Ok(tid.to_owned()),
            None => Err(ApiError::not_found()),
        }
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = header(parts, "x-fastn-api-key")
            .ok_or_else(|| ApiError::unauthorized("missing x-fastn-api-key header"))?;
        let record = state
            .store
            .api_key(&sha256(key))?
            .ok_or_else(|| ApiError::unauthorized("invalid API key"))?;
        let space = header(parts, "x-fastn-space-id")
            .ok_or_else(|| ApiError::unauthorized("missing x-fastn-space-id header"))?;
        if space != record.space_id {
            return Err(ApiError::forbidden(
                "this API key is not valid for that space",
            ));
        }
        Ok(Caller {
            key: record,
            tenant_header: header(parts, "x-fastn-space-tenantid").map(str::to_owned),
        })
    }
}
