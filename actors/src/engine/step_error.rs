//! A step's failure in the reference's error body shape.

use serde_json::{Value, json};

use crate::connector::ActionError;
use crate::mapping::field_map::MappingErrors;
use crate::mapping::template::TemplateError;

/// Why a step failed, serialized as the reference's error body:
/// `{"code", "statusCode", "isCustomAuthError", "step", "message", "datasourceDebug"?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct StepError {
    /// Error code (`DATASOURCE_CONNECTION_ERROR`, `TIMED_OUT`, `MAPPING_ERROR`, `INTERNAL_ERROR`).
    pub code: &'static str,
    /// HTTP-style status of the error.
    pub status_code: u16,
    /// Failing step.
    pub step: String,
    /// Human-readable description.
    pub message: String,
    /// The provider's answer: `{"name": <action>, "jsonObject": <answer>}`.
    pub datasource_debug: Option<Value>,
    /// The credential must be re-authorized (`isCustomAuthError`).
    pub is_custom_auth_error: bool,
}

impl StepError {
    /// A connector failure.
    pub fn from_action(step: &str, action: &str, e: &ActionError, timed_out: bool) -> Self {
        Self {
            code: if timed_out {
                "TIMED_OUT"
            } else {
                "DATASOURCE_CONNECTION_ERROR"
            },
            status_code: if timed_out { 408 } else { 400 },
            step: step.to_owned(),
            message: e.message.clone(),
            datasource_debug: e
                .debug
                .as_ref()
                .map(|d| json!({"name": action, "statusCode": e.status, "jsonObject": d})),
            is_custom_auth_error: e.auth,
        }
    }

    /// A template that could not be rendered.
    pub fn from_template(step: &str, e: &TemplateError) -> Self {
        Self {
            code: "MAPPING_ERROR",
            status_code: 400,
            step: step.to_owned(),
            message: e.to_string(),
            datasource_debug: None,
            is_custom_auth_error: false,
        }
    }

    /// A field mapping that could not be evaluated (every failing field in the message).
    pub fn from_mapping(step: &str, e: &MappingErrors) -> Self {
        Self {
            code: "MAPPING_ERROR",
            status_code: 400,
            step: step.to_owned(),
            message: e.to_string(),
            datasource_debug: None,
            is_custom_auth_error: false,
        }
    }

    /// An error of the engine's own making (a wait that timed out, a rejected approval, a
    /// condition that could not be evaluated).
    pub fn new(
        code: &'static str,
        status_code: u16,
        step: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code,
            status_code,
            step: step.to_owned(),
            message: message.into(),
            datasource_debug: None,
            is_custom_auth_error: false,
        }
    }

    /// The error body as JSON.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "code": self.code,
            "statusCode": self.status_code,
            "isCustomAuthError": self.is_custom_auth_error,
            "step": self.step,
            "message": self.message,
        });
        if let (Some(obj), Some(debug)) = (v.as_object_mut(), &self.datasource_debug) {
            obj.insert("datasourceDebug".into(), debug.clone());
        }
        v
    }
}
