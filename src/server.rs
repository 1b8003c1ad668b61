//! Start-up and shutdown wiring: open the store, bootstrap, start the actors, resume unfinished
//! executions, serve HTTP until SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ractor::Actor;
use sluice_actors::connector::ActionInvoker;
use sluice_actors::engine::Engine;
use sluice_actors::runtime::{RelayLimits, RootArgs, RootMsg, RootSupervisor};
use sluice_actors::sync::SyncRunner;
use sluice_storage::{Durability, Store, StoreOptions};

use crate::cli::ServeArgs;
use crate::connectors::{ConnectorInvoker, NetPolicy, Vault};
use crate::http::{self, AppParts, AppState};
use crate::{bootstrap, housekeeping, observability};

/// Outbox entries in flight between the relay and all tenants.
const RELAY_IN_FLIGHT: usize = 1024;
/// Capacity of each of a tenant's four priority lanes.
const LANE_CAPACITY: usize = 4096;

/// Runs the server until a shutdown signal.
///
/// # Errors
/// Start-up failures: the data directory, the listen address, the metrics recorder.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let metrics = observability::install_metrics()?;
    observability::spawn_upkeep(metrics.clone());
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;
    let options = StoreOptions {
        durability: if args.unsafe_buffered_writes {
            Durability::Buffered
        } else {
            Durability::Fsync
        },
        memtable_bytes: args.memtable_bytes,
        ..StoreOptions::default()
    };
    let store = Store::open(&args.data_dir, options)
        .with_context(|| format!("opening data directory {}", args.data_dir.display()))?;
    // Bind before writing anything, so a start that cannot listen leaves the directory as it
    // found it.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    bootstrap::ensure(&store).await?;

    let vault = Arc::new(Vault::open(&args.data_dir).context("opening the master key")?);
    let policy = NetPolicy {
        allow_private: args.allow_private_networks,
    };
    let own_calls = crate::own_calls::OwnCalls::default();
    let slot_free_counts = sluice_actors::runtime::slot_free::SlotFreeCounts::default();
    let connector_invoker = Arc::new(ConnectorInvoker::new(
        store.clone(),
        vault.clone(),
        policy,
        own_calls.clone(),
    )?);
    let oauth_http = connector_invoker.client();
    let invoker: Arc<dyn ActionInvoker> = connector_invoker;
    let engine = Arc::new(Engine::new(store.clone(), invoker.clone()));
    let sync = SyncRunner::new(store.clone(), invoker.clone(), engine.id_maps().clone());
    let (root, root_handle) = Actor::spawn(
        Some("sluice-root".into()),
        RootSupervisor,
        RootArgs {
            store: store.clone(),
            engine: engine.clone(),
            tenant_concurrency: args.tenant_concurrency,
            lane_capacity: LANE_CAPACITY,
            tenant_idle_after: Duration::from_secs(args.tenant_idle_secs.max(1)),
            slot_free_counts: slot_free_counts.clone(),
            relay: RelayLimits {
                global: RELAY_IN_FLIGHT,
                per_lane: args.tenant_in_flight.max(1),
                max_listed: RelayLimits::DEFAULT_MAX_LISTED,
                max_held_bytes: RelayLimits::DEFAULT_MAX_HELD_BYTES,
            },
        },
    )
    .await
    .context("starting the root supervisor")?;
    let unfinished = store.unfinished_executions()?;
    if !unfinished.is_empty() {
        tracing::info!(count = unfinished.len(), "resuming unfinished executions");
    }
    for exec in &unfinished {
        root.cast(RootMsg::run(exec))?;
    }
    metrics::gauge!("sluice_dlq_depth").set(store.dlq_open_count()? as f64);
    let timers = tokio::spawn(sluice_actors::runtime::timers::run(
        store.clone(),
        root.clone(),
        engine.timer_wakeups(),
    ));
    let scheduler = tokio::spawn(sluice_actors::runtime::scheduler::run(store.clone()));
    let poller = tokio::spawn(sluice_actors::runtime::poller::run(store.clone(), invoker));
    let pruner = tokio::spawn(housekeeping::prune_dedup(
        store.clone(),
        args.dedup_window(),
    ));
    let retention = tokio::spawn(housekeeping::prune_history(store.clone(), args.retention));

    let state = AppState::new(AppParts {
        admin_writes: tokio::sync::Mutex::new(()),
        store,
        root: root.clone(),
        engine,
        metrics,
        max_webhook_bytes: args.max_webhook_bytes,
        vault,
        sync,
        oauth_http,
        loop_budget: sluice_actors::pipeline::hops::CorrelationBudget::new(args.loop_budget),
        own_calls,
        slot_free_counts,
        slot_free_bound: sluice_actors::runtime::slot_free::tenant_bound(args.tenant_concurrency),
        keyed_executes: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
    });
    let local = listener.local_addr()?;
    tracing::info!(%local, data_dir = %args.data_dir.display(), "sluice listening");
    println!("Listening on http://{local}");
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let server = http::listen::serve(
        listener,
        http::router(state, args.request_timeout),
        http::listen::ListenLimits {
            header_timeout: args.header_timeout,
            max_connections: args.max_connections,
        },
        async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested: no new connections");
            let _ = stopping_tx.send(true);
        },
    );
    let grace_period = Duration::from_secs(args.shutdown_grace_secs);
    let grace = async move {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(grace_period).await;
    };
    tokio::select! {
        () = server => {}
        () = grace => tracing::warn!("requests still open after the shutdown grace period; closing them"),
    }

    pruner.abort();
    retention.abort();
    timers.abort();
    scheduler.abort();
    poller.abort();
    tracing::info!("shutting down: stopping actors");
    root.stop(Some("shutdown".into()));
    // Executions still running are journaled step by step and resume at the next start.
    let _ = tokio::time::timeout(Duration::from_secs(10), root_handle).await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
