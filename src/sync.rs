//! The small waits the rest of the crate shares, on `event-listener`: [`Latch`] (a flag set
//! once that tasks wait for), [`WaitGroup`] (a count of runs in flight that a stop waits to
//! see at zero) and [`wait_until`], the "check, listen, check again, wait" loop both are
//! built on.
//!
//! Each replaces a hand-written "flag or counter + `Event` + loop": the loop is easy to get
//! subtly wrong (a listener taken after the check misses a wake-up), so it is written once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use event_listener::Event;

/// Completes once `done()` holds; `event` must be notified after each change that can make
/// it hold. The listener is taken before the second check, so a change between the check
/// and the wait is never missed.
pub(crate) async fn wait_until(event: &Event, mut done: impl FnMut() -> bool) {
    loop {
        if done() {
            return;
        }
        let listener = event.listen();
        if done() {
            return;
        }
        listener.await;
    }
}

/// A flag that is set once and stays set; every task waiting for it, before or after, goes
/// on. Used for "the server is closing" and "the client is closed".
#[derive(Debug, Default)]
pub(crate) struct Latch {
    set: AtomicBool,
    event: Event,
}

impl Latch {
    /// Sets the latch and wakes every waiter; true if this call set it.
    pub(crate) fn set(&self) -> bool {
        if self.set.swap(true, SeqCst) {
            return false;
        }
        self.event.notify(usize::MAX);
        true
    }

    /// True once [`set`](Latch::set).
    pub(crate) fn is_set(&self) -> bool {
        self.set.load(SeqCst)
    }

    /// Completes once the latch is set (at once if it is).
    pub(crate) async fn wait(&self) {
        wait_until(&self.event, || self.is_set()).await;
    }
}

/// Counts runs in flight (handlers, connections), so that a stop can wait until none is
/// left. Cheap to clone: the clones share the count.
#[derive(Clone, Debug, Default)]
pub(crate) struct WaitGroup(Arc<Group>);

#[derive(Debug, Default)]
struct Group {
    count: AtomicUsize,
    zero: Event,
}

/// One run counted by a [`WaitGroup`], until it is dropped (also when its task unwinds).
#[derive(Debug)]
pub(crate) struct WaitGuard(Arc<Group>);

impl WaitGroup {
    /// Counts one more run, until the returned guard is dropped.
    pub(crate) fn enter(&self) -> WaitGuard {
        self.0.count.fetch_add(1, SeqCst);
        WaitGuard(self.0.clone())
    }

    /// How many runs are in flight.
    pub(crate) fn count(&self) -> usize {
        self.0.count.load(SeqCst)
    }

    /// Completes once no run is in flight (at once if none is). A run that enters later
    /// is not waited for.
    pub(crate) async fn wait(&self) {
        wait_until(&self.0.zero, || self.count() == 0).await;
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, SeqCst) == 1 {
            self.0.zero.notify(usize::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smol::future::{block_on, poll_once};
    use std::pin::pin;
    use std::task::{Context, Poll, Wake, Waker};

    /// A waker that records whether it was woken.
    #[derive(Default)]
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, SeqCst);
        }
    }

    /// Polls `fut` once with a waker that sets `flag`: true if it is ready.
    fn poll<F: std::future::Future>(fut: std::pin::Pin<&mut F>, flag: &Arc<Flag>) -> bool {
        let waker = Waker::from(flag.clone());
        matches!(fut.poll(&mut Context::from_waker(&waker)), Poll::Ready(_))
    }

    #[test]
    fn a_latch_wakes_who_waits_and_lets_through_who_comes_after() {
        let latch = Latch::default();
        let flag = Arc::new(Flag::default());
        let mut waiting = pin!(latch.wait());
        assert!(!poll(waiting.as_mut(), &flag), "not set yet");
        assert!(!flag.0.load(SeqCst));

        assert!(latch.set(), "the first set sets it");
        assert!(flag.0.load(SeqCst), "the waiter was woken");
        assert!(poll(waiting.as_mut(), &flag), "and goes on");

        assert!(!latch.set(), "a second set changes nothing");
        assert!(latch.is_set());
        assert!(
            block_on(poll_once(latch.wait())).is_some(),
            "a late waiter goes on at once"
        );
    }

    #[test]
    fn a_wait_group_waits_for_the_last_guard() {
        let group = WaitGroup::default();
        assert!(
            block_on(poll_once(group.wait())).is_some(),
            "nothing in flight"
        );

        let (a, b) = (group.enter(), group.clone().enter());
        assert_eq!(group.count(), 2);
        let flag = Arc::new(Flag::default());
        let mut waiting = pin!(group.wait());
        assert!(!poll(waiting.as_mut(), &flag));

        drop(a);
        assert!(!flag.0.load(SeqCst), "one still runs: no wake-up");
        assert!(!poll(waiting.as_mut(), &flag));

        drop(b);
        assert!(flag.0.load(SeqCst), "the last one out wakes the waiter");
        assert!(poll(waiting.as_mut(), &flag));
        assert_eq!(group.count(), 0);
    }

    #[test]
    fn a_guard_dropped_by_an_unwinding_run_still_counts_down() {
        let group = WaitGroup::default();
        let entered = group.clone();
        let run = std::thread::spawn(move || {
            let _guard = entered.enter();
            panic!("the run fails");
        });
        assert!(run.join().is_err());
        assert_eq!(group.count(), 0);
        assert!(block_on(poll_once(group.wait())).is_some());
    }

    #[test]
    fn wait_until_sees_a_change_made_between_its_check_and_its_wait() {
        let event = Event::new();
        let done = AtomicBool::new(false);
        let flag = Arc::new(Flag::default());
        let mut first = true;
        let waiting = pin!(wait_until(&event, || {
            if std::mem::take(&mut first) {
                // Another task changes the state and notifies right after this first
                // check, before any listener exists: the notification reaches no one.
                done.store(true, SeqCst);
                event.notify(usize::MAX);
                return false;
            }
            done.load(SeqCst)
        }));
        assert!(
            poll(waiting, &flag),
            "the check after listening sees the change"
        );
    }
}
