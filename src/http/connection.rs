//! One HTTP connection, from its first byte to its end.
//!
//! - **First byte.** hyper-util reads the first bytes to tell HTTP/1 from HTTP/2 before
//!   hyper's header timer starts, with no timer of its own, so a client that connects and
//!   stays silent is dropped after `header_timeout` here.
//! - **Idle connections.** A connection with no request in progress for `header_timeout` is
//!   asked to close (HTTP/2: a GOAWAY), and dropped if it still has none after another
//!   `header_timeout`. hyper's header timer covers HTTP/1 only; without this an HTTP/2 client
//!   that sends its preface and then nothing, or never finishes a header block (RFC 9113
//!   §6.10: CONTINUATION frames), would hold a connection slot for ever.
//! - **Shutdown.** When the server stops, the connection is asked to finish its current
//!   request and close (hyper's graceful shutdown), and is closed at once if it has no request
//!   in progress: one still sending its head has not started a request.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};

/// Serves one connection, holding `slot` (its place under the connection cap) until it ends.
pub(super) async fn connection(
    stream: TcpStream,
    service: TowerToHyperService<Router>,
    builder: auto::Builder<TokioExecutor>,
    header_timeout: Duration,
    mut stopping: watch::Receiver<bool>,
    slot: OwnedSemaphorePermit,
) {
    let mut first = [0u8; 1];
    let spoke = tokio::select! {
        spoke = tokio::time::timeout(header_timeout, stream.peek(&mut first)) => spoke,
        _ = stopping.wait_for(|s| *s) => return,
    };
    if !matches!(spoke, Ok(Ok(n)) if n > 0) {
        return;
    }
    let activity = Arc::new(Activity::new());
    let service = Tracked {
        inner: service,
        activity: activity.clone(),
    };
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut closing = false;
    // When a closing connection is dropped if it has no request in progress by then.
    let mut cut_at: Option<Instant> = None;
    loop {
        let until_idle = match activity.idle_for() {
            Some(idle) => header_timeout.saturating_sub(idle),
            None => header_timeout,
        };
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::trace!(%error, "connection ended with an error");
                }
                break;
            }
            _ = stopping.wait_for(|s| *s), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
                cut_at = Some(Instant::now());
            }
            () = tokio::time::sleep(until_idle), if !closing => {
                if activity.idle_for().is_some_and(|idle| idle >= header_timeout) {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                    cut_at = Some(Instant::now() + header_timeout);
                }
            }
            () = sleep_until(cut_at), if cut_at.is_some() => {
                if activity.idle_for().is_some() {
                    break;
                }
                // A request is still being answered: it ends the connection when done (it
                // is bounded by the router's request timeout).
                cut_at = None;
            }
        }
    }
    drop(slot);
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

/// Requests of one connection in progress, and when the last one ended (or the connection
/// opened).
struct Activity(Mutex<(usize, Instant)>);

impl Activity {
    fn new() -> Self {
        Self(Mutex::new((0, Instant::now())))
    }

    /// How long the connection has had no request in progress; `None` while it has one.
    fn idle_for(&self) -> Option<Duration> {
        let state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (state.0 == 0).then(|| state.1.elapsed())
    }

    fn begin(self: &Arc<Self>) -> InProgress {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).0 += 1;
        InProgress(self.clone())
    }
}

/// One request in progress; ends when dropped (its response has been produced).
struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        let mut state = self.0.0.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 = state.0.saturating_sub(1);
        state.1 = Instant::now();
    }
}

/// The router, counting the requests of its connection in progress.
#[derive(Clone)]
struct Tracked {
    inner: TowerToHyperService<Router>,
    activity: Arc<Activity>,
}

impl<B> hyper::service::Service<hyper::Request<B>> for Tracked
where
    TowerToHyperService<Router>: hyper::service::Service<hyper::Request<B>>,
    <TowerToHyperService<Router> as hyper::service::Service<hyper::Request<B>>>::Future:
        Send + 'static,
{
    type Response =
        <TowerToHyperService<Router> as hyper::service::Service<hyper::Request<B>>>::Response;
    type Error = <TowerToHyperService<Router> as hyper::service::Service<hyper::Request<B>>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, request: hyper::Request<B>) -> Self::Future {
        let in_progress = self.activity.begin();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(in_progress);
            response
        })
    }
}
