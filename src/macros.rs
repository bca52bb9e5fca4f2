//! The recording macros. Each expands to a call-site `static` (tracing / metrics-rs style):
//! literal names and label names are checked at compile time, and a site with only literal
//! labels resolves its series once.

/// The one call-site body of every recording macro, for handle kind `$kind` (`Counter`,
/// `Gauge`, `Histogram`, `Sampled`). Literal label values: a `static` site that resolves
/// the series once, and a `const`, destructor-free thread-local slot caching this thread's
/// cells of it; the result is a [`SiteHandle`](crate::__macro_support::SiteHandle).
/// Dynamic label values: a site resolving through the per-thread label cache; the result is
/// the plain handle.
#[cfg(not(hotmeter_disabled))]
#[doc(hidden)]
#[macro_export]
macro_rules! __hotmeter_site {
    ($kind:ident, $name:literal $(, $k:literal => $v:literal)* $(,)?) => {{
        const _: () = {
            $crate::__macro_support::assert_metric_name($name);
            $( $crate::__macro_support::assert_label_name($k); )*
        };
        static __HOTMETER_SITE: $crate::__macro_support::Site<$crate::$kind> =
            $crate::__macro_support::Site::new($name, &[$(($k, $v)),*]);
        ::std::thread_local! {
            static __HOTMETER_SLOT: $crate::__macro_support::Slot =
                const { $crate::__macro_support::Slot::new() };
        }
        // SAFETY: the slot is declared beside this site, for it alone.
        unsafe { __HOTMETER_SITE.at(&__HOTMETER_SLOT) }
    }};
    ($kind:ident, $name:literal $(, $k:literal => $v:expr)+ $(,)?) => {{
        const _: () = {
            $crate::__macro_support::assert_metric_name($name);
            $( $crate::__macro_support::assert_label_name($k); )+
        };
        static __HOTMETER_SITE: $crate::__macro_support::DynSite =
            $crate::__macro_support::DynSite::new($name, &[$($k),+]);
        __HOTMETER_SITE.get::<$crate::$kind>(&[$( $crate::__macro_support::label_value(&$v) ),+])
    }};
}

/// [`__hotmeter_site!`] under `--cfg hotmeter_disabled`: the same compile-time checks, label
/// values evaluated (as borrows) and dropped, no statics, no thread-locals, and a handle
/// whose methods are empty.
#[cfg(hotmeter_disabled)]
#[doc(hidden)]
#[macro_export]
macro_rules! __hotmeter_site {
    ($kind:ident, $name:literal $(, $k:literal => $v:expr)* $(,)?) => {{
        const _: () = {
            $crate::__macro_support::assert_metric_name($name);
            $( $crate::__macro_support::assert_label_name($k); )*
        };
        $( let _ = $crate::__macro_support::label_value(&$v); )*
        $crate::__macro_support::SiteHandle::<$crate::$kind>::DISABLED
    }};
}

/// The [`Counter`](crate::Counter) `name{labels}` in the global registry.
///
/// The name and label names must be string literals; they are checked against the
/// Prometheus rules at compile time. Label values are literals (resolved once per call
/// site) or expressions of any `AsRef<str>` type (resolved through a per-thread cache).
///
/// ```
/// let route = String::from("/users");
/// hotmeter::counter!("http_requests_total").inc();
/// hotmeter::counter!("http_requests_total", "method" => "GET", "code" => "200").add(2);
/// hotmeter::counter!("bytes_sent_total", "route" => route).add(512);
/// ```
///
/// A bad literal name does not compile:
///
/// ```compile_fail
/// hotmeter::counter!("http-requests").inc();
/// ```
///
/// ```compile_fail
/// hotmeter::counter!("__reserved").inc();
/// ```
///
/// ```compile_fail
/// hotmeter::counter!("ok_total", "bad-label" => "x").inc();
/// ```
///
/// If registration fails at run time (the name is already a gauge, or the cell space is
/// exhausted) the error is printed once per call site to stderr, counted in
/// [`MetaSnapshot::registration_errors`](crate::MetaSnapshot::registration_errors), and the
/// site records into a discard handle: a hot path never panics.
#[macro_export]
macro_rules! counter {
    ($($args:tt)+) => { $crate::__hotmeter_site!(Counter, $($args)+) };
}

/// The [`Gauge`](crate::Gauge) `name{labels}` in the global registry. Same rules as
/// [`counter!`].
///
/// ```
/// hotmeter::gauge!("queue_depth").set(3.0);
/// hotmeter::gauge!("pool_connections", "pool" => "db").add(1.0);
/// ```
///
/// ```compile_fail
/// hotmeter::gauge!("queue depth").set(3.0);
/// ```
#[macro_export]
macro_rules! gauge {
    ($($args:tt)+) => { $crate::__hotmeter_site!(Gauge, $($args)+) };
}

/// The [`Histogram`](crate::Histogram) `name{labels}` in the global registry, with the
/// default bucket configuration (seconds) unless the family was first registered with
/// [`Registry::histogram_with`](crate::Registry::histogram_with). Same rules as
/// [`counter!`].
///
/// ```
/// hotmeter::histogram!("request_seconds").record(0.0042);
/// hotmeter::histogram!("request_seconds", "route" => "/").record(0.0042);
/// ```
///
/// ```compile_fail
/// hotmeter::histogram!("9lives").record(1.0);
/// ```
#[macro_export]
macro_rules! histogram {
    ($($args:tt)+) => { $crate::__hotmeter_site!(Histogram, $($args)+) };
}

/// A [`Timer`](crate::Timer) guard that records the seconds until it is dropped into the
/// histogram `name{labels}`. Bind it to a named variable (`_t`, not `_`, which drops it at
/// once).
///
/// ```
/// fn query() {
///     let _t = hotmeter::timer!("db_query_seconds");
///     // ... the work being timed ...
/// }
/// query();
/// ```
#[macro_export]
macro_rules! timer {
    ($($args:tt)+) => { $crate::histogram!($($args)+).start_timer() };
}

/// Records a sampled event into the global engine: the exact count and sum always, and a
/// compact record (value, key, time, the rate it was sampled at) for the calls the sampler
/// selects. See [`Sampled`](crate::Sampled). Labels follow the value (and the key), as
/// `"name" => value` pairs; literal values resolve once per call site, others through a
/// per-thread cache. `quantile`, `for_quantile` and `key` are reserved label names here.
///
/// ```
/// let len = 512usize;
/// let client_id = 42u64;
/// let route = String::from("/upload");
/// hotmeter::record!("message_bytes", len as f64);                  // sampled
/// hotmeter::record!("message_bytes", len as f64, key = client_id); // with a key
/// hotmeter::record!("message_bytes", len as f64, "kind" => "data"); // with labels
/// hotmeter::record!("message_bytes", len as f64, key = client_id, "route" => route);
/// hotmeter::record!(critical, "message_failed", 1.0);              // never sampled out
/// hotmeter::record!(critical, "message_failed", 1.0, key = "client-7", "kind" => "io");
/// ```
///
/// ```compile_fail
/// hotmeter::record!("message bytes", 1.0);
/// ```
///
/// ```compile_fail
/// hotmeter::record!("message_bytes", 1.0, "bad-label" => "x");
/// ```
#[macro_export]
macro_rules! record {
    // Labels travel as token trees, so literal values still reach the static site.
    (critical, $name:literal, $value:expr, key = $key:expr $(, $($labels:tt)*)?) => {
        $crate::__hotmeter_site!(Sampled, $name $(, $($labels)*)?)
            .record_critical_keyed($value, &$key)
    };
    (critical, $name:literal, $value:expr $(, $($labels:tt)*)?) => {
        $crate::__hotmeter_site!(Sampled, $name $(, $($labels)*)?).record_critical($value)
    };
    ($name:literal, $value:expr, key = $key:expr $(, $($labels:tt)*)?) => {
        $crate::__hotmeter_site!(Sampled, $name $(, $($labels)*)?).record_keyed($value, &$key)
    };
    ($name:literal, $value:expr $(, $($labels:tt)*)?) => {
        $crate::__hotmeter_site!(Sampled, $name $(, $($labels)*)?).record($value)
    };
}

/// A timer that reads the clock only when the call is sampled; the count stays exact. See
/// [`Sampled::start_timer`](crate::Sampled::start_timer). Labels as in [`record!`].
///
/// ```
/// fn handle() {
///     let _t = hotmeter::sampled_timer!("handle_seconds");
///     let _r = hotmeter::sampled_timer!("route_seconds", "route" => "/a");
///     // ... the work ...
/// }
/// handle();
/// ```
#[macro_export]
macro_rules! sampled_timer {
    ($name:literal $(, $($labels:tt)*)?) => {
        $crate::__hotmeter_site!(Sampled, $name $(, $($labels)*)?).start_timer()
    };
}
