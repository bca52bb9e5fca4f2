//! The `/metrics` endpoint: formats, gzip, routes, auth, stopping with the engine (abuse is
//! in `tests/http_abuse.rs`).
// The endpoint's tests: nothing to run without it.
#![cfg(feature = "http")]

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use common::parse::parse;
use common::{PROMETHEUS_ACCEPT, exchange, get, local};
use hotmeter::{Engine, Format};

#[test]
fn negotiates_the_format_and_gzip() {
    let engine = Engine::builder().build().unwrap();
    engine.registry().counter("hits_total", &[]).unwrap().add(5);
    let addr = engine.serve(local()).unwrap();

    let om = get(addr, "/metrics", &[("Accept", PROMETHEUS_ACCEPT)]);
    assert_eq!(om.status, 200);
    assert_eq!(
        om.header("content-type"),
        Some(Format::OpenMetrics.content_type())
    );
    let fams = parse(&om.text(), Format::OpenMetrics).unwrap();
    assert!(fams.iter().any(|f| f.name == "hits"));

    for accept in [None, Some("text/plain;version=0.0.4"), Some("*/*")] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
        let r = get(addr, "/metrics", &headers);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some(Format::Text.content_type()));
        let body = r.text();
        assert!(
            !body.contains("# EOF"),
            "never OpenMetrics under text/plain"
        );
        parse(&body, Format::Text).unwrap();
        assert!(body.contains("\nhits_total 5\n"));
    }

    let gz = get(
        addr,
        "/metrics",
        &[("Accept", PROMETHEUS_ACCEPT), ("Accept-Encoding", "gzip")],
    );
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_string(&mut plain)
        .unwrap();
    let fams = parse(&plain, Format::OpenMetrics).unwrap();
    let hits = fams.iter().find(|f| f.name == "hits").unwrap();
    assert_eq!(hits.samples[0].value, 5.0);
    let no = get(addr, "/metrics", &[("Accept-Encoding", "gzip;q=0")]);
    assert_eq!(no.header("content-encoding"), None);
    engine.shutdown();
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
        "the endpoint stops with the engine"
    );
}

#[test]
fn routes_methods_and_token() {
    let engine = Engine::builder().token("s3cret-token").build().unwrap();
    let addr = engine.serve(local()).unwrap();
    assert_eq!(get(addr, "/", &[]).status, 404);
    assert_eq!(get(addr, "/metrics/x", &[]).status, 404);
    let post = exchange(
        addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(get(addr, "/metrics", &[]).status, 401);
    let wrong = get(
        addr,
        "/metrics",
        &[("Authorization", "Bearer s3cret-tokem")],
    );
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("www-authenticate").is_some());
    assert_eq!(
        get(addr, "/metrics", &[("Authorization", "Basic czNjcmV0")]).status,
        401
    );
    let ok = get(
        addr,
        "/metrics",
        &[("Authorization", "Bearer s3cret-token")],
    );
    assert_eq!(ok.status, 200);
    // The endpoint counts what it answered.
    let ok = get(
        addr,
        "/metrics",
        &[("Authorization", "Bearer s3cret-token")],
    );
    let body = ok.text();
    assert!(
        body.contains("hotmeter_http_responses_total{code=\"401\"} 3"),
        "{body}"
    );
    assert!(
        body.contains("hotmeter_http_responses_total{code=\"404\"} 2"),
        "{body}"
    );
    assert!(
        body.contains("hotmeter_http_responses_total{code=\"405\"} 1"),
        "{body}"
    );
}
