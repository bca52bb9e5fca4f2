//! Loom model of the shutdown handshake (`hotmeter::sample::announce`): a push that the gate
//! lets through is in the ring for the drain that follows `Gate::close`; a push the gate
//! refuses stores nothing. Together: after `close` returns, no record is left unseen.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test --release --test loom_announce --target-dir target/loom
//! ```
//!
//! The handshake orders its two sides with SeqCst fences, which loom models exactly (it
//! models SeqCst loads and stores only as AcqRel: tokio-rs/loom#180). Weakening either fence
//! (to AcqRel, say) lets both sides miss each other (store buffering), and a record is
//! pushed after the final drain: both models fail then (checked by hand).
#![cfg(loom)]

use hotmeter::sample::announce::{Gate, PushSlot};
use hotmeter::sample::record::Record;
use hotmeter::sample::ring::{Overflow, Push, ring};
use loom::sync::Arc;
use loom::thread;

/// The gate's id (any non-zero value; the pipeline uses its address).
const ID: usize = 7;

#[path = "common/loom.rs"]
mod loom_common;
use loom_common::{model, record};

/// One pusher against `close` and the final drain.
#[test]
fn a_push_let_through_is_seen_by_the_final_drain() {
    model(|| {
        let gate = Arc::new(Gate::new());
        let slot = Arc::new(PushSlot::new());
        let (mut producer, mut consumer) = ring(2, Overflow::DropNewest);
        let pusher = {
            let (gate, slot) = (Arc::clone(&gate), Arc::clone(&slot));
            thread::spawn(move || match gate.begin(&slot, ID) {
                Some(_announced) => {
                    assert_eq!(producer.push(record(1)), Push::Stored);
                    true
                }
                None => false,
            })
        };
        gate.close(ID, || [&*slot]);
        // The final drain, right after `close`.
        let drained = consumer.pop();
        let pushed = pusher.join().unwrap();
        assert_eq!(
            drained.is_some(),
            pushed,
            "pushed {pushed}, drained {drained:?}"
        );
        if let Some(r) = drained {
            assert_eq!(r, record(1));
        }
    });
}

/// Two pushes in a row from one pusher (the slot is reused): each one let through is
/// drained; once one is refused, so are the later ones.
#[test]
fn pushes_after_the_close_are_refused() {
    model(|| {
        let gate = Arc::new(Gate::new());
        let slot = Arc::new(PushSlot::new());
        let (mut producer, mut consumer) = ring(2, Overflow::DropNewest);
        let pusher = {
            let (gate, slot) = (Arc::clone(&gate), Arc::clone(&slot));
            thread::spawn(move || {
                let mut pushed = 0;
                for i in 1..=2 {
                    let Some(_announced) = gate.begin(&slot, ID) else {
                        break;
                    };
                    assert_eq!(producer.push(record(i)), Push::Stored);
                    pushed += 1;
                }
                pushed
            })
        };
        gate.close(ID, || [&*slot]);
        let mut drained = Vec::new();
        while let Some(r) = consumer.pop() {
            drained.push(r);
        }
        let pushed = pusher.join().unwrap();
        let expected: Vec<Record> = (1..=pushed).map(record).collect();
        assert_eq!(drained, expected);
    });
}
