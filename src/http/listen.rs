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
//! - **Idle connections.** A connection with no request in progress for `header_timeout` is
//!   asked to close (HTTP/2: a GOAWAY), and dropped if it still has none after another
//!   `header_timeout`. hyper's header timer covers HTTP/1 only; without this an HTTP/2 client
//!   that sends its preface and then nothing, or trickles a header block in CONTINUATION
//!   frames, would hold a connection slot for ever.
//!
//! Shutdown: when `shutdown` completes the listener is dropped (no new connections), every
//! open connection is asked to finish its current request and close (hyper's graceful
//! shutdown), and a connection with no request in progress is closed at once (one still
//! sending its head has not started a request); the caller bounds how long the rest may take.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

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

/// Serves one connection, holding `slot` until it ends.
async fn connection(
    stream: TcpStream,
    service: TowerToHyperService<Router>,
    builder: auto::Builder<TokioExecutor>,
    header_timeout: Duration,
    mut stopping: watch::Receiver<bool>,
    slot: OwnedSemaphorePermit,
) {
    // hyper-util reads the first bytes to tell HTTP/1 from HTTP/2 before hyper's header
    // timer starts, with no timer of its own: a client that connects and stays silent would
    // hold its slot forever (and, at shutdown, hold up the wait until the timeout).
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
        let state = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (state.0 == 0).then(|| state.1.elapsed())
    }

    fn begin(self: &Arc<Self>) -> InProgress {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0 += 1;
        InProgress(self.clone())
    }
}

/// One request in progress; ends when dropped (its response has been produced).
struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        let mut state = self
            .0
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
