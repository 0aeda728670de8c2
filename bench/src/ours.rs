//! The workloads against our client, on smol: `smol::block_on` drives the benchmark on
//! the calling thread; the client's connection task (and our responder) run
//! on smol's global executor, with its default of one thread.

use std::time::Instant;

use futures_lite::{FutureExt, StreamExt};
use panini::client::{connect, Client, ConnectOptions, Subscription};
use smol::Timer;

use crate::contender::{rate, Contender, Latency, RECEIVE_TIMEOUT, REQUEST_PAYLOAD};
use crate::publisher::Armed;
use crate::Result;

#[derive(Debug)]
pub struct Ours;

impl Contender for Ours {
    fn name(&self) -> &'static str {
        "ours"
    }

    fn publish(&self, url: &str, subject: &str, payload: &[u8], count: usize) -> Result<f64> {
        smol::block_on(async {
            let client = connect(url).await?;
            let probe = format!("{subject}.nobody");
            server_has_all(&client, &probe).await?; // warm-up: creates the reply inbox
            let start = Instant::now();
            for _ in 0..count {
                client.publish(subject, payload).await?;
            }
            server_has_all(&client, &probe).await?;
            let elapsed = start.elapsed();
            client.close().await;
            Ok(count as f64 / elapsed.as_secs_f64())
        })
    }

    fn subscribe(&self, url: &str, subject: &str, publisher: Armed, count: usize) -> Result<f64> {
        smol::block_on(async {
            let client = ConnectOptions::new([url])
                .subscription_capacity(count)
                .connect()
                .await?;
            let mut sub = client.subscribe(subject).await?;
            client.flush().await?;
            let sending = publisher.go();
            let timeout = async {
                Timer::after(RECEIVE_TIMEOUT).await;
                Err("timed out: messages were lost".into())
            };
            let elapsed = receive(&mut sub, count).or(timeout).await?;
            sending.join().map_err(|_| "publisher panicked")??;
            let dropped = client.statistics().dropped_msgs;
            client.close().await;
            if dropped != 0 {
                return Err(format!("ours dropped {dropped} messages").into());
            }
            Ok(rate(count, elapsed))
        })
    }

    fn request_sequential(&self, url: &str, subject: &str, count: usize) -> Result<Latency> {
        smol::block_on(async {
            let responder = respond(url, subject).await?;
            let client = connect(url).await?;
            client.request(subject, REQUEST_PAYLOAD).await?; // warm-up
            let mut samples = Vec::with_capacity(count);
            let start = Instant::now();
            for _ in 0..count {
                let sent = Instant::now();
                client.request(subject, REQUEST_PAYLOAD).await?;
                samples.push(sent.elapsed());
            }
            let total = start.elapsed();
            client.close().await;
            responder.cancel().await;
            Ok(Latency::from_samples(samples, total))
        })
    }

    fn request_concurrent(
        &self,
        url: &str,
        subject: &str,
        total: usize,
        in_flight: usize,
    ) -> Result<f64> {
        smol::block_on(async {
            let responder = respond(url, subject).await?;
            let client = connect(url).await?;
            client.request(subject, REQUEST_PAYLOAD).await?; // warm-up
            let each = total / in_flight;
            let start = Instant::now();
            let workers = (0..in_flight).map(|_| async {
                for _ in 0..each {
                    client.request(subject, REQUEST_PAYLOAD).await?;
                }
                Ok::<_, panini::Error>(())
            });
            futures::future::try_join_all(workers).await?;
            let elapsed = start.elapsed();
            client.close().await;
            responder.cancel().await;
            Ok((each * in_flight) as f64 / elapsed.as_secs_f64())
        })
    }
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

/// Time from the first to the `count`th message.
async fn receive(sub: &mut Subscription, count: usize) -> Result<std::time::Duration> {
    let mut first = None;
    for _ in 0..count {
        sub.next().await.ok_or("subscription ended early")?;
        first.get_or_insert_with(Instant::now);
    }
    Ok(first.map_or_else(Default::default, |t| t.elapsed()))
}

/// An echo responder on its own connection, running on smol's global executor.
async fn respond(url: &str, subject: &str) -> Result<smol::Task<()>> {
    let server = connect(url).await?;
    let mut sub = server.subscribe(subject).await?;
    server.flush().await?;
    Ok(smol::spawn(async move {
        while let Some(msg) = sub.next().await {
            if let Some(reply) = &msg.reply {
                let _ = server.publish(reply, &msg.payload).await;
            }
        }
    }))
}
