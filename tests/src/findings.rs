//! Checks on the diagnosis (`nettrace::model::diagnosis`) of a real trace, shared by the
//! diagnosis tests: the one finding of a code, and the evidence it names. A failed check
//! panics with the findings and the trace.
//!
//! ```ignore
//! let findings = diagnosis::diagnose(&trace);
//! let finding = expect_code(&findings, Code::TcpSynUnanswered, &trace);
//! assert_evidence(finding, &[&conn.trace_id], &trace);
//! ```
use nettrace::model::diagnosis::{self, Code, Finding};
use nettrace::model::{HttpTrace, TraceId};

use crate::scenario::dump;

/// The one finding with `code`, panicking with the trace and all findings otherwise.
pub fn expect_code<'a>(findings: &'a [Finding], code: Code, trace: &HttpTrace) -> &'a Finding {
    let found: Vec<&Finding> = findings.iter().filter(|f| f.code == code).collect();
    match found[..] {
        [one] => one,
        _ => panic!(
            "expected one {code} finding, got {}:\n{}\n{}",
            found.len(),
            diagnosis::render_text(trace, findings),
            dump(trace)
        ),
    }
}

/// Asserts that `finding` names every ID of `ids` as evidence (an empty ID never counts).
pub fn assert_evidence(finding: &Finding, ids: &[&TraceId], trace: &HttpTrace) {
    for id in ids {
        assert!(
            !id.is_empty() && finding.evidence.contains(id),
            "{} lacks evidence {id}: {:?}\n{}",
            finding.code,
            finding.evidence,
            dump(trace)
        );
    }
}
