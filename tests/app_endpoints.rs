//! Per-endpoint settings against a real nats-server (issue #11, "Tests also missing
//! today"): an endpoint's `queue` / `no_queue` over the app's queue group, its
//! `max_concurrency` over the app's, and `subscribe_new_subject_queue` at run time.
//!
//! Each test is written to fail if its feature were broken; the comment above each says how.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::app::RunningApp;
use common::{run, within, NatsServer};
use panini::client::{self, Client};
use panini::{App, Msg};
use smol::future::FutureExt;

/// How long a test waits for something that must happen.
const BOUND: Duration = Duration::from_secs(5);

/// How long a test gives a broken implementation to show itself when it checks that
/// something does *not* happen (a correct one passes whatever this is).
const GRACE: Duration = Duration::from_millis(300);

/// Who handled what: (instance, subject, payload), in the order handled.
type Seen = Arc<Mutex<Vec<(usize, String, String)>>>;

/// A handler recording into `seen` as instance `i` and announcing each message on `tick`.
fn recorder(
    seen: &Seen,
    i: usize,
    tick: &smol::channel::Sender<()>,
) -> impl Fn(Msg<String>) -> std::future::Ready<()> + Clone + Send + Sync + 'static {
    let (seen, tick) = (seen.clone(), tick.clone());
    move |msg: Msg<String>| {
        seen.lock().unwrap().push((i, msg.subject, msg.data));
        let _ = tick.try_send(());
        std::future::ready(())
    }
}

/// Waits for `n` ticks, naming `what` if they do not come.
async fn ticks(rx: &smol::channel::Receiver<()>, n: usize, what: &str) {
    within(BOUND, what, async {
        for _ in 0..n {
            rx.recv().await.unwrap();
        }
    })
    .await;
}

/// The payloads handled on `subject`, sorted, per instance.
fn handled_on(seen: &Seen, subject: &str) -> BTreeMap<usize, Vec<u32>> {
    let mut by: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    for (i, s, data) in seen.lock().unwrap().iter() {
        if s == subject {
            by.entry(*i).or_default().push(data.parse().unwrap());
        }
    }
    by.values_mut().for_each(|v| v.sort_unstable());
    by
}

/// Every payload handled on `subject` by any instance, sorted.
fn all_handled_on(seen: &Seen, subject: &str) -> Vec<u32> {
    let mut all: Vec<u32> = handled_on(seen, subject).into_values().flatten().collect();
    all.sort_unstable();
    all
}

async fn publish_numbers(c: &Client, subject: &str, n: u32) {
    for k in 0..n {
        c.publish(subject, k.to_string()).await.unwrap();
    }
    c.flush().await.unwrap();
}

const N: u32 = 40;

/// `.queue("g")` on an endpoint puts every instance's endpoint in group `g`, whatever the
/// app-wide group: one instance has none, the other has "other". If `.queue` were ignored
/// the first would subscribe plainly and the second in "other", and each message would be
/// handled twice.
#[test]
fn an_endpoint_queue_overrides_the_app_group_so_each_message_is_handled_once() {
    let server = NatsServer::start();
    run(async {
        let seen: Seen = Default::default();
        let (tick, ticked) = smol::channel::unbounded();
        let mut instances = Vec::new();
        for (i, group) in [None, Some("other")].into_iter().enumerate() {
            let mut app = App::new("q");
            if let Some(group) = group {
                app = app.allocation_queue_group(group);
            }
            app.listen("q.jobs", recorder(&seen, i, &tick)).queue("g");
            instances.push(RunningApp::start(app, &server).await);
        }
        let c = client::connect(server.url()).await.unwrap();
        publish_numbers(&c, "q.jobs", N).await;
        ticks(&ticked, N as usize, "every job handled").await;
        // The stop drains: whatever the server sent is handled before it returns, so a
        // second delivery of any job would be counted now.
        for app in instances {
            app.stop().await.unwrap();
        }
        assert_eq!(
            all_handled_on(&seen, "q.jobs"),
            (0..N).collect::<Vec<_>>(),
            "each job handled exactly once"
        );
        let by = handled_on(&seen, "q.jobs");
        assert_eq!(by.len(), 2, "both instances took a share: {by:?}");
    });
}

/// `.no_queue()` subscribes an endpoint plainly even when the app has a queue group: two
/// instances both get every message on it, while their other endpoint (no override) shares
/// its messages in the app's group. If `.no_queue` were ignored, the two would split the
/// events and the first wait would time out.
#[test]
fn no_queue_on_an_endpoint_gives_every_instance_every_message_despite_the_app_group() {
    let server = NatsServer::start();
    run(async {
        let seen: Seen = Default::default();
        let (tick, ticked) = smol::channel::unbounded();
        let mut instances = Vec::new();
        for i in 0..2 {
            let mut app = App::new("nq").allocation_queue_group("workers");
            app.listen("nq.events", recorder(&seen, i, &tick))
                .no_queue();
            app.listen("nq.jobs", recorder(&seen, i, &tick));
            instances.push(RunningApp::start(app, &server).await);
        }
        let c = client::connect(server.url()).await.unwrap();
        publish_numbers(&c, "nq.events", N).await;
        ticks(&ticked, 2 * N as usize, "every event handled by both").await;
        let all: Vec<u32> = (0..N).collect();
        let by = handled_on(&seen, "nq.events");
        assert_eq!(by.get(&0), Some(&all), "instance 0 got every event");
        assert_eq!(by.get(&1), Some(&all), "instance 1 got every event");

        publish_numbers(&c, "nq.jobs", N).await;
        ticks(&ticked, N as usize, "every job handled").await;
        for app in instances {
            app.stop().await.unwrap();
        }
        assert_eq!(
            all_handled_on(&seen, "nq.jobs"),
            all,
            "the app's group still applies where no_queue was not asked"
        );
    });
}

/// Handlers that hold until released, counting how many run at once.
#[derive(Clone)]
struct Gate {
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    started: (
        smol::channel::Sender<String>,
        smol::channel::Receiver<String>,
    ),
    release: (smol::channel::Sender<()>, smol::channel::Receiver<()>),
    done: (smol::channel::Sender<()>, smol::channel::Receiver<()>),
}

impl Gate {
    fn new() -> Self {
        Gate {
            running: Default::default(),
            most: Default::default(),
            started: smol::channel::unbounded(),
            release: smol::channel::unbounded(),
            done: smol::channel::unbounded(),
        }
    }

    /// The handler: its body counts itself in, says it started, waits for a release.
    fn handler(
        &self,
    ) -> impl Fn(Msg<String>) -> smol::future::Boxed<()> + Clone + Send + Sync + 'static {
        let gate = self.clone();
        move |msg: Msg<String>| {
            let gate = gate.clone();
            Box::pin(async move {
                let now = gate.running.fetch_add(1, Ordering::SeqCst) + 1;
                gate.most.fetch_max(now, Ordering::SeqCst);
                gate.started.0.send(msg.data).await.unwrap();
                gate.release.1.recv().await.unwrap();
                gate.running.fetch_sub(1, Ordering::SeqCst);
                gate.done.0.send(()).await.unwrap();
            })
        }
    }

    /// Waits for `n` handler bodies to start.
    async fn wait_started(&self, n: usize, what: &str) {
        within(BOUND, what, async {
            for _ in 0..n {
                self.started.1.recv().await.unwrap();
            }
        })
        .await;
    }

    /// A handler body that starts within [`GRACE`], if any.
    async fn another_start(&self) -> Option<String> {
        async { self.started.1.recv().await.ok() }
            .or(async {
                smol::Timer::after(GRACE).await;
                None
            })
            .await
    }

    /// Releases `n` handlers and waits until `n` have finished.
    async fn finish(&self, n: usize) {
        for _ in 0..n {
            self.release.0.send(()).await.unwrap();
        }
        within(BOUND, "the released handlers to finish", async {
            for _ in 0..n {
                self.done.1.recv().await.unwrap();
            }
        })
        .await;
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

/// An endpoint's `.max_concurrency(3)` wins over the app's `max_concurrency(1)`: three
/// handlers held at once all start. If the endpoint's setting were ignored, at most one (or
/// two, with the n+1 bug) would start and the wait would time out.
#[test]
fn an_endpoint_max_concurrency_overrides_the_apps() {
    let server = NatsServer::start();
    run(async {
        let gate = Gate::new();
        let mut app = App::new("mc").max_concurrency(1);
        app.listen("mc.wide", gate.handler()).max_concurrency(3);
        let running = RunningApp::start(app, &server).await;
        let c = client::connect(server.url()).await.unwrap();
        publish_numbers(&c, "mc.wide", 3).await;
        gate.wait_started(3, "three handlers running at once").await;
        assert_eq!(gate.most(), 3);
        gate.finish(3).await;
        running.stop().await.unwrap();
    });
}

/// `.max_concurrency(n)` lets exactly `n` handler bodies run at once: with `n + 1`
/// messages waiting, `n` start, the next one does not start until one of them finishes.
async fn max_concurrency_caps_handlers_at(n: usize) {
    let server = NatsServer::start();
    let gate = Gate::new();
    let mut app = App::new("mc").max_concurrency(64);
    app.listen("mc.capped", gate.handler()).max_concurrency(n);
    let running = RunningApp::start(app, &server).await;
    let c = client::connect(server.url()).await.unwrap();
    publish_numbers(&c, "mc.capped", n as u32 + 1).await;
    gate.wait_started(n, "the first handlers to start").await;
    let extra = gate.another_start().await;
    assert!(
        extra.is_none(),
        "max_concurrency({n}): message {extra:?} started while {n} handlers were still \
         running ({} at once)",
        gate.most()
    );
    gate.finish(1).await;
    gate.wait_started(1, "the held-back handler once a slot is free")
        .await;
    gate.finish(n).await;
    assert_eq!(gate.most(), n, "never more than {n} at once");
    running.stop().await.unwrap();
}

#[test]
fn max_concurrency_one_runs_one_handler_at_a_time() {
    run(max_concurrency_caps_handlers_at(1));
}

#[test]
fn max_concurrency_two_runs_two_handlers_at_a_time() {
    run(max_concurrency_caps_handlers_at(2));
}

/// `subscribe_new_subject_queue` at run time: `Some("g")` puts the endpoints of three
/// instances in group `g` although their app groups differ (two in "w", one in "other"):
/// each message once. `None` subscribes plainly although the app has a group: every
/// instance gets every message. Either mixed up with the app's group fails a count.
#[test]
fn subscribe_new_subject_queue_uses_the_group_given_not_the_apps() {
    let server = NatsServer::start();
    run(async {
        let seen: Seen = Default::default();
        let (tick, ticked) = smol::channel::unbounded();
        let mut instances = Vec::new();
        for (i, group) in ["w", "w", "other"].into_iter().enumerate() {
            let app = App::new("rt").allocation_queue_group(group);
            let running = RunningApp::start(app, &server).await;
            let handle = running.handle();
            handle
                .subscribe_new_subject_queue("rt.shared", Some("g"), recorder(&seen, i, &tick))
                .await
                .unwrap();
            handle
                .subscribe_new_subject_queue("rt.all", None, recorder(&seen, i, &tick))
                .await
                .unwrap();
            instances.push(running);
        }
        let c = client::connect(server.url()).await.unwrap();
        publish_numbers(&c, "rt.all", N).await;
        ticks(&ticked, 3 * N as usize, "every instance got every message").await;
        let all: Vec<u32> = (0..N).collect();
        let by = handled_on(&seen, "rt.all");
        for i in 0..3 {
            assert_eq!(by.get(&i), Some(&all), "instance {i} got every message");
        }

        publish_numbers(&c, "rt.shared", N).await;
        ticks(&ticked, N as usize, "every shared message handled").await;
        for app in instances {
            app.stop().await.unwrap();
        }
        assert_eq!(
            all_handled_on(&seen, "rt.shared"),
            all,
            "each shared message handled exactly once"
        );
    });
}

/// An endpoint gives the bytes of the messages it takes back to its queue's byte bound
/// (`subscription_capacity_bytes`; it does so in bursts, not message by message): an app
/// whose bound is 16 KiB handles 2 MB over time, in bursts of under a third of the bound,
/// stream messages and requests alike, at one thread and at two, and drops none. If some
/// path kept the bytes of the messages it took counted, the bound would fill after a few
/// bursts and the later messages would be dropped: the waits time out and the count shows
/// them. (A burst is counted until the end of the loop's poll that took it, which comes
/// after its handlers ran: a loop whose thread loses its core there still holds one burst
/// when the next comes, and may hold two at two threads. Bursts of 10 KiB made this test
/// fail once, on a host busy compiling.)
#[test]
fn an_endpoint_gives_the_bytes_it_took_back_so_a_small_byte_bound_never_fills() {
    const BOUND_BYTES: usize = 16 * 1024;
    const SIZE: usize = 1024;
    const PER_BURST: usize = 5;
    const BURSTS: usize = 400;
    let server = NatsServer::start();
    run(async {
        for threads in [1, 2] {
            let (tick, ticked) = smol::channel::unbounded();
            let mut app = App::new("bytes")
                .threads(threads)
                .nats_options(|o| o.subscription_capacity_bytes(BOUND_BYTES));
            app.listen("bytes.in", move |msg: Msg<Vec<u8>>| {
                assert_eq!(msg.data.len(), SIZE);
                let _ = tick.try_send(());
                std::future::ready(())
            });
            app.listen("bytes.ask", |msg: Msg<Vec<u8>>| async move { msg.data });
            let app = RunningApp::start(app, &server).await;
            let c = client::connect(server.url()).await.unwrap();
            for burst in 0..BURSTS {
                for _ in 0..PER_BURST {
                    c.publish("bytes.in", vec![7u8; SIZE]).await.unwrap();
                }
                c.flush().await.unwrap();
                ticks(
                    &ticked,
                    PER_BURST,
                    &format!("burst {burst} at {threads} thread(s)"),
                )
                .await;
                let reply = c.request("bytes.ask", vec![1u8; SIZE]).await.unwrap();
                assert_eq!(reply.payload.len(), SIZE);
            }
            let dropped = app.handle().client().statistics().dropped_msgs;
            assert_eq!(dropped, 0, "dropped at {threads} thread(s)");
            app.stop().await.unwrap();
        }
    });
}
