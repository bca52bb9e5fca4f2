//! The per-thread dynamic-label cache holds what the registry holds (values cut to
//! `MAX_LABEL_VALUE_BYTES`) and a bounded number of bytes in all: megabyte label values
//! cost no more memory than short ones. Own binary: it measures the process's RSS.

mod common;

/// Resident set size in bytes, `None` where there is no `/proc`.
fn rss_bytes() -> Option<u64> {
    Some(common::rss_kib() * 1024).filter(|&b| b > 0)
}

#[test]
fn megabyte_label_values_do_not_grow_the_cache() {
    const VALUES: usize = 600;
    let mut value = vec![b'a'; 1 << 20];
    // Warm up: the registry, the cache table and this thread's arena exist before measuring.
    let warm = String::from("warm");
    hotmeter::counter!("big_labels_total", "v" => warm).inc();
    let Some(before) = rss_bytes() else {
        eprintln!("no /proc/self/status: RSS not measured");
        return;
    };
    for i in 0..VALUES {
        // Distinct within the first 1024 bytes, so each is its own series.
        value[..8].copy_from_slice(&(i as u64).to_le_bytes().map(|b| b'a' + b % 26));
        value[8..16].copy_from_slice(&((i / 26) as u64).to_le_bytes().map(|b| b'a' + b % 26));
        let v = std::str::from_utf8(&value).unwrap();
        hotmeter::counter!("big_labels_total", "v" => v).inc();
        hotmeter::counter!("big_labels_total", "v" => v).inc(); // a cache hit
    }
    let after = rss_bytes().unwrap();
    let snap = hotmeter::global().snapshot();
    let family = snap.family("big_labels_total").unwrap();
    // Each value's series holds 2 (values repeat only if the 16-byte prefix repeats).
    let total: u64 = family
        .series
        .iter()
        .map(|s| match s.value {
            hotmeter::Value::Counter(c) => c,
            _ => 0,
        })
        .sum();
    assert_eq!(total, 1 + 2 * VALUES as u64);
    // The registry keeps ≤ 1 KiB per value (~0.6 MiB here) and the cache ≤ 256 KiB; the
    // old cache kept every value whole (600 MiB). 32 MiB leaves room for the allocator.
    let growth = after.saturating_sub(before);
    assert!(growth < 32 << 20, "RSS grew by {} MiB", growth >> 20);
}
