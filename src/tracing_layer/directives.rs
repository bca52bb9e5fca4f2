//! Sampling directives in the style of `EnvFilter`: `info=0.05,my_crate::conn=0.01`.
//! Parsed once, on the cold path, into power-of-two exponents `k` (rate `2^-k`).

use std::fmt;

use tracing::Level;

use crate::{RateError, k_to_rate, rate_to_k};

/// Parsed sampling rates: a default, one per sampled level (TRACE, DEBUG, INFO) and one per
/// target prefix. Rates are stored as exponents `k` (keep probability `2^-k`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directives {
    /// `k` for events no other directive matches (0: keep all).
    default: Option<u8>,
    /// `k` per level, indexed TRACE, DEBUG, INFO.
    levels: [Option<u8>; 3],
    /// `(target prefix, k)`, in the order given; a later directive for the same target
    /// replaces an earlier one.
    targets: Vec<(String, u8)>,
}

/// Why a directive string was refused. Names the directive at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectiveError {
    /// The directive (one comma-separated item), as given.
    pub directive: String,
    /// What is wrong with it.
    pub kind: DirectiveErrorKind,
}

/// What is wrong with a directive.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DirectiveErrorKind {
    /// Neither `TARGET=RATE`, `LEVEL=RATE` nor a bare `RATE`.
    Syntax,
    /// The rate is not a number.
    NotANumber,
    /// The rate is a number outside `(0, 1]`, or too small for a power of two.
    Rate(RateError),
    /// WARN and ERROR are never sampled; a rate for them is refused rather than ignored.
    NeverSampled(Level),
}

impl fmt::Display for DirectiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "log sampling directive `{}`: ", self.directive)?;
        match &self.kind {
            DirectiveErrorKind::Syntax => {
                f.write_str("expected `TARGET=RATE`, `LEVEL=RATE` or `RATE`")
            }
            DirectiveErrorKind::NotANumber => f.write_str("the rate is not a number"),
            DirectiveErrorKind::Rate(RateError::TooSmall { rate }) => {
                write!(f, "rate {rate} is below 2^-63")
            }
            DirectiveErrorKind::Rate(e) => write!(f, "rate must be in (0, 1]: {e:?}"),
            DirectiveErrorKind::NeverSampled(level) => {
                write!(f, "{level} events are never sampled")
            }
        }
    }
}

impl std::error::Error for DirectiveError {}

fn level_index(level: &Level) -> Option<usize> {
    match *level {
        Level::TRACE => Some(0),
        Level::DEBUG => Some(1),
        Level::INFO => Some(2),
        _ => None,
    }
}

fn parse_level(s: &str) -> Option<Level> {
    match s.to_ascii_lowercase().as_str() {
        "trace" => Some(Level::TRACE),
        "debug" => Some(Level::DEBUG),
        "info" => Some(Level::INFO),
        "warn" => Some(Level::WARN),
        "error" => Some(Level::ERROR),
        _ => None,
    }
}

fn is_target(s: &str) -> bool {
    !s.is_empty()
        && s.split("::").all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        })
}

impl Directives {
    /// Parses a comma-separated list of `LEVEL=RATE` (`trace`, `debug`, `info`: WARN and
    /// ERROR are refused), `TARGET=RATE` (a module path prefix, matched on `::` boundaries)
    /// and a bare `RATE` (the default). Rates are probabilities in `(0, 1]`, rounded to the
    /// nearest power of two in log space, as everywhere in hotmeter ([`rate_to_k`]: 0.72 → 1, 0.7 → 1/2). Whitespace around items is ignored; empty items
    /// are skipped. A later directive for the same level or target replaces an earlier one.
    ///
    /// # Errors
    /// A [`DirectiveError`] naming the first bad directive.
    pub fn parse(s: &str) -> Result<Self, DirectiveError> {
        let mut d = Self::default();
        d.extend(s)?;
        Ok(d)
    }

    /// Adds the directives of `s` on top of these (same rules as [`Directives::parse`]).
    ///
    /// # Errors
    /// A [`DirectiveError`] naming the first bad directive; `self` is left unchanged.
    pub fn extend(&mut self, s: &str) -> Result<(), DirectiveError> {
        let mut next = self.clone();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let err = |kind| DirectiveError {
                directive: item.to_owned(),
                kind,
            };
            let (lhs, rate) = match item.split_once('=') {
                Some((l, r)) => (Some(l.trim()), r.trim()),
                None => (None, item),
            };
            let rate: f64 = rate
                .parse()
                .map_err(|_| err(DirectiveErrorKind::NotANumber))?;
            let k = rate_to_k(rate).map_err(|e| err(DirectiveErrorKind::Rate(e)))?;
            match lhs {
                None => next.default = Some(k),
                Some(l) => match parse_level(l) {
                    Some(level) => match level_index(&level) {
                        Some(i) => next.levels[i] = Some(k),
                        None => return Err(err(DirectiveErrorKind::NeverSampled(level))),
                    },
                    None if is_target(l) => {
                        next.targets.retain(|(t, _)| t != l);
                        next.targets.push((l.to_owned(), k));
                    }
                    None => return Err(err(DirectiveErrorKind::Syntax)),
                },
            }
        }
        *self = next;
        Ok(())
    }

    /// The exponent `k` (keep probability `2^-k`) for an event of `level` from `target`:
    /// 0 for WARN and ERROR; else the longest matching target prefix, else the level's
    /// directive, else the default, else 0 (keep all).
    pub fn k_for(&self, level: &Level, target: &str) -> u8 {
        let Some(i) = level_index(level) else {
            return 0;
        };
        let matches = |prefix: &str| {
            target == prefix
                || (target.starts_with(prefix) && target[prefix.len()..].starts_with("::"))
        };
        self.targets
            .iter()
            .filter(|(t, _)| matches(t))
            .max_by_key(|(t, _)| t.len())
            .map(|&(_, k)| k)
            .or(self.levels[i])
            .or(self.default)
            .unwrap_or(0)
    }

    /// The keep probability for `level` and `target`: `2^-k` of [`Directives::k_for`].
    pub fn rate_for(&self, level: &Level, target: &str) -> f64 {
        k_to_rate(self.k_for(level, target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_wins_and_rates_round_to_powers_of_two() {
        let d = Directives::parse(" info=0.05, my_crate::conn=0.01 ,my_crate=0.5,0.25").unwrap();
        // 0.05 rounds to 2^-4 (log2 0.05 = -4.32), 0.01 to 2^-7 (-6.64).
        assert_eq!(d.k_for(&Level::INFO, "other"), 4);
        assert_eq!(d.k_for(&Level::INFO, "my_crate::conn"), 7);
        assert_eq!(d.k_for(&Level::DEBUG, "my_crate::conn::pool"), 7);
        assert_eq!(d.k_for(&Level::INFO, "my_crate::connx"), 1);
        assert_eq!(d.k_for(&Level::TRACE, "my_crate"), 1);
        assert_eq!(d.k_for(&Level::DEBUG, "other"), 2);
        assert_eq!(d.k_for(&Level::WARN, "my_crate::conn"), 0);
        assert_eq!(d.k_for(&Level::ERROR, "other"), 0);
        assert_eq!(Directives::default().k_for(&Level::TRACE, "x"), 0);
        assert_eq!(d.rate_for(&Level::INFO, "other"), 0.0625);
    }

    #[test]
    fn later_directives_replace_earlier_ones() {
        let mut d = Directives::parse("a=0.5,info=0.5").unwrap();
        d.extend("a=0.25,INFO=1").unwrap();
        assert_eq!(d.k_for(&Level::DEBUG, "a"), 2);
        assert_eq!(d.k_for(&Level::INFO, "b"), 0);
        // A failed extend changes nothing.
        assert!(d.extend("b=0.5,c=zero").is_err());
        assert_eq!(d.k_for(&Level::DEBUG, "b"), 0);
    }
}
