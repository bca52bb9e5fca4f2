//! The environment/configuration parser: any set of `HOTMETER_*` values (any text) is either
//! applied or refused with an error that names the variable it came from; a configuration
//! that is applied is either valid or refused by `validate` naming a knob; nothing panics.
//! Also the `Accept` negotiation the endpoint uses, on arbitrary header text.
#![no_main]

use arbitrary::Arbitrary;
use hotmeter::{Config, Format};
use libfuzzer_sys::fuzz_target;

const VARS: [&str; 16] = [
    "HOTMETER_SAMPLE_RATE",
    "HOTMETER_MIN_SAMPLE_RATE",
    "HOTMETER_MAX_SAMPLE_RATE",
    "HOTMETER_ADAPTIVE",
    "HOTMETER_RING_CAPACITY",
    "HOTMETER_FLUSH_INTERVAL",
    "HOTMETER_QUANTILE_WINDOW",
    "HOTMETER_OVERFLOW",
    "HOTMETER_SERIES_CAP",
    "HOTMETER_MAX_SERIES",
    "HOTMETER_CRITICAL_LANE_BYTES",
    "HOTMETER_WAKE_ON_HIGH_WATER",
    "HOTMETER_SEED",
    "HOTMETER_LISTEN",
    "HOTMETER_TOKEN",
    "HOTMETER_NOT_A_KNOB",
];

#[derive(Arbitrary, Debug)]
struct Input {
    /// (index into VARS, value) pairs; a later one for the same variable wins.
    vars: Vec<(u8, String)>,
    accept: Option<String>,
}

fuzz_target!(|input: Input| {
    let mut env: Vec<(&str, String)> = Vec::new();
    for (i, v) in input.vars.into_iter().take(32) {
        let var = VARS[i as usize % VARS.len()];
        env.retain(|(k, _)| *k != var);
        env.push((var, v));
    }
    let get = |k: &str| {
        env.iter()
            .find(|(var, _)| *var == k)
            .map(|(_, v)| v.clone())
    };
    match Config::default().apply_env_from(get) {
        Ok(c) => {
            if let Err(e) = c.validate() {
                assert!(!e.knob.is_empty(), "{e:?}");
                let _ = e.to_string();
            }
        }
        Err(e) => {
            assert!(
                env.iter().any(|(var, _)| *var == e.knob),
                "the error names a variable that was set: {e:?}"
            );
            // The token's text is never echoed.
            if e.knob == "HOTMETER_TOKEN" {
                assert_eq!(e.value, "***");
            }
            let _ = e.to_string();
        }
    }
    let format = Format::from_accept(input.accept.as_deref());
    assert!(matches!(format, Format::Text | Format::OpenMetrics));
});
