//! Durations for people: `850µs`, `12.4ms`, `2.73s`, with no more precision than the trace
//! holds (a trace in whole milliseconds never shows microseconds).
//!
//! ```
//! use nettrace_model::phases::Precision;
//! use nettrace_model::units::duration;
//!
//! assert_eq!(duration(850, Precision::Micros), "850µs");
//! assert_eq!(duration(12_400, Precision::Micros), "12.4ms");
//! assert_eq!(duration(2_730_000, Precision::Millis), "2.73s");
//! assert_eq!(duration(400, Precision::Millis), "<1ms");
//! ```
use crate::phases::Precision;

/// `us` microseconds in the unit that suits it: µs below a millisecond, ms below a second,
/// seconds above, with three significant digits at most. In [`Precision::Millis`], below a
/// millisecond is `<1ms` (`0ms` for exactly zero) and milliseconds have no decimals.
pub fn duration(us: u64, precision: Precision) -> String {
    match precision {
        Precision::Millis if us == 0 => "0ms".to_owned(),
        Precision::Millis if us < 1000 => "<1ms".to_owned(),
        Precision::Millis if us < 1_000_000 => format!("{}ms", us / 1000),
        Precision::Micros if us < 1000 => format!("{us}µs"),
        Precision::Micros if us < 1_000_000 => scaled(us, 1000, "ms"),
        _ => scaled(us, 1_000_000, "s"),
    }
}

/// `value / unit` with up to three significant digits and trailing zeros trimmed.
fn scaled(value: u64, unit: u64, suffix: &str) -> String {
    let whole = value / unit;
    let decimals = match whole {
        0..=9 => 2,
        10..=99 => 1,
        _ => 0,
    };
    let factor = 10u64.pow(decimals);
    let fixed = (value * factor + unit / 2) / unit;
    let (int, frac) = (fixed / factor, fixed % factor);
    if decimals == 0 || frac == 0 {
        return format!("{int}{suffix}");
    }
    let text = format!("{int}.{frac:0width$}", width = decimals as usize);
    format!("{}{suffix}", text.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_adapt() {
        let m = Precision::Micros;
        assert_eq!(duration(0, m), "0µs");
        assert_eq!(duration(999, m), "999µs");
        assert_eq!(duration(1_000, m), "1ms");
        assert_eq!(duration(1_234, m), "1.23ms");
        assert_eq!(duration(20_000, m), "20ms");
        assert_eq!(duration(999_400, m), "999ms");
        assert_eq!(duration(2_728_000, m), "2.73s");
        assert_eq!(duration(122_369_000, m), "122s");
        assert_eq!(duration(1_500, Precision::Millis), "1ms");
        assert_eq!(duration(41_000, Precision::Millis), "41ms");
        assert_eq!(duration(1_241_000, Precision::Millis), "1.24s");
    }
}
