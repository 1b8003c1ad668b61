//! Checks a flow when it is saved, so that what runs later cannot fail for reasons visible
//! now: names, dependencies (unknown, cycles), templates (syntax, functions, references to
//! steps that cannot have run yet) and what the engine supports today. Errors name the step.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::condition;
use super::spec::{FlowSpec, StepSpec, Trigger};
use crate::mapping::field_map::FieldMap;
use crate::mapping::template::referenced_steps;

/// Why a flow was refused. `Display` names the step and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FlowError {
    /// The offending step, if the problem is in one.
    pub step: Option<String>,
    /// Human-readable reason.
    pub message: String,
}

pub(super) fn err(step: Option<&str>, message: String) -> FlowError {
    FlowError {
        step: step.map(str::to_owned),
        message,
    }
}

/// Whether the engine can run `connector.action`: every action of the built-in connector
/// registry (`connectors::registry`).
pub fn is_supported_action(connector: &str, action: &str) -> bool {
    crate::connectors::registry()
        .action(connector, action)
        .is_some()
}

/// A validated flow: the spec plus each step's dependencies and a topological order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The flow.
    pub spec: FlowSpec,
    /// Indices of each step's dependencies.
    pub deps: Vec<Vec<usize>>,
    /// Step indices in an order where every step comes after its dependencies (ties keep
    /// document order).
    pub order: Vec<usize>,
    /// For each step listed in a gate's branch: `(gate index, branch)`, where branch is the
    /// case index, or the number of cases for the `default` branch.
    pub branch_of: Vec<Option<(usize, usize)>>,
    /// The nested plan of each `loop` step, by step index.
    pub loops: HashMap<usize, NestedPlan>,
}

/// The nested steps of a `loop`, validated: they run in `order` for each item.
#[derive(Debug, Clone, PartialEq)]
pub struct NestedPlan {
    /// The nested steps.
    pub steps: Vec<StepSpec>,
    /// Indices of each nested step's dependencies.
    pub deps: Vec<Vec<usize>>,
    /// A topological order of the nested steps.
    pub order: Vec<usize>,
}

/// Validates `spec` and computes its [`Plan`].
///
/// # Errors
/// A [`FlowError`] naming the first problem found.
pub fn plan(spec: FlowSpec) -> Result<Plan, FlowError> {
    if !is_flow_name(&spec.name) {
        return Err(err(
            None,
            format!(
                "flow name {:?} must be 1-64 letters, digits or underscores",
                spec.name
            ),
        ));
    }
    check_trigger(&spec.trigger)?;
    super::validate_steps::check_flow_options(&spec)?;
    let (deps, order, ancestors) = plan_steps(&spec.steps, &HashSet::new())?;
    let branch_of = super::validate_steps::gate_branches(&spec.steps, &deps)?;
    let mut loops = HashMap::new();
    for (i, step) in spec.steps.iter().enumerate() {
        if step.kind != "loop" {
            continue;
        }
        let nested = step.steps.clone().unwrap_or_default();
        // Nested steps may read the loop's ancestors and each other.
        let outer: HashSet<String> = ancestors[i]
            .iter()
            .map(|&j| spec.steps[j].name.clone())
            .collect();
        let (nested_deps, nested_order, _) = plan_steps(&nested, &outer).map_err(|e| {
            err(
                Some(&step.name),
                format!("loop {:?}: {}", step.name, e.message),
            )
        })?;
        super::validate_steps::check_nested(step, &nested)?;
        loops.insert(
            i,
            NestedPlan {
                steps: nested,
                deps: nested_deps,
                order: nested_order,
            },
        );
    }
    if let Some(body) = spec.response.as_ref().and_then(|r| r.body.as_ref()) {
        let names: HashSet<&str> = spec.steps.iter().map(|s| s.name.as_str()).collect();
        for referenced in referenced_steps(body).map_err(|e| err(None, format!("response: {e}")))? {
            if !names.contains(referenced.as_str()) {
                return Err(err(
                    None,
                    format!("response references unknown step {referenced:?}"),
                ));
            }
        }
    }
    Ok(Plan {
        spec,
        deps,
        order,
        branch_of,
        loops,
    })
}

type StepsPlan = (Vec<Vec<usize>>, Vec<usize>, Vec<HashSet<usize>>);

/// Names, dependencies, order, per-step checks and template references of one step list;
/// `outer` names steps outside the list that templates may also read (a loop's ancestors).
fn plan_steps(steps: &[StepSpec], outer: &HashSet<String>) -> Result<StepsPlan, FlowError> {
    if steps.is_empty() {
        return Err(err(None, "a flow needs at least one step".into()));
    }
    if steps.len() > MAX_STEPS {
        return Err(err(
            None,
            format!("a step list has {} steps; at most {MAX_STEPS}", steps.len()),
        ));
    }
    let mut index = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        if !is_step_name(&step.name) {
            return Err(err(
                Some(&step.name),
                format!(
                    "step name {:?} must be 1-64 letters, digits, '_' or '-'",
                    step.name
                ),
            ));
        }
        if index.insert(step.name.as_str(), i).is_some() {
            return Err(err(
                Some(&step.name),
                format!("duplicate step name {:?}", step.name),
            ));
        }
    }
    let mut deps = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let d = match &step.depends_on {
            Some(names) => names
                .iter()
                .map(|n| {
                    index.get(n.as_str()).copied().ok_or_else(|| {
                        err(
                            Some(&step.name),
                            format!("step {:?} depends on unknown step {n:?}", step.name),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None if i == 0 => Vec::new(),
            None => vec![i - 1],
        };
        deps.push(d);
    }
    let order = topological_order(steps, &deps)?;
    let ancestors = ancestors(&deps, &order);
    for (i, step) in steps.iter().enumerate() {
        check_step(step)?;
        for referenced in step_references(step)? {
            if outer.contains(&referenced) {
                continue;
            }
            let Some(&j) = index.get(referenced.as_str()) else {
                return Err(err(
                    Some(&step.name),
                    format!(
                        "step {:?} references unknown step {referenced:?}",
                        step.name
                    ),
                ));
            };
            if !ancestors[i].contains(&j) {
                return Err(err(
                    Some(&step.name),
                    format!(
                        "step {:?} references step {referenced:?}, which cannot have run before it (add it to dependsOn)",
                        step.name
                    ),
                ));
            }
        }
    }
    Ok((deps, order, ancestors))
}

fn check_trigger(trigger: &Trigger) -> Result<(), FlowError> {
    match trigger {
        Trigger::Event {
            source,
            event,
            condition,
        } => {
            if source.is_empty() || event.is_empty() {
                return Err(err(
                    None,
                    "event trigger needs a source and an event".into(),
                ));
            }
            if let Some(c) = condition {
                super::condition::check_references(c, super::condition::TRIGGER_ROOTS)
                    .map_err(|e| err(None, format!("trigger condition: {e}")))?;
            }
            Ok(())
        }
        Trigger::Webhook { webhook_id } if webhook_id.is_empty() => {
            Err(err(None, "webhook trigger needs a webhookId".into()))
        }
        Trigger::Webhook { .. } => Ok(()),
        Trigger::Cron { .. } | Trigger::Manual { .. } => {
            super::validate_steps::check_trigger_options(trigger)
        }
    }
}

fn check_step(step: &StepSpec) -> Result<(), FlowError> {
    super::validate_steps::check_fields_of_kind(step)?;
    if step.kind != "action" {
        return super::validate_steps::check_step_kind(step);
    }
    match (&step.connector, &step.action) {
        (None, None) => {
            if step.mapping.is_none() {
                return Err(err(
                    Some(&step.name),
                    format!(
                        "step {:?} needs a connector and action, or a mapping",
                        step.name
                    ),
                ));
            }
        }
        (Some(c), Some(a)) => check_connector_step(step, c, a)?,
        _ => {
            return Err(err(
                Some(&step.name),
                format!("step {:?} needs both connector and action", step.name),
            ));
        }
    }
    let bad = |what: String| {
        Err(err(
            Some(&step.name),
            format!("step {:?}: {what}", step.name),
        ))
    };
    if let Some(r) = &step.retry {
        if !(1..=MAX_ATTEMPTS).contains(&r.max_attempts) {
            return bad(format!("retry.maxAttempts must be 1 to {MAX_ATTEMPTS}"));
        }
        if r.initial_delay_ms > MAX_DELAY_MS || r.max_delay_ms > MAX_DELAY_MS {
            return bad(format!("retry delays must be at most {MAX_DELAY_MS} ms"));
        }
    }
    if let Some(t) = step.timeout_ms
        && !(1..=MAX_STEP_TIMEOUT_MS).contains(&t)
    {
        return bad(format!("timeoutMs must be 1 to {MAX_STEP_TIMEOUT_MS}"));
    }
    if let Some(mapping) = &step.mapping {
        check_mapping_targets(mapping.keys())
            .map_err(|m| err(Some(&step.name), format!("step {:?}: {m}", step.name)))?;
        FieldMap::compile(mapping)
            .map_err(|e| err(Some(&step.name), format!("step {:?}: {e}", step.name)))?;
    }
    if step.connector.as_deref() == Some("http") {
        check_http_request(step.input.as_ref())
            .map_err(|m| err(Some(&step.name), format!("step {:?}: {m}", step.name)))?;
    }
    Ok(())
}

fn check_connector_step(step: &StepSpec, c: &str, a: &str) -> Result<(), FlowError> {
    let registry = crate::connectors::registry();
    let Some(def) = registry.get(c) else {
        let known: Vec<&str> = registry.all().iter().map(|d| d.name.as_str()).collect();
        return Err(err(
            Some(&step.name),
            format!(
                "step {:?}: unknown connector {c:?} (one of: {})",
                step.name,
                known.join(", ")
            ),
        ));
    };
    let Some((_, action)) = registry.action(c, a) else {
        let known: Vec<&str> = def.actions.iter().map(|x| x.name.as_str()).collect();
        return Err(err(
            Some(&step.name),
            format!(
                "step {:?}: connector action {c}.{a} is not available (actions of {c}: {})",
                step.name,
                known.join(", ")
            ),
        ));
    };
    let optional = def.auth.types.iter().any(|t| t == "none");
    if step.credential.is_none() && !optional {
        return Err(err(
            Some(&step.name),
            format!(
                "step {:?}: connector {c} needs \"credential\": the id of one of the tenant's {c} credentials",
                step.name
            ),
        ));
    }
    if let Some(map) = &step.id_map {
        let update = action
            .entity
            .as_deref()
            .and_then(|e| def.entities.iter().find(|d| d.name == e))
            .and_then(|e| e.update.as_deref());
        if update.is_none() || action.operation != crate::connectors::Operation::Create {
            return Err(err(
                Some(&step.name),
                format!(
                    "step {:?}: idMap needs a create action whose entity has an update action; {c}.{a} is not one",
                    step.name
                ),
            ));
        }
        crate::mapping::template::Template::parse(&map.id).map_err(|e| {
            err(
                Some(&step.name),
                format!("step {:?}: idMap.id: {e}", step.name),
            )
        })?;
        if map.system.is_empty() || map.entity.is_empty() {
            return Err(err(
                Some(&step.name),
                format!("step {:?}: idMap needs system and entity", step.name),
            ));
        }
    }
    Ok(())
}

/// Most steps in one step list (a flow's, or a loop's nested list). Planning keeps each
/// step's ancestors, so its cost is the square of the count: a 30,000-step chain took 13 s
/// and 6.5 GB to save, and again at every execute-API call.
pub const MAX_STEPS: usize = 500;

/// Most attempts a step may make.
pub const MAX_ATTEMPTS: u32 = 20;
/// Longest retry delay, ms (1 hour).
pub const MAX_DELAY_MS: u64 = 3_600_000;
/// Longest per-attempt timeout, ms (15 minutes).
pub const MAX_STEP_TIMEOUT_MS: u64 = 900_000;

/// Mapping targets are dot paths of non-empty keys, and no target may also be the parent of
/// another (`a` and `a.b` would overwrite each other).
fn check_mapping_targets<'a>(keys: impl Iterator<Item = &'a String>) -> Result<(), String> {
    let keys: Vec<&String> = keys.collect();
    for k in &keys {
        if k.split('.').any(str::is_empty) {
            return Err(format!("mapping target {k:?} has an empty key"));
        }
        if let Some(child) = keys.iter().find(|o| o.starts_with(&format!("{k}."))) {
            return Err(format!("mapping targets {k:?} and {child:?} overlap"));
        }
    }
    Ok(())
}

/// The `http.request` input: an object with a `url` (http or https) and an optional standard
/// `method`. Values that are templates are checked when they are rendered instead.
fn check_http_request(input: Option<&Value>) -> Result<(), String> {
    let Some(Value::Object(input)) = input else {
        return Err("http.request needs an \"input\" object with at least a \"url\"".into());
    };
    match input.get("url") {
        None => return Err("http.request needs input.url".into()),
        Some(Value::String(u)) if !u.contains("{{") => {
            let parsed =
                url::Url::parse(u).map_err(|e| format!("input.url {u:?} is not a URL: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(format!("input.url {u:?} must be an http or https URL"));
            }
        }
        Some(Value::String(_)) => {}
        Some(_) => return Err("input.url must be a string".into()),
    }
    if let Some(m) = input.get("method") {
        match m {
            Value::String(m) if m.contains("{{") => {}
            Value::String(m) if HTTP_METHODS.contains(&m.to_ascii_uppercase().as_str()) => {}
            other => {
                return Err(format!(
                    "input.method {other} is not one of {}",
                    HTTP_METHODS.join(", ")
                ));
            }
        }
    }
    Ok(())
}

/// Methods the `http.request` action sends.
pub const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

fn step_references(step: &StepSpec) -> Result<Vec<String>, FlowError> {
    let mut all = Vec::new();
    let docs = [
        step.input.clone(),
        step.mapping.clone().map(Value::Object),
        step.over.clone().map(Value::String),
        step.message.clone().map(Value::String),
    ];
    for doc in docs.into_iter().flatten() {
        let names = referenced_steps(&doc)
            .map_err(|e| err(Some(&step.name), format!("step {:?}: {e}", step.name)))?;
        all.extend(names);
    }
    // Conditions name steps too (their variables were checked with the step's kind).
    let mut conditions: Vec<(&str, &[&str])> = Vec::new();
    for case in step.cases.as_deref().unwrap_or_default() {
        conditions.push((&case.when, condition::GATE_ROOTS));
    }
    if let Some(c) = &step.until {
        conditions.push((c, condition::UNTIL_ROOTS));
    }
    if let Some(c) = step.event.as_ref().and_then(|e| e.condition.as_deref()) {
        conditions.push((c, condition::EVENT_ROOTS));
    }
    for (c, roots) in conditions {
        let names = condition::check_references(c, roots)
            .map_err(|e| err(Some(&step.name), format!("step {:?}: {e}", step.name)))?;
        all.extend(names);
    }
    Ok(all)
}

/// Kahn's algorithm, picking the lowest ready index each time so ties keep document order.
fn topological_order(steps: &[StepSpec], deps: &[Vec<usize>]) -> Result<Vec<usize>, FlowError> {
    let n = steps.len();
    let mut indegree: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); n];
    for (i, d) in deps.iter().enumerate() {
        for &j in d {
            dependents[j].push(i);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &k in &dependents[i] {
            indegree[k] -= 1;
            if indegree[k] == 0 {
                ready.insert(k);
            }
        }
    }
    if order.len() < n {
        let stuck: Vec<&str> = (0..n)
            .filter(|i| !order.contains(i))
            .map(|i| steps[i].name.as_str())
            .collect();
        return Err(err(
            stuck.first().copied(),
            format!("dependsOn forms a cycle through steps {}", stuck.join(", ")),
        ));
    }
    Ok(order)
}

fn ancestors(deps: &[Vec<usize>], order: &[usize]) -> Vec<HashSet<usize>> {
    let mut out = vec![HashSet::new(); deps.len()];
    for &i in order {
        let mut set = HashSet::new();
        for &d in &deps[i] {
            set.insert(d);
            set.extend(out[d].iter().copied());
        }
        out[i] = set;
    }
    out
}

fn is_flow_name(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_step_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flow(steps: Value) -> FlowSpec {
        serde_json::from_value(json!({
            "name": "f",
            "trigger": {"type": "event", "source": "shopify", "event": "order.created"},
            "steps": steps
        }))
        .expect("spec")
    }

    fn http_step(name: &str, extra: Value) -> Value {
        let mut s = json!({"name": name, "type": "action", "connector": "http", "action": "request",
                           "input": {"method": "GET", "url": "http://x"}});
        if let (Some(o), Some(e)) = (s.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        s
    }

    #[test]
    fn default_dependencies_chain_and_order_respects_depends_on() {
        let p = plan(flow(json!([
            http_step("a", json!({})),
            http_step("b", json!({"dependsOn": ["c"]})),
            http_step("c", json!({"dependsOn": ["a"]})),
        ])))
        .expect("plan");
        assert_eq!(p.deps, vec![vec![], vec![2], vec![0]]);
        assert_eq!(p.order, vec![0, 2, 1]);
    }

    #[test]
    fn a_step_list_holds_at_most_max_steps() {
        let chain = |n: usize| {
            Value::Array(
                (0..n)
                    .map(|i| json!({"name": format!("s{i}"), "type": "action", "mapping": {"x": "1"}}))
                    .collect(),
            )
        };
        assert!(plan(flow(chain(MAX_STEPS))).is_ok());
        let e = plan(flow(chain(MAX_STEPS + 1))).expect_err("too many");
        assert!(e.to_string().contains("501 steps; at most 500"), "{e}");
    }

    #[test]
    fn cycles_unknown_and_duplicate_names_name_the_step() {
        let e = plan(flow(json!([
            http_step("a", json!({"dependsOn": ["b"]})),
            http_step("b", json!({"dependsOn": ["a"]})),
        ])))
        .expect_err("cycle");
        assert!(e.message.contains("cycle"), "{e}");
        assert_eq!(e.step.as_deref(), Some("a"));
        let e =
            plan(flow(json!([http_step("a", json!({"dependsOn": ["zz"]}))]))).expect_err("unknown");
        assert!(e.message.contains("\"zz\""), "{e}");
        let e = plan(flow(json!([
            http_step("a", json!({})),
            http_step("a", json!({}))
        ])))
        .expect_err("dup");
        assert!(e.message.contains("duplicate"), "{e}");
    }

    #[test]
    fn templates_may_only_read_steps_that_ran_before() {
        let e = plan(flow(json!([
            http_step(
                "a",
                json!({"input": {"method": "GET", "url": "{{steps.b.output.url}}"}})
            ),
            http_step("b", json!({"dependsOn": []})),
        ])))
        .expect_err("forward reference");
        assert_eq!(e.step.as_deref(), Some("a"));
        assert!(e.message.contains("cannot have run"), "{e}");
        plan(flow(json!([
            http_step("a", json!({})),
            http_step(
                "b",
                json!({"input": {"method": "GET", "url": "{{steps.a.output.body.next}}"}})
            ),
        ])))
        .expect("backward reference is fine");
    }

    #[test]
    fn http_requests_and_limits_are_checked_at_save() {
        for (extra, needle) in [
            (json!({"input": {"method": "GET"}}), "input.url"),
            (
                json!({"input": {"url": "file:///etc/passwd"}}),
                "http or https",
            ),
            (json!({"input": {"url": "not a url"}}), "not a URL"),
            (
                json!({"input": {"url": "http://x", "method": "FROB LE"}}),
                "is not one of",
            ),
            (json!({"timeoutMs": 0}), "timeoutMs"),
            (json!({"retry": {"maxAttempts": 1_000_000}}), "maxAttempts"),
            (
                json!({"retry": {"maxAttempts": 2, "initialDelayMs": 999_999_999_999u64}}),
                "delays",
            ),
            (json!({"mapping": {"a": "1", "a.b": "2"}}), "overlap"),
            (json!({"mapping": {"": "1"}}), "empty key"),
        ] {
            let e = plan(flow(json!([http_step("a", extra.clone())]))).expect_err(needle);
            assert!(e.message.contains(needle), "{extra}: {e}");
        }
        plan(flow(json!([http_step(
            "a",
            json!({"input": {"url": "{{trigger.callback}}", "method": "{{trigger.m}}"}})
        )])))
        .expect("templated values are checked at run time");
    }

    #[test]
    fn unsupported_features_are_refused_not_ignored() {
        let e = plan(flow(json!([{"name": "w", "type": "teleport"}]))).expect_err("teleport");
        assert!(e.message.contains("not supported"), "{e}");
        let e = plan(flow(
            json!([{"name": "n", "type": "notification", "channel": "email", "message": "hi"}]),
        ))
        .expect_err("email");
        assert!(e.message.contains("email"), "{e}");
        let e = plan(flow(json!([{"name": "x", "type": "action", "connector": "xero", "action": "makeInvoice", "credential": "c"}])))
            .expect_err("xero");
        assert!(e.message.contains("xero.makeInvoice"), "{e}");
        let e = plan(flow(json!([{"name": "x", "type": "action", "connector": "xero", "action": "createInvoice"}])))
            .expect_err("no credential");
        assert!(e.message.contains("credential"), "{e}");
        plan(flow(json!([{"name": "x", "type": "action", "connector": "xero", "action": "createInvoice",
                          "credential": "cred_1",
                          "idMap": {"system": "shopify", "entity": "order", "id": "{{trigger.id}}"}}])))
            .expect("xero with credential and idMap");
        let e = plan(flow(json!([{"name": "x", "type": "action", "connector": "slack", "action": "addReaction",
                                  "credential": "c", "idMap": {"system": "a", "entity": "b", "id": "1"}}])))
            .expect_err("idMap on a non-create action");
        assert!(e.message.contains("idMap"), "{e}");
        let bad_template = plan(flow(json!([http_step(
            "a",
            json!({"input": {"url": "{{NOPE(trigger.x)}}"}})
        )])));
        assert!(bad_template.is_err());
    }
    #[test]
    fn the_issue_shapes_are_accepted_as_written() {
        let p = plan(flow(json!([
            {"name": "make", "type": "action", "mapping": {"id": "{{trigger.id}}"}},
            {"name": "pause", "type": "wait", "durationMs": 5000},
            {"name": "until_paid", "type": "wait", "until": "steps.make.output.paid == true",
             "checkEveryMs": 1000, "timeoutMs": 60000},
            {"name": "await_payment", "type": "wait",
             "event": {"source": "stripe", "event": "invoice.paid",
                       "condition": "event.data.object.id == steps.make.output.id"},
             "timeoutMs": 86400000},
            {"name": "sign_off", "type": "approval", "timeoutMs": 3600000},
            {"name": "route", "type": "gate",
             "cases": [{"when": "trigger.total_price > 100", "steps": ["big_order"]}],
             "default": ["small_order"]},
            http_step("big_order", json!({"dependsOn": ["route"]})),
            http_step("small_order", json!({"dependsOn": ["route"]})),
            {"name": "each_line", "type": "loop", "over": "{{trigger.line_items}}", "concurrency": 4,
             "dependsOn": ["big_order", "small_order"],
             "steps": [{"name": "push", "type": "action", "connector": "http", "action": "request",
                        "input": {"method": "POST", "url": "http://x"},
                        "mapping": {"sku": "{{item.sku}}", "n": "{{index}}"}}]},
            http_step("call", json!({"retry": {"maxAttempts": 3, "backoff": "exponential",
                                               "initialDelayMs": 100, "maxDelayMs": 5000},
                                     "timeoutMs": 10000, "onError": "continue"})),
        ])))
        .expect("the issue's shapes");
        assert_eq!(p.branch_of[6], Some((5, 0)));
        assert_eq!(p.branch_of[7], Some((5, 1)));
        assert!(p.loops.contains_key(&8));
    }

    #[test]
    fn conditions_are_checked_for_unknown_variables_and_steps_at_save() {
        let gate = |when: &str| {
            json!({"name": "g", "type": "gate", "dependsOn": ["make"],
                   "cases": [{"when": when, "steps": []}], "default": []})
        };
        let make = json!({"name": "make", "type": "action", "mapping": {"id": "{{trigger.id}}"}});
        let later =
            json!({"name": "later", "type": "action", "mapping": {"x": "1"}, "dependsOn": ["g"]});
        for (when, needle) in [
            ("inptu.x > 1", "unknown variable \"inptu\""),
            ("now > 0", "unknown variable \"now\""),
            ("trigger.l.all(x, x > 1) && x > 0", "unknown variable \"x\""),
            ("steps.nope.status == 'completed'", "unknown step \"nope\""),
            (
                "steps.later.status == 'completed'",
                "cannot have run before it",
            ),
        ] {
            let e = plan(flow(json!([make.clone(), gate(when), later.clone()]))).expect_err(needle);
            assert!(e.message.contains(needle), "{when}: {e}");
            assert_eq!(e.step.as_deref(), Some("g"), "{when}: {e}");
        }
        plan(flow(json!([
            make.clone(),
            gate("trigger.l.all(x, x > 1) && steps.make.output.id != '' && input.a == 1")
        ])))
        .expect("known roots, macro variables and an earlier step");
        let wait = |body: Value| {
            let mut w = json!({"name": "w", "type": "wait"});
            if let (Value::Object(a), Value::Object(b)) = (&mut w, body) {
                a.extend(b);
            }
            w
        };
        plan(flow(json!([
            make.clone(),
            wait(json!({"until": "now > 0 && steps.make.status == 'completed'"}))
        ])))
        .expect("until sees now");
        let e = plan(flow(json!([
            make.clone(),
            wait(json!({"until": "event.x == 1"}))
        ])))
        .expect_err("no event in until");
        assert!(e.message.contains("\"event\""), "{e}");
        plan(flow(json!([
            make.clone(),
            wait(json!({"event": {"source": "s", "event": "e",
            "condition": "event.id == steps.make.output.id"}}))
        ])))
        .expect("event condition sees event");
        let e = plan(flow(json!([
            make,
            wait(json!({"event": {"source": "s", "event": "e",
            "condition": "evnt.id == 1"}}))
        ])))
        .expect_err("typo in an event condition");
        assert!(e.message.contains("\"evnt\""), "{e}");
    }

    #[test]
    fn new_step_types_are_checked_at_save_and_name_the_step() {
        for (steps, step, needle) in [
            (
                json!([{"name": "g", "type": "gate", "cases": [{"when": "trigger.x >", "steps": []}]}]),
                "g",
                "invalid condition",
            ),
            (
                json!([{"name": "w", "type": "wait", "durationMs": 5, "until": "true"}]),
                "w",
                "exactly one",
            ),
            (json!([{"name": "w", "type": "wait"}]), "w", "exactly one"),
            (
                json!([{"name": "a", "type": "action", "mapping": {"x": "1"}, "durationMs": 5}]),
                "a",
                "does not apply",
            ),
            (
                json!([{"name": "g", "type": "gate", "default": ["b"]}, http_step("b", json!({"dependsOn": []}))]),
                "b",
                "must depend on it",
            ),
            (
                json!([{"name": "l", "type": "loop", "over": "{{trigger.items}}",
                     "steps": [{"name": "w", "type": "wait", "durationMs": 1}]}]),
                "l",
                "nest",
            ),
            (
                json!([{"name": "l", "type": "loop", "over": "trigger.items", "steps": [http_step("p", json!({}))]}]),
                "l",
                "template",
            ),
        ] {
            let e = plan(flow(steps.clone())).expect_err(needle);
            assert_eq!(e.step.as_deref(), Some(step), "{steps}: {e}");
            assert!(e.message.contains(needle), "{steps}: {e}");
        }
    }

    #[test]
    fn cron_and_manual_triggers_are_checked() {
        let with = |trigger: Value| -> Result<Plan, FlowError> {
            plan(
                serde_json::from_value(json!({"name": "f", "trigger": trigger,
                "steps": [{"name": "m", "type": "action", "mapping": {"a": "1"}}]}))
                .expect("spec"),
            )
        };
        with(
            json!({"type": "cron", "schedule": "0 9 * * MON-FRI", "timezone": "Europe/London",
                    "catchUp": "each", "catchUpWindowMs": 3600000, "overlap": "skip"}),
        )
        .expect("cron");
        assert!(with(json!({"type": "cron", "schedule": "0 9 * *"})).is_err());
        assert!(
            with(json!({"type": "cron", "schedule": "0 9 * * *", "timezone": "Nowhere/Land"}))
                .is_err()
        );
        assert!(
            with(json!({"type": "cron", "schedule": "0 9 * * *", "overlap": "queue"})).is_err()
        );
        with(json!({"type": "manual", "requestSchema": {"type": "object"}})).expect("manual");
        assert!(with(json!({"type": "manual", "requestSchema": {"type": 5}})).is_err());
        let e =
            with(json!({"type": "event", "source": "s", "event": "e", "condition": "trigger.("}))
                .expect_err("cel");
        assert!(e.message.contains("condition"), "{e}");
        let e = with(
            json!({"type": "event", "source": "s", "event": "e", "condition": "steps.a.status == 'x'"}),
        )
        .expect_err("a trigger condition sees only trigger");
        assert!(e.message.contains("unknown variable \"steps\""), "{e}");
        with(json!({"type": "event", "source": "s", "event": "e", "condition": "trigger.n > 1"}))
            .expect("trigger");
    }
}
