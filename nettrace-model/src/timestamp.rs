//! [`Timestamp`]: when a traced event happened, relative to the trace start or absolute.
//!
//! Most timestamps are milliseconds since `NetTrace::trace_begin_at` ([`Timestamp::Relative`]);
//! the trace start, certificate validity and the timestamps of connections reused from an earlier
//! trace are absolute ([`Timestamp::Absolute`]); an event that did not happen is
//! [`Timestamp::Undefined`].
//!
//! JSON (as Go writes it): `"+<ms>ms"`, RFC 3339 with nanoseconds and trailing zeros trimmed
//! (Go's `RFC3339Nano`, offset kept, `Z` for a zero offset), or `"undefined"`. Reading accepts
//! what Go accepts: `null`, `""`, `"undefined"`, `"+<ms>ms"`, and RFC 3339 with any fractional
//! precision and any offset. Differences from Go, on purpose:
//! - `"-<ms>ms"` with a non-zero value is rejected ([`ModelError::NegativeRelativeTimestamp`]);
//!   Go drops the sign and reads `"-5ms"` as `+5ms`. `"-0ms"` reads as `+0ms`.
//! - The relative form must end in `ms` and the number must fit a `u32` (Go ignores the last two
//!   characters and truncates).
//! - An absolute time whose UTC offset has a seconds component (not expressible in RFC 3339) is
//!   written in UTC; a time before year 0 cannot be written (Go fails the same way).
//!
//! ```
//! use nettrace_model::Timestamp;
//! use time::macros::datetime;
//!
//! let begin = Timestamp::Absolute(datetime!(2022-12-23 10:17:45.260618344 +01:00));
//! assert_eq!(begin.to_string(), "2022-12-23T10:17:45.260618344+01:00");
//! assert_eq!("+72ms".parse::<Timestamp>().unwrap(), Timestamp::Relative(72));
//! assert_eq!(serde_json::to_string(&Timestamp::Undefined).unwrap(), r#""undefined""#);
//! let later = Timestamp::Absolute(datetime!(2022-12-23 10:17:46.5 +01:00));
//! assert_eq!(begin.elapsed(datetime!(2022-12-23 09:17:46.5 UTC)), Some(Timestamp::Relative(1239)));
//! assert_eq!(later.sub(&begin), Some(time::Duration::nanoseconds(1_239_381_656)));
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

use super::ModelError;
use super::serde_util::nullable_str;
use crate::short_text::{ShortText, write_decimal};

/// When a traced event happened.
///
/// JSON, as Go writes it: `"undefined"`, `"+<ms>ms"`, or RFC 3339 with nanoseconds and
/// trailing zeros trimmed (Go's `RFC3339Nano`, offset kept, `Z` for a zero offset). Reading
/// accepts `null`, `""`, `"undefined"`, `"+<ms>ms"`, `"-0ms"` and RFC 3339 with any fractional
/// precision and any offset; `"-<ms>ms"` with a non-zero value is rejected (Go silently drops
/// the sign). An offset with a seconds component is written in UTC; a time before year 0 cannot
/// be written.
///
/// Note that `==` on [`Timestamp::Absolute`] compares instants (as `time::OffsetDateTime` does):
/// the same instant written with two offsets is equal, though the JSON strings differ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Timestamp {
    /// The event did not happen (yet), or its time is unknown. JSON `"undefined"`.
    #[default]
    Undefined,
    /// Milliseconds since the trace began (`NetTrace::trace_begin_at`). JSON `"+<ms>ms"`.
    Relative(u32),
    /// A point in time with its UTC offset. JSON RFC 3339 with nanoseconds, e.g.
    /// `"2022-12-23T10:17:45.260618344+01:00"`.
    Absolute(OffsetDateTime),
}

impl Timestamp {
    /// The current time, absolute, in UTC.
    pub fn now_utc() -> Self {
        Self::Absolute(OffsetDateTime::now_utc())
    }

    /// Relative timestamp of `now`, for a trace that began at `begin` (both monotonic).
    ///
    /// Saturates: `0` if `now` is before `begin`, `u32::MAX` ms (about 49 days) at most.
    pub fn relative_since(begin: Instant, now: Instant) -> Self {
        let ms = now.saturating_duration_since(begin).as_millis();
        Self::Relative(u32::try_from(ms).unwrap_or(u32::MAX))
    }

    /// Relative timestamp of `now`, for a trace that began at `begin` (wall clock).
    ///
    /// Saturates like [`Timestamp::relative_since`].
    pub fn relative_since_datetime(begin: OffsetDateTime, now: OffsetDateTime) -> Self {
        Self::Relative(saturating_ms(now - begin))
    }

    /// True for [`Timestamp::Undefined`] (Go's `Timestamp.Undefined()`).
    pub fn is_undefined(&self) -> bool {
        matches!(self, Self::Undefined)
    }

    /// Milliseconds since the trace began, if relative.
    pub fn as_relative_ms(&self) -> Option<u32> {
        match self {
            Self::Relative(ms) => Some(*ms),
            _ => None,
        }
    }

    /// The point in time, if absolute.
    pub fn as_absolute(&self) -> Option<OffsetDateTime> {
        match self {
            Self::Absolute(at) => Some(*at),
            _ => None,
        }
    }

    /// How much time elapsed from this absolute timestamp until `now`, as a relative timestamp
    /// (Go's `Elapsed`, with the clock passed in). `None` unless `self` is absolute.
    ///
    /// Saturates like [`Timestamp::relative_since`].
    pub fn elapsed(&self, now: OffsetDateTime) -> Option<Self> {
        self.as_absolute()
            .map(|at| Self::relative_since_datetime(at, now))
    }

    /// `self - other` (Go's `Sub`). `None` unless both are relative or both absolute
    /// (Go panics instead).
    pub fn sub(&self, other: &Self) -> Option<Duration> {
        match (self, other) {
            (Self::Relative(a), Self::Relative(b)) => {
                Some(Duration::milliseconds(i64::from(*a) - i64::from(*b)))
            }
            (Self::Absolute(a), Self::Absolute(b)) => Some(*a - *b),
            _ => None,
        }
    }

    /// This timestamp made absolute for a trace that began at `trace_begin` (Go's
    /// `begin.Add(rel)`): relative ones become `trace_begin + ms`, others are unchanged.
    /// Used to carry a connection over into the next trace. A result beyond the range of
    /// `OffsetDateTime` leaves the timestamp unchanged.
    pub fn to_absolute(&self, trace_begin: OffsetDateTime) -> Self {
        match self {
            Self::Relative(ms) => trace_begin
                .checked_add(Duration::milliseconds(i64::from(*ms)))
                .map_or(*self, Self::Absolute),
            other => *other,
        }
    }
}

/// Whole milliseconds of a duration, clamped to `0..=u32::MAX`.
fn saturating_ms(duration: Duration) -> u32 {
    let ms = duration.whole_milliseconds().max(0);
    u32::try_from(ms).unwrap_or(u32::MAX)
}

impl fmt::Display for Timestamp {
    /// The JSON string form (without quotes). Always succeeds; an absolute time before year 0
    /// is written in ISO 8601 expanded form, which serialization rejects.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_json_form(f)
    }
}

impl Timestamp {
    /// What [`fmt::Display`] writes, to any writer.
    fn write_json_form(&self, out: &mut impl fmt::Write) -> fmt::Result {
        match self {
            Self::Undefined => out.write_str("undefined"),
            Self::Relative(ms) => {
                out.write_str("+")?;
                write_decimal(out, u64::from(*ms), 1)?;
                out.write_str("ms")
            }
            Self::Absolute(at) => write_rfc3339_nano(out, *at),
        }
    }
}

/// `at` with an offset that RFC 3339 can express: one with seconds becomes UTC (same instant).
fn rfc3339_view(at: OffsetDateTime) -> OffsetDateTime {
    if at.offset().seconds_past_minute() == 0 {
        at
    } else {
        at.checked_to_offset(UtcOffset::UTC).unwrap_or(at)
    }
}

/// Writes `at` as Go's `time.RFC3339Nano`.
fn write_rfc3339_nano(out: &mut impl fmt::Write, at: OffsetDateTime) -> fmt::Result {
    let at = rfc3339_view(at);
    let year = at.year();
    if year < 0 {
        out.write_str("-")?;
        write_decimal(out, u64::from(year.unsigned_abs()), 6)?;
    } else {
        write_decimal(out, u64::from(year.unsigned_abs()), 4)?;
    }
    for (separator, value) in [
        ('-', u8::from(at.month())),
        ('-', at.day()),
        ('T', at.hour()),
        (':', at.minute()),
        (':', at.second()),
    ] {
        out.write_char(separator)?;
        write_decimal(out, u64::from(value), 2)?;
    }
    let nanos = at.nanosecond();
    if nanos != 0 {
        let mut digits = nanos;
        let mut width = 9;
        while digits.is_multiple_of(10) {
            digits /= 10;
            width -= 1;
        }
        out.write_char('.')?;
        write_decimal(out, u64::from(digits), width)?;
    }
    let offset_minutes = at.offset().whole_minutes();
    if offset_minutes == 0 {
        out.write_char('Z')
    } else {
        out.write_char(if offset_minutes < 0 { '-' } else { '+' })?;
        let abs = offset_minutes.unsigned_abs();
        write_decimal(out, u64::from(abs / 60), 2)?;
        out.write_char(':')?;
        write_decimal(out, u64::from(abs % 60), 2)
    }
}

impl FromStr for Timestamp {
    type Err = ModelError;

    /// Parses every form Go reads: `""` and `"undefined"` (undefined), `"+<ms>ms"` (and
    /// `"-0ms"`), RFC 3339 with any fractional precision and any offset.
    fn from_str(input: &str) -> Result<Self, ModelError> {
        if input.is_empty() || input == "undefined" {
            return Ok(Self::Undefined);
        }
        if let Some(rest) = input.strip_prefix('+') {
            return parse_ms(input, rest).map(Self::Relative);
        }
        if let Some(rest) = input.strip_prefix('-') {
            return match parse_ms(input, rest)? {
                0 => Ok(Self::Relative(0)),
                _ => Err(ModelError::NegativeRelativeTimestamp {
                    input: input.to_owned(),
                }),
            };
        }
        OffsetDateTime::parse(input, &Rfc3339)
            .map(Self::Absolute)
            .map_err(|source| ModelError::InvalidAbsoluteTimestamp {
                input: input.to_owned(),
                source,
            })
    }
}

/// Parses `<digits>ms` (the part after the sign) into milliseconds.
fn parse_ms(input: &str, unsigned: &str) -> Result<u32, ModelError> {
    let invalid = || ModelError::InvalidRelativeTimestamp {
        input: input.to_owned(),
    };
    let digits = unsigned.strip_suffix("ms").ok_or_else(invalid)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    digits.parse().map_err(|_| invalid())
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Self::Absolute(at) = self {
            let year = rfc3339_view(*at).year();
            if year < 0 {
                return Err(serde::ser::Error::custom(
                    ModelError::UnrepresentableTimestamp { year },
                ));
            }
        }
        // The longest form written here (a year of up to 9999, nanoseconds, an offset) takes
        // 35 bytes.
        let mut text = ShortText::<40>::new();
        match self.write_json_form(&mut text) {
            Ok(()) => serializer.serialize_str(text.as_str()),
            Err(_) => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    /// Reads the forms of [`Timestamp::from_str`], and JSON `null` as undefined.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        nullable_str(deserializer, str::parse)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::{datetime, offset};

    use super::*;

    fn json(ts: Timestamp) -> String {
        serde_json::to_string(&ts).unwrap()
    }

    fn read(json: &str) -> Result<Timestamp, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn writes_go_forms() {
        assert_eq!(json(Timestamp::Undefined), r#""undefined""#);
        assert_eq!(json(Timestamp::Relative(0)), r#""+0ms""#);
        assert_eq!(json(Timestamp::Relative(1241)), r#""+1241ms""#);
        assert_eq!(json(Timestamp::Relative(u32::MAX)), r#""+4294967295ms""#);
        let cases = [
            (
                datetime!(2022-12-23 10:17:45.260618344 +01:00),
                "2022-12-23T10:17:45.260618344+01:00",
            ),
            (datetime!(2022-11-28 08:19:01 UTC), "2022-11-28T08:19:01Z"),
            (
                datetime!(2022-11-28 08:19:01 +00:00),
                "2022-11-28T08:19:01Z",
            ),
            (
                datetime!(2026-01-01 10:00:00.5 -05:30),
                "2026-01-01T10:00:00.5-05:30",
            ),
            (
                datetime!(2026-01-01 10:00:00.000001 -00:30),
                "2026-01-01T10:00:00.000001-00:30",
            ),
            (
                datetime!(0001-01-01 00:00:00.12 +14:00),
                "0001-01-01T00:00:00.12+14:00",
            ),
        ];
        for (at, expected) in cases {
            assert_eq!(json(Timestamp::Absolute(at)), format!("\"{expected}\""));
        }
    }

    #[test]
    fn offset_with_seconds_is_written_in_utc() {
        let at = datetime!(2026-01-01 10:00:00 UTC).to_offset(offset!(+01:00:30));
        assert_eq!(json(Timestamp::Absolute(at)), r#""2026-01-01T10:00:00Z""#);
    }

    #[test]
    fn negative_year_cannot_be_written() {
        let at = datetime!(2000-06-01 00:00 UTC).replace_year(-1).unwrap();
        assert!(serde_json::to_string(&Timestamp::Absolute(at)).is_err());
        assert_eq!(
            Timestamp::Absolute(at).to_string(),
            "-000001-06-01T00:00:00Z"
        );
    }

    #[test]
    fn reads_undefined_forms() {
        for input in ["null", r#""""#, r#""undefined""#] {
            assert_eq!(read(input).unwrap(), Timestamp::Undefined, "{input}");
        }
    }

    #[test]
    fn reads_relative_forms() {
        assert_eq!(read(r#""+0ms""#).unwrap(), Timestamp::Relative(0));
        assert_eq!(read(r#""+1241ms""#).unwrap(), Timestamp::Relative(1241));
        assert_eq!(read(r#""-0ms""#).unwrap(), Timestamp::Relative(0));
        for bad in [
            "-5ms",
            "+ms",
            "+12",
            "+12s",
            "++5ms",
            "+4294967296ms",
            "+1 ms",
            "+",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
        assert!(matches!(
            "-5ms".parse::<Timestamp>(),
            Err(ModelError::NegativeRelativeTimestamp { .. })
        ));
    }

    #[test]
    fn reads_rfc3339_with_any_precision_and_offset() {
        let cases = [
            ("2022-11-28T08:19:01Z", datetime!(2022-11-28 08:19:01 UTC)),
            (
                "2022-11-28T08:19:01.1Z",
                datetime!(2022-11-28 08:19:01.1 UTC),
            ),
            (
                "2022-11-28T08:19:01.100+02:00",
                datetime!(2022-11-28 08:19:01.1 +02:00),
            ),
            (
                "2022-11-28T08:19:01.123456789123-07:00",
                datetime!(2022-11-28 08:19:01.123456789 -07:00),
            ),
        ];
        for (input, expected) in cases {
            let parsed: Timestamp = input.parse().unwrap();
            assert_eq!(parsed, Timestamp::Absolute(expected), "{input}");
            assert_eq!(
                parsed.as_absolute().map(|at| at.offset()),
                Some(expected.offset())
            );
        }
        for bad in [
            "2022-11-28",
            "yesterday",
            "2022-11-28T08:19:01",
            "2022-13-01T00:00:00Z",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
        assert!(read("12").is_err());
    }

    #[test]
    fn go_output_round_trips_byte_for_byte() {
        for s in [
            "2022-12-23T10:17:45.260618344+01:00",
            "2022-11-28T08:19:01Z",
            "2084-01-29T16:00:00Z",
            "2026-01-01T10:00:00.123456789Z",
            "2026-06-30T23:59:59.9-09:30",
            "+0ms",
            "+1241ms",
            "undefined",
        ] {
            let quoted = format!("\"{s}\"");
            assert_eq!(json(read(&quoted).unwrap()), quoted);
        }
    }

    #[test]
    fn elapsed_and_sub() {
        let begin = Timestamp::Absolute(datetime!(2022-12-23 10:17:45.260618344 +01:00));
        let now = datetime!(2022-12-23 09:17:46.501 UTC);
        assert_eq!(begin.elapsed(now), Some(Timestamp::Relative(1240)));
        assert_eq!(
            begin.elapsed(datetime!(2000-01-01 0:00 UTC)),
            Some(Timestamp::Relative(0))
        );
        assert_eq!(Timestamp::Relative(5).elapsed(now), None);
        assert_eq!(
            Timestamp::Relative(5).sub(&Timestamp::Relative(12)),
            Some(Duration::milliseconds(-7))
        );
        assert_eq!(begin.sub(&Timestamp::Relative(1)), None);
        assert_eq!(Timestamp::Undefined.sub(&Timestamp::Undefined), None);
        let later = Timestamp::Absolute(datetime!(2022-12-23 09:17:46 UTC));
        assert_eq!(later.sub(&begin), Some(Duration::nanoseconds(739_381_656)));
    }

    #[test]
    fn relative_constructors_and_to_absolute() {
        let begin = Instant::now();
        let now = begin + std::time::Duration::from_micros(12_999);
        assert_eq!(
            Timestamp::relative_since(begin, now),
            Timestamp::Relative(12)
        );
        assert_eq!(
            Timestamp::relative_since(now, begin),
            Timestamp::Relative(0)
        );
        let wall = datetime!(2026-01-01 10:00 UTC);
        assert_eq!(
            Timestamp::relative_since_datetime(wall, wall + Duration::days(60)),
            Timestamp::Relative(u32::MAX)
        );
        assert_eq!(
            Timestamp::Relative(1500).to_absolute(wall),
            Timestamp::Absolute(datetime!(2026-01-01 10:00:01.5 UTC))
        );
        assert_eq!(Timestamp::Undefined.to_absolute(wall), Timestamp::Undefined);
        assert!(Timestamp::default().is_undefined());
        assert_eq!(Timestamp::Relative(3).as_relative_ms(), Some(3));
        assert!(Timestamp::now_utc().as_absolute().is_some());
    }

    proptest::proptest! {
        /// Any time of years 0 to 9999, at any nanosecond and any whole-minute offset, is
        /// written as Go's RFC 3339 form (the JSON string is `Display`'s, no digit of the
        /// fraction ends in zero) and reads back as the same moment and offset.
        #[test]
        fn absolute_times_round_trip(
            nanos in -62_167_219_200_000_000_000_i128..253_402_214_400_000_000_000_i128,
            offset_minutes in -1_439_i32..=1_439,
        ) {
            let utc = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
            let offset = UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap();
            let Some(at) = utc.checked_to_offset(offset).filter(|at| at.year() >= 0) else {
                return Ok(());
            };
            let ts = Timestamp::Absolute(at);
            let written = json(ts);
            proptest::prop_assert_eq!(&written, &format!("\"{ts}\""));
            if let Some((_, fraction)) = written.split_once('.') {
                let digits = fraction.split(|c: char| !c.is_ascii_digit()).next().unwrap_or("");
                proptest::prop_assert!(!digits.ends_with('0'), "{}", written);
            }
            let back = read(&written).unwrap();
            proptest::prop_assert_eq!(back, ts);
            proptest::prop_assert_eq!(back.as_absolute().map(|a| a.offset()), Some(offset));
        }

        /// Relative times are `+<ms>ms`.
        #[test]
        fn relative_times_round_trip(ms in proptest::prelude::any::<u32>()) {
            let written = json(Timestamp::Relative(ms));
            proptest::prop_assert_eq!(&written, &format!("\"+{ms}ms\""));
            proptest::prop_assert_eq!(read(&written).unwrap(), Timestamp::Relative(ms));
        }
    }
}
