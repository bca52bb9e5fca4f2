//! Issue 10, item 5: a top key shows as it was passed (strings, integers, `u128`, IP and
//! socket addresses, byte slices; cut to 64 bytes), in the snapshot and in `/metrics`,
//! through the macros and through handles; two keys that would read alike never share a
//! label. Before, every top key showed as its 64-bit hash in hex.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use hotmeter::{Engine, Format};

/// The global engine (the macros record there), sampling everything, flushed by the tests.
fn engine() -> &'static Engine {
    static E: OnceLock<&'static Engine> = OnceLock::new();
    E.get_or_init(|| {
        Engine::builder()
            .sample_rate(1.0)
            .min_sample_rate(1.0)
            .max_sample_rate(1.0)
            .adaptive(false)
            .flush_interval(Duration::from_secs(3600))
            .install()
            .expect("the only install in this test binary")
    })
}

/// Runs `record` twice (a heavy key named at its first sample after the flush that first
/// reported it), flushing after each; returns the names of `metric`'s top keys, heaviest
/// first.
fn top_names(metric: &str, record: impl Fn()) -> Vec<Option<String>> {
    let e = engine();
    for _ in 0..2 {
        record();
        e.flush();
    }
    e.registry()
        .snapshot()
        .sampled(metric, &[])
        .unwrap_or_else(|| panic!("{metric} not found"))
        .estimate
        .top_keys
        .iter()
        .map(|t| t.name.as_deref().map(str::to_owned))
        .collect()
}

/// The `key` labels of `metric`'s top keys in the OpenMetrics rendering.
fn rendered_keys(metric: &str) -> Vec<String> {
    let text = engine().render(Format::OpenMetrics).unwrap();
    let prefix = format!("{metric}_top_keys{{key=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|l| l[..l.find("\"}").expect("one label")].to_string())
        .collect()
}

#[test]
fn macro_keys_of_every_kind_show_as_passed() {
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));
    let sock = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 8080);
    let bytes: &[u8] = &[0xff, 0x00, 0x7f];
    let long = "x".repeat(100);
    let names = top_names("names_str", || {
        for i in 0..300u32 {
            hotmeter::record!("names_str", 1.0, key = "client-heavy");
            if i % 3 == 0 {
                hotmeter::record!("names_str", 1.0, key = format!("client-{i}"));
            }
        }
    });
    assert_eq!(names[0].as_deref(), Some("client-heavy"), "{names:?}");
    /// A metric, the call that records one event of its key, and the key's label.
    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>, &'a str);
    let long_label = "x".repeat(64);
    let cases: [Case<'_>; 6] = [
        (
            "names_signed",
            Box::new(|| hotmeter::record!("names_signed", 1.0, key = -7i64)),
            "-7",
        ),
        (
            "names_u128",
            Box::new(|| hotmeter::record!("names_u128", 1.0, key = u128::MAX)),
            "340282366920938463463374607431768211455",
        ),
        (
            "names_ip",
            Box::new(move || hotmeter::record!("names_ip", 1.0, key = ip)),
            "10.0.0.7",
        ),
        (
            "names_socket",
            Box::new(move || hotmeter::record!("names_socket", 1.0, key = sock)),
            "[::1]:8080",
        ),
        (
            "names_bytes",
            Box::new(move || hotmeter::record!("names_bytes", 1.0, key = bytes)),
            "0xff007f",
        ),
        (
            "names_long",
            Box::new(|| hotmeter::record!("names_long", 1.0, key = long.as_str())),
            &long_label,
        ),
    ];
    for (metric, record, want) in cases {
        let names = top_names(metric, || {
            for _ in 0..50 {
                record();
            }
        });
        assert_eq!(names, [Some(want.to_string())], "{metric}");
        assert_eq!(rendered_keys(metric), [want], "{metric}");
    }
}

#[test]
fn handle_keys_show_as_passed_and_never_share_a_label() {
    let r = engine().registry();
    let s = r.sampled("names_handle", &[]).unwrap();
    let names = top_names("names_handle", || {
        for _ in 0..300 {
            s.record_keyed(1.0, &7u64);
        }
        for _ in 0..200 {
            s.record_keyed(1.0, "7");
        }
        for _ in 0..100 {
            s.record_critical_keyed(1.0, &Ipv4Addr::new(192, 168, 1, 1));
        }
    });
    assert_eq!(
        names,
        [
            Some("7".to_string()),
            Some("7".to_string()),
            Some("192.168.1.1".to_string())
        ]
    );
    // The integer (heaviest) shows as `7`; the string, which would read the same, as its
    // hash.
    let hash = hotmeter::SampleKey::key_hash("7");
    assert_eq!(
        rendered_keys("names_handle"),
        [
            "7".to_string(),
            format!("{hash:016x}"),
            "192.168.1.1".to_string()
        ]
    );
}

/// A key type of a user's own that writes no label shows as its hash.
#[test]
fn a_key_without_a_label_shows_as_its_hash() {
    struct Opaque;
    impl hotmeter::SampleKey for Opaque {
        fn key_hash(&self) -> u64 {
            0xabc
        }
    }
    let s = engine().registry().sampled("names_opaque", &[]).unwrap();
    let names = top_names("names_opaque", || {
        for _ in 0..10 {
            s.record_keyed(1.0, &Opaque);
        }
    });
    assert_eq!(names, [None]);
    assert_eq!(rendered_keys("names_opaque"), ["0000000000000abc"]);
}
