//! The `trace_json` target: trace files as `nettrace show` reads them (Go's, ours, anyone's).
use crate::model::{HttpTrace, waterfall};

/// Reads `data` as `nettrace show` does (UTF-8 text, then the model's JSON reader) and
/// checks that a trace that reads renders as a waterfall and re-emits JSON that reads back
/// equal, and that this JSON is stable when written again.
pub fn trace_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(trace) = serde_json::from_str::<HttpTrace>(text) else {
        return;
    };
    let _ = waterfall::render(&trace);
    let json = serde_json::to_string(&trace).expect("a trace that reads writes");
    let back: HttpTrace = match serde_json::from_str(&json) {
        Ok(back) => back,
        Err(error) => panic!("the written trace does not read: {error}\n{json}"),
    };
    assert_eq!(back, trace, "the written trace reads back equal\n{json}");
    assert_eq!(
        serde_json::to_string(&back).expect("writes again"),
        json,
        "writing is stable"
    );
}
