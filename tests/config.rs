//! Configuration bounds (issue 9, defect 7): the flush interval is bounded (a zero one burnt
//! a core, `Duration::MAX` panicked the flusher), and a bearer token longer than a request
//! header can carry is refused when the engine is built, while the longest accepted one
//! works end to end.

mod common;

use std::time::Duration;

#[cfg(feature = "http")]
use common::{get, local};
use hotmeter::Engine;
#[cfg(feature = "http")]
use hotmeter::export::http::MAX_TOKEN_BYTES;

#[test]
fn the_flush_interval_is_bounded() {
    for bad in [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_micros(999),
        Duration::from_secs(3600) + Duration::from_nanos(1),
        Duration::MAX,
    ] {
        let e = Engine::builder().flush_interval(bad).build().unwrap_err();
        assert_eq!(e.config().unwrap().knob, "flush_interval", "{bad:?}");
    }
    for good in [Duration::from_millis(1), Duration::from_secs(3600)] {
        Engine::builder().flush_interval(good).build().unwrap();
    }
}

#[cfg(feature = "http")]
#[test]
fn a_token_longer_than_a_header_can_carry_is_refused() {
    let e = Engine::builder()
        .token("t".repeat(MAX_TOKEN_BYTES + 1))
        .build()
        .unwrap_err();
    let e = e.config().unwrap();
    assert_eq!((e.knob.as_str(), e.value.as_str()), ("token", "***"));
    // The longest accepted token fits in a request with the headers Prometheus sends.
    let token = "t".repeat(MAX_TOKEN_BYTES);
    let e = Engine::builder().token(token.clone()).build().unwrap();
    let addr = e.serve(local()).unwrap();
    let bearer = format!("Bearer {token}");
    let reply = get(
        addr,
        "/metrics",
        &[
            ("Accept", common::PROMETHEUS_ACCEPT),
            ("Accept-Encoding", "gzip"),
            ("User-Agent", "Prometheus/3.0.0"),
            ("X-Prometheus-Scrape-Timeout-Seconds", "10"),
            ("Authorization", &bearer),
        ],
    );
    assert_eq!(reply.status, 200);
    assert_eq!(get(addr, "/metrics", &[]).status, 401);
}

/// A busy port: `build` answers a typed bind error whose source is the `io::Error` (not a
/// configuration error with the cause printed to stderr); `serve` takes what
/// `ToSocketAddrs` takes.
#[cfg(feature = "http")]
#[test]
fn a_bind_failure_carries_the_io_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let e = Engine::builder().listen(addr).build().unwrap_err();
    match &e {
        hotmeter::BuildError::Bind(b) => {
            assert_eq!(b.knob, "listen");
            assert_eq!(b.source.kind(), std::io::ErrorKind::AddrInUse, "{e}");
        }
        other => panic!("{other:?}"),
    }
    let source = std::error::Error::source(&e).expect("a source");
    assert_eq!(
        source
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind),
        Some(std::io::ErrorKind::AddrInUse)
    );
    // The same through a string address; and `serve` reports the `io::Error` itself.
    let e = Engine::builder()
        .listen(addr.to_string().as_str())
        .build()
        .unwrap_err();
    assert!(matches!(e, hotmeter::BuildError::Bind(_)), "{e:?}");
    let engine = Engine::builder().build().unwrap();
    let err = engine.serve(addr.to_string()).unwrap_err();
    match &err {
        hotmeter::ServeError::Bind { addr: a, source } => {
            assert_eq!(*a, addr);
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse, "{err}");
        }
        other => panic!("{other:?}"),
    }
    let served = engine.serve(("127.0.0.1", 0)).unwrap();
    assert_eq!(get(served, "/metrics", &[]).status, 200);
    assert!(engine.serve("127.0.0.1:0").is_ok());
    // An address that does not resolve is a configuration error of `listen`.
    let e = Engine::builder()
        .listen("not an address")
        .build()
        .unwrap_err();
    assert_eq!(e.config().map(|c| c.knob.as_str()), Some("listen"));
    drop(busy);
}

/// `serve_with` refuses a bad `ServeConfig` with a variant naming the knob (not an
/// `io::Error` of kind `InvalidInput`), and tells "resolved to nothing" and "cannot be
/// resolved" apart from a bind failure.
#[cfg(feature = "http")]
#[test]
fn serve_errors_are_typed() {
    use hotmeter::{ServeConfig, ServeError};
    let engine = Engine::builder().build().unwrap();
    let err = engine
        .serve_with(
            local(),
            ServeConfig {
                max_connections: 0,
                ..ServeConfig::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            ServeError::ZeroLimit {
                knob: "max_connections"
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("max_connections"), "{err}");
    let err = engine
        .serve_with(
            local(),
            ServeConfig {
                exchange_timeout: Duration::ZERO,
                ..ServeConfig::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            ServeError::ZeroTimeout {
                knob: "exchange_timeout"
            }
        ),
        "{err:?}"
    );
    let err = engine
        .serve_with(&[][..] as &[std::net::SocketAddr], ServeConfig::default())
        .unwrap_err();
    assert!(matches!(err, ServeError::NoAddress), "{err:?}");
    let err = engine.serve("not an address").unwrap_err();
    assert!(matches!(err, ServeError::Resolve(_)), "{err:?}");
    assert!(std::error::Error::source(&err).is_some_and(|s| s.is::<std::io::Error>()));
    assert!(engine.endpoints().is_empty(), "nothing was started");
}
