//! HTTP/2 in cleartext with prior knowledge (what a reverse proxy or a gRPC-style client in
//! front of Sluice may speak) reaches the same handlers, with the same limits and the same
//! error shape as HTTP/1.1. hyper's own HTTP/2 limits sit above Sluice's, so a head between
//! the two is answered by Sluice, in JSON, and a head under Sluice's limit is served.

mod common;

use common::{Server, assert_error_shape, closed_within, github_headers};
use reqwest::Version;
use serde_json::Value;

const SECRET: &str = "h2-secret";
const BODY_LIMIT: usize = 64 * 1024;

/// POSTs `body` over `client` with the GitHub signature headers for `delivery` plus `extra`
/// headers; returns (HTTP version, status, JSON answer).
async fn post(
    client: &reqwest::Client,
    url: &str,
    delivery: &str,
    body: &[u8],
    extra: &[(String, String)],
) -> (Version, u16, Value) {
    let mut req = client.post(url).body(body.to_vec());
    for (k, v) in github_headers(SECRET, body, "push", delivery)
        .iter()
        .chain(extra)
    {
        req = req.header(k.as_str(), v.as_str());
    }
    let r = req.send().await.expect("send over HTTP/2");
    let version = r.version();
    let status = r.status().as_u16();
    (version, status, r.json().await.unwrap_or(Value::Null))
}

/// `count` filler headers of `value_bytes` each.
fn filler(count: usize, value_bytes: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| (format!("x-filler-{i}"), "v".repeat(value_bytes)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_get_the_same_answers_and_limits_as_http1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(
        dir.path(),
        &["--max-webhook-bytes", &BODY_LIMIT.to_string()],
    );
    server.tenant("h2").await;
    let url = server.webhook("h2", "github", SECRET).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let body = br#"{"ref":"refs/heads/main","after":"abc","repository":{"id":1}}"#;

    // Accepted, then recognized as a repeat: the same answers as over HTTP/1.1.
    let (version, s, first) = post(&h2, &url, "d-1", body, &[]).await;
    assert_eq!(version, Version::HTTP_2, "the server must speak HTTP/2");
    assert_eq!(s, 202, "{first}");
    assert_eq!(first["duplicate"], false);
    let (_, s, again) = post(&h2, &url, "d-1", body, &[]).await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["eventId"], first["eventId"]);

    // 40 KiB of headers: over hyper's 16 KiB default for HTTP/2 header lists, under Sluice's
    // 64 KiB limit, so it is served.
    let (_, s, v) = post(&h2, &url, "d-2", body, &filler(40, 1024)).await;
    assert_eq!(
        s, 202,
        "a head under Sluice's limit is served over HTTP/2: {v}"
    );

    // Over Sluice's limits (bytes, then fields): its own 431 in the error shape.
    let (_, s, v) = post(&h2, &url, "d-3", body, &filler(80, 1024)).await;
    assert_eq!(s, 431, "{v}");
    assert_error_shape(431, &v);
    let (_, s, v) = post(&h2, &url, "d-4", body, &filler(120, 4)).await;
    assert_eq!(s, 431, "{v}");
    assert_error_shape(431, &v);

    // A bad signature and an oversized body: the documented codes in the error shape.
    let mut tampered = github_headers(SECRET, body, "push", "d-5");
    for (k, v) in &mut tampered {
        if k == "X-Hub-Signature-256" {
            *v = format!("sha256={}", "0".repeat(64));
        }
    }
    let mut req = h2.post(&url).body(body.to_vec());
    for (k, v) in &tampered {
        req = req.header(k.as_str(), v.as_str());
    }
    let r = req.send().await.expect("send");
    let s = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(s, 401, "{v}");
    assert_error_shape(401, &v);
    let huge = vec![b' '; BODY_LIMIT + 1];
    let (_, s, v) = post(&h2, &url, "d-6", &huge, &[]).await;
    assert_eq!(s, 413, "{v}");
    assert_error_shape(413, &v);

    // The management API over HTTP/2: the two accepted deliveries are the tenant's events,
    // and nothing refused was stored.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = h2
            .get(format!("{}/api/v1/tenants/h2/events?limit=50", server.base))
            .header("x-fastn-api-key", common::ADMIN_KEY)
            .header("x-fastn-space-id", common::SPACE)
            .send()
            .await
            .expect("list events");
        assert_eq!(r.version(), Version::HTTP_2);
        assert_eq!(r.status(), 200);
        let events: Value = r.json().await.expect("events JSON");
        let n = events["events"].as_array().map_or(0, Vec::len);
        if n == 2 {
            break;
        }
        assert!(n < 2, "a refused request was stored: {events}");
        assert!(
            std::time::Instant::now() < deadline,
            "the accepted deliveries were not routed: {events}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Slowloris over HTTP/2: clients that send the connection preface and then nothing, or
/// start a header block and never finish it, are closed once `--header-timeout` has passed
/// with no request in progress (hyper's own header timer covers HTTP/1 only), so they cannot
/// hold every connection slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_or_unfinished_http2_connections_are_closed() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(
        dir.path(),
        &["--header-timeout", "1s", "--max-connections", "2"],
    );
    let addr = server.base.trim_start_matches("http://").to_owned();
    // RFC 9113 §3.4: the client preface, then an empty SETTINGS frame (length 0, type 0x4).
    let preface: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    let mut silent = std::net::TcpStream::connect(&addr).expect("connect");
    silent.write_all(preface).expect("preface");
    // A HEADERS frame on stream 1 without END_HEADERS (flags 0): a header block that is
    // never finished (its CONTINUATION never comes).
    let mut unfinished = std::net::TcpStream::connect(&addr).expect("connect");
    unfinished.write_all(preface).expect("preface");
    unfinished
        .write_all(b"\x00\x00\x01\x01\x00\x00\x00\x00\x01\x82")
        .expect("headers");
    let limit = std::time::Duration::from_secs(6);
    let (a, b) = tokio::task::spawn_blocking(move || {
        let a = std::thread::spawn(move || closed_within(silent, false, limit));
        let b = closed_within(unfinished, false, limit);
        (a.join().expect("join"), b)
    })
    .await
    .expect("join");
    let a = a.expect("a silent HTTP/2 connection stayed open");
    let b = b.expect("an unfinished HTTP/2 header block kept its connection open");
    assert!(
        a >= std::time::Duration::from_millis(800),
        "closed too early: {a:?}"
    );
    assert!(
        b >= std::time::Duration::from_millis(800),
        "closed too early: {b:?}"
    );

    // The slots are free again: a real HTTP/2 client is served.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("client");
    let r = h2
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("served after the slowloris connections were closed");
    assert_eq!(r.status(), 200);
}
