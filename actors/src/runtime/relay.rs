//! The outbox relay: reads committed outbox entries in sequence order and hands each to the
//! root supervisor (which forwards it to the tenant's supervisor).
//!
//! Backpressure: every entry in flight holds a [`RelayPermit`] from a fixed pool; the permit
//! is released when the tenant has durably routed the entry (or dropped with a dead mailbox).
//! When the pool is empty the relay stops reading, and the outbox is the buffer: memory stays
//! bounded however fast webhooks arrive.
//!
//! Progress is the outbox itself: a routed entry is deleted in the same batch that records its
//! executions, so after a restart the relay simply starts from the lowest sequence left.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use sluice_storage::Store;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::root::RootMsg;

/// Held by an entry in flight between the relay and its tenant; dropping it frees a slot.
pub type RelayPermit = OwnedSemaphorePermit;

/// Entries read from storage per scan.
const SCAN_PAGE: usize = 256;
/// How often the relay looks at the outbox even without a commit notification.
const IDLE_TICK: Duration = Duration::from_millis(500);

/// Messages of the relay.
#[derive(Debug)]
pub enum RelayMsg {
    /// Read and dispatch whatever is committed past the cursor.
    Pump,
    /// Start again from the beginning of the outbox (after a tenant supervisor died with
    /// entries in its mailbox).
    Rewind,
}

/// The relay actor; its arguments are `(store, root, max_in_flight)`.
pub struct OutboxRelay;

/// The relay's state.
pub struct RelayState {
    store: Store,
    root: ActorRef<RootMsg>,
    cursor: u64,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    waker: JoinHandle<()>,
    /// Set while a `Pump` sits in the mailbox, so wake-ups coalesce into one message however
    /// many commits happen while the relay waits for permits.
    pump_queued: Arc<AtomicBool>,
}

impl Actor for OutboxRelay {
    type Msg = RelayMsg;
    type State = RelayState;
    type Arguments = (Store, ActorRef<RootMsg>, usize);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (store, root, max_in_flight): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut head = store.outbox_head();
        let me = myself.clone();
        let pump_queued = Arc::new(AtomicBool::new(true));
        let queued = pump_queued.clone();
        let waker = tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = head.changed() => if changed.is_err() { break },
                    () = tokio::time::sleep(IDLE_TICK) => {}
                }
                if !queued.swap(true, Ordering::AcqRel) && me.cast(RelayMsg::Pump).is_err() {
                    break;
                }
            }
        });
        myself.cast(RelayMsg::Pump)?;
        Ok(RelayState {
            store,
            root,
            cursor: 0,
            permits: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            waker,
            pump_queued,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.waker.abort();
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RelayMsg::Rewind => state.cursor = 0,
            RelayMsg::Pump => loop {
                state.pump_queued.store(false, Ordering::Release);
                let entries = state.store.outbox_from(state.cursor, SCAN_PAGE)?;
                let full = entries.len() == SCAN_PAGE;
                for entry in entries {
                    let permit = state.permits.clone().acquire_owned().await?;
                    state.cursor = entry.seq + 1;
                    state.root.cast(RootMsg::Route(Box::new(entry), permit))?;
                }
                report_pending(state);
                if !full {
                    break;
                }
            },
        }
        Ok(())
    }
}

/// `sluice_outbox_pending`: entries committed but not yet routed (unread + in flight).
fn report_pending(state: &RelayState) {
    let head = *state.store.outbox_head().borrow();
    let unread = (head + 1).saturating_sub(state.cursor.max(1));
    let in_flight = state
        .max_in_flight
        .saturating_sub(state.permits.available_permits());
    metrics::gauge!("sluice_outbox_pending").set((unread as usize + in_flight) as f64);
}
