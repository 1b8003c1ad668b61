//! History retention end to end: with `--retention 2s`, finished executions and routed events
//! disappear from the API shortly after they are 2 s old, while an execution waiting for an
//! approval stays however old it gets.

mod common;

use std::time::{Duration, Instant};

use common::{Server, Sink, github_headers, send};
use serde_json::json;

const SECRET: &str = "retention-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_history_expires_and_waiting_executions_stay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    let server = Server::start_with(dir.path(), &["--retention", "2s"]);
    let url = server.webhook("default", "github", SECRET).await;
    server
        .live_flow(
            "default",
            &json!({
                "name": "post",
                "trigger": {"type": "event", "source": "github", "event": "push"},
                "steps": [{"name": "send", "type": "action", "connector": "http", "action": "request",
                           "input": {"method": "POST", "url": sink.url, "body": {"n": "{{trigger.n}}"}}}]
            }),
        )
        .await;
    server
        .live_flow(
            "default",
            &json!({
                "name": "hold",
                "trigger": {"type": "event", "source": "github", "event": "push"},
                "steps": [{"name": "sign_off", "type": "approval", "timeoutMs": 3_600_000}]
            }),
        )
        .await;
    for n in 0..5 {
        let body = format!(r#"{{"n": {n}}}"#);
        let (status, answer) = send(
            &server.client,
            &url,
            &github_headers(SECRET, body.as_bytes(), "push", &format!("d{n}")),
            body.as_bytes(),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
    }
    let all = server
        .wait_executions("default", 20, |list| {
            list.iter()
                .filter(|e| e["flowName"] == "post" && e["status"] == "completed")
                .count()
                == 5
                && list
                    .iter()
                    .filter(|e| e["flowName"] == "hold" && e["status"] == "waiting")
                    .count()
                    == 5
        })
        .await;
    let done_id = all
        .iter()
        .find(|e| e["flowName"] == "post")
        .and_then(|e| e["id"].as_str())
        .expect("id")
        .to_owned();
    let (_, events) = server.get_json("/tenants/default/events").await;
    assert_eq!(events["events"].as_array().map(Vec::len), Some(5));

    // Past 2 s (and a pass or two of the pruner), only the waiting executions are left.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = server.executions("default").await;
        if left.len() == 5 && left.iter().all(|e| e["status"] == "waiting") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "finished executions never expired: {left:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, _) = server
        .get_json(&format!("/tenants/default/executions/{done_id}"))
        .await;
    assert_eq!(status, 404);
    let (_, events) = server.get_json("/tenants/default/events").await;
    assert_eq!(events["events"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        server
            .metric_sum("sluice_history_pruned_total{kind=\"execution\"}")
            .await,
        5.0
    );
    assert_eq!(sink.received().len(), 5, "nothing ran twice");
}
