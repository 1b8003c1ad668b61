//! A flow that triggers itself stops (T8: a cycle between flows).
//!
//! Every connector call carries `CDN-Loop: sluice; hops=N; correlation=ID` (RFC 8586), one
//! hop more than what started its execution, and the id of the event that started the chain;
//! an incoming webhook, app event or execute call more than `MAX_HOPS` deep, or past
//! `--loop-budget` requests of its chain, is refused with 508 `LOOP_DETECTED` and nothing is
//! stored. Before this, a flow posting app events to its own tenant ran ~5,000 executions a
//! second until it was archived.

mod common;

use std::time::{Duration, Instant};

use common::{Server, Sink, assert_error_shape, github_headers, send};
use serde_json::{Value, json};
use sluice_actors::pipeline::hops::{Lineage, MAX_HOPS};

const SECRET: &str = "loop-secret";

/// A flow that, for each `app`/`ping` event, posts to the sink and then posts a new `ping`
/// event (its payload wraps the one it got, so no two are alike) to its own tenant.
fn self_triggering_flow(server: &Server, sink: &Sink) -> Value {
    json!({
        "name": "echo",
        "trigger": {"type": "event", "source": "app", "event": "ping"},
        "steps": [
            {"name": "record", "type": "action", "connector": "http", "action": "request",
             "input": {"method": "POST", "url": sink.url, "body": {"seen": "{{trigger}}"}}},
            server.call_step("again", "/api/v1/tenants/default/events",
                      json!({"source": "app", "event": "ping", "payload": {"prev": "{{trigger}}"}}))
        ]
    })
}

/// `step` with the fields of `extra` added.
fn with(mut step: Value, extra: Value) -> Value {
    if let (Some(s), Value::Object(e)) = (step.as_object_mut(), extra) {
        s.extend(e);
    }
    step
}

fn lineage_of(header: Option<&str>) -> Lineage {
    Lineage::parse([header.expect("every connector call carries CDN-Loop")])
}

/// Waits until executions have stopped finishing for 3 s (each one of a loop starts the
/// next), or panics after 120 s.
async fn wait_until_quiet(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut finished, mut since) = (-1.0, Instant::now());
    while since.elapsed() < Duration::from_secs(3) {
        let now = server.metric_sum("sluice_executions_total").await;
        if now != finished {
            (finished, since) = (now, Instant::now());
        }
        assert!(Instant::now() < deadline, "the loop never stopped: {now}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Calls the execute API at `path` with `body` and asserts the answer came well before the
/// 25 s synchronous limit (a stalled tenant answers 408 then); returns its status and body.
async fn execute_unstalled(server: &Server, path: &str, body: Value) -> (u16, String) {
    let started = Instant::now();
    let answer = server
        .api(reqwest::Method::POST, path)
        .json(&body)
        .send()
        .await
        .expect("execute");
    let took = started.elapsed();
    let status = answer.status().as_u16();
    let body = answer.text().await.expect("body");
    assert_ne!(
        status, 408,
        "the chain held the tenant until it timed out: {body}"
    );
    assert!(took < Duration::from_secs(15), "took {took:?}: {body}");
    (status, body)
}

async fn dlq_items(server: &Server) -> Vec<Value> {
    let (s, dlq) = server.get_json("/tenants/default/dlq").await;
    assert_eq!(s, 200, "{dlq}");
    dlq["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_triggering_flow_stops_at_the_hop_limit_and_lands_in_the_dlq() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    let server = Server::start(dir.path());
    server
        .live_flow("default", &self_triggering_flow(&server, &sink))
        .await;
    let (s, b) = server
        .post_json(
            "/tenants/default/events",
            &json!({"source": "app", "event": "ping", "payload": {"start": true}}),
        )
        .await;
    assert_eq!(s, 202, "{b}");

    // Executions at hops 0..=MAX_HOPS run; the last one's call is refused and it fails.
    let rounds = MAX_HOPS as usize + 1;
    let all = server
        .wait_executions("default", 60, |list| {
            list.len() >= rounds
                && list.iter().any(|e| e["status"] == "failed")
                && list
                    .iter()
                    .all(|e| matches!(e["status"].as_str(), Some("completed" | "failed")))
        })
        .await;
    // Nothing more starts afterwards.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all_later = server.executions("default").await;
    assert_eq!(all_later.len(), rounds, "{all_later:#?}");
    let failed: Vec<&Value> = all.iter().filter(|e| e["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{all:#?}");

    let lineages: Vec<Lineage> = sink
        .received()
        .iter()
        .map(|r| lineage_of(r.cdn_loop.as_deref()))
        .collect();
    let mut seen: Vec<u32> = lineages.iter().map(|l| l.hops).collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=MAX_HOPS + 1).collect::<Vec<_>>());
    // One chain: every call names the event that started it.
    let root = b["eventId"].as_str().expect("event id");
    assert!(
        lineages.iter().all(|l| l.correlation_id == root),
        "{lineages:?}"
    );
    let by_hops = |h: u64| all.iter().find(|e| e["hops"] == h).cloned();
    assert_eq!(by_hops(0).expect("root")["correlationId"], root);
    assert_eq!(by_hops(3).expect("hop 3")["correlationId"], root);

    // The failed execution's refused step: a 508 LOOP_DETECTED, tried once (not retryable).
    let id = failed[0]["id"].as_str().expect("id");
    let (_, exec) = server
        .get_json(&format!("/tenants/default/executions/{id}"))
        .await;
    let again = exec["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "again"))
        .unwrap_or_else(|| panic!("{exec}"));
    assert_eq!(again["status"], "failed", "{exec}");
    let text = again.to_string();
    assert!(
        text.contains("508") && text.contains("LOOP_DETECTED"),
        "{text}"
    );
    assert_eq!(server.metric_sum("sluice_loops_refused_total").await, 1.0);

    // It is in the DLQ with its hop count, and a replay keeps it: refused again, once.
    let items = dlq_items(&server).await;
    assert_eq!(items.len(), 1, "{items:#?}");
    let item = &items[0];
    let stored = Lineage::parse([item["headers"]["cdn-loop"].as_str().expect("cdn-loop")]);
    assert_eq!(
        (stored.hops, stored.correlation_id.as_str()),
        (MAX_HOPS, root)
    );
    let (s, v) = server
        .post_json(
            &format!(
                "/tenants/default/dlq/{}/replay",
                item["id"].as_str().expect("id")
            ),
            &json!({}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.metric_sum("sluice_loops_refused_total").await < 2.0 {
        assert!(Instant::now() < deadline, "the replay never made its call");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = sink.received().last().cloned().expect("replay's call");
    assert_eq!(lineage_of(last.cdn_loop.as_deref()).hops, MAX_HOPS + 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.executions("default").await.len(), rounds + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entry_point_refuses_past_the_limit_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let url = server.webhook("default", "github", SECRET).await;
    let over = format!("cdn, sluice; hops={}", MAX_HOPS + 1);
    let at_limit = format!("sluice; hops={MAX_HOPS}");

    // Webhook receipt: signed, but past the limit.
    let body = br#"{"ref": "main"}"#;
    let mut headers = github_headers(SECRET, body, "push", "d-over");
    headers.push(("CDN-Loop".into(), over.clone()));
    let (status, answer) = send(&server.client, &url, &headers, body).await;
    assert_eq!(status, 508, "{answer}");
    assert_error_shape(508, &answer);
    assert_eq!(answer["code"], "LOOP_DETECTED");
    // An unsigned one is refused for its signature first.
    let unsigned = [("CDN-Loop".to_owned(), over.clone())];
    let (status, _) = send(&server.client, &url, &unsigned, body).await;
    assert_eq!(status, 401);
    // At the limit it is accepted, once; the refused delivery id was never recorded.
    let mut headers = github_headers(SECRET, body, "push", "d-over");
    headers.push(("CDN-Loop".into(), at_limit.clone()));
    let (status, answer) = send(&server.client, &url, &headers, body).await;
    assert_eq!(status, 202, "{answer}");

    // App events.
    let answer = server
        .api(reqwest::Method::POST, "/tenants/default/events")
        .header("cdn-loop", &over)
        .json(&json!({"source": "app", "event": "x", "payload": {}}))
        .send()
        .await
        .expect("events");
    assert_eq!(answer.status().as_u16(), 508);
    let body: Value = answer.json().await.expect("json");
    assert_error_shape(508, &body);

    // The execute API.
    server
        .live_flow(
            "default",
            &json!({"name": "manual_one", "trigger": {"type": "manual"},
                    "steps": [{"name": "n", "type": "notification", "message": "hi"}]}),
        )
        .await;
    let answer = server
        .api(reqwest::Method::POST, "/manual_one")
        .header("cdn-loop", &over)
        .json(&json!({"input": {}}))
        .send()
        .await
        .expect("execute");
    assert_eq!(answer.status().as_u16(), 508);
    let body: Value = answer.json().await.expect("json");
    assert_error_shape(508, &body);
    let answer = server
        .api(reqwest::Method::POST, "/manual_one")
        .header("cdn-loop", &at_limit)
        .json(&json!({"input": {}}))
        .send()
        .await
        .expect("execute");
    assert_eq!(answer.status().as_u16(), 200, "{:?}", answer.text().await);

    // Only the two accepted requests left a trace: one event, one execution.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, events) = server.get_json("/tenants/default/events").await;
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(1),
        "{events}"
    );
    assert_eq!(server.executions("default").await.len(), 1);
    assert_eq!(server.metric_sum("sluice_loops_refused_total").await, 3.0);
}

/// A flow that posts three events per run would grow threefold at every hop (3^9 executions
/// within the depth limit); its chain stops at the loop budget (300 here, 10,000 by
/// default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_that_fans_out_stops_at_the_chain_budget() {
    const BUDGET: usize = 300;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &["--loop-budget", &BUDGET.to_string()]);
    let post = |name: &str, n: u32| {
        let body = json!({"source": "app", "event": "fan",
                          "payload": {"prev": "{{trigger}}", "branch": n}});
        with(
            server.call_step(name, "/api/v1/tenants/default/events", body),
            json!({"dependsOn": []}),
        )
    };
    server
        .live_flow(
            "default",
            &json!({
                "name": "fan",
                "trigger": {"type": "event", "source": "app", "event": "fan"},
                "steps": [post("a", 1), post("b", 2), post("c", 3)]
            }),
        )
        .await;
    let (s, b) = server
        .post_json(
            "/tenants/default/events",
            &json!({"source": "app", "event": "fan", "payload": {}}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    wait_until_quiet(&server).await;
    // The root and the budget's events of its chain, nothing more.
    let all = server.executions("default").await;
    assert_eq!(all.len(), BUDGET + 1);
    let root = b["eventId"].as_str().expect("event id");
    assert!(all.iter().all(|e| e["correlationId"] == root));
    assert!(
        all.iter()
            .all(|e| e["hops"].as_u64() <= Some(u64::from(MAX_HOPS)))
    );
    assert!(server.metric_sum("sluice_loops_refused_total").await >= 1.0);
}

/// A manual flow that calls the execute API for itself, synchronously: every level waits for
/// the next (which runs outside the tenant's slots, the caller holding one) until the depth
/// limit refuses a call. The chain fails at once, with the refusal in the innermost error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_self_call_chain_fails_at_the_depth_limit_without_holding_the_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    server
        .live_flow(
            "default",
            &json!({"name": "chain", "trigger": {"type": "manual"},
                    "steps": [server.call_step("again", "/api/v1/chain", json!({"input": {}}))]}),
        )
        .await;
    let (status, body) = execute_unstalled(&server, "/chain", json!({"input": {}})).await;
    assert!(body.contains("LOOP_DETECTED"), "{status} {body}");
    let all = server
        .wait_executions("default", 20, |list| {
            list.len() == MAX_HOPS as usize + 1 && list.iter().all(|e| e["status"] == "failed")
        })
        .await;
    assert!(
        all.iter()
            .all(|e| e["hops"].as_u64() <= Some(u64::from(MAX_HOPS)))
    );
}

/// A flow that replays the tenant's DLQ and then fails: each replayed run replays the other
/// failure, for ever. The replay API takes part in loop detection (a replay a flow asks for
/// continues its chain), so the chain stops at the depth limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_that_replays_its_own_failures_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    server
        .live_flow(
            "default",
            &json!({
                "name": "replayer",
                "trigger": {"type": "event", "source": "app", "event": "go"},
                "steps": [
                    {"name": "pause", "type": "wait", "durationMs": 300},
                    with(
                        server.call_step("replay", "/api/v1/tenants/default/dlq/replay", json!({})),
                        json!({"onError": "continue"}),
                    ),
                    // Nothing listens on port 9: the run fails and lands in the DLQ.
                    {"name": "fail", "type": "action", "connector": "http", "action": "request",
                     "input": {"method": "POST", "url": "http://127.0.0.1:9/down", "body": {}}}
                ]
            }),
        )
        .await;
    for n in 0..2 {
        let (s, b) = server
            .post_json(
                "/tenants/default/events",
                &json!({"source": "app", "event": "go", "payload": {"n": n}}),
            )
            .await;
        assert_eq!(s, 202, "{b}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let items = loop {
        let items = dlq_items(&server).await;
        if items.len() == 2 && items.iter().all(|i| i["state"] == "pending") {
            break items;
        }
        assert!(Instant::now() < deadline, "{items:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let id = items[0]["id"].as_str().expect("id");
    let (s, v) = server
        .post_json(&format!("/tenants/default/dlq/{id}/replay"), &json!({}))
        .await;
    assert_eq!(s, 202, "{v}");
    wait_until_quiet(&server).await;
    let all = server.executions("default").await;
    // The two first runs, then at most one replay per hop in each of two chains: the one
    // the replay from outside starts, and one a first run may start if the other first run
    // failed before it replayed.
    assert!(
        all.len() <= 2 + 2 * (MAX_HOPS as usize + 1),
        "{} executions: {all:#?}",
        all.len()
    );
    assert!(all.iter().any(|e| e["hops"] == MAX_HOPS), "{all:#?}");
    assert!(server.metric_sum("sluice_loops_refused_total").await >= 1.0);
}

/// A manual flow whose loop calls the execute API for itself four times per run,
/// synchronously: 4, 16, 64, 256 calls wait at successive hops, each callee running outside
/// the tenant's slots. The chain budget refuses the calls past it as a loop, and the chain
/// unwinds at once instead of growing to 4^8 executions. (With the default budget of 10,000
/// the tenant's bound on executions outside its slots ended it first: 1,025 executions.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_self_call_that_fans_out_stops_at_the_chain_budget() {
    const BUDGET: usize = 300;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &["--loop-budget", &BUDGET.to_string()]);
    server
        .live_flow(
            "default",
            &json!({"name": "fanchain", "trigger": {"type": "manual"},
                    "steps": [{"name": "each", "type": "loop", "over": "{{input.xs}}",
                               "concurrency": 4,
                               "steps": [server.call_step("again", "/api/v1/fanchain",
                                                   json!({"input": {"xs": [1, 2, 3, 4]}}))]}]}),
        )
        .await;
    execute_unstalled(&server, "/fanchain", json!({"input": {"xs": [1, 2, 3, 4]}})).await;
    wait_until_quiet(&server).await;
    let all = server.executions("default").await;
    assert_eq!(
        all.len(),
        BUDGET + 1,
        "the root and the calls the budget admitted"
    );
    assert!(all.iter().all(|e| e["status"] == "failed"), "{all:#?}");
    assert!(server.metric_sum("sluice_loops_refused_total").await >= 1.0);
}

/// Several outside callers of a flow that calls itself synchronously: four roots fill a
/// tenant of four slots, and each waits for its chain. The called executions run outside
/// the slots, so the chains reach the depth limit and unwind instead of stalling until
/// their 25 s timeout, and another flow of the tenant gets its turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_synchronous_self_call_chains_do_not_stall_the_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    let server = Server::start_with(dir.path(), &["--tenant-concurrency", "4"]);
    server
        .live_flow(
            "default",
            &json!({"name": "chain", "trigger": {"type": "manual"},
                    "steps": [server.call_step("again", "/api/v1/chain", json!({"input": {}}))]}),
        )
        .await;
    server
        .live_flow(
            "default",
            &json!({"name": "other", "trigger": {"type": "manual"},
                    "steps": [{"name": "post", "type": "action", "connector": "http",
                               "action": "request",
                               "input": {"method": "POST", "url": sink.url, "body": {}}}]}),
        )
        .await;
    let started = Instant::now();
    let roots: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(
                server
                    .api(reqwest::Method::POST, "/chain")
                    .json(&json!({"input": {}}))
                    .send(),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let other = server
        .api(reqwest::Method::POST, "/other")
        .json(&json!({"input": {}}))
        .send()
        .await
        .expect("other");
    assert_eq!(other.status().as_u16(), 200, "{:?}", other.text().await);
    let other_took = started.elapsed();
    for root in roots {
        let answer = root.await.expect("root task").expect("root");
        assert_ne!(answer.status().as_u16(), 408, "{:?}", answer.text().await);
    }
    assert!(
        other_took < Duration::from_secs(15),
        "another flow waited {other_took:?} behind the chains"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
