//! Human-readable durations ("10s", "500ms", "1m30s") and byte sizes ("50MiB", "64MB").
//!
//! Both parsers are strict: a duration needs a unit on every number (a bare `10` could be
//! seconds or milliseconds, so it is refused), and a size unit must be spelled exactly as
//! listed (`MB` is 1000², `MiB` is 1024²; `mb` or `Mb` are refused rather than guessed).
//! Fractions are allowed and rounded down to the nanosecond or byte ("1.5s", "0.5GiB").
//! This module knows nothing about YAML or field names; callers add the location.

use std::time::Duration;

const NANOS_PER_MILLI: u128 = 1_000_000;
const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Duration units, longest spelling first so that "ms" wins over "m".
const DURATION_UNITS: &[(&str, u128)] = &[
    ("ms", NANOS_PER_MILLI),
    ("s", NANOS_PER_SECOND),
    ("m", 60 * NANOS_PER_SECOND),
    ("h", 3600 * NANOS_PER_SECOND),
    ("d", 86_400 * NANOS_PER_SECOND),
];

/// Size units. Matched case-sensitively.
const SIZE_UNITS: &[(&str, u128)] = &[
    ("B", 1),
    ("KB", 1000),
    ("KiB", 1 << 10),
    ("MB", 1000 * 1000),
    ("MiB", 1 << 20),
    ("GB", 1000 * 1000 * 1000),
    ("GiB", 1 << 30),
    ("TB", 1000 * 1000 * 1000 * 1000),
    ("TiB", 1 << 40),
];

/// The longest duration accepted: a hundred years. Longer ones are refused rather than
/// left to overflow the clock when a deadline is computed from them.
const MAX_DURATION_SECONDS: u64 = 36_500 * 86_400;

/// Parses a duration such as `"10s"`, `"500ms"`, `"1m"`, `"1h30m"` or `"1.5s"`.
///
/// Units: `ms`, `s`, `m`, `h`, `d`, at most 36500d. Every number needs a unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty duration; expected e.g. \"10s\" or \"500ms\"".to_string());
    }
    let mut rest = trimmed;
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let (number, after_number) = split_number(rest);
        if number.is_empty() {
            return Err(format!(
                "invalid duration {text:?}: expected a number at {rest:?}"
            ));
        }
        let unit_len = after_number
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after_number.len());
        let unit = after_number[..unit_len].trim();
        if unit.is_empty() {
            return Err(format!(
                "invalid duration {text:?}: {number:?} has no unit; write e.g. \"{number}s\" or \"{number}ms\" (units: ms, s, m, h, d)"
            ));
        }
        let Some(&(_, nanos_per_unit)) = DURATION_UNITS.iter().find(|(name, _)| *name == unit)
        else {
            return Err(format!(
                "invalid duration {text:?}: unknown unit {unit:?} (units: ms, s, m, h, d)"
            ));
        };
        let nanos = scale(number, nanos_per_unit).ok_or_else(|| {
            format!("invalid duration {text:?}: number {number:?} is malformed or too large")
        })?;
        total_nanos = total_nanos
            .checked_add(nanos)
            .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
        rest = &after_number[unit_len..];
    }
    let seconds = u64::try_from(total_nanos / NANOS_PER_SECOND)
        .ok()
        .filter(|s| *s <= MAX_DURATION_SECONDS)
        .ok_or_else(|| format!("invalid duration {text:?}: too large (at most 36500d)"))?;
    // The remainder is below one second, so it fits in u32.
    let subsec_nanos = (total_nanos % NANOS_PER_SECOND) as u32;
    Ok(Duration::new(seconds, subsec_nanos))
}

/// Parses a byte size such as `"50MiB"`, `"64 MB"`, `"1.5GiB"` or a bare number of bytes.
///
/// Units: `B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`, `TB`, `TiB` (case-sensitive).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let (number, after_number) = split_number(trimmed);
    if number.is_empty() {
        return Err(format!(
            "invalid size {text:?}: expected a number followed by a unit, e.g. \"50MiB\""
        ));
    }
    let unit = after_number.trim();
    let bytes_per_unit = if unit.is_empty() {
        1
    } else {
        match SIZE_UNITS.iter().find(|(name, _)| *name == unit) {
            Some(&(_, bytes)) => bytes,
            None => {
                return Err(format!(
                    "invalid size {text:?}: unknown unit {unit:?} (units: B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)"
                ))
            }
        }
    };
    let bytes = scale(number, bytes_per_unit)
        .ok_or_else(|| format!("invalid size {text:?}: number {number:?} is malformed"))?;
    u64::try_from(bytes).map_err(|_| format!("invalid size {text:?}: too large"))
}

/// Formats a byte count with the largest binary unit that divides it exactly.
pub fn format_size(bytes: u64) -> String {
    for (name, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.trailing_zeros() >= shift {
            return format!("{}{name}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// Splits a leading decimal number ("12", "1.5") from the rest of `text`.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    text.split_at(end)
}

/// `number * factor`, where `number` is "123" or "1.25"; fractions round down.
fn scale(number: &str, factor: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if fraction.contains('.') || fraction.len() > 18 {
        return None;
    }
    let whole_value: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut result = whole_value.checked_mul(factor)?;
    if !fraction.is_empty() {
        let fraction_value: u128 = fraction.parse().ok()?;
        let denominator = 10u128.pow(fraction.len() as u32);
        result = result.checked_add(fraction_value.checked_mul(factor)? / denominator)?;
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_without_unit_or_with_unknown_unit_are_refused() {
        let bare = parse_duration("10").unwrap_err();
        assert!(bare.contains("has no unit"), "{bare}");
        let unknown = parse_duration("10sec").unwrap_err();
        assert!(unknown.contains("unknown unit \"sec\""), "{unknown}");
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1..5s").is_err());
        assert!(parse_duration("99999999999999999999999h").is_err());
        // A deadline computed from such a duration would overflow the clock.
        assert_eq!(
            parse_duration("36500d"),
            Ok(Duration::from_secs(36_500 * 86_400))
        );
        let centuries = parse_duration("200000000000000d").unwrap_err();
        assert!(centuries.contains("at most 36500d"), "{centuries}");
    }

    #[test]
    fn sizes_with_decimal_and_binary_units() {
        assert_eq!(parse_size("50MiB"), Ok(50 * 1024 * 1024));
        assert_eq!(parse_size("64MB"), Ok(64_000_000));
        assert_eq!(parse_size("1 KiB"), Ok(1024));
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("3GB"), Ok(3_000_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(1_610_612_736));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("7B"), Ok(7));
    }

    #[test]
    fn sizes_with_unknown_units_are_refused() {
        let lower = parse_size("50mb").unwrap_err();
        assert!(lower.contains("unknown unit \"mb\""), "{lower}");
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn format_size_uses_exact_binary_units() {
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(1000), "1000B");
        assert_eq!(format_size(3 << 30), "3GiB");
    }
}
