//! The outbox relay: reads committed outbox entries in sequence order and hands each to the
//! root supervisor (which forwards it to the tenant's supervisor).
//!
//! **Backpressure.** Every entry in flight holds a [`RelayPermit`]. A permit takes one slot
//! of a global pool (bounding memory) and one unit of credit of its *lane* — the (tenant,
//! priority) pair — bounding what one tenant may hold at each priority. The tenant releases
//! the permit once the executions the entry started are running (or at once when it started
//! none). When the global pool is empty the relay waits; when a lane is out of credit the
//! relay *defers* that lane — it keeps the entries it skips for it (in memory up to a global
//! byte budget, then only their sequences) and keeps reading other lanes' entries. When the
//! lane's credit frees, the relay catches up on it in order: held entries are sent as they
//! are, listed ones are read back one by one (past a global bound on listed sequences it
//! remembers only where the unlisted ones start and scans the outbox from there). So one
//! saturated tenant never stalls the others, a flood of P3/P4 work never holds back a
//! tenant's P1/P2 events (they reach the tenant's priority lanes, which serve them first),
//! and the outbox is the buffer.
//!
//! **Progress** is the outbox itself: a routed entry is deleted in the same batch that records
//! its executions, so after a restart the relay simply starts from the lowest sequence left.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use sluice_storage::{OutboxEntry, Store};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::root::RootMsg;

/// Entries read from storage per scan.
const SCAN_PAGE: usize = 256;
/// How often the relay looks at the outbox even without a commit notification.
const IDLE_TICK: Duration = Duration::from_millis(500);

/// (space id, tenant id, priority): the unit of relay credit.
pub type LaneKey = (String, String, u8);

/// Limits of the relay.
#[derive(Debug, Clone, Copy)]
pub struct RelayLimits {
    /// Entries in flight across all tenants.
    pub global: usize,
    /// Entries in flight for one tenant at one priority.
    pub per_lane: usize,
    /// Skipped sequences listed across all deferred lanes, 8 bytes each; past it a lane's
    /// catch-up scans the outbox from its first unlisted entry.
    /// [`RelayLimits::DEFAULT_MAX_LISTED`] is 2^20 (8 MiB).
    pub max_listed: usize,
    /// Bytes of skipped entries kept in memory across all deferred lanes (body, headers and
    /// ids, estimated); past it skipped entries are listed by sequence and read back from the
    /// outbox when their lane catches up.
    /// [`RelayLimits::DEFAULT_MAX_HELD_BYTES`] is 16 MiB.
    pub max_held_bytes: usize,
}

impl RelayLimits {
    /// Default of [`RelayLimits::max_listed`].
    pub const DEFAULT_MAX_LISTED: usize = 1 << 20;
    /// Default of [`RelayLimits::max_held_bytes`].
    pub const DEFAULT_MAX_HELD_BYTES: usize = 16 << 20;
}

/// One lane's credit: how many of its entries are in flight.
#[derive(Debug)]
struct TenantCredit {
    key: LaneKey,
    in_flight: AtomicUsize,
    /// Set when the relay skipped this lane for lack of credit; the release that clears it
    /// wakes the relay.
    waiting: AtomicBool,
    relay: ActorRef<RelayMsg>,
}

/// Held by an entry in flight between the relay and the start of its executions; dropping it
/// returns the global slot and the lane's credit.
#[derive(Debug)]
pub struct RelayPermit {
    _slot: OwnedSemaphorePermit,
    credit: Arc<TenantCredit>,
}

impl Drop for RelayPermit {
    fn drop(&mut self) {
        self.credit.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.credit.waiting.swap(false, Ordering::AcqRel) {
            let _ = self
                .credit
                .relay
                .cast(RelayMsg::LaneFreed(self.credit.key.clone()));
        }
    }
}

/// An outbox entry on its way to its tenant, with the permit it holds.
#[derive(Debug)]
pub struct Dispatched {
    /// The entry, as read from the outbox.
    pub entry: OutboxEntry,
    /// Held until the executions the entry starts are running.
    pub permit: RelayPermit,
    /// `true` when no relay of this process dispatched this sequence before. Such an entry
    /// cannot have been routed yet (routing deletes it in the commit that records its
    /// executions, and nothing else routes it), so its tenant skips the outbox read that
    /// guards against routing a copy twice. `false` after a rewind or a restarted relay
    /// re-read it: a copy sent earlier may still be on its way, and the tenant checks that the
    /// entry is still in the outbox first.
    pub first_dispatch: bool,
}

/// The highest outbox sequence any relay of this process has dispatched, kept by the root
/// supervisor across relay restarts (see [`Dispatched::first_dispatch`]).
pub type DispatchedThrough = Arc<AtomicU64>;

/// What the relay skipped for a lane out of credit, oldest first.
///
/// Catching up on a held entry costs nothing; on a listed one, one point read and a decode
/// (~5 % of the server's CPU when a quarter of entries were deferred at ingest saturation).
/// Without either the relay would scan the outbox from the first skipped entry to its
/// cursor, decoding every other lane's entries (and stepping over the tombstones of routed
/// ones) each time the lane's credit came back — a tenth of the server's CPU at 3 k
/// events/s over four tenants.
#[derive(Debug, Default)]
struct Deferred {
    /// Skipped entries, held or listed, ascending by sequence.
    skipped: VecDeque<Skipped>,
    /// The first skipped sequence not listed (the global bound was reached); every later
    /// entry of the lane below the cursor is unlisted too.
    unlisted_from: Option<u64>,
}

/// One entry a deferred lane skipped.
#[derive(Debug)]
enum Skipped {
    /// Kept in memory (counted in [`RelayState::held_bytes`]).
    Held(Box<OutboxEntry>),
    /// Only its sequence; read back from the outbox on catch-up.
    Listed(u64),
}

/// Outcome of offering an entry to its lane.
enum Offer {
    /// Buffered for its tenant with a permit.
    Sent,
    /// The lane is out of credit; the entry is handed back.
    NoCredit(Box<OutboxEntry>),
}

/// Estimated memory of a held entry, bytes: its body and headers, its ids, and the fixed
/// part of the record.
fn held_size(entry: &OutboxEntry) -> usize {
    let headers: usize = entry
        .headers
        .iter()
        .map(|(k, v)| k.len() + v.len() + 2 * std::mem::size_of::<String>())
        .sum();
    std::mem::size_of::<OutboxEntry>()
        + entry.body.len()
        + headers
        + entry.event_id.len()
        + entry.space_id.len()
        + entry.tenant_id.len()
        + entry.webhook_id.len()
        + entry.connector.len()
        + entry.idempotency_key.len()
        + entry.replay_of.as_ref().map_or(0, String::len)
}

/// Messages of the relay.
#[derive(Debug)]
pub enum RelayMsg {
    /// Read and dispatch whatever is committed past the cursor.
    Pump,
    /// A deferred lane has credit again: catch up on its skipped entries.
    LaneFreed(LaneKey),
    /// Start again from the beginning of the outbox (after a tenant supervisor died with
    /// entries in its mailbox).
    Rewind,
}

/// The relay actor; its arguments are `(store, root, limits, dispatched_through)`.
pub struct OutboxRelay;

/// The relay's state.
pub struct RelayState {
    store: Store,
    root: ActorRef<RootMsg>,
    myself: ActorRef<RelayMsg>,
    /// Every entry below this sequence was dispatched or deferred.
    cursor: u64,
    slots: Arc<Semaphore>,
    limits: RelayLimits,
    credits: HashMap<LaneKey, Arc<TenantCredit>>,
    /// Deferred lanes and what was skipped for each.
    deferred: HashMap<LaneKey, Deferred>,
    /// Sequences listed across `deferred` (bounded by `limits.max_listed`).
    listed: usize,
    /// Estimated bytes of entries held across `deferred` (bounded by
    /// `limits.max_held_bytes`).
    held_bytes: usize,
    /// Highest committed sequence already counted in `sluice_outbox_pending`.
    counted_head: u64,
    waker: JoinHandle<()>,
    /// Set while a `Pump` sits in the mailbox, so wake-ups coalesce into one message however
    /// many commits happen while the relay waits for slots.
    pump_queued: Arc<AtomicBool>,
    /// Entries granted a permit and not yet sent, in sequence order; sent per tenant in one
    /// message at the end of each page (so a tenant routes them in one commit).
    outgoing: Vec<Dispatched>,
    /// Shared with the relays started before and after this one.
    dispatched_through: DispatchedThrough,
}

impl Actor for OutboxRelay {
    type Msg = RelayMsg;
    type State = RelayState;
    type Arguments = (Store, ActorRef<RootMsg>, RelayLimits, DispatchedThrough);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (store, root, limits, dispatched_through): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut head = store.outbox_head();
        let counted_head = *head.borrow();
        metrics::gauge!("sluice_outbox_pending").set(store.outbox_count()? as f64);
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
            myself,
            cursor: 0,
            slots: Arc::new(Semaphore::new(limits.global.max(1))),
            limits,
            credits: HashMap::new(),
            deferred: HashMap::new(),
            listed: 0,
            held_bytes: 0,
            counted_head,
            waker,
            pump_queued,
            outgoing: Vec::new(),
            dispatched_through,
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
            RelayMsg::Rewind => {
                state.cursor = 0;
                state.deferred.clear();
                state.listed = 0;
                state.held_bytes = 0;
            }
            RelayMsg::LaneFreed(key) => state.catch_up(&key).await?,
            RelayMsg::Pump => {
                state.pump_queued.store(false, Ordering::Release);
                if state.store.write_failure().is_some() {
                    // Routing writes would only fail; the entries stay in the outbox for the
                    // restart that recovers the store.
                    return Ok(());
                }
                state.count_new_entries();
                // Lanes whose credit came back without a wake-up (a release that raced
                // with the deferral) are caught up here.
                let freed: Vec<LaneKey> = state
                    .deferred
                    .keys()
                    .filter(|k| state.has_credit(k))
                    .cloned()
                    .collect();
                for key in freed {
                    state.catch_up(&key).await?;
                }
                state.pump().await?;
            }
        }
        Ok(())
    }
}

fn lane_key(entry: &OutboxEntry) -> LaneKey {
    (
        entry.space_id.clone(),
        entry.tenant_id.clone(),
        entry.priority.clamp(1, 4),
    )
}

impl RelayState {
    /// Reads past the cursor and dispatches, skipping deferred lanes.
    async fn pump(&mut self) -> Result<(), ActorProcessingErr> {
        loop {
            let entries = self.store.outbox_from(self.cursor, SCAN_PAGE)?;
            let full = entries.len() == SCAN_PAGE;
            for entry in entries {
                self.cursor = entry.seq + 1;
                let key = lane_key(&entry);
                if self.deferred.contains_key(&key) {
                    self.skip(key, Box::new(entry));
                    continue;
                }
                if let Offer::NoCredit(entry) = self.offer(&key, entry).await? {
                    self.skip(key, entry);
                }
            }
            self.flush()?;
            if !full {
                return Ok(());
            }
        }
    }

    /// Records that `entry` of lane `key` was skipped (deferring the lane): held while the
    /// byte budget allows, else listed by sequence, else (both bounds reached) the lane
    /// remembers where its unlisted entries start.
    fn skip(&mut self, key: LaneKey, entry: Box<OutboxEntry>) {
        let lane = self.deferred.entry(key).or_default();
        if lane.unlisted_from.is_some() {
            return;
        }
        let size = held_size(&entry);
        if self.held_bytes + size <= self.limits.max_held_bytes {
            self.held_bytes += size;
            lane.skipped.push_back(Skipped::Held(entry));
        } else if self.listed < self.limits.max_listed {
            lane.skipped.push_back(Skipped::Listed(entry.seq));
            self.listed += 1;
        } else {
            lane.unlisted_from = Some(entry.seq);
        }
    }

    /// Dispatches a deferred lane's skipped entries, in order, until it runs out of credit
    /// again (the lane stays deferred with what is left) or has none left.
    async fn catch_up(&mut self, key: &LaneKey) -> Result<(), ActorProcessingErr> {
        let Some(mut lane) = self.deferred.remove(key) else {
            return Ok(());
        };
        let result = self.catch_up_lane(key, &mut lane).await;
        if !lane.skipped.is_empty() || lane.unlisted_from.is_some() {
            self.deferred.insert(key.clone(), lane);
        }
        self.flush()?;
        result
    }

    async fn catch_up_lane(
        &mut self,
        key: &LaneKey,
        lane: &mut Deferred,
    ) -> Result<(), ActorProcessingErr> {
        while let Some(skipped) = lane.skipped.pop_front() {
            match skipped {
                Skipped::Held(entry) => {
                    self.held_bytes -= held_size(&entry);
                    if let Offer::NoCredit(entry) = self.offer(key, *entry).await? {
                        self.held_bytes += held_size(&entry);
                        lane.skipped.push_front(Skipped::Held(entry));
                        return Ok(());
                    }
                }
                Skipped::Listed(seq) => {
                    self.listed -= 1;
                    metrics::counter!("sluice_relay_reads_back_total").increment(1);
                    // Listed entries are routed only through this list, so one is absent
                    // only if the outbox lost it some other way; there is nothing to send
                    // then.
                    let Some(entry) = self.store.outbox_entry(seq)? else {
                        continue;
                    };
                    if let Offer::NoCredit(_) = self.offer(key, entry).await? {
                        lane.skipped.push_front(Skipped::Listed(seq));
                        self.listed += 1;
                        return Ok(());
                    }
                }
            }
        }
        let Some(mut from) = lane.unlisted_from.take() else {
            return Ok(());
        };
        while from < self.cursor {
            let entries = self.store.outbox_from(from, SCAN_PAGE)?;
            if entries.is_empty() {
                return Ok(());
            }
            for entry in entries {
                if entry.seq >= self.cursor {
                    return Ok(());
                }
                from = entry.seq + 1;
                if &lane_key(&entry) != key {
                    continue;
                }
                if let Offer::NoCredit(entry) = self.offer(key, entry).await? {
                    lane.unlisted_from = Some(entry.seq);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn credit(&mut self, key: &LaneKey) -> Arc<TenantCredit> {
        self.credits
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(TenantCredit {
                    key: key.clone(),
                    in_flight: AtomicUsize::new(0),
                    waiting: AtomicBool::new(false),
                    relay: self.myself.clone(),
                })
            })
            .clone()
    }

    fn has_credit(&self, key: &LaneKey) -> bool {
        self.credits
            .get(key)
            .is_none_or(|c| c.in_flight.load(Ordering::Acquire) < self.limits.per_lane)
    }

    /// Buffers `entry` for its tenant if its lane has credit (waiting for a global slot if
    /// needed); otherwise marks the lane as waiting for credit and hands the entry back.
    async fn offer(
        &mut self,
        key: &LaneKey,
        entry: OutboxEntry,
    ) -> Result<Offer, ActorProcessingErr> {
        let credit = self.credit(key);
        if credit.in_flight.load(Ordering::Acquire) >= self.limits.per_lane {
            credit.waiting.store(true, Ordering::Release);
            // Re-check: a release between the load and the store would not have woken us.
            if credit.in_flight.load(Ordering::Acquire) >= self.limits.per_lane {
                metrics::counter!("sluice_relay_deferrals_total").increment(1);
                return Ok(Offer::NoCredit(Box::new(entry)));
            }
            credit.waiting.store(false, Ordering::Release);
        }
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                // Send what is buffered first: its permits are what will free a slot.
                self.flush()?;
                self.slots.clone().acquire_owned().await?
            }
        };
        credit.in_flight.fetch_add(1, Ordering::AcqRel);
        let permit = RelayPermit {
            _slot: slot,
            credit,
        };
        let first_dispatch = entry.seq
            > self
                .dispatched_through
                .fetch_max(entry.seq, Ordering::Relaxed);
        self.outgoing.push(Dispatched {
            entry,
            permit,
            first_dispatch,
        });
        Ok(Offer::Sent)
    }

    /// Sends the buffered entries, one message per tenant, each in sequence order.
    fn flush(&mut self) -> Result<(), ActorProcessingErr> {
        let mut by_tenant: Vec<((String, String), Vec<Dispatched>)> = Vec::new();
        for dispatched in self.outgoing.drain(..) {
            let tenant = (
                dispatched.entry.space_id.clone(),
                dispatched.entry.tenant_id.clone(),
            );
            match by_tenant.iter_mut().find(|(t, _)| *t == tenant) {
                Some((_, batch)) => batch.push(dispatched),
                None => by_tenant.push((tenant, vec![dispatched])),
            }
        }
        for (_, batch) in by_tenant {
            self.root.cast(RootMsg::Route(batch))?;
        }
        Ok(())
    }

    /// Adds newly committed entries to `sluice_outbox_pending` (tenants subtract routed ones).
    fn count_new_entries(&mut self) {
        let head = *self.store.outbox_head().borrow();
        if head > self.counted_head {
            metrics::gauge!("sluice_outbox_pending").increment((head - self.counted_head) as f64);
            self.counted_head = head;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ractor::{Actor, ActorProcessingErr, ActorRef};
    use sluice_storage::{Store, StoreOptions};
    use tokio::sync::mpsc;

    use super::{DispatchedThrough, OutboxRelay, RelayLimits, RelayMsg};
    use crate::pipeline::submit::{Submission, submit};
    use crate::runtime::root::RootMsg;

    /// Stands in for the root supervisor: reports (sequence, first dispatch) of every entry
    /// the relay sends, and drops its permit at once.
    struct Collector;

    impl Actor for Collector {
        type Msg = RootMsg;
        type State = mpsc::UnboundedSender<(u64, bool)>;
        type Arguments = mpsc::UnboundedSender<(u64, bool)>;

        async fn pre_start(
            &self,
            _myself: ActorRef<Self::Msg>,
            tx: Self::Arguments,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(tx)
        }

        async fn handle(
            &self,
            _myself: ActorRef<Self::Msg>,
            message: Self::Msg,
            tx: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            if let RootMsg::Route(batch) = message {
                for d in batch {
                    let _ = tx.send((d.entry.seq, d.first_dispatch));
                }
            }
            Ok(())
        }
    }

    async fn send(store: &Store, n: u32) {
        submit(
            store,
            Submission {
                space_id: "sp".into(),
                tenant_id: "t".into(),
                source: "app".into(),
                event: "e".into(),
                payload: format!("{{\"n\":{n}}}").into_bytes(),
                priority: 2,
                idempotency_key: Some(n.to_string()),
                lineage: Default::default(),
            },
        )
        .await
        .expect("submit");
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<(u64, bool)>, count: usize) -> Vec<(u64, bool)> {
        let mut got = Vec::new();
        while got.len() < count {
            let item = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("the relay sent nothing")
                .expect("collector stopped");
            got.push(item);
        }
        got
    }

    /// Entries are marked as first dispatched exactly once per process: a rewind and a
    /// restarted relay send them again marked as possibly routed, so their tenant checks the
    /// outbox before routing; a new entry after that is a first dispatch again.
    #[tokio::test]
    async fn only_the_first_dispatch_of_a_sequence_skips_the_outbox_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
        for n in 0..3 {
            send(&store, n).await;
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (root, _) = Actor::spawn(None, Collector, tx).await.expect("collector");
        let through = DispatchedThrough::default();
        let limits = RelayLimits {
            global: 64,
            per_lane: 64,
            max_listed: RelayLimits::DEFAULT_MAX_LISTED,
            max_held_bytes: RelayLimits::DEFAULT_MAX_HELD_BYTES,
        };
        let spawn = |through: DispatchedThrough| {
            Actor::spawn(
                None,
                OutboxRelay,
                (store.clone(), root.clone(), limits, through),
            )
        };

        let (relay, handle) = spawn(through.clone()).await.expect("relay");
        assert_eq!(next(&mut rx, 3).await, [(1, true), (2, true), (3, true)]);
        relay.cast(RelayMsg::Rewind).expect("rewind");
        relay.cast(RelayMsg::Pump).expect("pump");
        assert_eq!(next(&mut rx, 3).await, [(1, false), (2, false), (3, false)]);
        relay.stop(None);
        handle.await.expect("relay stopped");

        // A restarted relay (same process) starts from the beginning of the outbox again.
        let (relay, handle) = spawn(through.clone()).await.expect("relay again");
        assert_eq!(next(&mut rx, 3).await, [(1, false), (2, false), (3, false)]);
        send(&store, 3).await;
        assert_eq!(next(&mut rx, 1).await, [(4, true)]);
        relay.stop(None);
        handle.await.expect("relay stopped");

        // A new process has nothing in flight: everything left is a first dispatch.
        let (relay, handle) = spawn(DispatchedThrough::default()).await.expect("relay");
        assert_eq!(next(&mut rx, 4).await.iter().filter(|(_, f)| *f).count(), 4);
        relay.stop(None);
        handle.await.expect("relay stopped");
    }
}
