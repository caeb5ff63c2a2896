//! The `dns_message` target: the tolerant decoder (`dns::message::decode`) and the records
//! the tracer makes of what it decoded.
use hickory_proto::{
    op::{Message, Query},
    rr::{Name, RecordType},
};

use crate::dns::message::{
    Decoded, OutgoingQuery, check_reply, decode, query_record, reply_record,
};

/// Decodes `data` as a DNS message (a query or a reply, as the resolver and the loader do)
/// and checks that its question section re-encodes to the same questions, that the trace
/// records of it write and read back as JSON, and that matching it against a query ends.
pub fn dns_message(data: &[u8]) {
    let Some(decoded) = decode(data) else {
        assert!(data.len() < 12, "a message with a whole header decodes");
        return;
    };
    questions_reencode(&decoded);
    let query = query_record(&decoded, data.len());
    let reply = reply_record(&decoded, data.len());
    assert_eq!(query.size as usize, data.len());
    assert_eq!(query.questions.len(), decoded.message.queries.len());
    assert_eq!(reply.answers.len(), decoded.message.answers.len());
    json_is_stable(&query);
    json_is_stable(&reply);
    // As the resolver matches a reply to the query it sent.
    let question = decoded
        .message
        .queries
        .first()
        .cloned()
        .unwrap_or_else(|| Query::query(Name::root(), RecordType::A));
    let sent = OutgoingQuery {
        id: decoded.message.metadata.id,
        question,
        bytes: Vec::new(),
    };
    let _ = check_reply(&sent, Some(decoded));
}

/// A record's JSON reads back to a record that writes the same JSON. Not equal records: Go's
/// JSON names only the types and rcodes Go knows, so an unknown one reads back as
/// unrecognized (the first finding of this target, a wrong invariant, kept in the corpus).
fn json_is_stable<T>(record: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let json = serde_json::to_string(record).expect("a DNS record writes");
    let back: T = serde_json::from_str(&json).expect("a DNS record reads back");
    assert_eq!(
        serde_json::to_string(&back).expect("writes again"),
        json,
        "{record:?}"
    );
}

/// The decoded questions, encoded again in a message of their own, decode to the same
/// questions: names label for label (case kept), types and classes.
fn questions_reencode(decoded: &Decoded) {
    let original = &decoded.message;
    let mut message = Message::new(
        original.metadata.id,
        original.metadata.message_type,
        original.metadata.op_code,
    );
    message.metadata = original.metadata;
    message.queries = original.queries.clone();
    let bytes = message
        .to_vec()
        .expect("a decoded question section encodes");
    let again = decode(&bytes).expect("an encoded message has a header");
    assert!(again.error.is_none(), "re-encoded questions decode whole");
    assert_eq!(again.message.queries.len(), original.queries.len());
    for (a, b) in original.queries.iter().zip(&again.message.queries) {
        assert!(
            a.name().iter().eq(b.name().iter()) && a.name().is_fqdn() == b.name().is_fqdn(),
            "question name {:?} came back as {:?}",
            a.name(),
            b.name()
        );
        assert_eq!(a.query_type(), b.query_type());
        assert_eq!(a.query_class(), b.query_class());
    }
    assert_eq!(
        query_record(&again, 0).questions,
        query_record(decoded, 0).questions
    );
}
