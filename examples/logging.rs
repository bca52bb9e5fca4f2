//! A request handler logging at every level with a correlation id, through hotmeter's
//! sampling layer and non-blocking writer; prints the volume kept, the per-level counts
//! and the time per sampled-out INFO event (beside the same event through a bare registry).
//!
//! ```text
//! cargo run --release --example logging --features tracing
//! HOTMETER_LOG_SAMPLING=info=0.5 cargo run --release --example logging --features tracing
//! ```

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hotmeter::tracing_layer::{NonBlocking, SamplingLayer};
use tracing_subscriber::layer::SubscriberExt;

/// Counts the bytes written (a stand-in for a file), keeps the first few lines to show.
struct CountingSink {
    bytes: Arc<AtomicU64>,
    shown: usize,
}

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Relaxed: a tally read after the writer's guard has joined the worker.
        self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        if self.shown < 5 {
            self.shown += 1;
            io::stdout().write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn handle(request: u64) {
    let span = tracing::info_span!("request", correlation_id = request);
    let _enter = span.enter();
    tracing::trace!(step = "parse", "parsing");
    tracing::debug!(bytes = 512 + request % 1024, "read body");
    tracing::info!(route = "/orders", "handled");
    if request.is_multiple_of(100) {
        tracing::warn!(latency_ms = 250, "slow request");
    }
    if request.is_multiple_of(1_000) {
        tracing::error!(code = 503, "upstream failed");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Arc::new(hotmeter::Engine::builder().build()?);
    let bytes = Arc::new(AtomicU64::new(0));
    let sink = CountingSink {
        bytes: Arc::clone(&bytes),
        shown: 0,
    };
    let (writer, guard) = NonBlocking::builder().build(sink, &engine)?;
    // INFO at 1/16, DEBUG at 1/64, TRACE at 1/256 (HOTMETER_LOG_SAMPLING adds to these).
    let layer = SamplingLayer::builder()
        .rates("trace=0.004,debug=0.016,info=0.0625,hot=0.000001")
        .writer(writer.clone())
        .build(&engine)?;
    let subscriber = tracing_subscriber::registry().with(layer);
    let requests = 100_000u64;
    let hot_loop = 2_000_000u32;
    let (ns_per_sampled_out, ns_in_span) = tracing::subscriber::with_default(subscriber, || {
        println!("first kept lines:");
        for r in 0..requests {
            handle(r);
        }
        // An INFO event with no id, at 2^-20 (`hot::loop` below): almost always sampled out.
        let start = Instant::now();
        for i in 0..hot_loop {
            tracing::info!(target: "hot::loop", i, "tick");
        }
        let no_id = start.elapsed().as_nanos() as f64 / f64::from(hot_loop);
        // The same inside a span with a correlation id (a keyed decision, via the span).
        let span = tracing::info_span!("request", correlation_id = 123_456_789u64);
        let _enter = span.enter();
        let start = Instant::now();
        for i in 0..hot_loop {
            tracing::info!(target: "hot::loop", i, "tick");
        }
        (
            no_id,
            start.elapsed().as_nanos() as f64 / f64::from(hot_loop),
        )
    });
    // The same loop through a bare `tracing_subscriber::registry()`: what tracing's own
    // dispatch costs, without the layer.
    let ns_bare = tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        let start = Instant::now();
        for i in 0..hot_loop {
            tracing::info!(target: "hot::loop", i, "tick");
        }
        start.elapsed().as_nanos() as f64 / f64::from(hot_loop)
    });
    drop(guard);
    let snap = engine.registry().snapshot();
    println!("\nper level: seen / kept / sampled out");
    for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] {
        let l = [("level", level)];
        let kept = snap.counter("log_events_kept_total", &l).unwrap_or(0);
        let out = snap
            .counter("log_events_sampled_out_total", &l)
            .unwrap_or(0);
        println!("  {level:5} {:>9} {kept:>9} {out:>9}", kept + out);
    }
    let st = writer.stats();
    println!(
        "\nwriter: accepted {} written {} dropped {} ({} bytes kept)",
        st.accepted,
        st.written,
        st.dropped(),
        bytes.load(Ordering::Relaxed)
    );
    println!(
        "sampled-out INFO event (no id, no span): {ns_per_sampled_out:.1} ns \
         (a bare registry without the layer: {ns_bare:.1} ns)"
    );
    println!("sampled-out INFO event in a span with a correlation id: {ns_in_span:.1} ns");
    println!("\nthe scrape (log families):");
    for line in engine.render(hotmeter::Format::Text)?.lines() {
        if line.starts_with("log_") && !line.starts_with("log_writer_latency_seconds_bucket") {
            println!("  {line}");
        }
    }
    Ok(())
}
