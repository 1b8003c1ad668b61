//! The engine end to end, through the real binary: waits and approvals that outlive a
//! restart, the execute API (schema, configured response, 408), cancellation through the API,
//! and a SIGKILL in the middle of a 5-step flow.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Server, Sink};
use serde_json::{Value, json};

async fn app_event(server: &Server, tenant: &str, event: &str, payload: Value) {
    let (s, b) = server
        .post_json(
            &format!("/tenants/{tenant}/events"),
            &json!({"source": "myapp", "event": event, "payload": payload}),
        )
        .await;
    assert!(s == 202 || s == 200, "event: {s} {b}");
}

async fn one_execution(server: &Server, tenant: &str, secs: u64, status: &str) -> Value {
    let all = server
        .wait_executions(tenant, secs, |e| e.len() == 1 && e[0]["status"] == status)
        .await;
    let id = all[0]["id"].as_str().expect("id").to_owned();
    let (s, b) = server
        .get_json(&format!("/tenants/{tenant}/executions/{id}"))
        .await;
    assert_eq!(s, 200, "{b}");
    b
}

fn step<'a>(exec: &'a Value, name: &str) -> &'a Value {
    exec["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["name"] == name))
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_spans_a_restart_and_an_approval_is_decided_after_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    let server = Server::start(dir.path());
    server
        .live_flow(
            "default",
            &json!({"name": "pause_then_post",
                    "trigger": {"type": "event", "source": "myapp", "event": "pause"},
                    "steps": [{"name": "pause", "type": "wait", "durationMs": 1500},
                              {"name": "post", "type": "action", "connector": "http", "action": "request",
                               "input": {"method": "POST", "url": sink.url, "body": {"kind": "after-wait"}}}]}),
        )
        .await;
    server
        .live_flow(
            "default",
            &json!({"name": "sign_then_post",
                    "trigger": {"type": "event", "source": "myapp", "event": "sign"},
                    "steps": [{"name": "sign_off", "type": "approval", "timeoutMs": 3600000},
                              {"name": "post", "type": "action", "connector": "http", "action": "request",
                               "input": {"method": "POST", "url": sink.url, "body": {"kind": "after-approval"}}}]}),
        )
        .await;
    app_event(&server, "default", "pause", json!({"n": 1})).await;
    app_event(&server, "default", "sign", json!({"n": 2})).await;
    let waiting = server
        .wait_executions("default", 20, |e| {
            e.len() == 2 && e.iter().all(|x| x["status"] == "waiting")
        })
        .await;
    let sign_id = waiting
        .iter()
        .find(|e| e["flowName"] == "sign_then_post")
        .and_then(|e| e["id"].as_str())
        .expect("approval execution")
        .to_owned();
    let (_, view) = server
        .get_json(&format!("/tenants/default/executions/{sign_id}"))
        .await;
    assert_eq!(step(&view, "sign_off")["status"], "waiting", "{view}");
    // Approving before a restart is not needed: kill now, mid-wait.
    server.kill9();
    assert!(sink.received().is_empty());

    let server = Server::start(dir.path());
    let (s, b) = server
        .post_json(
            &format!("/tenants/default/executions/{sign_id}/approve"),
            &json!({"comment": "looks right"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = server
        .post_json(
            &format!("/tenants/default/executions/{sign_id}/approve"),
            &json!({}),
        )
        .await;
    assert!(
        s == 409 || s == 200,
        "a second decision is refused once decided"
    );
    let done = server
        .wait_executions("default", 20, |e| {
            e.len() == 2 && e.iter().all(|x| x["status"] == "completed")
        })
        .await;
    for e in &done {
        let id = e["id"].as_str().expect("id");
        let (_, view) = server
            .get_json(&format!("/tenants/default/executions/{id}"))
            .await;
        if e["flowName"] == "pause_then_post" {
            let waited = step(&view, "pause")["output"]["waitedMs"]
                .as_u64()
                .expect("waited");
            assert!(waited >= 1500, "{view}");
        } else {
            let out = &step(&view, "sign_off")["output"];
            assert_eq!(out["approved"], true, "{view}");
            assert_eq!(out["comment"], "looks right");
            assert!(out["approver"].is_string());
        }
    }
    let kinds: Vec<String> = sink
        .received()
        .iter()
        .map(|r| r.body["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_execute_api_validates_input_answers_the_configured_response_or_408() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    server
        .live_flow(
            "default",
            &json!({"name": "quote",
                    "trigger": {"type": "manual", "requestSchema": {"type": "object", "required": ["qty"],
                                "properties": {"qty": {"type": "integer", "minimum": 1}}}},
                    "steps": [{"name": "price", "type": "action",
                               "mapping": {"total": "{{MULTIPLY(input.qty, 2.5)}}"}}],
                    "response": {"status": 201, "body": {"total": "{{steps.price.output.total}}", "qty": "{{input.qty}}"}}}),
        )
        .await;
    let post = |body: Value, stage: Option<&'static str>| {
        let mut req = server.api(reqwest::Method::POST, "/quote").json(&body);
        if let Some(s) = stage {
            req = req.header("stage", s);
        }
        async move {
            let r = req.send().await.expect("send");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, b) = post(json!({"input": {"qty": "x"}}), None).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["code"], "BAD_REQUEST");
    assert_eq!(b["violations"][0]["path"], "/qty", "{b}");
    let (s, b) = post(json!({"input": {}}), None).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = post(json!({"input": {"qty": 4}}), None).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["total"].as_f64(), Some(10.0), "{b}");
    assert_eq!(b["qty"], 4);
    let (s, _) = post(json!({"input": {"qty": 4}}), Some("nowhere")).await;
    assert_eq!(s, 404, "an unknown environment");
    let (s, _) = post(json!({"input": {"qty": 4}}), Some("DRAFT")).await;
    assert_eq!(s, 201, "the draft runs too");

    server
        .live_flow(
            "default",
            &json!({"name": "slow", "timeoutMs": 300,
                    "trigger": {"type": "manual"},
                    "steps": [{"name": "pause", "type": "wait", "durationMs": 5000}]}),
        )
        .await;
    let started = Instant::now();
    let r = server
        .api(reqwest::Method::POST, "/slow")
        .json(&json!({"input": {}}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 408);
    let id = r
        .headers()
        .get("x-sluice-execution-id")
        .and_then(|v| v.to_str().ok())
        .expect("execution id")
        .to_owned();
    let b: Value = r.json().await.expect("json");
    assert_eq!(b["code"], "TIMED_OUT");
    assert!(started.elapsed() < Duration::from_secs(5));
    let (_, view) = server
        .get_json(&format!("/tenants/default/executions/{id}"))
        .await;
    assert_eq!(view["status"], "timed_out", "{view}");
    assert_eq!(step(&view, "pause")["status"], "skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_through_the_api_skips_what_is_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start_with_delay(Duration::from_secs(3)).await;
    let server = Server::start(dir.path());
    server
        .live_flow(
            "default",
            &json!({"name": "slow_chain",
                    "trigger": {"type": "event", "source": "myapp", "event": "go"},
                    "steps": [{"name": "call", "type": "action", "connector": "http", "action": "request",
                               "input": {"method": "POST", "url": sink.url}},
                              {"name": "after", "type": "action", "mapping": {"x": "1"}}]}),
        )
        .await;
    app_event(&server, "default", "go", json!({})).await;
    let running = server
        .wait_executions("default", 20, |e| {
            e.len() == 1 && e[0]["status"] == "running"
        })
        .await;
    let id = running[0]["id"].as_str().expect("id").to_owned();
    let (s, b) = server
        .post_json(
            &format!("/tenants/default/executions/{id}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "cancelled");
    let view = one_execution(&server, "default", 5, "cancelled").await;
    assert_eq!(step(&view, "call")["status"], "skipped");
    assert_eq!(step(&view, "after")["status"], "skipped");
    let (s, _) = server
        .post_json(
            &format!("/tenants/default/executions/{id}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!(s, 409, "already over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_five_step_flow_repeats_at_most_the_step_in_flight_with_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start_with_delay(Duration::from_millis(400)).await;
    let server = Server::start(dir.path());
    let steps: Vec<Value> = (1..=5)
        .map(|i| {
            json!({"name": format!("s{i}"), "type": "action", "connector": "http", "action": "request",
                   "input": {"method": "POST", "url": sink.url, "body": {"step": i}}})
        })
        .collect();
    server
        .live_flow(
            "default",
            &json!({"name": "five", "trigger": {"type": "event", "source": "myapp", "event": "five"},
                    "steps": steps}),
        )
        .await;
    app_event(&server, "default", "five", json!({})).await;
    // Kill while step 3 is in flight (each call takes 400 ms).
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.received().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.kill9();
    let before = sink.received().len();
    let server = Server::start(dir.path());
    one_execution(&server, "default", 30, "completed").await;
    let mut by_step: HashMap<i64, Vec<Option<String>>> = HashMap::new();
    for r in sink.received() {
        by_step
            .entry(r.body["step"].as_i64().expect("step"))
            .or_default()
            .push(r.idempotency_key);
    }
    assert_eq!(by_step.len(), 5, "{by_step:?}");
    let repeated: Vec<_> = by_step.iter().filter(|(_, keys)| keys.len() > 1).collect();
    assert!(
        repeated.len() <= 1,
        "only the step in flight may repeat: {by_step:?}"
    );
    for (_, keys) in repeated {
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0], keys[1], "same Idempotency-Key both times");
    }
    assert!(
        before >= 2,
        "the kill came mid-flow ({before} calls before it)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_wait_ends_on_the_matching_event_even_one_sent_as_it_begins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    server
        .live_flow(
            "default",
            &json!({"name": "await_payment",
                    "trigger": {"type": "event", "source": "myapp", "event": "invoice.created"},
                    "steps": [{"name": "make", "type": "action", "mapping": {"id": "{{trigger.invoice}}"}},
                              {"name": "paid", "type": "wait", "timeoutMs": 60000,
                               "event": {"source": "myapp", "event": "invoice.paid",
                                         "condition": "event.id == steps.make.output.id"}},
                              {"name": "done", "type": "notification", "message": "paid {{steps.paid.output.amount}}"}]}),
        )
        .await;
    // Invoice A: its payment is sent right behind the trigger, as the wait begins.
    app_event(
        &server,
        "default",
        "invoice.created",
        json!({"invoice": "A"}),
    )
    .await;
    app_event(
        &server,
        "default",
        "invoice.paid",
        json!({"id": "A", "amount": 5}),
    )
    .await;
    // Invoice B: a payment for another invoice does not end its wait; its own does.
    app_event(
        &server,
        "default",
        "invoice.created",
        json!({"invoice": "B"}),
    )
    .await;
    server
        .wait_executions("default", 20, |e| {
            e.len() == 2
                && e.iter().any(|x| x["status"] == "completed")
                && e.iter().any(|x| x["status"] == "waiting")
        })
        .await;
    app_event(
        &server,
        "default",
        "invoice.paid",
        json!({"id": "Z", "amount": 1}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = server.executions("default").await;
    assert_eq!(e.iter().filter(|x| x["status"] == "waiting").count(), 1);
    app_event(
        &server,
        "default",
        "invoice.paid",
        json!({"id": "B", "amount": 7}),
    )
    .await;
    let all = server
        .wait_executions("default", 20, |e| {
            e.len() == 2 && e.iter().all(|x| x["status"] == "completed")
        })
        .await;
    let mut amounts = Vec::new();
    for x in &all {
        let id = x["id"].as_str().expect("id");
        let (_, view) = server
            .get_json(&format!("/tenants/default/executions/{id}"))
            .await;
        amounts.push(
            step(&view, "done")["output"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    amounts.sort();
    assert_eq!(amounts, ["paid 5", "paid 7"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_cron_flow_runs_every_second_and_keeps_running_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    server.tenant("clock").await;
    // A tenant with many unscheduled flows next to the scheduled one.
    for i in 0..20 {
        server
            .live_flow(
                "clock",
                &json!({"name": format!("evented_{i}"),
                        "trigger": {"type": "event", "source": "myapp", "event": "tick"},
                        "steps": [{"name": "m", "type": "action", "mapping": {"i": i}}]}),
            )
            .await;
    }
    server
        .live_flow(
            "clock",
            &json!({"name": "every_second",
                    "trigger": {"type": "cron", "schedule": "* * * * * *"},
                    "steps": [{"name": "m", "type": "action", "mapping": {"at": "{{trigger.scheduledAt}}"}}]}),
        )
        .await;
    let cron_runs = |all: &[Value]| {
        all.iter()
            .filter(|e| e["flowName"] == "every_second" && e["status"] == "completed")
            .count()
    };
    let before = server
        .wait_executions("clock", 15, |all| cron_runs(all) >= 2)
        .await;
    assert!(
        before.iter().all(|e| e["flowName"] == "every_second"),
        "only the scheduled flow runs"
    );
    let seen = cron_runs(&before);
    server.terminate(Duration::from_secs(10));
    let server = Server::start(dir.path());
    server
        .wait_executions("clock", 15, |all| cron_runs(all) >= seen + 2)
        .await;
}
