//! The connection slots: at most `max_connections` connections at once, and when they are
//! all taken, the connection idle the longest is closed to make room for a new client.
//!
//! A connection is idle while it waits for the first bytes of a request: between requests
//! on keep-alive, or just accepted. One in the middle of reading a request, running its
//! handler or writing its response is busy, and never closed for room. So one client
//! holding every slot with idle connections no longer locks the others out; a new client
//! is refused (503) only when every slot is busy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use event_listener::{Event, EventListener};

/// A slot's state: busy, closed for room, or idle since this (ever-growing) stamp.
const BUSY: u64 = 0;
const EVICTED: u64 = u64::MAX;

/// The table of connections holding a slot.
#[derive(Debug)]
pub(crate) struct Slots {
    max: usize,
    table: Mutex<Table>,
    /// The next idle stamp: a larger stamp went idle later.
    stamps: AtomicU64,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    held: HashMap<u64, Arc<Slot>>,
}

/// One connection's slot.
#[derive(Debug)]
pub(crate) struct Slot {
    id: u64,
    state: AtomicU64,
    evicted: Event,
}

/// What [`Slots::admit`] decided.
pub(crate) enum Admit {
    /// A free slot.
    In(Arc<Slot>),
    /// A slot that an idle connection had: it is being closed.
    InAfterClosingIdle(Arc<Slot>),
    /// Every slot is busy.
    Full,
}

impl Slots {
    pub(crate) fn new(max: usize) -> Slots {
        Slots {
            max,
            table: Mutex::new(Table::default()),
            stamps: AtomicU64::new(1),
        }
    }

    /// Gives a new connection a slot, closing the oldest idle connection if none is free.
    /// The new connection starts idle (it has sent nothing yet).
    pub(crate) fn admit(&self) -> Admit {
        let mut table = self.table();
        let closed_idle = table.held.len() >= self.max;
        if closed_idle && !evict_oldest_idle(&mut table) {
            return Admit::Full;
        }
        let id = table.next_id;
        table.next_id += 1;
        let slot = Arc::new(Slot {
            id,
            state: AtomicU64::new(self.stamp()),
            evicted: Event::new(),
        });
        table.held.insert(id, slot.clone());
        match closed_idle {
            true => Admit::InAfterClosingIdle(slot),
            false => Admit::In(slot),
        }
    }

    /// Frees `slot` (its connection ended).
    pub(crate) fn release(&self, slot: &Slot) {
        self.table().held.remove(&slot.id);
    }

    /// Marks `slot` idle from now on.
    pub(crate) fn idle(&self, slot: &Slot) {
        // A slot closed for room stays closed.
        let _ = slot
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s != EVICTED).then(|| self.stamp())
            });
    }

    fn stamp(&self) -> u64 {
        self.stamps.fetch_add(1, Ordering::Relaxed)
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent at every step: a panic elsewhere cannot spoil it.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Slot {
    /// Marks the slot busy (a request is coming); false if it was closed for room.
    pub(crate) fn busy(&self) -> bool {
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s != EVICTED).then_some(BUSY)
            })
            .is_ok()
    }

    /// True once the slot was closed for room.
    pub(crate) fn is_evicted(&self) -> bool {
        self.state.load(Ordering::Acquire) == EVICTED
    }

    /// Wakes when the slot is closed for room: take it before the connection first waits,
    /// so no closing is missed.
    pub(crate) fn on_evicted(&self) -> EventListener {
        self.evicted.listen()
    }
}

/// Closes the slot idle the longest, if any: it leaves the table at once, and its
/// connection is woken to close.
fn evict_oldest_idle(table: &mut Table) -> bool {
    loop {
        let oldest = table
            .held
            .values()
            .map(|slot| (slot.state.load(Ordering::Acquire), slot))
            .filter(|(state, _)| *state != BUSY && *state != EVICTED)
            .min_by_key(|(state, _)| *state);
        let Some((stamp, slot)) = oldest else {
            return false;
        };
        let won = slot
            .state
            .compare_exchange(stamp, EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        // Else it has just turned busy (or idle again): look again.
        if won {
            let slot = slot.clone();
            table.held.remove(&slot.id);
            slot.evicted.notify(usize::MAX);
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slot_idle_the_longest_makes_room_and_busy_ones_never_do() {
        let slots = Slots::new(3);
        let take = |slots: &Slots| match slots.admit() {
            Admit::In(slot) => slot,
            _ => panic!("a free slot was expected"),
        };
        let (a, b, c) = (take(&slots), take(&slots), take(&slots));
        slots.idle(&a); // a went idle again after b and c
        let d = match slots.admit() {
            Admit::InAfterClosingIdle(d) => d,
            _ => panic!("b should have made room"),
        };
        assert!(b.is_evicted() && !b.busy(), "b stays closed");
        assert!(!a.is_evicted() && !c.is_evicted());

        assert!(a.busy() && c.busy() && d.busy());
        assert!(matches!(slots.admit(), Admit::Full), "every slot is busy");
        slots.release(&c);
        assert!(matches!(slots.admit(), Admit::In(_)), "a freed slot");
    }
}
