//! The boundary between the engine and the outside world: the engine asks an
//! [`ActionInvoker`] to perform a connector action; the binary supplies the implementation
//! (HTTP client, SMTP), tests supply fakes. Arrows point down: this crate defines the trait,
//! `src/` implements it.

use std::time::Duration;

use serde_json::Value;

/// One call of a connector action.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionCall {
    /// Connector name (`http`).
    pub connector: String,
    /// Action name (`request`).
    pub action: String,
    /// Rendered parameters. For `http.request`: `{"method", "url", "headers"?, "body"?}`; for
    /// definition-driven actions see `connectors::request`.
    pub input: Value,
    /// Stable per (execution, step): sent as the `Idempotency-Key` header so providers that
    /// honour it never apply a retried call twice.
    pub idempotency_key: String,
    /// Per-attempt time limit.
    pub timeout: Duration,
    /// Space of the tenant the call is made for.
    pub space: String,
    /// Tenant the call is made for (credentials are looked up in it).
    pub tenant: String,
    /// The tenant's credential id named by the step (`"credential"`), if any.
    pub credential: Option<String>,
    /// Lineage of the execution making the call, its correlation id filled in (see
    /// [`hops`](crate::pipeline::hops)); the default for calls outside executions (polls,
    /// syncs). HTTP invokers send one hop more in the `CDN-Loop` header.
    pub lineage: crate::pipeline::hops::Lineage,
    /// Id of the execution making the call (in `space`/`tenant`); `None` for calls outside
    /// executions. Lets this server recognise a call one of its own executions makes to its
    /// execute API.
    pub execution_id: Option<String>,
}

/// A failed action. `debug` is the provider's answer, reported under `datasourceDebug`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ActionError {
    /// What went wrong, for people.
    pub message: String,
    /// Worth retrying (timeouts, connection errors, 429, 5xx).
    pub retryable: bool,
    /// The provider's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
    /// HTTP status of the provider's answer, if there was one.
    pub status: Option<u16>,
    /// The provider's answer body (JSON when it was JSON, else a string).
    pub debug: Option<Value>,
    /// The credential no longer works (a refused OAuth2 refresh, a 401): the tenant must
    /// re-authenticate. Reported as `isCustomAuthError: true`.
    pub auth: bool,
}

impl ActionError {
    /// A failure without a provider answer.
    pub fn new(message: impl Into<String>, retryable: bool) -> Self {
        Self {
            message: message.into(),
            retryable,
            retry_after: None,
            status: None,
            debug: None,
            auth: false,
        }
    }
}

/// Performs connector actions.
#[async_trait::async_trait]
pub trait ActionInvoker: Send + Sync + 'static {
    /// Runs one attempt of `call`; the engine owns retries.
    ///
    /// # Errors
    /// [`ActionError`] describing the failure and whether a retry may help.
    async fn invoke(&self, call: ActionCall) -> Result<Value, ActionError>;
}
