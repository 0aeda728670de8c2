//! Both roles against async-nats, on tokio's multi-thread runtime with its default worker
//! count (one per core), as `#[tokio::main]` gives: `Runtime::block_on` runs the role on
//! the main thread, and the client's connection task runs on the workers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_nats::{Client, RequestErrorKind, Subject};
use bytes::Bytes;
use futures_lite::{future, FutureExt, StreamExt};

use crate::role::{cpu_ns, say, Done, Event, PubEnd, Tally, ROUND_TRIP_TIMEOUT};
use crate::{BoxError, Result};

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Serialises and publishes `n` events, then waits for `end`.
/// The subject is made once and cloned (a reference count), async-nats's cheapest call;
/// the serialised `Vec` becomes the `Bytes` payload without a copy.
pub fn publish(url: &str, subject: &str, n: usize, end: PubEnd) -> Result<Done> {
    runtime()?.block_on(async {
        let client = async_nats::connect(url).await?;
        let probe = Subject::from(format!("{subject}.nobody"));
        server_has_all(&client, &probe).await?; // warm-up: creates the reply inbox
        let subject = Subject::from(subject);
        let event = Event::new();
        let (start, cpu) = (Instant::now(), cpu_ns());
        for _ in 0..n {
            let payload = serde_json::to_vec(&event)?;
            client
                .publish(subject.clone(), Bytes::from(payload))
                .await?;
        }
        let done = match end {
            PubEnd::Server => {
                server_has_all(&client, &probe).await?;
                Done::since(start, cpu, n, 0)
            }
            PubEnd::Flush => {
                client.flush().await?;
                let done = Done::since(start, cpu, n, 0);
                // Untimed: the parent tells the subscriber `end` only once the server has
                // processed everything, or it would count messages still on the way as lost.
                server_has_all(&client, &probe).await?;
                done
            }
        };
        drop(client);
        Ok(done)
    })
}

/// Subscribes (channel capacity `n`, so nothing is dropped on the client's side), says
/// `ready` once the server has the SUB, and decodes messages until `n` have come, or
/// until `end` and a round trip show that no more are on the way. `dropped` counts the
/// client's slow-consumer events, one per message it could not queue.
pub fn subscribe(
    url: &str,
    subject: &str,
    n: usize,
    end: smol::channel::Receiver<()>,
) -> Result<Done> {
    let slow = Arc::new(AtomicU64::new(0));
    let seen = slow.clone();
    runtime()?.block_on(async {
        let client = async_nats::ConnectOptions::new()
            .subscription_capacity(n)
            .request_timeout(Some(ROUND_TRIP_TIMEOUT))
            .event_callback(move |event| {
                if let async_nats::Event::SlowConsumer(_) = event {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
                async {}
            })
            .connect(url)
            .await?;
        let mut sub = client.subscribe(subject.to_string()).await?;
        let probe = Subject::from(format!("{subject}.nobody"));
        // flush only writes the socket; the round trip makes sure the server has the SUB.
        server_has_all(&client, &probe).await?;
        say("ready");
        let mut tally = Tally::default();
        let all = async {
            while tally.taken() < n {
                let msg = sub.next().await.ok_or("subscription ended early")?;
                tally.take(&msg.payload);
            }
            Ok::<_, BoxError>(())
        };
        // Polled only while the queue is empty. After `end`, the 503 on this connection
        // is handled behind every message the server had for us.
        let ended = async {
            let _ = end.recv().await;
            server_has_all(&client, &probe).await
        };
        all.or(ended).await?;
        while tally.taken() < n {
            match future::poll_once(sub.next()).await {
                Some(Some(msg)) => tally.take(&msg.payload),
                _ => break,
            }
        }
        let done = tally.done(slow.load(Ordering::Relaxed))?;
        drop(client);
        Ok(done)
    })
}

/// Flush (which only writes out the socket buffer), then a request nobody serves: the
/// server's 503 comes after it processed every earlier publish of this connection.
async fn server_has_all(client: &Client, nobody: &Subject) -> Result<()> {
    client.flush().await?;
    match client.request(nobody.clone(), Bytes::new()).await {
        Err(e) if e.kind() == RequestErrorKind::NoResponders => Ok(()),
        Err(e) => Err(e.into()),
        Ok(_) => Err(format!("{nobody}: unexpected reply").into()),
    }
}
