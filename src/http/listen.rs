//! The accept loop: one hyper connection per TCP stream, serving the router.
//!
//! It replaces `axum::serve` for two guards that function lacks:
//! - **Header read timeout.** A client must send a request's complete head (request line and
//!   headers) within `header_timeout` of starting it, or the connection is closed; so is a
//!   new connection that sends nothing for that long, and a keep-alive connection idle for
//!   that long. Without a timer hyper never enforces one, so clients that open connections
//!   and trickle (or never finish, or never start) their headers — slowloris — hold a socket
//!   each until the process runs out of file descriptors and stops accepting anyone. (Slow
//!   *bodies* are cut by the router's request timeout with 408.)
//! - **Connection cap.** At most `max_connections` connections are served at once; past that
//!   the loop stops accepting and new clients wait in the kernel's backlog instead of the
//!   process failing `accept` with `EMFILE`.
//!
//! Shutdown: when `shutdown` completes the listener is dropped (no new connections) and every
//! open connection is asked to finish its current request and close (hyper-util's graceful
//! shutdown); the caller bounds how long that may take.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Limits of the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ListenLimits {
    /// Longest time a client may take to send one request's head.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` completes, then waits for open connections
/// to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ListenLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // Above the router's own limit, so that its JSON 431 answers first.
        .max_headers(super::head_limits::HYPER_MAX_HEADERS);
    builder
        .http2()
        .max_header_list_size(super::head_limits::HYPER_MAX_HEADER_LIST_BYTES);
    let graceful = GracefulShutdown::new();
    // Tells connections still waiting for their first byte that the server is stopping.
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // EMFILE/ENFILE and the like: back off instead of spinning on the error.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let first_byte_within = limits.header_timeout;
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            // hyper-util reads the first bytes to tell HTTP/1 from HTTP/2 before hyper's
            // header timer starts, with no timer of its own: a client that connects and
            // stays silent would hold its slot forever (and, at shutdown, hold up the
            // graceful wait until the timeout).
            let mut first = [0u8; 1];
            let spoke = tokio::select! {
                spoke = tokio::time::timeout(first_byte_within, stream.peek(&mut first)) => spoke,
                _ = stopping.wait_for(|s| *s) => {
                    drop(slot);
                    return;
                }
            };
            if !matches!(spoke, Ok(Ok(n)) if n > 0) {
                drop(slot);
                return;
            }
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::trace!(%error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    graceful.shutdown().await;
}
