//! A real Prometheus server (the Debian package, installed by `.ci/run`) scrapes the
//! endpoint every second: the target is up with no error, an instant query returns the
//! exact counter value, a label value with quotes, a backslash and a newline comes back
//! byte-identical, the summary and histogram series are stored, and the scrapes were gzip.
//! Skipped, loudly, only when the `prometheus` binary is absent (and never under
//! `HOTMETER_REQUIRE_TOOLS=1`).
// The endpoint's tests: nothing to run without it.
#![cfg(feature = "http")]

mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::get;
use hotmeter::{Engine, Format};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn api(prom: SocketAddr, path: &str) -> serde_json::Value {
    let r = get(prom, path, &[]);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn a_real_prometheus_scrapes_exact_values() {
    if !common::tool_available("prometheus") {
        return;
    }
    let weird = "quote\" backslash\\ newline\n end";
    let engine = Engine::builder()
        .sample_rate(1.0)
        .max_sample_rate(1.0)
        .build()
        .unwrap();
    let r = engine.registry();
    r.counter("scraped_total", &[("path", weird)])
        .unwrap()
        .add(12345);
    let h = r.histogram("scrape_latency_seconds", &[]).unwrap();
    h.record_keyed(0.003, &"trace-1");
    h.record(0.2);
    let s = r.sampled("payload_bytes", &[]).unwrap();
    for i in 0..1000 {
        s.record(i as f64);
    }
    engine.flush();
    let target = engine.serve("127.0.0.1:0").unwrap();

    let dir = std::env::temp_dir().join(format!("hotmeter-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: hotmeter\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _prom = KillOnDrop(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start prometheus"),
    );

    // Up, with no scrape error, and two scrapes in (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = String::new();
    loop {
        assert!(Instant::now() < deadline, "target never healthy: {last}");
        std::thread::sleep(Duration::from_millis(500));
        let Ok(reply) = common::exchange(
            web,
            format!("GET /api/v1/targets HTTP/1.1\r\nHost: {web}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        ) else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&reply.body) else {
            continue;
        };
        let t = &v["data"]["activeTargets"][0];
        last = t.to_string();
        if t["health"] == "up" && engine_scrapes(&engine) >= 2 {
            assert_eq!(t["lastError"], "", "{t}");
            break;
        }
    }

    let v = api(
        web,
        &format!("/api/v1/query?query={}", encode("scraped_total")),
    );
    let result = &v["data"]["result"];
    assert_eq!(result.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(result[0]["value"][1], "12345", "{v}");
    assert_eq!(result[0]["metric"]["path"].as_str().unwrap(), weird);

    let v = api(
        web,
        &format!("/api/v1/query?query={}", encode("payload_bytes_count")),
    );
    assert_eq!(v["data"]["result"][0]["value"][1], "1000", "{v}");
    let v = api(
        web,
        &format!(
            "/api/v1/query?query={}",
            encode("scrape_latency_seconds_bucket{le=\"+Inf\"}")
        ),
    );
    assert_eq!(v["data"]["result"][0]["value"][1], "2", "{v}");

    // Prometheus asked for OpenMetrics and gzip; the endpoint says what it answered.
    let text = engine.render(Format::Text).unwrap();
    let gzip = text
        .lines()
        .find_map(|l| l.strip_prefix("hotmeter_http_gzip_responses_total "))
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(gzip >= 2, "gzip responses: {gzip}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn engine_scrapes(engine: &Engine) -> u64 {
    let text = engine.render(Format::Text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("hotmeter_http_responses_total{code=\"200\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
