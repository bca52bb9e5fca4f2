//! A strict parser for both exposition formats, for tests and the fuzz target: it accepts
//! only what the formats allow (and what hotmeter promises: no duplicate series, cumulative
//! buckets ending in `+Inf` equal to `_count`), and returns the families with unescaped
//! strings, so a rendering can be checked to round-trip. Test code only: included by the
//! integration tests (`tests/common`), the crate's own unit tests and the fuzz target
//! (`#[path]`), never shipped in the library. It names the crate as `hotmeter` (the
//! library's unit tests alias `crate` to that name), so the one file serves all three.
#![allow(dead_code)]

use hotmeter::Format;

/// Label pairs in order, unescaped.
pub type Labels = Vec<(String, String)>;

/// A parsed exemplar: labels, value, timestamp.
pub type ParsedExemplar = (Labels, f64, Option<f64>);

/// A parsed family.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFamily {
    /// The family name (as on the TYPE line).
    pub name: String,
    /// The type.
    pub kind: String,
    /// HELP text, unescaped.
    pub help: String,
    /// The `# UNIT` (OpenMetrics only), empty without one.
    pub unit: String,
    /// Samples in order.
    pub samples: Vec<ParsedSample>,
}

/// A parsed sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    /// The sample name (`x_total`, `h_bucket`, ...).
    pub name: String,
    /// Labels in order, unescaped.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// An exemplar: labels, value, timestamp.
    pub exemplar: Option<ParsedExemplar>,
}

fn is_metric_name(s: &str) -> bool {
    hotmeter::check_metric_name(s).is_ok()
        || s.starts_with("hotmeter_") && {
            let b = s.as_bytes();
            b.iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
        }
}

fn unescape(s: &str, quotes: bool) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('"') if quotes => out.push('"'),
                other => return Err(format!("bad escape \\{other:?}")),
            }
        } else if c == '\n' {
            return Err("raw newline".into());
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn parse_float(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => {
            let ok = !s.is_empty()
                && s.bytes()
                    .all(|c| c.is_ascii_digit() || b"+-.eE".contains(&c))
                && s.bytes().any(|c| c.is_ascii_digit());
            if !ok {
                return Err(format!("bad number {s:?}"));
            }
            s.parse::<f64>()
                .map_err(|e| format!("bad number {s:?}: {e}"))
        }
    }
}

/// Parses `{a="x",b="y"}` at the start of `s`; returns the labels and the rest.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    let Some(mut rest) = s.strip_prefix('{') else {
        return Ok((labels, s));
    };
    if let Some(r) = rest.strip_prefix('}') {
        return Ok((labels, r));
    }
    loop {
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        hotmeter::check_label_name(name)
            .or_else(|e| {
                if name == "le" || name == "quantile" {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| format!("label name {name:?}: {e}"))?;
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut end = None;
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(i);
                break;
            }
        }
        let end = end.ok_or("unterminated label value")?;
        let value = unescape(&rest[..end], true)?;
        if labels.iter().any(|(k, _): &(String, String)| k == name) {
            return Err(format!("duplicate label {name:?}"));
        }
        labels.push((name.to_string(), value));
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        rest = rest.strip_prefix(',').ok_or("expected , or }")?;
    }
}

fn suffixes(kind: &str, format: Format) -> &'static [&'static str] {
    match (kind, format) {
        ("counter", Format::OpenMetrics) => &["_total"],
        ("histogram", _) => &["_bucket", "_count", "_sum"],
        ("summary", _) => &["", "_count", "_sum"],
        _ => &[""],
    }
}

/// Parses `text` as `format`, strictly.
pub fn parse(text: &str, format: Format) -> Result<Vec<ParsedFamily>, String> {
    let mut families: Vec<ParsedFamily> = Vec::new();
    let mut seen_series = std::collections::HashSet::new();
    let body = match format {
        Format::OpenMetrics => text
            .strip_suffix("# EOF\n")
            .ok_or("OpenMetrics must end with `# EOF`")?,
        Format::Text => {
            if text.contains("# EOF") {
                return Err("`# EOF` in the 0.0.4 format".into());
            }
            text
        }
    };
    if !body.is_empty() && !body.ends_with('\n') {
        return Err("last line not terminated".into());
    }
    let mut pending_help: Option<(String, String)> = None;
    // `\n` only: a `\r` is an ordinary character in label values and HELP.
    for line in body.split_terminator('\n') {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            if !is_metric_name(name) {
                return Err(format!("bad name in HELP: {name:?}"));
            }
            pending_help = Some((
                name.to_string(),
                unescape(help, format == Format::OpenMetrics)?,
            ));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or("TYPE without type")?;
            if !["counter", "gauge", "histogram", "summary"].contains(&kind) {
                return Err(format!("unexpected type {kind:?}"));
            }
            if families.iter().any(|f| f.name == name) {
                return Err(format!("family {name:?} appears twice"));
            }
            let help = match pending_help.take() {
                Some((n, h)) if n == name => h,
                Some((n, _)) => return Err(format!("HELP for {n:?} before TYPE of {name:?}")),
                None => String::new(),
            };
            families.push(ParsedFamily {
                name: name.to_string(),
                kind: kind.to_string(),
                help,
                unit: String::new(),
                samples: Vec::new(),
            });
            continue;
        }
        if let Some(rest) = line.strip_prefix("# UNIT ") {
            if format != Format::OpenMetrics {
                return Err("UNIT in the 0.0.4 format".into());
            }
            let (name, unit) = rest.split_once(' ').ok_or("UNIT without unit")?;
            let family = families
                .last_mut()
                .filter(|f| f.name == name && f.samples.is_empty() && f.unit.is_empty())
                .ok_or_else(|| format!("UNIT of {name:?} not right after its TYPE"))?;
            // OpenMetrics: the unit is a suffix of the family name.
            if unit.is_empty() || !name.ends_with(&format!("_{unit}")) {
                return Err(format!("unit {unit:?} is not a suffix of {name:?}"));
            }
            family.unit = unit.to_string();
            continue;
        }
        if line.starts_with('#') {
            return Err(format!("unexpected comment {line:?}"));
        }
        let family = families.last_mut().ok_or("sample before any TYPE")?;
        let name_end = line.find(['{', ' ']).ok_or("sample without value")?;
        let name = &line[..name_end];
        let suffix_ok = suffixes(&family.kind, format)
            .iter()
            .any(|s| name.strip_suffix(s) == Some(family.name.as_str()));
        if !suffix_ok {
            return Err(format!("sample {name:?} in family {:?}", family.name));
        }
        let (labels, rest) = parse_labels(&line[name_end..])?;
        let rest = rest.strip_prefix(' ').ok_or("no space before value")?;
        let (value, exemplar) = match rest.split_once(" # ") {
            Some((v, e)) if format == Format::OpenMetrics => (v, Some(e)),
            Some(_) => return Err("exemplar in the 0.0.4 format".into()),
            None => (rest, None),
        };
        let value = parse_float(value)?;
        let exemplar = match exemplar {
            None => None,
            Some(e) => {
                if !name.ends_with("_bucket") && !name.ends_with("_total") {
                    return Err("exemplar on a sample that cannot carry one".into());
                }
                let (elabels, rest) = parse_labels(e)?;
                if !e.starts_with('{') {
                    return Err("exemplar without label set".into());
                }
                let rest = rest.strip_prefix(' ').ok_or("exemplar without value")?;
                let mut parts = rest.split(' ');
                let v = parse_float(parts.next().unwrap_or(""))?;
                let ts = parts.next().map(parse_float).transpose()?;
                if parts.next().is_some() {
                    return Err("trailing exemplar fields".into());
                }
                Some((elabels, v, ts))
            }
        };
        if !seen_series.insert((name.to_string(), labels.clone())) {
            return Err(format!("duplicate series {name}{labels:?}"));
        }
        family.samples.push(ParsedSample {
            name: name.to_string(),
            labels,
            value,
            exemplar,
        });
    }
    if pending_help.is_some() {
        return Err("HELP without TYPE".into());
    }
    // Counter-like samples (counter totals, histogram and summary counts, sums, buckets)
    // must not be negative or NaN.
    for f in &families {
        for smp in &f.samples {
            let counter_like = match f.kind.as_str() {
                "counter" => true,
                "histogram" => true,
                "summary" => smp.name != f.name,
                _ => false,
            };
            if counter_like && (smp.value.is_nan() || smp.value < 0.0) {
                return Err(format!("{}: {} is negative or NaN", f.name, smp.name));
            }
        }
    }
    // A family's name is nobody else's sample name.
    for f in &families {
        if let Some(g) = families
            .iter()
            .find(|g| g.name != f.name && g.samples.iter().any(|smp| smp.name == f.name))
        {
            return Err(format!(
                "family {:?} clashes with a sample of {:?}",
                f.name, g.name
            ));
        }
    }
    for f in &families {
        if f.kind == "histogram" {
            check_histogram(f)?;
        }
    }
    Ok(families)
}

/// Per series: buckets in increasing `le`, cumulative, ending at `+Inf` == `_count`.
fn check_histogram(f: &ParsedFamily) -> Result<(), String> {
    let strip_le = |l: &[(String, String)]| -> Vec<(String, String)> {
        l.iter().filter(|(k, _)| k != "le").cloned().collect()
    };
    let mut series: Vec<Vec<(String, String)>> = Vec::new();
    for s in &f.samples {
        let key = strip_le(&s.labels);
        if !series.contains(&key) {
            series.push(key);
        }
    }
    for key in series {
        let mut last_le = f64::NEG_INFINITY;
        let mut last_count = 0.0;
        let mut inf = None;
        let mut count = None;
        for s in f.samples.iter().filter(|s| strip_le(&s.labels) == key) {
            if s.name.ends_with("_bucket") {
                let le = s
                    .labels
                    .iter()
                    .find(|(k, _)| k == "le")
                    .ok_or("bucket without le")?;
                let le = parse_float(&le.1)?;
                if le <= last_le || s.value < last_count {
                    return Err(format!("{}: buckets not increasing", f.name));
                }
                if let Some((_, v, _)) = &s.exemplar
                    && (*v > le || *v <= last_le)
                {
                    return Err(format!("{}: exemplar {v} outside its bucket", f.name));
                }
                (last_le, last_count) = (le, s.value);
                if le == f64::INFINITY {
                    inf = Some(s.value);
                }
            } else if s.name.ends_with("_count") {
                count = Some(s.value);
            }
        }
        match (inf, count) {
            (Some(i), Some(c)) if i == c => {}
            _ => return Err(format!("{}: +Inf bucket missing or != _count", f.name)),
        }
    }
    Ok(())
}
