//! Poison and downstream faults (T3, T4) against a scripted mock provider: 400 (not
//! retryable: one attempt, then the DLQ), 500 forever (exactly `maxAttempts`, on the configured
//! ladder), 50 % flaky (completes), hanging (each attempt cut by `timeoutMs`, attempts never
//! overlap), 429 with `Retry-After` (honoured), a mapping type error (not retryable). Other
//! events of the same tenant keep flowing meanwhile, and a DLQ replay after the fault is fixed
//! calls the provider exactly once per item.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::{Server, github_headers, send};
use serde_json::{Value, json};

const SECRET: &str = "fault-secret";

/// What the mock saw of one scenario.
#[derive(Default)]
struct Seen {
    /// Arrival time of every request.
    arrivals: Vec<Instant>,
    in_flight: usize,
    max_in_flight: usize,
}

#[derive(Clone, Default)]
struct Mock {
    fixed: Arc<AtomicBool>,
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    flaky: Arc<AtomicUsize>,
}

impl Mock {
    fn count(&self, scenario: &str) -> usize {
        self.seen
            .lock()
            .expect("lock")
            .get(scenario)
            .map_or(0, |s| s.arrivals.len())
    }
    fn arrivals(&self, scenario: &str) -> Vec<Instant> {
        self.seen
            .lock()
            .expect("lock")
            .get(scenario)
            .map_or_else(Vec::new, |s| s.arrivals.clone())
    }
    fn max_in_flight(&self, scenario: &str) -> usize {
        self.seen
            .lock()
            .expect("lock")
            .get(scenario)
            .map_or(0, |s| s.max_in_flight)
    }
}

/// Leaves the in-flight count when the request ends, answered or abandoned.
struct InFlight(Mock, String);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(s) = self.0.seen.lock().expect("lock").get_mut(&self.1) {
            s.in_flight -= 1;
        }
    }
}

async fn provider(State(mock): State<Mock>, Path(scenario): Path<String>) -> Response {
    {
        let mut seen = mock.seen.lock().expect("lock");
        let s = seen.entry(scenario.clone()).or_default();
        s.arrivals.push(Instant::now());
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
    }
    let _guard = InFlight(mock.clone(), scenario.clone());
    let ok = (StatusCode::OK, axum::Json(json!({"ok": true}))).into_response();
    if mock.fixed.load(Ordering::SeqCst) {
        return ok;
    }
    let fail = |code: StatusCode| (code, axum::Json(json!({"error": scenario}))).into_response();
    match scenario.as_str() {
        "bad" => fail(StatusCode::BAD_REQUEST),
        "down" => fail(StatusCode::INTERNAL_SERVER_ERROR),
        "flaky" => {
            if mock.flaky.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
                fail(StatusCode::SERVICE_UNAVAILABLE)
            } else {
                ok
            }
        }
        "hang" => std::future::pending().await,
        "throttle" if mock.count("throttle") == 1 => {
            let mut r = fail(StatusCode::TOO_MANY_REQUESTS);
            r.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
            r
        }
        _ => ok,
    }
}

async fn start_mock() -> (Mock, String) {
    let mock = Mock::default();
    let app = axum::Router::new()
        .route("/m/{scenario}", axum::routing::post(provider))
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (mock, format!("http://{addr}/m"))
}

fn flow(scenario: &str, base: &str, retry: Value, timeout_ms: Option<u64>) -> Value {
    let mut step = json!({
        "name": "call", "type": "action", "connector": "http", "action": "request",
        "retry": retry,
        "input": {"method": "POST", "url": format!("{base}/{scenario}"), "body": {"n": "{{trigger.n}}"}}
    });
    if let Some(t) = timeout_ms {
        step["timeoutMs"] = json!(t);
    }
    json!({
        "name": format!("fault_{scenario}"),
        "trigger": {"type": "event", "source": "github", "event": "push",
                    "condition": format!("trigger.scenario == '{scenario}'")},
        "steps": [step]
    })
}

fn ms(v: &Value) -> i64 {
    let text = v.as_str().expect("timestamp");
    let t = humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339(text))
        .expect("rfc3339");
    t.duration_since(std::time::UNIX_EPOCH)
        .expect("epoch")
        .as_millis() as i64
}

async fn detail(server: &Server, id: &str) -> Value {
    let (s, v) = server
        .get_json(&format!("/tenants/default/executions/{id}"))
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_retry_as_configured_dead_letter_and_replay_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mock, base) = start_mock().await;
    let server = Server::start(dir.path());
    let url = server.webhook("default", "github", SECRET).await;
    let fixed3 = json!({"maxAttempts": 3, "backoff": "fixed", "initialDelayMs": 50});
    // The ladder checked below: 200, 400, then capped at 500 ms.
    let ladder = json!({"maxAttempts": 4, "backoff": "exponential", "initialDelayMs": 200,
                        "maxDelayMs": 500, "jitter": false});
    for f in [
        flow("bad", &base, fixed3.clone(), None),
        flow("down", &base, ladder, None),
        flow(
            "flaky",
            &base,
            json!({"maxAttempts": 6, "backoff": "fixed", "initialDelayMs": 20}),
            None,
        ),
        flow(
            "hang",
            &base,
            json!({"maxAttempts": 3, "backoff": "fixed", "initialDelayMs": 100}),
            Some(1000),
        ),
        flow("throttle", &base, json!({"maxAttempts": 1}), None),
        flow("ok", &base, json!({"maxAttempts": 1}), None),
        json!({
            "name": "fault_mapping",
            "trigger": {"type": "event", "source": "github", "event": "push",
                        "condition": "trigger.scenario == 'mapping'"},
            "steps": [{"name": "call", "type": "action", "retry": fixed3,
                       "mapping": {"total": "{{ROUND(trigger.name, 2)}}"}}]
        }),
    ] {
        server.live_flow("default", &f).await;
    }

    let mut n = 0;
    let mut post = async |scenario: &str| {
        n += 1;
        let b = serde_json::to_vec(&json!({"scenario": scenario, "n": n, "name": "not a number"}))
            .expect("json");
        let (s, v) = send(
            &server.client,
            &url,
            &github_headers(SECRET, &b, "push", &format!("{scenario}-{n}")),
            &b,
        )
        .await;
        assert_eq!(s, 202, "{v}");
    };
    for scenario in ["hang", "down", "bad", "flaky", "throttle", "mapping"] {
        post(scenario).await;
    }
    // Meanwhile, ordinary events of the same tenant.
    for _ in 0..20 {
        post("ok").await;
    }
    let execs = server
        .wait_executions("default", 60, |e| {
            e.len() == 26
                && e.iter()
                    .all(|x| x["status"] == "completed" || x["status"] == "failed")
        })
        .await;
    let by_flow = |name: &str| -> Vec<&Value> {
        execs
            .iter()
            .filter(|e| e["flowName"] == format!("fault_{name}"))
            .collect()
    };
    let one = |name: &str| -> Value { by_flow(name)[0].clone() };
    let statuses: HashMap<&str, String> = ["bad", "down", "flaky", "hang", "throttle", "mapping"]
        .into_iter()
        .map(|s| (s, one(s)["status"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(statuses["bad"], "failed");
    assert_eq!(statuses["down"], "failed");
    assert_eq!(statuses["hang"], "failed");
    assert_eq!(statuses["mapping"], "failed");
    assert_eq!(statuses["flaky"], "completed");
    assert_eq!(statuses["throttle"], "completed");

    // No head-of-line blocking: the ordinary events finished while the hanging one still ran.
    let hang_end = ms(&one("hang")["finishedAt"]);
    let oks = by_flow("ok");
    assert_eq!(oks.len(), 20);
    for e in &oks {
        assert_eq!(e["status"], "completed");
        assert!(
            ms(&e["finishedAt"]) < hang_end,
            "an ordinary event waited behind the hanging one: {e}"
        );
    }

    // Attempts at the provider: non-retryable once, retryable exactly maxAttempts.
    assert_eq!(mock.count("bad"), 1);
    assert_eq!(mock.count("down"), 4);
    assert_eq!(mock.count("flaky"), 2);
    assert_eq!(mock.count("hang"), 3);
    assert_eq!(mock.count("throttle"), 2);
    assert_eq!(mock.max_in_flight("hang"), 1, "hanging attempts overlapped");

    // The trace: attempts and their timings.
    let trace = |v: &Value| {
        v["steps"][0]["attempts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let bad = detail(&server, one("bad")["id"].as_str().expect("id")).await;
    assert_eq!(trace(&bad).len(), 1, "{bad}");
    let mapping = detail(&server, one("mapping")["id"].as_str().expect("id")).await;
    assert_eq!(trace(&mapping).len(), 1, "{mapping}");
    let down = detail(&server, one("down")["id"].as_str().expect("id")).await;
    let attempts = trace(&down);
    assert_eq!(attempts.len(), 4, "{down}");
    for (i, want) in [200, 400, 500].into_iter().enumerate() {
        let gap = ms(&attempts[i + 1]["startedAt"]) - ms(&attempts[i]["finishedAt"]);
        assert!(
            (want - 5..want + 1500).contains(&gap),
            "retry {} waited {gap} ms, the ladder says {want}",
            i + 1
        );
    }
    let hang = detail(&server, one("hang")["id"].as_str().expect("id")).await;
    let attempts = trace(&hang);
    assert_eq!(attempts.len(), 3, "{hang}");
    for a in &attempts {
        let d = a["durationMs"].as_i64().expect("durationMs");
        assert!((990..3000).contains(&d), "a 1000 ms attempt took {d} ms");
    }
    let arrivals = mock.arrivals("throttle");
    let waited = arrivals[1] - arrivals[0];
    assert!(
        waited >= Duration::from_millis(990),
        "Retry-After: 1 honoured, waited {waited:?}"
    );

    // The DLQ holds the four failures; fix the provider, replay each connector fault once.
    let (_, dlq) = server.get_json("/tenants/default/dlq").await;
    let items = dlq["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 4, "{dlq}");
    mock.fixed.store(true, Ordering::SeqCst);
    let before: HashMap<&str, usize> = ["bad", "down", "hang"]
        .into_iter()
        .map(|s| (s, mock.count(s)))
        .collect();
    for scenario in ["bad", "down", "hang"] {
        let exec = one(scenario)["id"].as_str().expect("id").to_owned();
        let item = items
            .iter()
            .find(|i| i["executionId"] == exec.as_str())
            .unwrap_or_else(|| panic!("{scenario} not in the DLQ: {dlq}"));
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
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, resolved) = server.get_json("/tenants/default/dlq?state=resolved").await;
        if resolved["items"].as_array().map_or(0, Vec::len) == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replays never resolved: {resolved}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (scenario, count) in before {
        assert_eq!(
            mock.count(scenario),
            count + 1,
            "{scenario}: the replay called the provider exactly once"
        );
    }
}
