//! The DNS codec, without I/O: building a query, decoding what came off the wire (tolerantly),
//! deciding whether a reply answers a query, and converting hickory [`Message`]s into the
//! trace model ([`DnsQueryMsg`], [`DnsReplyMsg`]).
//!
//! # Tolerant decoding
//! hickory's [`Message::from_vec`] rejects a whole message for one bad record. When it does,
//! [`decode`] falls back to reading the message piece by piece with hickory's own decoders:
//! the 12-byte header, then each question, then each record of the answer, authority and
//! additional sections. A question that does not decode ends the parse (nothing after it can
//! be located). A record whose RDATA does not decode is skipped when its framing (owner name,
//! type, class, TTL, RDLENGTH within the message) holds, and the parse goes on with the next
//! record (like Go's `SkipAnswer`); a record whose framing is broken ends the parse. Whatever
//! was read is kept, so a malformed message is recorded as far as it parses; with less than a
//! header there is nothing to record.
//!
//! # Recorded values
//! Names are fully qualified, with the trailing dot (`to_ascii`: IDN labels stay in `xn--`
//! form). Answers carry `resolvedVal` for A/AAAA (the address), CNAME/NS/PTR (the target) and
//! MX (the exchange host); every other type is listed without a value (Go skipped them).
//!
//! ```ignore
//! // crate-internal
//! use hickory_proto::rr::{Name, RecordType};
//! let query = message::build_query(&Name::from_ascii("example.com.").unwrap(), RecordType::A).unwrap();
//! let decoded = message::decode(&query.bytes).unwrap();
//! let record = message::query_record(&decoded, query.bytes.len());
//! assert_eq!(record.questions[0].name, "example.com.");
//! assert_eq!(record.opt_udp_payload_size, 1232);
//! ```
use hickory_proto::{
    ProtoError,
    op::{Edns, Header, Message, MessageType, Query},
    rr::{Name, RData, Record, RecordType},
    serialize::binary::{BinDecodable, BinDecoder, DecodeError},
};

use crate::model::{DnsAnswer, DnsQueryMsg, DnsQuestion, DnsRCode, DnsReplyMsg, DnsResType};

/// The EDNS0 UDP payload size we advertise (the DNS Flag Day 2020 value).
pub(crate) const EDNS_UDP_PAYLOAD: u16 = 1232;

/// A query ready to send: its random ID, its question and its wire bytes.
#[derive(Clone, Debug)]
pub(crate) struct OutgoingQuery {
    /// The message ID.
    pub(crate) id: u16,
    /// The one question.
    pub(crate) question: Query,
    /// The encoded message (without a TCP length prefix).
    pub(crate) bytes: Vec<u8>,
}

/// Builds a recursive query for `name` and `rtype` with a random ID and an EDNS0 OPT record.
pub(crate) fn build_query(name: &Name, rtype: RecordType) -> Result<OutgoingQuery, ProtoError> {
    let question = Query::query(name.clone(), rtype);
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(question.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_UDP_PAYLOAD).set_version(0);
    message.set_edns(edns);
    Ok(OutgoingQuery {
        id: message.metadata.id,
        question,
        bytes: message.to_vec()?,
    })
}

/// A decoded message: all of it, or the part before what could not be decoded.
#[derive(Clone, Debug)]
pub(crate) struct Decoded {
    /// What was decoded.
    pub(crate) message: Message,
    /// The first decoding error; `None` when the whole message decoded.
    pub(crate) error: Option<DecodeError>,
}

/// Decodes a message, tolerantly (see the module docs); `None` without a complete header.
pub(crate) fn decode(bytes: &[u8]) -> Option<Decoded> {
    match Message::from_vec(bytes) {
        Ok(message) => Some(Decoded {
            message,
            error: None,
        }),
        Err(error) => decode_partial(bytes, error),
    }
}

/// Reads the message piece by piece after `error` made hickory reject it as a whole.
fn decode_partial(bytes: &[u8], error: DecodeError) -> Option<Decoded> {
    let mut decoder = BinDecoder::new(bytes);
    let header = Header::read(&mut decoder).ok()?;
    let mut message = Message::new(
        header.metadata.id,
        header.metadata.message_type,
        header.metadata.op_code,
    );
    message.metadata = header.metadata;
    let counts = header.counts;
    let mut partial = Decoded {
        message,
        error: Some(error),
    };
    for _ in 0..counts.queries {
        match Query::read(&mut decoder) {
            Ok(query) => partial.message.queries.push(query),
            Err(_) => return Some(partial),
        }
    }
    let sections = [
        (counts.answers, Section::Answer),
        (counts.authorities, Section::Authority),
        (counts.additionals, Section::Additional),
    ];
    for (count, section) in sections {
        for _ in 0..count {
            let start = decoder.index();
            match Record::read(&mut decoder) {
                Ok(record) => section.place(&mut partial.message, record),
                Err(_) => {
                    let Ok(start) = u16::try_from(start) else {
                        return Some(partial);
                    };
                    decoder = decoder.clone(start);
                    if skip_record(&mut decoder).is_err() {
                        return Some(partial);
                    }
                }
            }
        }
    }
    Some(partial)
}

/// A section of records.
#[derive(Clone, Copy)]
enum Section {
    Answer,
    Authority,
    Additional,
}

impl Section {
    /// Puts a record read in the tolerant parse where [`Message::from_vec`] would have.
    fn place(self, message: &mut Message, record: Record) {
        match self {
            Self::Answer => message.answers.push(record),
            Self::Authority => message.authorities.push(record),
            Self::Additional if record.record_type() == RecordType::OPT => {
                let mut edns = Edns::new();
                edns.set_max_payload(u16::from(record.dns_class));
                message.edns = Some(edns);
            }
            Self::Additional => message.additionals.push(record),
        }
    }
}

/// Steps over one record whose RDATA did not decode, checking only its framing.
fn skip_record(decoder: &mut BinDecoder<'_>) -> Result<(), DecodeError> {
    Name::read(decoder)?;
    decoder.read_u16()?; // type
    decoder.read_u16()?; // class
    decoder.read_u32()?; // TTL
    let rdlength = decoder.read_u16()?.unverified(/*checked by read_slice*/);
    decoder.read_slice(usize::from(rdlength))?;
    Ok(())
}

/// What a message received on a resolver connection is, for the query sent on it.
#[derive(Debug)]
pub(crate) enum ReplyCheck {
    /// The reply to the query, fully decoded.
    Answer(Message),
    /// The reply to the query (same ID, same or no question) that does not fully decode.
    Malformed(String),
    /// Not a reply to this query: no complete header, another ID, not a response, or another
    /// question.
    Stray(String),
}

/// Decides whether `decoded` (the decoding of a received message) answers `query`.
///
/// A reply with the query's ID must repeat its question, or have none (servers may omit it
/// with an error rcode).
pub(crate) fn check_reply(query: &OutgoingQuery, decoded: Option<Decoded>) -> ReplyCheck {
    let Some(decoded) = decoded else {
        return ReplyCheck::Stray("message shorter than a DNS header".into());
    };
    let metadata = &decoded.message.metadata;
    if metadata.id != query.id {
        return ReplyCheck::Stray(format!(
            "reply ID {} does not match query ID {}",
            metadata.id, query.id
        ));
    }
    if metadata.message_type != MessageType::Response {
        return ReplyCheck::Stray("message is not a response".into());
    }
    let questions = &decoded.message.queries;
    if questions.len() > 1 || questions.first().is_some_and(|q| !same_question(q, query)) {
        return ReplyCheck::Stray("reply question does not match the query".into());
    }
    match decoded.error {
        Some(error) => ReplyCheck::Malformed(error.to_string()),
        None => ReplyCheck::Answer(decoded.message),
    }
}

/// Same name (case-insensitively), type and class.
fn same_question(reply: &Query, query: &OutgoingQuery) -> bool {
    reply.query_type() == query.question.query_type()
        && reply.query_class() == query.question.query_class()
        && reply.name() == query.question.name()
}

/// The record of a query message of `size` wire bytes.
pub(crate) fn query_record(decoded: &Decoded, size: usize) -> DnsQueryMsg {
    let message = &decoded.message;
    DnsQueryMsg {
        id: message.metadata.id,
        recursion_desired: message.metadata.recursion_desired,
        truncated: message.metadata.truncation,
        size: wire_size(size),
        questions: message.queries.iter().map(question_record).collect(),
        opt_udp_payload_size: message.edns.as_ref().map_or(0, Edns::max_payload),
        ..DnsQueryMsg::default()
    }
}

/// The record of a reply message of `size` wire bytes.
pub(crate) fn reply_record(decoded: &Decoded, size: usize) -> DnsReplyMsg {
    let message = &decoded.message;
    DnsReplyMsg {
        id: message.metadata.id,
        authoritative: message.metadata.authoritative,
        recursion_available: message.metadata.recursion_available,
        truncated: message.metadata.truncation,
        size: wire_size(size),
        rcode: DnsRCode(u16::from(message.metadata.response_code)),
        answers: message.answers.iter().map(answer_record).collect(),
        ..DnsReplyMsg::default()
    }
}

fn wire_size(size: usize) -> u32 {
    u32::try_from(size).unwrap_or(u32::MAX)
}

fn question_record(query: &Query) -> DnsQuestion {
    DnsQuestion {
        name: query.name().to_ascii(),
        res_type: DnsResType(u16::from(query.query_type())),
        class: u16::from(query.query_class()),
    }
}

fn answer_record(record: &Record) -> DnsAnswer {
    let resolved_val = match &record.data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(aaaa) => aaaa.0.to_string(),
        RData::CNAME(name) => name.0.to_ascii(),
        RData::NS(name) => name.0.to_ascii(),
        RData::PTR(name) => name.0.to_ascii(),
        RData::MX(mx) => mx.exchange.to_ascii(),
        _ => String::new(),
    };
    DnsAnswer {
        name: record.name.to_ascii(),
        res_type: DnsResType(u16::from(record.record_type())),
        class: u16::from(record.dns_class),
        ttl: record.ttl,
        resolved_val,
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{Ipv4Addr, Ipv6Addr},
        time::{Duration, Instant},
    };

    use hickory_proto::{
        op::ResponseCode,
        rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, TXT},
    };

    use super::*;

    /// A 12-byte header.
    fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend(id.to_be_bytes());
        bytes.extend(flags.to_be_bytes());
        for count in counts {
            bytes.extend(count.to_be_bytes());
        }
        bytes
    }

    /// `example.com.` as uncompressed labels.
    fn example_com() -> Vec<u8> {
        b"\x07example\x03com\x00".to_vec()
    }

    /// A question for `example.com.` A IN.
    fn question_a() -> Vec<u8> {
        let mut bytes = example_com();
        bytes.extend([0, 1, 0, 1]);
        bytes
    }

    /// A record with a pointer to the question's name (offset 12).
    fn rr(rtype: u16, rdata: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0xC0, 12];
        bytes.extend(rtype.to_be_bytes());
        bytes.extend([0, 1, 0, 0, 0, 60]);
        bytes.extend(u16::try_from(rdata.len()).unwrap().to_be_bytes());
        bytes.extend(rdata);
        bytes
    }

    fn decode_quickly(bytes: &[u8]) -> Option<Decoded> {
        let started = Instant::now();
        let decoded = decode(bytes);
        assert!(started.elapsed() < Duration::from_secs(1));
        decoded
    }

    #[test]
    fn built_query_records_header_question_and_opt() {
        let name = Name::from_ascii("WWW.Example.com.").unwrap();
        let query = build_query(&name, RecordType::AAAA).unwrap();
        let decoded = decode(&query.bytes).unwrap();
        assert!(decoded.error.is_none());
        let record = query_record(&decoded, query.bytes.len());
        assert_eq!(record.id, query.id);
        assert!(record.recursion_desired && !record.truncated);
        assert_eq!(record.size as usize, query.bytes.len());
        assert_eq!(
            record.questions,
            [DnsQuestion {
                name: "WWW.Example.com.".into(),
                res_type: DnsResType::AAAA,
                class: 1,
            }]
        );
        assert_eq!(record.opt_udp_payload_size, EDNS_UDP_PAYLOAD);
    }

    #[test]
    fn reply_records_values_for_known_types_and_lists_the_others() {
        let name = Name::from_ascii("example.com.").unwrap();
        let target = Name::from_ascii("target.example.").unwrap();
        let mut reply = Message::response(7, hickory_proto::op::OpCode::Query);
        reply.metadata.authoritative = true;
        reply.metadata.recursion_available = true;
        reply.metadata.response_code = ResponseCode::Refused;
        reply.add_query(Query::query(name.clone(), RecordType::A));
        let rdatas = [
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
            RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)),
            RData::CNAME(CNAME(target.clone())),
            RData::NS(NS(target.clone())),
            RData::PTR(PTR(target.clone())),
            RData::MX(MX::new(10, Name::from_ascii("mail.example.").unwrap())),
            RData::TXT(TXT::new(vec!["hello".into()])),
        ];
        for rdata in rdatas {
            reply.add_answer(Record::from_rdata(name.clone(), 300, rdata));
        }
        let bytes = reply.to_vec().unwrap();
        let record = reply_record(&decode(&bytes).unwrap(), bytes.len());
        assert_eq!(record.id, 7);
        assert!(record.authoritative && record.recursion_available && !record.truncated);
        assert_eq!(record.rcode, DnsRCode::REFUSED);
        assert_eq!(record.size as usize, bytes.len());
        let values: Vec<_> = record
            .answers
            .iter()
            .map(|a| (a.res_type, a.resolved_val.as_str()))
            .collect();
        assert_eq!(
            values,
            [
                (DnsResType::A, "192.0.2.1"),
                (DnsResType::AAAA, "::1"),
                (DnsResType::CNAME, "target.example."),
                (DnsResType::NS, "target.example."),
                (DnsResType::PTR, "target.example."),
                (DnsResType::MX, "mail.example."),
                (DnsResType::TXT, ""),
            ]
        );
        assert_eq!(record.answers[0].name, "example.com.");
        assert_eq!((record.answers[0].class, record.answers[0].ttl), (1, 300));
    }

    /// Go's TestParseMalformedDNSQuery: a reserved label prefix (0x40) in the question.
    #[test]
    fn query_with_reserved_label_prefix_keeps_header_and_no_question() {
        let mut bytes = header(0x1234, 0x0100, [1, 0, 0, 0]);
        bytes.extend(b"\x40bad\x00\x00\x01\x00\x01");
        let decoded = decode_quickly(&bytes).unwrap();
        assert!(decoded.error.is_some());
        let record = query_record(&decoded, bytes.len());
        assert_eq!(record.id, 0x1234);
        assert!(record.recursion_desired);
        assert!(record.questions.is_empty());
    }

    /// Go's TestParseMalformedDNSReplyBadAnswerName: the parse stops at the bad owner name.
    #[test]
    fn reply_with_bad_answer_name_stops_there() {
        let mut bytes = header(9, 0x8180, [1, 2, 0, 0]);
        bytes.extend(question_a());
        bytes.extend(b"\x40bad\x00\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x01");
        bytes.extend(rr(1, &[127, 0, 0, 1]));
        let decoded = decode_quickly(&bytes).unwrap();
        let record = reply_record(&decoded, bytes.len());
        assert_eq!(record.id, 9);
        assert!(record.recursion_available);
        assert!(record.answers.is_empty());
        assert_eq!(decoded.message.queries.len(), 1);
    }

    /// Go's TestParseMalformedDNSReplyCNAMEBadRdata and ...SkipsAndContinues: a CNAME whose
    /// RDATA is a bad name is skipped, the valid A record after it is kept.
    #[test]
    fn reply_with_bad_cname_rdata_skips_it_and_continues() {
        let mut bytes = header(10, 0x8180, [1, 2, 0, 0]);
        bytes.extend(question_a());
        bytes.extend(rr(5, b"\x40bad\x00"));
        bytes.extend(rr(1, &[127, 0, 0, 1]));
        let decoded = decode_quickly(&bytes).unwrap();
        assert!(decoded.error.is_some());
        let record = reply_record(&decoded, bytes.len());
        assert_eq!(record.answers.len(), 1);
        assert_eq!(record.answers[0].res_type, DnsResType::A);
        assert_eq!(record.answers[0].resolved_val, "127.0.0.1");

        let only_cname = {
            let mut b = header(11, 0x8180, [1, 1, 0, 0]);
            b.extend(question_a());
            b.extend(rr(5, b"\x40bad\x00"));
            b
        };
        assert!(
            reply_record(&decode_quickly(&only_cname).unwrap(), 0)
                .answers
                .is_empty()
        );
    }

    #[test]
    fn truncated_header_and_overlong_counts_do_not_hang() {
        assert!(decode_quickly(&[0x12, 0x34, 0x81]).is_none());
        assert!(decode_quickly(&[]).is_none());
        let counts_only = header(5, 0x8180, [u16::MAX; 4]);
        let decoded = decode_quickly(&counts_only).unwrap();
        assert_eq!(decoded.message.metadata.id, 5);
        assert!(decoded.message.queries.is_empty());
        let mut rdlength_past_end = header(6, 0x8180, [1, u16::MAX, 0, 0]);
        rdlength_past_end.extend(question_a());
        rdlength_past_end.extend(&rr(1, &[127, 0, 0, 1])[..12]);
        rdlength_past_end.extend([0xFF, 0xFF, 1]);
        let decoded = decode_quickly(&rdlength_past_end).unwrap();
        assert!(decoded.message.answers.is_empty());
    }

    #[test]
    fn check_reply_accepts_ours_and_flags_strays_and_malformed() {
        let name = Name::from_ascii("example.com.").unwrap();
        let query = build_query(&name, RecordType::A).unwrap();
        let reply_bytes = |id: u16, qname: &str, response: bool| {
            let mut reply = Message::response(id, hickory_proto::op::OpCode::Query);
            if !response {
                reply.metadata.message_type = MessageType::Query;
            }
            reply.add_query(Query::query(
                Name::from_ascii(qname).unwrap(),
                RecordType::A,
            ));
            reply.to_vec().unwrap()
        };
        let ours = reply_bytes(query.id, "EXAMPLE.com.", true);
        assert!(matches!(
            check_reply(&query, decode(&ours)),
            ReplyCheck::Answer(_)
        ));
        let other_id = reply_bytes(query.id.wrapping_add(1), "example.com.", true);
        assert!(matches!(
            check_reply(&query, decode(&other_id)),
            ReplyCheck::Stray(_)
        ));
        let other_name = reply_bytes(query.id, "example.org.", true);
        assert!(matches!(
            check_reply(&query, decode(&other_name)),
            ReplyCheck::Stray(_)
        ));
        let not_response = reply_bytes(query.id, "example.com.", false);
        assert!(matches!(
            check_reply(&query, decode(&not_response)),
            ReplyCheck::Stray(_)
        ));
        assert!(matches!(
            check_reply(&query, decode(&[1, 2])),
            ReplyCheck::Stray(_)
        ));
        let mut malformed = header(query.id, 0x8180, [1, 1, 0, 0]);
        malformed.extend(question_a());
        malformed.extend(rr(5, b"\x40bad\x00"));
        assert!(matches!(
            check_reply(&query, decode(&malformed)),
            ReplyCheck::Malformed(_)
        ));
        let no_question = header(query.id, 0x8182, [0, 0, 0, 0]);
        assert!(matches!(
            check_reply(&query, decode(&no_question)),
            ReplyCheck::Answer(_)
        ));
    }
}
