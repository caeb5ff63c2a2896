//! The process-wide trace ID generator: default `tid-<n>`, replaceable at run time.
//!
//! One test only: the generator is global state of this test process.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use nettrace_model::{
    TraceId, atomic_counter_id, next_trace_id, reset_id_generator, set_id_generator,
};

fn counter_of(id: &TraceId) -> u64 {
    id.as_str()
        .strip_prefix("tid-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a default ID: {id}"))
}

#[test]
fn generator_defaults_to_counter_and_can_be_replaced_and_reset() {
    let first = next_trace_id();
    let second = TraceId::generate();
    assert!(counter_of(&second) > counter_of(&first));

    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    set_id_generator(move || {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        TraceId::new(format!("custom-{n:04x}"))
    });
    assert_eq!(next_trace_id(), "custom-0000");
    assert_eq!(TraceId::generate(), "custom-0001");
    // atomic_counter_id stays available explicitly.
    assert!(counter_of(&atomic_counter_id()) > counter_of(&second));

    let threads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(|| (0..50).map(|_| next_trace_id()).collect::<Vec<_>>()))
        .collect();
    let mut ids: Vec<TraceId> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(ids.iter().all(|id| id.as_str().starts_with("custom-")));
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    assert_eq!(calls.load(Ordering::Relaxed), 202);

    // A generator may replace the generator without deadlocking.
    set_id_generator(|| {
        reset_id_generator();
        TraceId::new("last-custom")
    });
    assert_eq!(next_trace_id(), "last-custom");

    let after = next_trace_id();
    assert!(
        counter_of(&after) > counter_of(&second),
        "counter is not reset"
    );
    reset_id_generator();
    assert!(next_trace_id().as_str().starts_with("tid-"));
}
