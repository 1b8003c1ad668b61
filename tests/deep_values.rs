//! Values that nest deeper than a payload may (T8). A payload nests at most 127 levels (the
//! JSON parser's limit); what flows build from it may nest up to 256, is stored, and reads
//! back as it ran; anything deeper fails its step with `MAPPING_ERROR`, and the server stays
//! up.
//!
//! Before this bound, a mapping target path of 50,000 levels overflowed a worker's stack and
//! aborted the server at the first event, and again at every restart (the execution resumed);
//! a step input deeper than 127 levels showed as `null` in the API, and a step output deeper
//! than that reached the next step as `null`.

mod common;

use std::time::Duration;

use common::{Server, Sink, github_headers, send};
use serde_json::{Value, json};
use sluice_actors::json_depth::depth;

const SECRET: &str = "deep-values-secret";

/// `levels` nested arrays around `1`.
fn arrays(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

/// A dotted target path of `levels` keys.
fn path(levels: usize) -> String {
    vec!["k"; levels].join(".")
}

async fn deliver(server: &Server, url: &str, id: &str, body: &str) {
    let (status, answer) = send(
        &server.client,
        url,
        &github_headers(SECRET, body.as_bytes(), "push", id),
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
}

async fn execution_of(server: &Server, tenant: &str, flow_name: &str) -> Value {
    let found = server
        .wait_executions(tenant, 20, |list| {
            list.iter().any(|e| {
                e["flowName"] == flow_name
                    && matches!(e["status"].as_str(), Some("completed" | "failed"))
            })
        })
        .await;
    let id = found
        .iter()
        .find(|e| e["flowName"] == flow_name)
        .expect("execution")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // Read without serde_json's 127-level limit: the answer nests deeper than that.
    let answer = server
        .api(
            reqwest::Method::GET,
            &format!("/tenants/{tenant}/executions/{id}"),
        )
        .send()
        .await
        .expect("GET execution");
    assert_eq!(answer.status(), 200);
    let text = answer.text().await.expect("body");
    let mut de = serde_json::Deserializer::from_str(&text);
    de.disable_recursion_limit();
    serde::Deserialize::deserialize(&mut de).expect("execution JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_input_deeper_than_the_parser_limit_reads_back_as_it_ran() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    let server = Server::start(dir.path());
    let url = server.webhook("default", "github", SECRET).await;
    server
        .live_flow(
            "default",
            &json!({
                "name": "wrap",
                "trigger": {"type": "event", "source": "github", "event": "push"},
                "steps": [{"name": "post", "type": "action", "connector": "http", "action": "request",
                           "input": {"method": "POST", "url": sink.url,
                                     "body": {"wrapped": {"v": "{{trigger.v}}"}}}}]
            }),
        )
        .await;
    // 126 levels: the payload parses; the step input around it nests 128, past the parser.
    deliver(
        &server,
        &url,
        "d126",
        &format!("{{\"v\": {}}}", arrays(125)),
    )
    .await;
    let exec = execution_of(&server, "default", "wrap").await;
    assert_eq!(exec["status"], "completed", "{exec}");
    let input = &exec["steps"][0]["input"];
    assert_eq!(
        depth(input),
        128,
        "the stored input reads back whole: {input}"
    );
    assert_eq!(depth(&input["body"]["wrapped"]["v"]), 125);
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(depth(&received[0].body["wrapped"]["v"]), 125);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_beyond_the_bound_fail_their_step_and_the_server_stays_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let url = server.webhook("default", "github", SECRET).await;

    // A target path that alone is deeper than the bound is refused when the flow is saved.
    let (status, body) = server
        .post_json(
            "/tenants/default/workflows",
            &json!({
                "name": "too_long",
                "trigger": {"type": "event", "source": "github", "event": "push"},
                "steps": [{"name": "m", "type": "action", "mapping": {path(50_000): "x"}}]
            }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "INVALID_FLOW", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("50000 levels") && m.contains("256")),
        "{body}"
    );

    // A chain whose second step outgrows the bound: step `one` places the 100-level payload
    // value under 150 keys (250 levels, inside the bound, stored deeper than the parser reads);
    // step `two` places that output under 10 more (260).
    server
        .live_flow(
            "default",
            &json!({
                "name": "chain",
                "trigger": {"type": "event", "source": "github", "event": "push"},
                "steps": [
                    {"name": "one", "type": "action", "mapping": {path(150): "{{trigger.v}}"}},
                    {"name": "two", "type": "action", "dependsOn": ["one"],
                     "mapping": {path(10): "{{steps.one.output}}"}}
                ]
            }),
        )
        .await;
    deliver(
        &server,
        &url,
        "d100",
        &format!("{{\"v\": {}}}", arrays(100)),
    )
    .await;
    let exec = execution_of(&server, "default", "chain").await;
    assert_eq!(exec["status"], "failed", "{exec}");
    let steps = exec["steps"].as_array().expect("steps");
    assert_eq!(steps[0]["status"], "completed", "{exec}");
    assert_eq!(
        depth(&steps[0]["output"]),
        250,
        "step one's output reads back whole"
    );
    assert_eq!(steps[1]["status"], "failed", "{exec}");
    assert_eq!(steps[1]["error"]["code"], "MAPPING_ERROR", "{exec}");
    let message = steps[1]["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("260 levels") && message.contains("256"),
        "{message}"
    );

    // The server is up, and comes up again on the same data directory.
    assert_eq!(server.health().await, 200);
    assert!(server.terminate(Duration::from_secs(10)).is_some());
    let server = Server::start(dir.path());
    let exec_again = execution_of(&server, "default", "chain").await;
    assert_eq!(exec_again["status"], "failed");
}

/// A loop's output puts two levels around each nested output (the array of iterations, the
/// object of outputs by name), so inside a loop outputs may nest 254 levels: one deeper
/// fails its nested step in its iteration instead of failing the loop after every iteration
/// ran; under `halt` no iteration starts after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_fails_at_the_iteration_whose_output_would_outgrow_the_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    let server = Server::start(dir.path());
    let url = server.webhook("default", "github", SECRET).await;
    for (name, keys) in [("fits", 154), ("outgrows", 155)] {
        server
            .live_flow(
                "default",
                &json!({
                    "name": name,
                    "trigger": {"type": "event", "source": "github", "event": "push"},
                    "steps": [{"name": "each", "type": "loop", "over": "{{trigger.items}}",
                               "steps": [
                        {"name": "wrap", "type": "action", "mapping": {path(keys): "{{item}}"}},
                        {"name": "post", "type": "action", "connector": "http", "action": "request",
                         "input": {"method": "POST", "url": sink.url,
                                   "body": {"flow": name, "index": "{{index}}"}}}
                    ]}]
                }),
            )
            .await;
    }
    deliver(
        &server,
        &url,
        "loop100",
        // The second item nests 100 levels, the others none.
        &format!("{{\"items\": [1, {}, 3, 4]}}", arrays(100)),
    )
    .await;
    let fits = execution_of(&server, "default", "fits").await;
    assert_eq!(fits["status"], "completed", "{fits}");
    assert_eq!(depth(&fits["steps"][0]["output"]), 256);
    let outgrows = execution_of(&server, "default", "outgrows").await;
    assert_eq!(outgrows["status"], "failed", "{outgrows}");
    let error = outgrows["steps"][0]["error"].to_string();
    assert!(
        error.contains("MAPPING_ERROR") && error.contains("255 levels"),
        "{error}"
    );
    // The loop that fits posted for every item; the other for its first only, and stopped
    // at its second (one iteration at a time by default).
    let posted: Vec<Value> = sink.received().into_iter().map(|r| r.body).collect();
    let of = |flow: &str| posted.iter().filter(|b| b["flow"] == flow).count();
    assert_eq!((of("fits"), of("outgrows")), (4, 1), "{posted:?}");
}
