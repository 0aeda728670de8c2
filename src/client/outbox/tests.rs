//! Every edge of the outbox, without a server.

use std::task::Waker;

use panini_proto::{ClientOp, Pub};

use super::*;

fn publish(subject: &str, payload: &str) -> Vec<u8> {
    let mut out = Vec::new();
    pub_op(subject, None, payload).encode(&mut out);
    out
}

fn pub_op<'a>(subject: &'a str, reply: Option<&'a str>, payload: &'a str) -> ClientOp<'a> {
    ClientOp::Pub(Pub {
        subject: subject.as_bytes(),
        reply: reply.map(str::as_bytes),
        headers: None,
        payload: payload.as_bytes(),
    })
}

fn connected(cap: usize) -> Outbox {
    let mut o = Outbox::new(cap);
    o.reconnected(|_| {});
    o
}

struct Noop;

impl std::task::Wake for Noop {
    fn wake(self: std::sync::Arc<Self>) {}
}

fn noop() -> Waker {
    Waker::from(std::sync::Arc::new(Noop))
}

/// Takes and finishes batches until the outbox is empty; returns every byte written.
fn write_all(o: &mut Outbox) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut batch = Vec::new();
    while let Some(done) = o.take(&mut batch, &noop()) {
        wire.extend_from_slice(&batch[done..]);
        o.finish(&mut batch);
    }
    wire
}

#[test]
fn publishes_and_control_ops_go_out_in_order() {
    let mut o = connected(1024);
    assert!(matches!(
        o.push_pub(&pub_op("a", None, "1")),
        Ok(Pushed::Live(_))
    ));
    o.push_control(&ClientOp::Sub {
        subject: b"s",
        queue: None,
        sid: b"1",
    });
    o.ping(None).unwrap();
    let mut want = publish("a", "1");
    want.extend_from_slice(b"SUB s 1\r\nPING\r\n");
    assert_eq!(write_all(&mut o), want);
    assert_eq!(o.pending(), 0);
}

#[test]
fn take_remembers_the_writer_and_a_push_wakes_it() {
    let mut o = connected(1024);
    let mut batch = Vec::new();
    assert_eq!(o.take(&mut batch, &noop()), None, "nothing to write");
    match o.push_pub(&pub_op("a", None, "1")) {
        Ok(Pushed::Live(Some(_))) => {}
        other => panic!("the waiting writer is handed back to be woken: {other:?}"),
    }
    match o.push_pub(&pub_op("a", None, "2")) {
        Ok(Pushed::Live(None)) => {}
        other => panic!("woken once is enough: {other:?}"),
    }
}

#[test]
fn a_busy_writer_makes_publishers_wait_past_the_soft_limit() {
    let mut o = connected(usize::MAX);
    let big = "x".repeat(SOFT_WRITE_LIMIT);
    assert!(o.push_pub(&pub_op("a", None, &big)).is_ok());
    assert_eq!(
        o.push_pub(&pub_op("a", None, "1")).unwrap_err(),
        Refused::Busy
    );
    let mut batch = Vec::new();
    assert_eq!(o.take(&mut batch, &noop()), Some(0));
    assert!(
        o.push_pub(&pub_op("a", None, "1")).is_ok(),
        "room once taken"
    );
}

#[test]
fn disconnected_publishes_fill_the_reconnect_buffer_up_to_its_cap() {
    let one = publish("a", "1").len();
    let mut o = Outbox::new(3 * one);
    for _ in 0..3 {
        assert!(matches!(
            o.push_pub(&pub_op("a", None, "1")),
            Ok(Pushed::Buffered)
        ));
    }
    assert_eq!(
        o.push_pub(&pub_op("a", None, "1")).unwrap_err(),
        Refused::Full
    );
    assert_eq!(
        o.pending(),
        3 * one,
        "a refused publish leaves nothing behind"
    );
    o.push_control(&ClientOp::Pong);
    assert!(o.ping(None).unwrap().is_none());
    assert_eq!(
        o.pending(),
        3 * one,
        "no control ops or keepalives while disconnected"
    );
    let mut batch = Vec::new();
    assert_eq!(
        o.take(&mut batch, &noop()),
        None,
        "nothing is written while disconnected"
    );
}

#[test]
fn the_rebuild_is_subs_then_buffered_publishes_then_one_ping_per_waiting_flush() {
    let mut o = connected(1024);
    o.push_pub(&pub_op("a", None, "1")).unwrap();
    o.ping(None).unwrap(); // a keepalive: not rebuilt
    let (tx, _rx) = smol::channel::bounded(1);
    o.ping(Some(tx)).unwrap(); // a flush: rebuilt
    o.push_control(&ClientOp::Unsub {
        sid: b"9",
        max: None,
    });
    let mut batch = Vec::new();
    let loss = o.disconnected(&mut batch, 0, |_, _| {});
    assert_eq!(loss, Loss::default());
    o.push_pub(&pub_op("b", None, "2")).unwrap();
    let (tx, _rx2) = smol::channel::bounded(1);
    o.ping(Some(tx)).unwrap(); // a flush while disconnected
    o.reconnected(|front| front.extend_from_slice(b"SUB s 1\r\n"));
    let mut want = b"SUB s 1\r\n".to_vec();
    want.extend(publish("a", "1"));
    want.extend(publish("b", "2"));
    want.extend_from_slice(b"PING\r\nPING\r\n");
    assert_eq!(write_all(&mut o), want);
}

#[test]
fn a_batch_cut_by_the_disconnect_goes_back_from_the_op_it_was_in() {
    let mut o = connected(1024);
    for p in ["1", "2", "3"] {
        o.push_pub(&pub_op("a", None, p)).unwrap();
    }
    let one = publish("a", "1").len();
    let mut batch = Vec::new();
    assert_eq!(o.take(&mut batch, &noop()), Some(0));
    o.push_pub(&pub_op("a", None, "4")).unwrap(); // newer, behind the batch
                                                  // The socket took the first op and three bytes of the second.
    let mut seen = Vec::new();
    let loss = o.disconnected(&mut batch, one + 3, |p, kept| {
        assert!(kept);
        seen.push(p.payload.to_vec())
    });
    assert_eq!(loss, Loss::default());
    assert_eq!(seen, [b"2".to_vec(), b"3".to_vec(), b"4".to_vec()]);
    assert!(batch.is_empty());
    o.reconnected(|_| {});
    let want = [publish("a", "2"), publish("a", "3"), publish("a", "4")].concat();
    assert_eq!(write_all(&mut o), want);
}

#[test]
fn a_direct_write_cut_mid_op_resends_that_op_whole_after_a_disconnect() {
    let mut o = connected(1024);
    o.push_pub(&pub_op("a", None, "1")).unwrap();
    o.push_pub(&pub_op("a", None, "2")).unwrap();
    let one = publish("a", "1").len();
    o.write_direct(|bytes| Ok((bytes.len().min(one + 2), false)));
    assert_eq!(o.pending(), one - 2);
    let loss = o.disconnected(&mut Vec::new(), 0, |_, _| {});
    assert_eq!(loss, Loss::default());
    o.reconnected(|_| {});
    assert_eq!(write_all(&mut o), publish("a", "2"));
}

#[test]
fn a_direct_write_then_a_batch_continues_where_it_stopped() {
    let mut o = connected(1024);
    o.push_pub(&pub_op("a", None, "1")).unwrap();
    assert!(!o.write_direct(|_| Ok((4, false))));
    o.push_pub(&pub_op("a", None, "2")).unwrap();
    let mut batch = Vec::new();
    assert_eq!(o.take(&mut batch, &noop()), Some(4));
    assert!(!o.write_direct(|_| panic!("no direct write while the connection task holds a batch")));
    let mut want = publish("a", "1");
    want.extend(publish("a", "2"));
    assert_eq!(batch, want);
}

#[test]
fn a_direct_write_whose_transport_kept_bytes_says_so() {
    // TLS took every byte into its session but the socket not all the records: the
    // outbox is empty, and the caller must wake the connection task to flush them.
    let mut o = connected(1024);
    o.push_pub(&pub_op("a", None, "1")).unwrap();
    assert!(o.write_direct(|bytes| Ok((bytes.len(), true))));
    assert_eq!(o.pending(), 0);
    // Nothing to write: nothing asked of the transport, nothing to flush.
    assert!(!o.write_direct(|_| panic!("no bytes, no write")));
}

#[test]
fn only_publishes_survive_and_what_passes_the_cap_is_the_loss() {
    let one = publish("a", "1").len();
    let mut o = connected(2 * one);
    o.push_control(&ClientOp::Sub {
        subject: b"s",
        queue: None,
        sid: b"1",
    });
    for p in ["1", "2", "3"] {
        o.push_pub(&pub_op("a", None, p)).unwrap();
    }
    o.push_control(&ClientOp::Pong);
    let loss = o.disconnected(&mut Vec::new(), 0, |_, _| {});
    assert_eq!(
        loss,
        Loss {
            msgs: 1,
            bytes: one as u64
        }
    );
    o.reconnected(|_| {});
    assert_eq!(
        write_all(&mut o),
        [publish("a", "1"), publish("a", "2")].concat()
    );
}

#[test]
fn what_passes_the_cap_is_dropped_from_there_on_even_if_a_later_one_would_fit() {
    let small = publish("a", "1").len();
    let mut o = connected(2 * small);
    o.push_pub(&pub_op("a", None, "1")).unwrap();
    o.push_pub(&pub_op("a", None, "22")).unwrap(); // one byte larger
    o.push_pub(&pub_op("a", None, "3")).unwrap(); // would fit after it, but comes later
    let mut seen = Vec::new();
    let loss = o.disconnected(&mut Vec::new(), 0, |p, kept| {
        seen.push((p.payload.to_vec(), kept))
    });
    assert_eq!(loss.msgs, 2);
    assert_eq!(
        seen,
        [
            (b"1".to_vec(), true),
            (b"22".to_vec(), false),
            (b"3".to_vec(), false)
        ]
    );
}

#[test]
fn the_kept_callback_sees_reply_subjects() {
    let mut o = connected(1024);
    o.push_pub(&pub_op("svc", Some("_INBOX.x.7"), "q")).unwrap();
    let mut replies = Vec::new();
    o.disconnected(&mut Vec::new(), 0, |p, _| {
        replies.push(p.reply.map(<[u8]>::to_vec))
    });
    assert_eq!(replies, [Some(b"_INBOX.x.7".to_vec())]);
}

#[test]
fn pongs_answer_flushes_in_order_and_skip_keepalives() {
    let mut o = connected(1024);
    let (a, ra) = smol::channel::bounded(1);
    let (b, rb) = smol::channel::bounded(1);
    o.ping(Some(a)).unwrap();
    o.ping(None).unwrap();
    o.ping(Some(b)).unwrap();
    o.pong().unwrap().try_send(()).unwrap();
    assert!(ra.try_recv().is_ok() && rb.try_recv().is_err());
    assert!(o.pong().is_none(), "the keepalive's PONG answers nobody");
    assert!(o.pong().is_some());
    assert!(o.pong().is_none());
}

#[test]
fn closing_counts_every_unsent_publish_and_refuses_more() {
    let mut o = connected(1024);
    o.push_pub(&pub_op("a", None, "1")).unwrap();
    o.push_pub(&pub_op("a", None, "2")).unwrap();
    let mut batch = Vec::new();
    o.take(&mut batch, &noop());
    o.push_pub(&pub_op("a", None, "3")).unwrap();
    let one = publish("a", "1").len();
    // The first op was written, the second was cut: two are lost.
    let loss = o.close(&mut batch, one + 1);
    assert_eq!(
        loss,
        Loss {
            msgs: 2,
            bytes: 2 * one as u64
        }
    );
    assert_eq!(o.state(), State::Closed);
    assert_eq!(
        o.push_pub(&pub_op("a", None, "4")).unwrap_err(),
        Refused::Closed
    );
    assert_eq!(o.ping(None).unwrap_err(), Refused::Closed);
}

#[test]
fn op_boundaries_of_our_own_bytes() {
    let one = publish("a", "1");
    let two = publish("bb", "22");
    let bytes = [one.clone(), two.clone()].concat();
    assert_eq!(op_start(&bytes, 0), 0);
    assert_eq!(op_start(&bytes, 3), 0, "inside the first op");
    assert_eq!(op_start(&bytes, one.len()), one.len(), "on a boundary");
    assert_eq!(
        op_start(&bytes, one.len() + 1),
        one.len(),
        "inside the second"
    );
    assert_eq!(op_start(&bytes, bytes.len()), bytes.len(), "all written");
}
