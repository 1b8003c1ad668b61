//! `notification` steps. The in-app channel records the rendered message as the step's
//! output (`{"channel": "in_app", "message", "at"}`), which the execution trace shows; other
//! channels are refused at save until their connectors exist.

use serde_json::{Value, json};
use sluice_storage::StepRecord;

use crate::engine::StepError;
use crate::engine::context::{completed, failed};
use crate::flow::StepSpec;
use crate::ids::now_ms;
use crate::mapping::template::render_value;

/// Renders the message and records it.
pub fn run(index: u32, step: &StepSpec, ctx: &Value) -> StepRecord {
    let started = now_ms();
    let template = Value::String(step.message.clone().unwrap_or_default());
    match render_value(&template, ctx) {
        Ok(message) => {
            let message = match message {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let channel = step.channel.clone().unwrap_or_else(|| "in_app".into());
            let output = json!({"channel": channel, "message": message, "at": started});
            completed(index, &step.name, started, &Value::Null, &output)
        }
        Err(e) => failed(
            index,
            &step.name,
            started,
            &Value::Null,
            &StepError::from_template(&step.name, &e),
        ),
    }
}
