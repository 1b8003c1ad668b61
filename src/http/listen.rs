//! The accept loop: one hyper connection per TCP stream, serving the router.
//!
//! It replaces `axum::serve` for guards that function lacks:
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
//! - **Idle connections** are closed after `header_timeout` over HTTP/2 too, where hyper has no
//!   header timer ([`super::connection`]).
//!
//! Shutdown: when `shutdown` completes the listener is dropped (no new connections) and each
//! connection is closed as [`super::connection`] describes; the caller bounds how long that
//! may take.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::connection::connection;

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
    // Tells connections that the server is stopping.
    let (stopping_tx, stopping) = watch::channel(false);
    let max_connections = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max_connections));
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
        tokio::spawn(connection(
            stream,
            TowerToHyperService::new(router.clone()),
            builder.clone(),
            limits.header_timeout,
            stopping.clone(),
            slot,
        ));
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    // Every connection holds a slot until it ends.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}
