//! [`PriorityLanes`]: a tenant's four bounded queues (P1–P4) and the rule that serves them.
//!
//! **Rule: weighted round-robin with weights 8 : 4 : 2 : 1.** Service happens in rounds. In a
//! round each lane may be served up to its weight; every pick takes the highest-priority
//! non-empty lane that still has credit in the round. When no non-empty lane has credit left,
//! a new round starts. So:
//! - higher priority is served first: within a round P1 goes before P2, P2 before P3, …;
//! - no lane starves: while all four are busy, every round of 15 picks serves P1 8 times, P2
//!   4, P3 2 and P4 once, so P4 gets at least 1/15 of the service however deep P1–P3 are;
//! - an idle lane's share goes to the others (a round ends early when only exhausted lanes
//!   have work).
//!
//! Each lane is bounded: [`PriorityLanes::push`] refuses an item when its lane is full and
//! hands it back, so the caller decides (the tenant supervisor leaves it in storage).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Service weights of P1..P4.
pub const WEIGHTS: [u32; 4] = [8, 4, 2, 1];

/// Four bounded FIFO lanes served by weighted round-robin.
#[derive(Debug)]
pub struct PriorityLanes<T> {
    lanes: [VecDeque<(T, Instant)>; 4],
    credits: [u32; 4],
    capacity: usize,
}

/// Lane index (0..=3) of a priority 1..=4; anything else is treated as P4.
fn lane(priority: u8) -> usize {
    usize::from(priority.clamp(1, 4) - 1)
}

impl<T> PriorityLanes<T> {
    /// Empty lanes holding at most `capacity` items each.
    pub fn new(capacity: usize) -> Self {
        Self {
            lanes: Default::default(),
            credits: WEIGHTS,
            capacity: capacity.max(1),
        }
    }

    /// Queues `item` at `priority` (1 highest … 4 lowest).
    ///
    /// # Errors
    /// Gives the item back when its lane is full.
    pub fn push(&mut self, priority: u8, item: T) -> Result<(), T> {
        let q = &mut self.lanes[lane(priority)];
        if q.len() >= self.capacity {
            return Err(item);
        }
        q.push_back((item, Instant::now()));
        Ok(())
    }

    /// The next item by the weighted round-robin rule, with its priority and how long it
    /// waited.
    pub fn pop(&mut self) -> Option<(u8, T, Duration)> {
        if self.is_empty() {
            return None;
        }
        let pick = |lanes: &[VecDeque<(T, Instant)>; 4], credits: &[u32; 4]| {
            (0..4).find(|&i| !lanes[i].is_empty() && credits[i] > 0)
        };
        let i = match pick(&self.lanes, &self.credits) {
            Some(i) => i,
            None => {
                self.credits = WEIGHTS;
                pick(&self.lanes, &self.credits)?
            }
        };
        self.credits[i] -= 1;
        let (item, since) = self.lanes[i].pop_front()?;
        Some((i as u8 + 1, item, since.elapsed()))
    }

    /// Items waiting at `priority`.
    pub fn depth(&self, priority: u8) -> usize {
        self.lanes[lane(priority)].len()
    }

    /// Items waiting in all lanes.
    pub fn len(&self) -> usize {
        self.lanes.iter().map(VecDeque::len).sum()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.lanes.iter().all(VecDeque::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flooded() -> PriorityLanes<(u8, usize)> {
        let mut l = PriorityLanes::new(1000);
        for n in 0..200 {
            l.push(4, (4, n)).expect("room");
            l.push(3, (3, n)).expect("room");
        }
        for n in 0..20 {
            l.push(1, (1, n)).expect("room");
            l.push(2, (2, n)).expect("room");
        }
        l
    }

    #[test]
    fn higher_priorities_are_served_first() {
        let mut l = flooded();
        let order: Vec<u8> = std::iter::from_fn(|| l.pop().map(|(p, _, _)| p))
            .take(60)
            .collect();
        // P1 leads every round, P2 follows; both drain long before P3/P4 do.
        assert_eq!(order[0], 1);
        let last_p1 = order.iter().rposition(|&p| p == 1).expect("p1 served");
        let last_p2 = order.iter().rposition(|&p| p == 2).expect("p2 served");
        assert!(last_p1 < 45 && last_p2 < 60, "{order:?}");
        assert_eq!(order.iter().filter(|&&p| p == 1).count(), 20);
        assert_eq!(order.iter().filter(|&&p| p == 2).count(), 20);
    }

    #[test]
    fn lowest_lane_progresses_under_a_flood_of_higher_work() {
        let mut l = PriorityLanes::new(10_000);
        for n in 0..5000 {
            l.push(1, n).expect("room");
            l.push(2, n).expect("room");
            l.push(3, n).expect("room");
        }
        l.push(4, 0).expect("room");
        let served_p4_at = std::iter::from_fn(|| l.pop())
            .position(|(p, _, _)| p == 4)
            .expect("p4 served");
        assert!(served_p4_at < 15, "P4 waited {served_p4_at} picks");
    }

    #[test]
    fn shares_follow_the_weights_when_all_lanes_are_busy() {
        let mut l = PriorityLanes::new(10_000);
        for p in 1..=4 {
            for n in 0..1000 {
                l.push(p, n).expect("room");
            }
        }
        let mut served = [0usize; 4];
        for _ in 0..150 {
            let (p, _, _) = l.pop().expect("item");
            served[usize::from(p) - 1] += 1;
        }
        assert_eq!(served, [80, 40, 20, 10]);
    }

    #[test]
    fn lanes_are_bounded_and_fifo() {
        let mut l = PriorityLanes::new(2);
        l.push(2, "a").expect("room");
        l.push(2, "b").expect("room");
        assert_eq!(l.push(2, "c"), Err("c"));
        assert_eq!(l.push(9, "p4 by clamp"), Ok(()));
        assert_eq!(l.depth(2), 2);
        assert_eq!(l.pop().map(|(p, x, _)| (p, x)), Some((2, "a")));
        assert_eq!(l.pop().map(|(p, x, _)| (p, x)), Some((2, "b")));
        assert_eq!(l.pop().map(|(p, x, _)| (p, x)), Some((4, "p4 by clamp")));
        assert!(l.pop().is_none());
    }
}
