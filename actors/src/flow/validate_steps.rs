//! Save-time checks of the step types beyond `action` (`wait`, `approval`, `notification`,
//! `gate`, `loop`), of cron and manual triggers, and of flow-level options. Errors name the
//! step.

use std::collections::HashMap;

use super::spec::{FlowSpec, StepSpec, Trigger};
use super::validate::{FlowError, err};

/// Longest `wait` or `approval`, and longest execution, ms (30 days).
pub const MAX_WAIT_MS: u64 = 30 * 86_400_000;
/// Shortest `checkEveryMs` of a `wait … until`, ms.
pub const MIN_CHECK_EVERY_MS: u64 = 10;
/// Highest `concurrency` of a loop.
pub const MAX_LOOP_CONCURRENCY: u32 = 64;
/// Notification channels available: in-app records. Email, Slack and webhook channels go
/// through their connectors and are refused until those exist.
pub const NOTIFICATION_CHANNELS: &[&str] = &["in_app"];

const KIND_FIELDS: &[(&str, &[&str])] = &[
    ("action", &[]),
    ("wait", &["durationMs", "until", "checkEveryMs", "event"]),
    ("approval", &["message"]),
    ("notification", &["channel", "message"]),
    ("gate", &["cases", "default"]),
    ("loop", &["over", "concurrency", "steps"]),
];

fn present(step: &StepSpec) -> Vec<&'static str> {
    let mut out = Vec::new();
    let pairs: [(&'static str, bool); 10] = [
        ("durationMs", step.duration_ms.is_some()),
        ("until", step.until.is_some()),
        ("checkEveryMs", step.check_every_ms.is_some()),
        ("event", step.event.is_some()),
        ("cases", step.cases.is_some()),
        ("default", step.default.is_some()),
        ("over", step.over.is_some()),
        ("concurrency", step.concurrency.is_some()),
        ("steps", step.steps.is_some()),
        ("channel", step.channel.is_some()),
    ];
    for (name, is) in pairs {
        if is {
            out.push(name);
        }
    }
    if step.message.is_some() {
        out.push("message");
    }
    out
}

/// Refuses unknown step types and fields that belong to another type (a `durationMs` on an
/// action would otherwise be silently ignored).
pub(super) fn check_fields_of_kind(step: &StepSpec) -> Result<(), FlowError> {
    let Some((_, allowed)) = KIND_FIELDS.iter().find(|(k, _)| *k == step.kind) else {
        return Err(err(
            Some(&step.name),
            format!(
                "step {:?} has type {:?}, which is not supported (supported: action, wait, approval, notification, gate, loop)",
                step.name, step.kind
            ),
        ));
    };
    for field in present(step) {
        if !allowed.contains(&field) {
            return Err(err(
                Some(&step.name),
                format!(
                    "step {:?}: {field:?} does not apply to a {} step",
                    step.name, step.kind
                ),
            ));
        }
    }
    if step.kind != "action"
        && (step.connector.is_some()
            || step.action.is_some()
            || step.input.is_some()
            || step.mapping.is_some())
    {
        return Err(err(
            Some(&step.name),
            format!(
                "step {:?}: connector, action, input and mapping apply to action steps only",
                step.name
            ),
        ));
    }
    if step.kind != "action" && step.retry.is_some() {
        return Err(err(
            Some(&step.name),
            format!("step {:?}: retry applies to action steps only", step.name),
        ));
    }
    Ok(())
}

/// Checks a step of a type other than `action`.
pub(super) fn check_step_kind(step: &StepSpec) -> Result<(), FlowError> {
    let bad = |what: String| {
        Err(err(
            Some(&step.name),
            format!("step {:?}: {what}", step.name),
        ))
    };
    if let Some(t) = step.timeout_ms
        && !(1..=MAX_WAIT_MS).contains(&t)
    {
        return bad(format!("timeoutMs must be 1 to {MAX_WAIT_MS}"));
    }
    if step.timeout_ms.is_some() && matches!(step.kind.as_str(), "notification" | "gate" | "loop") {
        return bad(format!("timeoutMs does not apply to a {} step", step.kind));
    }
    match step.kind.as_str() {
        "wait" => {
            let forms = [
                step.duration_ms.is_some(),
                step.until.is_some(),
                step.event.is_some(),
            ];
            if forms.iter().filter(|f| **f).count() != 1 {
                return bad("a wait needs exactly one of durationMs, until, event".into());
            }
            if let Some(d) = step.duration_ms
                && d > MAX_WAIT_MS
            {
                return bad(format!("durationMs must be at most {MAX_WAIT_MS}"));
            }
            if let Some(c) = &step.until {
                super::condition::check_references(c, super::condition::UNTIL_ROOTS).map_err(
                    |e| {
                        err(
                            Some(&step.name),
                            format!("step {:?}: until: {e}", step.name),
                        )
                    },
                )?;
            }
            if let Some(every) = step.check_every_ms {
                if step.until.is_none() {
                    return bad("checkEveryMs needs until".into());
                }
                if !(MIN_CHECK_EVERY_MS..=MAX_WAIT_MS).contains(&every) {
                    return bad(format!(
                        "checkEveryMs must be {MIN_CHECK_EVERY_MS} to {MAX_WAIT_MS}"
                    ));
                }
            }
            if let Some(ev) = &step.event {
                if ev.source.is_empty() || ev.event.is_empty() {
                    return bad("event needs a source and an event".into());
                }
                if let Some(c) = &ev.condition {
                    super::condition::check_references(c, super::condition::EVENT_ROOTS).map_err(
                        |e| {
                            err(
                                Some(&step.name),
                                format!("step {:?}: event condition: {e}", step.name),
                            )
                        },
                    )?;
                }
            }
            Ok(())
        }
        "approval" => Ok(()),
        "notification" => {
            let channel = step.channel.as_deref().unwrap_or("in_app");
            if !NOTIFICATION_CHANNELS.contains(&channel) {
                return bad(format!(
                    "notification channel {channel:?} is not available yet (available: in_app; email, slack and webhook need their connectors)"
                ));
            }
            if step.message.as_deref().is_none_or(str::is_empty) {
                return bad("a notification needs a message".into());
            }
            Ok(())
        }
        "gate" => {
            let cases = step.cases.as_deref().unwrap_or_default();
            if cases.is_empty() && step.default.is_none() {
                return bad("a gate needs cases or a default".into());
            }
            for case in cases {
                super::condition::check_references(&case.when, super::condition::GATE_ROOTS)
                    .map_err(|e| {
                        err(Some(&step.name), format!("step {:?}: case: {e}", step.name))
                    })?;
            }
            Ok(())
        }
        "loop" => {
            let Some(over) = &step.over else {
                return bad("a loop needs over (a template giving an array)".into());
            };
            if !over.contains("{{") {
                return bad("over must be a template such as {{trigger.items}}".into());
            }
            if step.steps.as_ref().is_none_or(Vec::is_empty) {
                return bad("a loop needs nested steps".into());
            }
            if let Some(c) = step.concurrency
                && !(1..=MAX_LOOP_CONCURRENCY).contains(&c)
            {
                return bad(format!("concurrency must be 1 to {MAX_LOOP_CONCURRENCY}"));
            }
            Ok(())
        }
        other => bad(format!("type {other:?} is not supported")),
    }
}

/// The nested steps of a loop run once per item, inside the loop's step: they may be actions
/// or notifications, not steps that pause, branch or loop.
pub(super) fn check_nested(loop_step: &StepSpec, nested: &[StepSpec]) -> Result<(), FlowError> {
    for s in nested {
        if !matches!(s.kind.as_str(), "action" | "notification") {
            return Err(err(
                Some(&loop_step.name),
                format!(
                    "loop {:?}: nested step {:?} is a {}; loops may nest action and notification steps",
                    loop_step.name, s.name, s.kind
                ),
            ));
        }
    }
    Ok(())
}

/// Maps each step listed in a gate's branch to `(gate, branch)`. A listed step must exist,
/// depend on the gate directly, and be listed once.
pub(super) fn gate_branches(
    steps: &[StepSpec],
    deps: &[Vec<usize>],
) -> Result<Vec<Option<(usize, usize)>>, FlowError> {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut out = vec![None; steps.len()];
    for (g, gate) in steps.iter().enumerate().filter(|(_, s)| s.kind == "gate") {
        let cases = gate.cases.as_deref().unwrap_or_default();
        let mut branches: Vec<&[String]> = cases.iter().map(|c| c.steps.as_slice()).collect();
        branches.push(gate.default.as_deref().unwrap_or_default());
        for (b, names) in branches.into_iter().enumerate() {
            for name in names {
                let Some(&j) = index.get(name.as_str()) else {
                    return Err(err(
                        Some(&gate.name),
                        format!("gate {:?} lists unknown step {name:?}", gate.name),
                    ));
                };
                if !deps[j].contains(&g) {
                    return Err(err(
                        Some(name),
                        format!(
                            "step {name:?} is on a branch of gate {:?} and must depend on it (dependsOn)",
                            gate.name
                        ),
                    ));
                }
                if out[j].is_some() {
                    return Err(err(
                        Some(name),
                        format!("step {name:?} is listed on more than one gate branch"),
                    ));
                }
                out[j] = Some((g, b));
            }
        }
    }
    Ok(out)
}

/// Flow-level options: `timeoutMs`, `concurrency`, `response`.
pub(super) fn check_flow_options(spec: &FlowSpec) -> Result<(), FlowError> {
    if let Some(t) = spec.timeout_ms
        && !(1..=MAX_WAIT_MS).contains(&t)
    {
        return Err(err(None, format!("timeoutMs must be 1 to {MAX_WAIT_MS}")));
    }
    if let Some(c) = spec.concurrency
        && !(1..=100_000).contains(&c)
    {
        return Err(err(None, "concurrency must be 1 to 100000".into()));
    }
    if let Some(r) = &spec.response {
        if !(200..=299).contains(&r.status) {
            return Err(err(None, "response.status must be 200 to 299".into()));
        }
        if !matches!(spec.trigger, Trigger::Manual { .. }) {
            return Err(err(
                None,
                "response applies to flows with a manual trigger only".into(),
            ));
        }
    }
    Ok(())
}

/// Cron (expression, time zone, catch-up and overlap policies) and manual (request schema)
/// triggers.
pub(super) fn check_trigger_options(trigger: &Trigger) -> Result<(), FlowError> {
    match trigger {
        Trigger::Cron {
            schedule,
            timezone,
            catch_up,
            catch_up_window_ms,
            overlap,
        } => {
            crate::schedule::Schedule::parse(schedule, timezone.as_deref())
                .map_err(|e| err(None, e))?;
            crate::schedule::CatchUp::parse(catch_up.as_deref(), *catch_up_window_ms)
                .map_err(|e| err(None, e))?;
            if let Some(w) = catch_up_window_ms
                && !(1..=MAX_WAIT_MS).contains(w)
            {
                return Err(err(
                    None,
                    format!("catchUpWindowMs must be 1 to {MAX_WAIT_MS}"),
                ));
            }
            match overlap.as_deref() {
                None | Some("allow" | "skip") => Ok(()),
                Some(other) => Err(err(
                    None,
                    format!("overlap {other:?} must be allow or skip"),
                )),
            }
        }
        Trigger::Manual { request_schema } => {
            if let Some(schema) = request_schema {
                jsonschema::validator_for(schema).map_err(|e| {
                    err(
                        None,
                        format!("requestSchema is not a valid JSON Schema: {e}"),
                    )
                })?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
