//! `HOTMETER_LISTEN` and `HOTMETER_TOKEN` end to end: the lazily started global engine
//! serves its macros' series on the configured address with the configured token. Alone in
//! its test binary, because it sets the environment before the global engine starts.
// The endpoint's tests: nothing to run without it.
#![cfg(feature = "http")]

mod common;

use common::get;

#[test]
fn the_global_engine_serves_what_the_environment_asks() {
    // SAFETY: nothing else runs in this process yet (one test in this binary, no other
    // thread started), so no concurrent reader of the environment exists.
    unsafe {
        std::env::set_var("HOTMETER_LISTEN", "127.0.0.1:0");
        std::env::set_var("HOTMETER_TOKEN", "env-token");
    }
    hotmeter::counter!("env_requests_total", "path" => "/a").add(7);
    let engine = hotmeter::global_engine();
    let endpoints = engine.endpoints();
    assert_eq!(endpoints.len(), 1, "{endpoints:?}");
    let addr = endpoints[0];
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    assert_eq!(get(addr, "/metrics", &[]).status, 401);
    let ok = get(addr, "/metrics", &[("Authorization", "Bearer env-token")]);
    assert_eq!(ok.status, 200);
    assert!(
        ok.text().contains("\nenv_requests_total{path=\"/a\"} 7\n"),
        "{}",
        ok.text()
    );
}
