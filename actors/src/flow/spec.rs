//! The flow document (DESIGN.md, Flows): JSON with camelCase fields.
//!
//! ```json
//! {"name": "order_to_sink",
//!  "trigger": {"type": "event", "source": "shopify", "event": "order.created"},
//!  "steps": [{"name": "post", "type": "action", "connector": "http", "action": "request",
//!             "input": {"method": "POST", "url": "http://127.0.0.1:9/in",
//!                       "body": {"email": "{{trigger.customer.email}}"}},
//!             "retry": {"maxAttempts": 3, "backoff": "exponential", "initialDelayMs": 200},
//!             "onError": "halt"}]}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A whole flow definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowSpec {
    /// Flow name: letters, digits and underscores (the `{flow_name}` of the execute API).
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What starts an execution.
    pub trigger: Trigger,
    /// The steps, in document order.
    pub steps: Vec<StepSpec>,
}

/// What starts an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Trigger {
    /// An app event: a normalized event whose source and name match.
    Event {
        /// Source connector, e.g. `shopify`.
        source: String,
        /// Event name, e.g. `order.created`; `*` matches every event of the source.
        event: String,
        /// A condition over the event (CEL); not supported yet, refused at save.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        condition: Option<String>,
    },
    /// Every verified delivery to one webhook endpoint.
    Webhook {
        /// The webhook registration's id.
        #[serde(rename = "webhookId")]
        webhook_id: String,
    },
    /// A schedule (not supported yet, refused at save).
    Cron {
        /// Cron expression.
        schedule: String,
        /// IANA time zone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
    },
    /// The execute API (not supported yet, refused at save).
    Manual {
        /// JSON Schema of `input`.
        #[serde(
            default,
            rename = "requestSchema",
            skip_serializing_if = "Option::is_none"
        )]
        request_schema: Option<Value>,
    },
}

impl Trigger {
    /// The trigger kind as spelled in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Event { .. } => "event",
            Trigger::Webhook { .. } => "webhook",
            Trigger::Cron { .. } => "cron",
            Trigger::Manual { .. } => "manual",
        }
    }
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepSpec {
    /// Unique within the flow; referenced as `{{steps.NAME.output}}`.
    pub name: String,
    /// Step type: `action` today (`wait`, `approval`, `notification`, `gate`, `loop` are refused
    /// at save until the engine supports them).
    #[serde(rename = "type")]
    pub kind: String,
    /// Connector to call; absent for a data-mapping step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// The connector's action, e.g. `request` for `http`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The action's parameters; strings are templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Field mapping `"target.path": "template"`: the body of a connector call, or the whole
    /// output of a step without a connector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<Map<String, Value>>,
    /// Names of steps that must finish first; absent means "the step before".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
    /// Retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// What a failure does to the execution.
    #[serde(default)]
    pub on_error: OnError,
    /// Per-attempt time limit in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Id of the tenant's credential for the connector (`POST …/credentials`); checked at
    /// save: it must exist and be for this step's connector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// Upsert through the ID map: the source record this step's target record stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_map: Option<IdMapSpec>,
}

/// `"idMap": {"system": "shopify", "entity": "order", "id": "{{trigger.id}}"}`: the engine
/// links that source record to the id the step's create action returns; when a link exists,
/// it calls the entity's update action with `input.id` = the linked id instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdMapSpec {
    /// Source system (`shopify`).
    pub system: String,
    /// Source entity (`order`).
    pub entity: String,
    /// Template of the source record's id.
    pub id: String,
}

/// A step's retry policy. Only errors the connector marks retryable (timeouts, 429, 5xx) are
/// retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetrySpec {
    /// Total attempts including the first (1 = no retry).
    pub max_attempts: u32,
    /// `fixed` or `exponential`.
    #[serde(default)]
    pub backoff: Backoff,
    /// Delay before the second attempt, ms.
    #[serde(default = "default_initial_delay")]
    pub initial_delay_ms: u64,
    /// Upper bound of any delay, ms.
    #[serde(default = "default_max_delay")]
    pub max_delay_ms: u64,
}

fn default_initial_delay() -> u64 {
    200
}
fn default_max_delay() -> u64 {
    30_000
}

/// Delay growth between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    /// The same delay every time.
    Fixed,
    /// Doubling from `initialDelayMs`.
    #[default]
    Exponential,
}

impl RetrySpec {
    /// Delay before attempt `attempt` (2 = first retry), capped at `max_delay_ms`.
    pub fn delay_ms(&self, attempt: u32) -> u64 {
        let exp = attempt.saturating_sub(2).min(30);
        let d = match self.backoff {
            Backoff::Fixed => self.initial_delay_ms,
            Backoff::Exponential => self.initial_delay_ms.saturating_mul(1u64 << exp),
        };
        d.min(self.max_delay_ms)
    }
}

/// A step's error strategy (the reference's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop the whole flow (default).
    #[default]
    Halt,
    /// Record the error and go on.
    Continue,
}
