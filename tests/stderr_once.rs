//! A registration error at a call site is printed to stderr once per call site and counted
//! every time (a kind mismatch at a dynamic-label site used with 1,000 label values printed
//! 1,000 lines before). The test runs itself as a child process to read its stderr.

use std::process::Command;

const CHILD: &str = "HOTMETER_TEST_STDERR_CHILD";
const VALUES: u64 = 1_000;

/// In the child: one name registered as a gauge, then recorded as a counter through one
/// dynamic-label call site with 1,000 values and one literal call site 1,000 times.
fn child() {
    hotmeter::gauge!("stderr_once_mixed").set(1.0);
    for i in 0..VALUES {
        let v = i.to_string();
        hotmeter::counter!("stderr_once_mixed", "v" => v).inc();
        hotmeter::counter!("stderr_once_mixed").inc();
    }
    let errors = hotmeter::global().snapshot().meta.registration_errors;
    // The dynamic site fails once per call (its cache keeps no failure), the literal site
    // once (it resolves to a discard handle and keeps it).
    println!("registration_errors={errors}");
}

#[test]
fn registration_errors_print_once_per_call_site() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "registration_errors_print_once_per_call_site",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = stderr
        .lines()
        .filter(|l| l.starts_with("hotmeter: metric"))
        .count();
    assert_eq!(lines, 2, "one line per call site:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("registration_errors={}", VALUES + 1)),
        "every failure counted:\n{stdout}"
    );
}
