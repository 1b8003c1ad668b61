//! Preparing a server for a scenario through its public API: tenants, a GitHub webhook
//! endpoint each, and the flows that post to the sink.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::scenario::Scenario;
use crate::server::{ADMIN_KEY, SPACE};

/// The secret of every load-test webhook endpoint.
pub const SECRET: &str = "loadtest-secret";

/// A prepared tenant.
#[derive(Debug, Clone)]
pub struct Target {
    /// Tenant id.
    pub tenant: String,
    /// Absolute receipt URL.
    pub url: String,
}

fn api(client: &reqwest::Client, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
    client
        .request(method, url)
        .header("x-fastn-api-key", ADMIN_KEY)
        .header("x-fastn-space-id", SPACE)
}

async fn post(client: &reqwest::Client, url: String, body: &Value) -> anyhow::Result<Value> {
    let r = api(client, reqwest::Method::POST, url)
        .json(body)
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() && status.as_u16() != 409 {
        anyhow::bail!("setup call failed: {status} {v}");
    }
    Ok(v)
}

/// Creates the scenario's tenants, webhooks and flows (32 setup calls in flight).
///
/// # Errors
/// When the server refuses a setup call.
pub async fn prepare(
    client: &reqwest::Client,
    base: &str,
    scenario: &Scenario,
    sink_url: &str,
) -> anyhow::Result<Vec<Target>> {
    let gate = Arc::new(Semaphore::new(32));
    let mut tasks = Vec::new();
    for i in 0..scenario.tenants {
        let (client, base, sink, gate) = (
            client.clone(),
            base.to_owned(),
            sink_url.to_owned(),
            gate.clone(),
        );
        let flows = scenario.flows_per_tenant;
        let p1 = scenario.p1_rate_per_sec > 0;
        let p3 = scenario.p3_cron.clone();
        tasks.push(tokio::spawn(async move {
            let _slot = gate.acquire_owned().await?;
            let tenant = format!("lt{i}");
            let api_base = format!("{base}/api/v1");
            post(&client, format!("{api_base}/tenants"), &json!({"id": tenant})).await?;
            let hook = post(
                &client,
                format!("{api_base}/tenants/{tenant}/webhooks"),
                &json!({"connector": "github", "secret": SECRET}),
            )
            .await?;
            for f in 0..flows {
                let flow = post(
                    &client,
                    format!("{api_base}/tenants/{tenant}/workflows"),
                    &json!({
                        "name": format!("lt_flow_{f}"),
                        "trigger": {"type": "event", "source": "github", "event": "push"},
                        "steps": [{"name": "deliver", "type": "action", "connector": "http", "action": "request",
                                   "retry": {"maxAttempts": 5, "backoff": "exponential", "initialDelayMs": 100},
                                   "input": {"method": "POST", "url": sink,
                                             "body": {"tenant": "{{trigger.tenant}}", "n": "{{trigger.n}}",
                                                      "flow": format!("f{f}"), "sentUs": "{{trigger.sentUs}}"}}}]
                    }),
                )
                .await?;
                let id = flow["id"].as_str().unwrap_or_default().to_owned();
                post(&client, format!("{api_base}/tenants/{tenant}/workflows/{id}/publish"), &json!({})).await?;
            }
            for flow in priority_flows(p1, p3.as_deref(), &sink) {
                let created =
                    post(&client, format!("{api_base}/tenants/{tenant}/workflows"), &flow).await?;
                let id = created["id"].as_str().unwrap_or_default().to_owned();
                post(&client, format!("{api_base}/tenants/{tenant}/workflows/{id}/publish"), &json!({})).await?;
            }
            let url = format!("{base}{}", hook["url"].as_str().unwrap_or_default());
            anyhow::Ok(Target { tenant, url })
        }));
    }
    let mut targets = Vec::with_capacity(tasks.len());
    for t in tasks {
        targets.push(t.await??);
    }
    Ok(targets)
}

/// The `mixed-priority` flows of one tenant: a manual flow for P1 calls and a cron flow for
/// P3 runs, each posting to the sink with its own `flow` label (`p1`, `p3`).
fn priority_flows(p1: bool, p3_cron: Option<&str>, sink: &str) -> Vec<Value> {
    let mut flows = Vec::new();
    if p1 {
        flows.push(json!({
            "name": crate::priority::P1_FLOW,
            "trigger": {"type": "manual"},
            "steps": [{"name": "deliver", "type": "action", "connector": "http", "action": "request",
                       "input": {"method": "POST", "url": sink,
                                 "body": {"tenant": "{{input.tenant}}", "n": "{{input.n}}", "flow": "p1"}}}],
            "response": {"status": 200, "body": {"n": "{{input.n}}"}}
        }));
    }
    if let Some(schedule) = p3_cron {
        flows.push(json!({
            "name": crate::priority::P3_FLOW,
            "trigger": {"type": "cron", "schedule": schedule},
            "steps": [{"name": "deliver", "type": "action", "connector": "http", "action": "request",
                       "input": {"method": "POST", "url": sink, "body": {"flow": "p3"}}}]
        }));
    }
    flows
}
