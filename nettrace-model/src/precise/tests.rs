use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// `pairs` set in order into a [`PreciseTimes`] and into the `BTreeMap` it replaced.
fn both(pairs: &[(&str, u64)]) -> (PreciseTimes, BTreeMap<String, u64>) {
    let mut times = PreciseTimes::default();
    let mut map = BTreeMap::new();
    for (key, us) in pairs {
        times.set(key, *us);
        map.insert((*key).to_owned(), *us);
    }
    (times, map)
}

/// The JSON of both agrees, byte for byte, and reads back to the same times.
fn assert_same(pairs: &[(&str, u64)]) {
    let (times, map) = both(pairs);
    let json = serde_json::to_string(&times).unwrap();
    assert_eq!(json, serde_json::to_string(&map).unwrap(), "{pairs:?}");
    assert_eq!(times.len(), map.len());
    assert_eq!(times.is_empty(), map.is_empty());
    for (key, us) in &map {
        assert_eq!(times.get(key), Some(*us), "{key} in {pairs:?}");
    }
    let back: PreciseTimes = serde_json::from_str(&json).unwrap();
    assert_eq!(back, times);
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    let from_value: PreciseTimes = serde_json::from_value(serde_json::to_value(&map).unwrap())
        .expect("read from a Value (owned keys)");
    assert_eq!(from_value, times);
}

#[test]
fn known_names_are_sorted_and_unique() {
    assert!(KNOWN.windows(2).all(|w| w[0] < w[1]), "{KNOWN:?}");
    assert!(KNOWN.len() <= usize::from(u8::MAX));
}

#[test]
fn known_names_round_trip_inline() {
    let pairs = [
        ("respBodyLastByteAt", 50_001),
        ("reqSentAt", 2_100),
        ("respRecvAt", 20_345),
        ("respBodyFirstByteAt", 20_400),
    ];
    assert_same(&pairs);
    let (times, _) = both(&pairs);
    assert!(matches!(times.0, Repr::Inline { len: 4, .. }));
    assert_eq!(
        serde_json::to_string(&times).unwrap(),
        r#"{"reqSentAt":2100,"respBodyFirstByteAt":20400,"respBodyLastByteAt":50001,"respRecvAt":20345}"#
    );
    assert_eq!(times.get("dialBeginAt"), None);
    assert_eq!(times.get(""), None);
    assert_eq!(
        format!("{times:?}"),
        r#"PreciseTimes({"reqSentAt": 2100, "respBodyFirstByteAt": 20400, "respBodyLastByteAt": 50001, "respRecvAt": 20345})"#
    );
}

#[test]
fn unknown_names_round_trip() {
    assert_same(&[
        ("zzz", 1),
        ("reqSentAt", 2),
        ("aaa", 3),
        ("", 4),
        ("reqSentAtX", 5),
    ]);
    let times: PreciseTimes =
        serde_json::from_str(r#"{"somethingAt":7,"handshakeEndAt":8,"a\"b":9}"#).unwrap();
    assert_eq!(times.get("somethingAt"), Some(7));
    assert_eq!(times.get("handshakeEndAt"), Some(8));
    assert_eq!(times.get("a\"b"), Some(9));
    assert_eq!(
        serde_json::to_string(&times).unwrap(),
        r#"{"a\"b":9,"handshakeEndAt":8,"somethingAt":7}"#
    );
}

#[test]
fn empty_is_omitted() {
    let req = crate::HttpReqTrace::default();
    assert!(req.precise_us.is_empty());
    let json = serde_json::to_value(&req).unwrap();
    assert!(json.get("preciseUs").is_none(), "{json}");
    assert_eq!(serde_json::to_string(&PreciseTimes::new()).unwrap(), "{}");
    let back: PreciseTimes = serde_json::from_str("{}").unwrap();
    assert_eq!(back, PreciseTimes::default());
    assert_eq!(format!("{back:?}"), "PreciseTimes({})");
}

#[test]
fn set_overwrites() {
    let mut times = PreciseTimes::default();
    times.set("dialBeginAt", 1);
    times.set("dialEndAt", 2);
    times.set("dialBeginAt", 3);
    assert_eq!(times.len(), 2);
    assert_eq!(times.get("dialBeginAt"), Some(3));
    assert_eq!(times.get("dialEndAt"), Some(2));
    times.set("other", 4);
    times.set("other", 5);
    times.set("dialEndAt", 6);
    assert_eq!(times.len(), 3);
    assert_eq!(
        times.iter().collect::<Vec<_>>(),
        [("dialBeginAt", 3), ("dialEndAt", 6), ("other", 5)]
    );
}

#[test]
fn duplicate_json_keys_keep_the_last() {
    let json = r#"{"sentAt":1,"x":2,"sentAt":3,"x":4}"#;
    let times: PreciseTimes = serde_json::from_str(json).unwrap();
    let map: BTreeMap<String, u64> = serde_json::from_str(json).unwrap();
    assert_eq!(
        serde_json::to_string(&times).unwrap(),
        serde_json::to_string(&map).unwrap()
    );
    assert_eq!(times.get("sentAt"), Some(3));
}

#[test]
fn rejects_what_the_map_rejected() {
    for json in [
        r#"{"sentAt":-1}"#,
        r#"{"sentAt":"1"}"#,
        "[]",
        r#"{"sentAt":1.5}"#,
    ] {
        assert!(serde_json::from_str::<BTreeMap<String, u64>>(json).is_err());
        assert!(
            serde_json::from_str::<PreciseTimes>(json).is_err(),
            "{json}"
        );
    }
}

#[test]
fn more_names_than_fit_inline() {
    let pairs: Vec<(&str, u64)> = KNOWN.iter().rev().zip(1..).map(|(k, v)| (*k, v)).collect();
    assert!(pairs.len() > INLINE);
    assert_same(&pairs);
    let (times, _) = both(&pairs);
    assert!(matches!(times.0, Repr::Heap(_)));
    // The same names set in another order compare equal.
    let (forward, _) = both(&pairs.iter().rev().copied().collect::<Vec<_>>());
    assert_eq!(forward, times);
    let (fewer, _) = both(&pairs[..INLINE]);
    assert_ne!(fewer, times);
}

#[test]
fn known_names_are_stored_inline() {
    // Known names are indexes into the table, whatever string they came from.
    let mut times = PreciseTimes::default();
    let owned = String::from("handshakeEndAt");
    times.set(&owned, 9);
    drop(owned);
    assert!(matches!(times.0, Repr::Inline { len: 1, .. }));
    assert_eq!(times.get("handshakeEndAt"), Some(9));
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(KNOWN.to_vec()).prop_map(str::to_owned),
        1 => "[a-zA-Z]{0,12}",
        1 => any::<String>(),
    ]
}

proptest! {
    #[test]
    fn json_is_the_btreemaps(pairs in proptest::collection::vec((name(), any::<u64>()), 0..16)) {
        let pairs: Vec<(&str, u64)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_same(&pairs);
    }

    #[test]
    fn known_only_json_is_the_btreemaps(
        pairs in proptest::collection::vec(
            (proptest::sample::select(KNOWN.to_vec()), any::<u64>()),
            0..8,
        )
    ) {
        assert_same(&pairs);
    }
}

#[test]
fn stays_small() {
    // Every record carries one: 16 bytes more than the `BTreeMap` it replaced, no heap.
    assert!(std::mem::size_of::<PreciseTimes>() <= 40);
}
