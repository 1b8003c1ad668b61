//! A Rust builder for flows, for people who define them in code. It produces the same
//! [`FlowSpec`] (and so the same JSON) as a hand-written document:
//!
//! ```
//! use serde_json::json;
//! use sluice_actors::flow::builder::{step, workflow};
//!
//! let flow = workflow("order_to_invoice")
//!     .on_event("shopify", "order.created")
//!     .step(
//!         step("to_invoice")
//!             .action("http", "request")
//!             .input(json!({"method": "POST", "url": "https://example.com/invoices",
//!                           "body": {"email": "{{trigger.customer.email}}"}}))
//!             .retry(5, "exponential", 200)
//!             .on_error_continue(),
//!     )
//!     .step(step("pause").wait_ms(5_000))
//!     .build()
//!     .expect("valid flow");
//! assert_eq!(flow.spec.steps.len(), 2);
//! assert_eq!(serde_json::to_value(&flow.spec).unwrap()["steps"][1]["durationMs"], 5000);
//! ```

use serde_json::{Value, json};

use super::spec::{FlowSpec, StepSpec};
use super::validate::{FlowError, Plan, plan};

/// Starts a flow named `name` (letters, digits, underscores).
pub fn workflow(name: &str) -> WorkflowBuilder {
    WorkflowBuilder {
        doc: json!({"name": name, "steps": []}),
    }
}

/// Starts a step named `name`; choose its type with one of the typed methods.
pub fn step(name: &str) -> StepBuilder {
    StepBuilder {
        doc: json!({"name": name, "type": "action"}),
    }
}

/// Builds a [`FlowSpec`] field by field.
#[derive(Debug, Clone)]
pub struct WorkflowBuilder {
    doc: Value,
}

/// Builds one [`StepSpec`].
#[derive(Debug, Clone)]
pub struct StepBuilder {
    doc: Value,
}

fn set(doc: &mut Value, key: &str, value: Value) {
    if let Value::Object(obj) = doc {
        obj.insert(key.to_owned(), value);
    }
}

impl WorkflowBuilder {
    /// Triggered by app events `source`/`event`.
    pub fn on_event(mut self, source: &str, event: &str) -> Self {
        set(
            &mut self.doc,
            "trigger",
            json!({"type": "event", "source": source, "event": event}),
        );
        self
    }

    /// Triggered by app events with a CEL `condition` over `trigger`.
    pub fn on_event_if(mut self, source: &str, event: &str, condition: &str) -> Self {
        set(
            &mut self.doc,
            "trigger",
            json!({"type": "event", "source": source, "event": event, "condition": condition}),
        );
        self
    }

    /// Triggered by every delivery to webhook endpoint `webhook_id`.
    pub fn on_webhook(mut self, webhook_id: &str) -> Self {
        set(
            &mut self.doc,
            "trigger",
            json!({"type": "webhook", "webhookId": webhook_id}),
        );
        self
    }

    /// Triggered on a cron `schedule` in IANA time zone `timezone`.
    pub fn on_cron(mut self, schedule: &str, timezone: &str) -> Self {
        set(
            &mut self.doc,
            "trigger",
            json!({"type": "cron", "schedule": schedule, "timezone": timezone}),
        );
        self
    }

    /// Triggered by `POST /api/v1/{flow_name}`; `input` is checked against `request_schema`.
    pub fn manual(mut self, request_schema: Value) -> Self {
        set(
            &mut self.doc,
            "trigger",
            json!({"type": "manual", "requestSchema": request_schema}),
        );
        self
    }

    /// The execute API's success answer: `status` and a body of templates.
    pub fn response(mut self, status: u16, body: Value) -> Self {
        set(
            &mut self.doc,
            "response",
            json!({"status": status, "body": body}),
        );
        self
    }

    /// Longest execution, ms.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        set(&mut self.doc, "timeoutMs", json!(ms));
        self
    }

    /// Most executions of the flow running at once.
    pub fn concurrency(mut self, n: u32) -> Self {
        set(&mut self.doc, "concurrency", json!(n));
        self
    }

    /// Appends a step.
    pub fn step(mut self, step: StepBuilder) -> Self {
        if let Some(Value::Array(steps)) = self.doc.get_mut("steps") {
            steps.push(step.doc);
        }
        self
    }

    /// The flow as a JSON document (what the API accepts).
    pub fn to_json(&self) -> Value {
        self.doc.clone()
    }

    /// Validates the flow as a save would.
    ///
    /// # Errors
    /// The [`FlowError`] a save would answer with (400 `INVALID_FLOW`).
    pub fn build(self) -> Result<Plan, FlowError> {
        let spec: FlowSpec = serde_json::from_value(self.doc).map_err(|e| FlowError {
            step: None,
            message: format!("invalid flow document: {e}"),
        })?;
        plan(spec)
    }
}

impl StepBuilder {
    /// A connector action (`http`, `request`).
    pub fn action(mut self, connector: &str, action: &str) -> Self {
        set(&mut self.doc, "type", json!("action"));
        set(&mut self.doc, "connector", json!(connector));
        set(&mut self.doc, "action", json!(action));
        self
    }

    /// The action's parameters (templates).
    pub fn input(mut self, input: Value) -> Self {
        set(&mut self.doc, "input", input);
        self
    }

    /// A field mapping (`{"target.path": "template"}`); without a connector the step is a
    /// data-mapping step.
    pub fn mapping(mut self, mapping: Value) -> Self {
        set(&mut self.doc, "mapping", mapping);
        self
    }

    /// A `wait` for `ms` milliseconds.
    pub fn wait_ms(mut self, ms: u64) -> Self {
        set(&mut self.doc, "type", json!("wait"));
        set(&mut self.doc, "durationMs", json!(ms));
        self
    }

    /// A `wait` until a CEL condition holds, checked every `check_every_ms`.
    pub fn wait_until(mut self, condition: &str, check_every_ms: u64) -> Self {
        set(&mut self.doc, "type", json!("wait"));
        set(&mut self.doc, "until", json!(condition));
        set(&mut self.doc, "checkEveryMs", json!(check_every_ms));
        self
    }

    /// A `wait` for an event; `condition` (CEL) sees `event`.
    pub fn wait_event(mut self, source: &str, event: &str, condition: Option<&str>) -> Self {
        set(&mut self.doc, "type", json!("wait"));
        let mut ev = json!({"source": source, "event": event});
        if let Some(c) = condition {
            set(&mut ev, "condition", json!(c));
        }
        set(&mut self.doc, "event", ev);
        self
    }

    /// An `approval`.
    pub fn approval(mut self) -> Self {
        set(&mut self.doc, "type", json!("approval"));
        self
    }

    /// An in-app `notification` with a message template.
    pub fn notify(mut self, message: &str) -> Self {
        set(&mut self.doc, "type", json!("notification"));
        set(&mut self.doc, "channel", json!("in_app"));
        set(&mut self.doc, "message", json!(message));
        self
    }

    /// A `gate` with ordered `(condition, steps)` cases and a default branch.
    pub fn gate(mut self, cases: &[(&str, &[&str])], default: &[&str]) -> Self {
        set(&mut self.doc, "type", json!("gate"));
        let cases: Vec<Value> = cases
            .iter()
            .map(|(when, steps)| json!({"when": when, "steps": steps}))
            .collect();
        set(&mut self.doc, "cases", Value::Array(cases));
        set(&mut self.doc, "default", json!(default));
        self
    }

    /// A `loop` over the array `over` (a template) running `steps` per item, `concurrency`
    /// at a time.
    pub fn loop_over(mut self, over: &str, concurrency: u32, steps: Vec<StepBuilder>) -> Self {
        set(&mut self.doc, "type", json!("loop"));
        set(&mut self.doc, "over", json!(over));
        set(&mut self.doc, "concurrency", json!(concurrency));
        let nested: Vec<Value> = steps.into_iter().map(|s| s.doc).collect();
        set(&mut self.doc, "steps", Value::Array(nested));
        self
    }

    /// Dependencies (default: the step before).
    pub fn depends_on(mut self, names: &[&str]) -> Self {
        set(&mut self.doc, "dependsOn", json!(names));
        self
    }

    /// Retry policy: attempts, `fixed` or `exponential`, first delay in ms.
    pub fn retry(mut self, max_attempts: u32, backoff: &str, initial_delay_ms: u64) -> Self {
        set(
            &mut self.doc,
            "retry",
            json!({"maxAttempts": max_attempts, "backoff": backoff, "initialDelayMs": initial_delay_ms}),
        );
        self
    }

    /// `onError: continue`.
    pub fn on_error_continue(mut self) -> Self {
        set(&mut self.doc, "onError", json!("continue"));
        self
    }

    /// Per-attempt limit (actions) or longest wait (waits, approvals), ms.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        set(&mut self.doc, "timeoutMs", json!(ms));
        self
    }

    /// The step as a [`StepSpec`].
    ///
    /// # Errors
    /// When the document does not deserialize (an unknown field).
    pub fn to_spec(&self) -> Result<StepSpec, serde_json::Error> {
        serde_json::from_value(self.doc.clone())
    }
}
