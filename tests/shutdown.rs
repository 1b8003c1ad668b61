//! Graceful shutdown: SIGTERM stops the server promptly even while a client holds a request
//! open, and everything acknowledged before it is still there after a restart.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{Server, github_headers, send};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_stalled_client_exits_within_the_grace_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &["--shutdown-grace-secs", "1"]);
    let url = server.webhook("default", "github", "s").await;
    let body = serde_json::to_vec(&json!({"ref": "x"})).expect("json");
    let (s, ack) = send(
        &server.client,
        &url,
        &github_headers("s", &body, "push", "d-1"),
        &body,
    )
    .await;
    assert_eq!(s, 202);

    // A client that announces 100 bytes, sends 5 and goes quiet.
    let addr = server.base.trim_start_matches("http://").to_owned();
    let path = url.trim_start_matches(&server.base).to_owned();
    let mut stalled = TcpStream::connect(&addr).expect("connect");
    write!(
        stalled,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100\r\n\r\nhello"
    )
    .expect("write");
    std::thread::sleep(Duration::from_millis(200));

    let took = server
        .terminate(Duration::from_secs(15))
        .expect("the server exited after SIGTERM");
    assert!(took < Duration::from_secs(8), "shutdown took {took:?}");
    drop(stalled);

    let server = Server::start(dir.path());
    let (s, dup) = send(
        &server.client,
        &format!("{}{path}", server.base),
        &github_headers("s", &body, "push", "d-1"),
        &body,
    )
    .await;
    assert_eq!(s, 200, "the acknowledged delivery survived: {dup}");
    assert_eq!(dup["eventId"], ack["eventId"]);
}

/// Connections that never send a byte do not hold up a shutdown: the wait for their first
/// byte ends when the server stops, not at `--header-timeout` (set long here, with an even
/// longer grace period, so that only that can make the exit prompt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_silent_connections_exits_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(
        dir.path(),
        &["--shutdown-grace-secs", "60", "--header-timeout", "30s"],
    );
    let addr = server.base.trim_start_matches("http://").to_owned();
    let silent: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(&addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let took = server
        .terminate(Duration::from_secs(45))
        .expect("the server exited after SIGTERM");
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    drop(silent);
}

/// A connection still sending its request head has no request in progress: a shutdown does
/// not wait for it to finish (or for `--header-timeout`, set long here), over HTTP/1.1 or
/// HTTP/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_half_sent_heads_exits_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(
        dir.path(),
        &["--shutdown-grace-secs", "60", "--header-timeout", "30s"],
    );
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut half_h1 = TcpStream::connect(&addr).expect("connect");
    half_h1
        .write_all(b"POST /healthz HTTP/1.1\r\nHost: x\r\nX-Partial: ")
        .expect("write");
    let mut half_h2 = TcpStream::connect(&addr).expect("connect");
    half_h2
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .expect("write");
    std::thread::sleep(Duration::from_millis(300));
    let took = server
        .terminate(Duration::from_secs(45))
        .expect("the server exited after SIGTERM");
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    drop((half_h1, half_h2));
}
