//! Both roles against our client, on smol: `smol::block_on` runs the role on the main
//! thread, and the client's connection task runs on smol's global executor
//! (its default of one thread), as an application using the client directly would.

use std::time::Instant;

use futures_lite::{future, FutureExt, StreamExt};
use panini::client::{connect, Client, ConnectOptions};

use crate::role::{cpu_ns, say, Done, Event, PubEnd, Tally, ROUND_TRIP_TIMEOUT};
use crate::Result;

/// Serialises and publishes `n` events, then waits for `end`.
pub fn publish(url: &str, subject: &str, n: usize, end: PubEnd) -> Result<Done> {
    smol::block_on(async {
        let client = connect(url).await?;
        let probe = format!("{subject}.nobody");
        server_has_all(&client, &probe).await?; // warm-up: creates the reply inbox
        let event = Event::new();
        let (start, cpu) = (Instant::now(), cpu_ns());
        for _ in 0..n {
            let payload = serde_json::to_vec(&event)?;
            client.publish(subject, payload).await?;
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
        client.close().await;
        Ok(done)
    })
}

/// Subscribes (queue bounded at `n`, so nothing is dropped on our side), says `ready`
/// once the server has the SUB, and decodes messages until `n` have come, or until `end`
/// and a round trip show that no more are on the way.
pub fn subscribe(
    url: &str,
    subject: &str,
    n: usize,
    end: smol::channel::Receiver<()>,
) -> Result<Done> {
    smol::block_on(async {
        let client = ConnectOptions::new([url])
            .subscription_capacity(n)
            .connect()
            .await?;
        let mut sub = client.subscribe(subject).await?;
        client.flush().await?; // PING/PONG: the server has the SUB
        say("ready");
        let mut tally = Tally::default();
        let all = async {
            while tally.taken() < n {
                let msg = sub.next().await.ok_or("subscription ended early")?;
                tally.take(&msg.payload);
            }
            Ok::<_, crate::BoxError>(())
        };
        // Polled only while the queue is empty. After `end`, a PONG on this connection
        // comes behind every message the server had for us.
        let ended = async {
            let _ = end.recv().await;
            client.flush_timeout(ROUND_TRIP_TIMEOUT).await?;
            Ok(())
        };
        all.or(ended).await?;
        while tally.taken() < n {
            match future::poll_once(sub.next()).await {
                Some(Some(msg)) => tally.take(&msg.payload),
                _ => break,
            }
        }
        let done = tally.done(client.statistics().dropped_msgs)?;
        client.close().await;
        Ok(done)
    })
}

/// Flush, then a request nobody serves: the server's 503 comes after it processed every
/// earlier publish of this connection.
async fn server_has_all(client: &Client, nobody: &str) -> Result<()> {
    client.flush().await?;
    match client.request(nobody, b"").await {
        Err(panini::Error::NoResponders) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(_) => Err(format!("{nobody}: unexpected reply").into()),
    }
}
