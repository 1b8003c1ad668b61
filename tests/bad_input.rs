//! Bad input (T8): hostile and malformed bodies at the webhook receipt and the management API.
//! No crash; a refused request gets a documented 4xx in the API's error shape
//! (`{"code", "statusCode", "message"}`) and writes nothing; an over-limit body is refused
//! after reading at most the limit plus a small margin; a slow client is cut by the request
//! timeout. A *verified* webhook body that is not usable JSON is acknowledged (the provider
//! proved it sent it) and then dead-lettered with the reason; usable JSON runs, and numbers
//! reach the flow's provider exactly as sent. Payloads nest at most 127 levels (the JSON
//! parser's limit, the same at every place a payload is read back): 128 and deeper are
//! dead-lettered.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Server, Sink, assert_error_shape, closed_within, github_headers, send};
use serde_json::{Value, json};

const SECRET: &str = "bad-input-secret";
const LIMIT: usize = 64 * 1024;

async fn deliver(server: &Server, url: &str, id: &str, body: &[u8]) -> (u16, Value) {
    send(
        &server.client,
        url,
        &github_headers(SECRET, body, "push", id),
        body,
    )
    .await
}

/// Counts of what the tenant has: routed events, DLQ items, executions.
async fn written(server: &Server) -> (usize, usize, usize) {
    let (_, events) = server.get_json("/tenants/default/events?limit=500").await;
    let (_, dlq) = server.get_json("/tenants/default/dlq?limit=500").await;
    (
        events["events"].as_array().map_or(0, Vec::len),
        dlq["items"].as_array().map_or(0, Vec::len),
        server.executions("default").await.len(),
    )
}

/// A raw HTTP/1.1 exchange: sends `head`, then `body` in `chunk`-sized writes `pace` apart,
/// stopping when the server answers; returns (status, JSON body, bytes of body written).
fn raw(addr: &str, head: &str, body: &[u8], chunk: usize, pace: Duration) -> (u16, Value, usize) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.write_all(head.as_bytes()).expect("head");
    s.set_read_timeout(Some(pace.max(Duration::from_millis(1))))
        .expect("timeout");
    let mut answer = Vec::new();
    let mut sent = 0;
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if sent < body.len() {
            let end = (sent + chunk).min(body.len());
            if s.write_all(&body[sent..end]).is_err() {
                break;
            }
            sent = end;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if complete(&answer) {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        assert!(Instant::now() < deadline, "no answer");
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = text
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json, sent)
}

/// True once a response with a Content-Length body has fully arrived.
fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    body.len() >= len
}

fn chunked(body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(piece) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn nested(depth: usize) -> Vec<u8> {
    let mut s = String::from("{\"v\":");
    s.push_str(&"[".repeat(depth - 1));
    s.push_str(&"]".repeat(depth - 1));
    s.push('}');
    s.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_webhook_bodies_are_dead_lettered_and_good_ones_kept_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    let server = Server::start_with(dir.path(), &["--max-webhook-bytes", &LIMIT.to_string()]);
    let url = server.webhook("default", "github", SECRET).await;
    server
        .live_flow(
            "default",
            &json!({
                "name": "forward",
                "trigger": {"type": "event", "source": "github", "event": "push"},
                "steps": [{"name": "post", "type": "action", "connector": "http", "action": "request",
                           "input": {"method": "POST", "url": sink.url,
                                     "body": {"case": "{{trigger.case}}", "v": "{{trigger.v}}"}}}]
            }),
        )
        .await;

    // Verified, not usable JSON: acknowledged, then dead-lettered with the reason.
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        (
            "truncated",
            b"{\"case\": \"truncated\", \"v\": [1, 2".to_vec(),
        ),
        (
            "invalid-utf8",
            b"{\"case\": \"\xff\xfe\", \"v\": 1}".to_vec(),
        ),
        (
            "lone-surrogate",
            br#"{"case": "lone-surrogate", "v": "\ud800"}"#.to_vec(),
        ),
        ("depth-128", nested(128)),
        ("depth-129", nested(129)),
        ("depth-10000", nested(10_000)),
    ];
    for (name, body) in &poison {
        let (s, v) = deliver(&server, &url, name, body).await;
        assert_eq!(s, 202, "{name}: {v}");
    }

    // Usable JSON runs; what the provider receives is checked below.
    let big53 = "9007199254740993"; // 2^53 + 1
    let big64 = "18446744073709551617"; // 2^64 + 1
    let good: Vec<(&str, String)> = vec![
        ("bom", "\u{feff}{\"case\": \"bom\", \"v\": 1}".to_string()),
        (
            "duplicate-keys",
            r#"{"case": "duplicate-keys", "v": 1, "v": 2}"#.into(),
        ),
        (
            "above-2^53",
            format!(r#"{{"case": "above-2^53", "v": {big53}}}"#),
        ),
        (
            "above-2^64",
            format!(r#"{{"case": "above-2^64", "v": {big64}}}"#),
        ),
        (
            "negative-big",
            format!(r#"{{"case": "negative-big", "v": -{big64}}}"#),
        ),
        ("1e400", r#"{"case": "1e400", "v": 1e400}"#.into()),
        ("nul", r#"{"case": "nul", "v": "a\u0000b"}"#.into()),
        (
            "depth-10",
            String::from_utf8(nested(10))
                .expect("utf8")
                .replace("{\"v\":", "{\"case\": \"depth-10\", \"v\":"),
        ),
        (
            "depth-127",
            String::from_utf8(nested(127))
                .expect("utf8")
                .replace("{\"v\":", "{\"case\": \"depth-127\", \"v\":"),
        ),
    ];
    for (name, body) in &good {
        let (s, v) = deliver(&server, &url, name, body.as_bytes()).await;
        assert_eq!(s, 202, "{name}: {v}");
    }

    // At the limit − 1: accepted.
    let mut at_limit = br#"{"case": "limit-1", "v": 1, "pad": ""#.to_vec();
    at_limit.resize(LIMIT - 3, b'x');
    at_limit.extend_from_slice(b"\"}");
    assert_eq!(at_limit.len(), LIMIT - 1);
    let (s, v) = deliver(&server, &url, "limit-1", &at_limit).await;
    assert_eq!(s, 202, "{v}");

    server
        .wait_executions("default", 30, |e| {
            e.len() == good.len() + 1 && e.iter().all(|x| x["status"] == "completed")
        })
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let items = loop {
        let (_, dlq) = server.get_json("/tenants/default/dlq?limit=100").await;
        let items = dlq["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= poison.len() {
            break items;
        }
        assert!(Instant::now() < deadline, "poison not dead-lettered: {dlq}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(items.len(), poison.len(), "{items:#?}");
    for item in &items {
        assert_eq!(item["kind"], "event");
        let error = item["error"].as_str().unwrap_or("");
        assert!(error.contains("JSON"), "the reason is named: {item}");
    }
    let invalid = items
        .iter()
        .find(|i| i["payloadEncoding"] == "base64")
        .expect("the invalid UTF-8 payload is kept byte for byte (base64)");
    assert!(invalid["payload"].is_string());

    // What the provider received: numbers exact, text exact.
    let received = sink.received();
    let of = |case: &str| -> Value {
        received
            .iter()
            .find(|r| r.body["case"] == case)
            .unwrap_or_else(|| panic!("{case} never reached the provider"))
            .body["v"]
            .clone()
    };
    assert_eq!(of("bom"), json!(1));
    assert_eq!(
        of("duplicate-keys"),
        json!(2),
        "the last duplicate key wins"
    );
    assert_eq!(of("above-2^53").to_string(), big53);
    assert_eq!(of("above-2^64").to_string(), big64, "2^64 + 1 kept exact");
    assert_eq!(of("negative-big").to_string(), format!("-{big64}"));
    let huge = of("1e400");
    assert!(huge.is_number(), "{huge}");
    assert_eq!(
        huge.to_string().replace('+', ""),
        "1e400",
        "an out-of-range number kept"
    );
    assert_eq!(of("nul"), json!("a\u{0}b"));
    assert_eq!(
        of("depth-10"),
        serde_json::from_slice::<Value>(&nested(10)).expect("json")["v"]
    );
    assert!(of("depth-127").is_array());
    assert!(received.iter().any(|r| r.body["case"] == "limit-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_write_nothing_and_read_little() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(
        dir.path(),
        &[
            "--max-webhook-bytes",
            &LIMIT.to_string(),
            "--request-timeout",
            "2s",
        ],
    );
    let url = server.webhook("default", "github", SECRET).await;
    let path = url.strip_prefix(&server.base).expect("path").to_owned();
    let addr = server
        .base
        .strip_prefix("http://")
        .expect("addr")
        .to_owned();
    let before = written(&server).await;

    // Over the limit by one, and a hundred times over: 413 in the error shape.
    for size in [LIMIT + 1, LIMIT * 100] {
        let body = vec![b'x'; size];
        let (s, v) = deliver(&server, &url, &format!("big-{size}"), &body).await;
        assert_eq!(s, 413, "{size}: {v}");
        assert_error_shape(413, &v);
    }

    // A bad signature: 401.
    let (s, v) = send(
        &server.client,
        &url,
        &github_headers("wrong", b"{}", "push", "forged"),
        b"{}",
    )
    .await;
    assert_eq!(s, 401);
    assert_error_shape(401, &v);

    // Chunked, no length, over the limit: 413, answered after reading little past the limit.
    // The client writes 16 KiB every 20 ms and stops at the answer; the server cannot have
    // read more than the client wrote.
    let addr2 = addr.clone();
    let path2 = path.clone();
    let (s, v, sent) = tokio::task::spawn_blocking(move || {
        let body = chunked(&vec![b'x'; LIMIT * 100], 16 * 1024);
        raw(
            &addr2,
            &format!(
                "POST {path2} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 X-GitHub-Event: push\r\nX-GitHub-Delivery: chunked-big\r\n\
                 X-Hub-Signature-256: sha256=00\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            &body,
            16 * 1024,
            Duration::from_millis(20),
        )
    })
    .await
    .expect("join");
    assert_eq!(s, 413, "{v}");
    assert_error_shape(413, &v);
    let margin = 256 * 1024;
    assert!(
        sent <= LIMIT + margin,
        "answered only after {sent} bytes were sent (limit {LIMIT})"
    );

    // Declared over the limit: refused before the body is read at all.
    let addr3 = addr.clone();
    let path3 = path.clone();
    let (s, v, sent) = tokio::task::spawn_blocking(move || {
        raw(
            &addr3,
            &format!(
                "POST {path3} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
                 X-GitHub-Event: push\r\nX-GitHub-Delivery: declared-big\r\n\
                 X-Hub-Signature-256: sha256=00\r\n\r\n",
                LIMIT * 100
            ),
            &vec![b'x'; LIMIT * 100],
            16 * 1024,
            Duration::from_millis(20),
        )
    })
    .await
    .expect("join");
    assert_eq!(s, 413, "{v}");
    assert!(sent <= LIMIT + margin, "answered after {sent} bytes");

    // A slow drip: one byte every 300 ms is cut by the 2 s request timeout with 408.
    let addr4 = addr.clone();
    let path4 = path.clone();
    let clock = Instant::now();
    let (s, v, _) = tokio::task::spawn_blocking(move || {
        raw(
            &addr4,
            &format!(
                "POST {path4} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\
                 X-GitHub-Event: push\r\nX-GitHub-Delivery: drip\r\n\
                 X-Hub-Signature-256: sha256=00\r\n\r\n"
            ),
            &[b' '; 100],
            1,
            Duration::from_millis(300),
        )
    })
    .await
    .expect("join");
    assert_eq!(s, 408, "{v}");
    assert_error_shape(408, &v);
    assert!(
        clock.elapsed() < Duration::from_secs(10),
        "{:?}",
        clock.elapsed()
    );

    // A chunked body with no length under the limit is an ordinary delivery.
    let head_path = path.clone();
    let body = br#"{"ok": true}"#;
    let sig = github_headers(SECRET, body, "push", "chunked-ok")
        .into_iter()
        .find(|(k, _)| k == "X-Hub-Signature-256")
        .expect("sig")
        .1;
    let addr5 = addr.clone();
    let (s, v, _) = tokio::task::spawn_blocking(move || {
        raw(
            &addr5,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n\
                 X-GitHub-Delivery: chunked-ok\r\nX-Hub-Signature-256: {sig}\r\n\
                 Transfer-Encoding: chunked\r\n\r\n"
            ),
            &chunked(body, 5),
            1024,
            Duration::from_millis(5),
        )
    })
    .await
    .expect("join");
    assert_eq!(s, 202, "{v}");

    // An oversized head, between our limits and hyper's: 431 or 414 in the error shape, and
    // nothing stored even though the delivery is correctly signed.
    let sig = github_headers(SECRET, body, "push", "many-headers")
        .into_iter()
        .find(|(k, _)| k == "X-Hub-Signature-256")
        .expect("sig")
        .1;
    let extra: String = (0..150).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
    let head = format!(
        "POST {head_path} HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n\
         X-GitHub-Delivery: many-headers\r\nX-Hub-Signature-256: {sig}\r\n{extra}\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let long_target = format!("{head_path}?pad={}", "p".repeat(9 * 1024));
    let long_head = format!(
        "POST {long_target} HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n\
         X-GitHub-Delivery: long-target\r\nX-Hub-Signature-256: {sig}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    for (head, status) in [(head, 431), (long_head, 414)] {
        let addr6 = addr.clone();
        let (s, v, _) = tokio::task::spawn_blocking(move || {
            raw(&addr6, &head, body, 1024, Duration::from_millis(5))
        })
        .await
        .expect("join");
        assert_eq!(s, status, "{v}");
        assert_error_shape(status, &v);
    }

    // Nothing but the one good delivery was written (no flow: it is an event, no execution).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = written(&server).await;
    assert_eq!(after.1, before.1, "no DLQ item from a refused request");
    assert_eq!(after.2, before.2, "no execution from a refused request");
    assert!(after.0 <= before.0 + 1, "events: {before:?} → {after:?}");
    let (_, events) = server.get_json("/tenants/default/events?limit=500").await;
    for e in events["events"].as_array().into_iter().flatten() {
        assert_eq!(e["source"], "github");
    }

    // The server is still healthy.
    assert_eq!(server.health().await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_management_bodies_get_400_in_the_error_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated", b"{\"id\": \"a".to_vec()),
        ("invalid-utf8", b"{\"id\": \"\xff\"}".to_vec()),
        ("lone-surrogate", br#"{"id": "\udc00"}"#.to_vec()),
        ("depth-10000", nested(10_000)),
        ("1e400", br#"{"id": 1e400}"#.to_vec()),
    ];
    for (name, body) in cases {
        let r = server
            .api(reqwest::Method::POST, "/tenants")
            .body(body)
            .send()
            .await
            .expect("post");
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 400, "{name}: {v}");
        assert_error_shape(400, &v);
    }
    let (_, tenants) = server.get_json("/tenants").await;
    let n = tenants
        .as_array()
        .or(tenants["tenants"].as_array())
        .map_or(0, Vec::len);
    assert_eq!(n, 1, "only the default tenant: {tenants}");
}

/// Slowloris on the request head: connections that never finish their headers, trickle them
/// a byte at a time, or never send a byte are closed after the header timeout, and with every
/// connection slot taken by such clients a new client waits for a slot instead of the server
/// running out of file descriptors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_request_heads_are_closed_and_connections_are_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(
        dir.path(),
        &["--header-timeout", "1s", "--max-connections", "3"],
    );
    let addr = server
        .base
        .strip_prefix("http://")
        .expect("addr")
        .to_owned();
    let mut stalled: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .expect("partial head");
            s
        })
        .collect();
    // And one that connects and says nothing at all.
    stalled.push(TcpStream::connect(&addr).expect("connect"));
    // Both slots are taken: a third client is served only once the timeout frees one.
    let clock = Instant::now();
    let answer = server
        .client
        .get(format!("{}/healthz", server.base))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("served after a stalled connection was closed");
    assert_eq!(answer.status(), 200);
    assert!(
        clock.elapsed() >= Duration::from_millis(500),
        "served at once: the cap did not hold ({:?})",
        clock.elapsed()
    );
    for (i, s) in stalled.into_iter().enumerate() {
        let closed =
            tokio::task::spawn_blocking(move || closed_within(s, i == 1, Duration::from_secs(10)))
                .await
                .expect("join");
        assert!(closed.is_some(), "stalled connection {i} was never closed");
    }
}
