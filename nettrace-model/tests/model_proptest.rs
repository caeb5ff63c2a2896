//! Property tests of the model's string forms: timestamps and conntrack status flags.

use nettrace_model::{ConntrackStatus, Timestamp};
use proptest::prelude::*;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Any date-time RFC 3339 can express: years 0..=9999, any nanosecond, offsets in whole
/// minutes up to ±23:59.
fn rfc3339_datetime() -> impl Strategy<Value = OffsetDateTime> {
    (
        0i32..=9999,
        1u8..=12,
        1u8..=31,
        0u8..24,
        0u8..60,
        0u8..60,
        prop_oneof![
            Just(0u32),
            0u32..1_000_000_000,
            (0u32..1000).prop_map(|ms| ms * 1_000_000)
        ],
        -(23 * 60 + 59)..=(23 * 60 + 59i32),
    )
        .prop_filter_map(
            "valid date",
            |(year, month, day, h, m, s, nanos, offset_min)| {
                let date =
                    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
                let time = Time::from_hms_nano(h, m, s, nanos).ok()?;
                let offset = UtcOffset::from_whole_seconds(offset_min * 60).ok()?;
                Some(PrimitiveDateTime::new(date, time).assume_offset(offset))
            },
        )
}

fn json_string(ts: &Timestamp) -> String {
    serde_json::to_string(ts).unwrap()
}

proptest! {
    #[test]
    fn relative_timestamps_round_trip(ms in any::<u32>()) {
        let ts = Timestamp::Relative(ms);
        let json = json_string(&ts);
        prop_assert_eq!(&json, &format!("\"+{ms}ms\""));
        prop_assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), ts);
    }

    #[test]
    fn absolute_timestamps_round_trip_with_offset_and_nanos(at in rfc3339_datetime()) {
        let ts = Timestamp::Absolute(at);
        let json = json_string(&ts);
        let read: Timestamp = serde_json::from_str(&json).unwrap();
        let read_at = read.as_absolute().unwrap();
        prop_assert_eq!(read_at, at);
        prop_assert_eq!(read_at.offset(), at.offset());
        prop_assert_eq!(read_at.nanosecond(), at.nanosecond());
        prop_assert_eq!(json_string(&read), json.clone(), "not byte-for-byte");
        // Go's RFC3339Nano: no trailing zeros in the fraction, no fraction for whole seconds,
        // Z for a zero offset.
        let text = json.trim_matches('"');
        if let Some(dot) = text.find('.') {
            let fraction: String =
                text[dot + 1..].chars().take_while(char::is_ascii_digit).collect();
            prop_assert!(!fraction.is_empty() && !fraction.ends_with('0'), "{}", text);
        } else {
            prop_assert_eq!(at.nanosecond(), 0);
        }
        prop_assert_eq!(text.ends_with('Z'), at.offset().is_utc());
    }

    #[test]
    fn offsets_with_seconds_keep_the_instant(at in rfc3339_datetime(), secs in 1i32..60) {
        let offset = UtcOffset::from_whole_seconds(3600 + secs).unwrap();
        let Some(shifted) = at.checked_to_offset(offset) else { return Ok(()) };
        prop_assume!((0..=9999).contains(&shifted.year()));
        let json = json_string(&Timestamp::Absolute(shifted));
        let read: Timestamp = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(read.as_absolute().unwrap(), at);
    }

    #[test]
    fn conntrack_status_known_bits_round_trip(bits in 0u32..(1 << 15)) {
        let status = ConntrackStatus::from_bits(bits);
        let json = serde_json::to_string(&status).unwrap();
        let read: ConntrackStatus = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(read, status);
        prop_assert_eq!(json.trim_matches('"').split('|').filter(|s| !s.is_empty()).count(),
            bits.count_ones() as usize);
    }

    #[test]
    fn conntrack_status_names_ascending_unknown_bits_dropped(bits in any::<u32>()) {
        let status = ConntrackStatus::from_bits(bits);
        let text = status.to_string();
        let read: ConntrackStatus = text.parse().unwrap();
        prop_assert_eq!(read.bits(), bits & ConntrackStatus::KNOWN_BITS);
        let positions: Vec<usize> = text
            .split('|')
            .filter(|s| !s.is_empty())
            .map(|name| ConntrackStatus::KNOWN.iter().position(|(n, _)| *n == name).unwrap())
            .collect();
        prop_assert!(positions.windows(2).all(|w| w[0] < w[1]), "{}", text);
        prop_assert_eq!(text.is_empty(), bits & ConntrackStatus::KNOWN_BITS == 0);
    }

    #[test]
    fn conntrack_status_reading_ignores_order(
        names in proptest::sample::subsequence(
            ConntrackStatus::KNOWN.iter().map(|(n, _)| *n).collect::<Vec<_>>(), 0..=15
        ).prop_shuffle()
    ) {
        let expected = names.iter().fold(ConntrackStatus::default(), |acc, name| {
            acc | ConntrackStatus::from_names(name)
        });
        let shuffled: ConntrackStatus = names.join("|").parse().unwrap();
        prop_assert_eq!(shuffled, expected);
        prop_assert_eq!(shuffled.bits().count_ones() as usize, names.len());
    }
}
