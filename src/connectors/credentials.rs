//! Tenant credentials: the secret `auth` object, sealed at rest by the [`Vault`], and the
//! store operations around it (create, rotate, load for a call, save refreshed tokens).
//!
//! `auth` shapes (the `type` field selects one):
//! - `{"type": "apiKey", "key": "…", "in"?: "header"|"query", "name"?: "…", "prefix"?: "…"}`
//!   — placement defaults to the connector's (`Authorization: Bearer <key>` when it has none);
//! - `{"type": "basic", "username": "…", "password": "…"}`;
//! - `{"type": "custom", "headers": {"name": "value", …}}` (Cin7 Core's
//!   `api-auth-accountid` / `api-auth-applicationkey`);
//! - `{"type": "oauth2", "accessToken"?, "refreshToken"?, "expiresAt"? (Unix seconds),
//!   "tokenUrl"?, "clientId"?, "clientSecret"?, "scopes"?, "grant"?: "refresh_token" |
//!   "client_credentials"}`;
//! - `{"type": "smtp", "host": "…", "port": 587, "tls": "starttls"|"tls"|"none",
//!   "username"?, "password"?}`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sluice_storage::{CredentialRecord, Store, WriteSet};

use super::vault::Vault;

/// The secret part of a credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum Auth {
    /// An API key.
    #[serde(rename_all = "camelCase")]
    ApiKey {
        /// The key.
        key: String,
        /// `header` or `query`; the connector's placement when absent.
        #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
        location: Option<String>,
        /// Header or parameter name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Text before the key in a header.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
    /// HTTP Basic.
    Basic {
        /// User name.
        username: String,
        /// Password or API key.
        password: String,
    },
    /// Fixed headers.
    Custom {
        /// Header names and values.
        headers: Map<String, Value>,
    },
    /// OAuth2 tokens and what is needed to refresh them.
    #[serde(rename = "oauth2", rename_all = "camelCase")]
    OAuth2(OAuth2Secret),
    /// An SMTP server.
    Smtp {
        /// Host name or address.
        host: String,
        /// Port (587 for STARTTLS, 465 for TLS, 25 plain).
        port: u16,
        /// `starttls` (default), `tls` or `none`.
        #[serde(default)]
        tls: Option<String>,
        /// SMTP AUTH user.
        #[serde(default)]
        username: Option<String>,
        /// SMTP AUTH password.
        #[serde(default)]
        password: Option<String>,
    },
}

/// OAuth2 material.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuth2Secret {
    /// Current access token.
    #[serde(default)]
    pub access_token: Option<String>,
    /// Refresh token.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Access token expiry, Unix seconds.
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// Token endpoint (overrides the connector's).
    #[serde(default)]
    pub token_url: Option<String>,
    /// Client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Client secret.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Scopes for the client-credentials grant.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `refresh_token` (default) or `client_credentials`.
    #[serde(default)]
    pub grant: Option<String>,
}

impl Auth {
    /// The type as spelled in the API.
    pub fn kind(&self) -> &'static str {
        match self {
            Auth::ApiKey { .. } => "apiKey",
            Auth::Basic { .. } => "basic",
            Auth::Custom { .. } => "custom",
            Auth::OAuth2(_) => "oauth2",
            Auth::Smtp { .. } => "smtp",
        }
    }
}

/// A credential opened for a call.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The stored record (without secrets in clear).
    pub record: CredentialRecord,
    /// Its secret part.
    pub auth: Auth,
    /// Its non-secret parameters.
    pub params: Map<String, Value>,
}

/// Seals `auth` into `record` (new nonce each time).
///
/// # Errors
/// Serialization or sealing failures.
pub fn seal_into(vault: &Vault, record: &mut CredentialRecord, auth: &Auth) -> anyhow::Result<()> {
    let plain = serde_json::to_vec(auth)?;
    let (nonce, ct) = vault.seal(&record.id, &plain)?;
    record.nonce = nonce;
    record.ciphertext = ct;
    Ok(())
}

/// Loads and opens credential `id` of a tenant.
///
/// # Errors
/// Unknown credential, storage failure, or a seal that does not open.
pub fn open(
    vault: &Vault,
    store: &Store,
    space: &str,
    tenant: &str,
    id: &str,
) -> anyhow::Result<Opened> {
    let record = store
        .credential(space, tenant, id)?
        .ok_or_else(|| anyhow::anyhow!("credential {id:?} does not exist in this tenant"))?;
    let plain = vault.open_sealed(&record.id, &record.nonce, &record.ciphertext)?;
    let auth: Auth = serde_json::from_slice(&plain)?;
    let params = serde_json::from_str::<Value>(&record.params_json)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    Ok(Opened {
        record,
        auth,
        params,
    })
}

/// Stores refreshed OAuth2 tokens for `opened` (version bumped).
///
/// # Errors
/// Sealing or storage failures.
pub async fn save_tokens(
    vault: &Vault,
    store: &Store,
    space: &str,
    opened: &mut Opened,
    secret: OAuth2Secret,
) -> anyhow::Result<()> {
    let auth = Auth::OAuth2(secret);
    seal_into(vault, &mut opened.record, &auth)?;
    opened.record.version += 1;
    opened.record.updated_at_ms = sluice_actors::ids::now_ms();
    let mut w = WriteSet::new();
    w.put_credential(space, &opened.record)?;
    store.commit(w).await?;
    opened.auth = auth;
    Ok(())
}
