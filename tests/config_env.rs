//! Issue 9, defect 7: a value from the environment that parses but fails validation is an
//! error naming the variable (not the builder method), also when it contradicts another
//! knob or cannot be served. Alone in its test binary: it sets the process environment.

use std::time::Duration;

use hotmeter::{BuildError, ConfigError, Engine, InstallError};

/// Runs `f` with `vars` set in the environment (and only them of `HOTMETER_*`).
fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
    // SAFETY: this binary has this one test, which is the only thread that reads or writes
    // the environment (no engine or endpoint thread runs while a variable changes).
    unsafe {
        for (k, v) in vars {
            std::env::set_var(k, v);
        }
    }
    let out = f();
    // SAFETY: as above.
    unsafe {
        for (k, _) in vars {
            std::env::remove_var(k);
        }
    }
    out
}

fn build_err(vars: &[(&str, &str)]) -> ConfigError {
    match with_env(vars, || match Engine::builder().from_env() {
        Err(e) => BuildError::Config(e),
        Ok(b) => b.build().expect_err("refused"),
    }) {
        BuildError::Config(e) => e,
        other => panic!("{other:?}"),
    }
}

#[test]
fn environment_errors_name_the_variable() {
    for (var, value) in [
        ("HOTMETER_FLUSH_INTERVAL", "0"),
        ("HOTMETER_FLUSH_INTERVAL", "0.5ms"),
        ("HOTMETER_FLUSH_INTERVAL", "2h"),
        ("HOTMETER_FLUSH_INTERVAL", "3601"),
        ("HOTMETER_RING_CAPACITY", "16777217"),
        ("HOTMETER_QUANTILE_WINDOW", "0"),
        // Valid alone, but above the default highest rate (0.15) / below the lowest (0.01).
        ("HOTMETER_MIN_SAMPLE_RATE", "0.5"),
        ("HOTMETER_MAX_SAMPLE_RATE", "0.001"),
    ] {
        let e = build_err(&[(var, value)]);
        assert_eq!(e.knob, var, "{var}={value}: {e}");
        assert_eq!(e.value, value, "{var}={value}: {e}");
        assert!(e.to_string().contains(var), "{e}");
    }
    // Parses, but cannot be bound here: a bind error naming the variable, carrying the
    // `io::Error`.
    #[cfg(feature = "http")]
    {
        let e = with_env(&[("HOTMETER_LISTEN", "1.2.3.4:9464")], || {
            Engine::builder().from_env().unwrap().build().unwrap_err()
        });
        match &e {
            BuildError::Bind(b) => {
                assert_eq!(
                    (b.knob.as_str(), b.addr.as_str()),
                    ("HOTMETER_LISTEN", "1.2.3.4:9464")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("HOTMETER_LISTEN"), "{e}");
        let source = std::error::Error::source(&e).expect("the io::Error");
        assert!(
            source.downcast_ref::<std::io::Error>().is_some(),
            "{source:?}"
        );
    }
    // A token the endpoint could never read (longer than its request-header limit) is
    // refused, and the error does not repeat it.
    #[cfg(feature = "http")]
    {
        let long = "t".repeat(hotmeter::export::http::MAX_TOKEN_BYTES + 1);
        let e = build_err(&[("HOTMETER_TOKEN", &long)]);
        assert_eq!(
            (e.knob.as_str(), e.value.as_str()),
            ("HOTMETER_TOKEN", "***")
        );
    }
    // Without the endpoint, asking for one is an error naming the variable and the feature
    // (not silently ignored).
    #[cfg(not(feature = "http"))]
    for (var, value, shown) in [
        ("HOTMETER_LISTEN", "127.0.0.1:9464", "127.0.0.1:9464"),
        ("HOTMETER_TOKEN", "t", "***"),
    ] {
        let e = build_err(&[(var, value)]);
        assert_eq!((e.knob.as_str(), e.value.as_str()), (var, shown));
        assert!(e.to_string().contains("`http` cargo feature"), "{e}");
    }

    // The same values through the builder name the builder method.
    let e = Engine::builder()
        .flush_interval(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.config().unwrap().knob, "flush_interval");
    // A builder call after `from_env` replaces the variable's value: then it is the
    // method's value that is checked (and here valid).
    with_env(&[("HOTMETER_MIN_SAMPLE_RATE", "0.5")], || {
        Engine::builder()
            .from_env()
            .unwrap()
            .min_sample_rate(0.01)
            .build()
            .unwrap();
        let e = Engine::builder()
            .from_env()
            .unwrap()
            .max_sample_rate(0.25)
            .build()
            .unwrap_err();
        assert_eq!(e.config().unwrap().knob, "HOTMETER_MIN_SAMPLE_RATE", "{e}");
    });
    // `install` reports the same errors.
    let e = with_env(&[("HOTMETER_MIN_SAMPLE_RATE", "0.5")], || {
        Engine::builder().from_env().unwrap().install().unwrap_err()
    });
    match e {
        InstallError::Config(e) => assert_eq!(e.knob, "HOTMETER_MIN_SAMPLE_RATE"),
        other => panic!("{other:?}"),
    }
}
