//! The written bytes decode, with opentelemetry-proto's generated types, to the messages a
//! plain message-object encoder (kept here as the reference) builds from the same trees.
use std::{collections::HashSet, sync::LazyLock};

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value},
    trace::v1::{
        Span, Status,
        span::{Event, SpanKind},
        status::StatusCode,
    },
};
use prost::Message as _;
use rand::{SeedableRng as _, rngs::SmallRng};

use super::*;
use crate::spans::{SpanEvent, request_trees};
use nettrace_model::HttpTrace;

fn ids(seed: u64) -> Ids {
    Ids(SmallRng::seed_from_u64(seed))
}

fn one_request_trees() -> Vec<SpanNode<'static>> {
    static TRACE: LazyLock<HttpTrace> = LazyLock::new(crate::tests_support::one_request);
    request_trees(&TRACE)
}

/// A tree with what the fixture lacks: an error, negative and large integers, booleans,
/// empty and non-ASCII strings, a string long enough for a two-byte length, an event
/// without attributes, the epoch itself.
fn odd_tree() -> SpanNode<'static> {
    let at = UnixNanos(1_700_000_000_123_456_789);
    let mut child = SpanNode::new("", UnixNanos(0), at);
    child.error = Some("connect: Verbindung abgelehnt (é)".into());
    child.attrs = vec![
        ("n.neg", Value::Int(-1)),
        ("n.max", Value::Int(i64::MAX)),
        ("n.zero", Value::Int(0)),
        ("b.true", Value::Bool(true)),
        ("b.false", Value::Bool(false)),
        ("s.empty", Value::Str("".into())),
    ];
    let mut root = SpanNode::new("x".repeat(300), at, UnixNanos(at.0 + 5_000_000));
    root.client = true;
    root.attrs = vec![("url.full", Value::Str("https://é.test/".repeat(20).into()))];
    root.events = vec![
        SpanEvent {
            name: "read".into(),
            at,
            attrs: smallvec::smallvec![("bytes", Value::Int(4096))],
        },
        SpanEvent {
            name: "".into(),
            at,
            attrs: Default::default(),
        },
    ];
    root.error = Some("".into());
    root.children = vec![child];
    root
}

/// The reference: message objects, as a general protobuf encoder would be given them.
fn reference_spans(ids: &mut Ids, trees: &[SpanNode]) -> Vec<Span> {
    let mut out = Vec::new();
    for tree in trees {
        let trace_id = ids.trace_id();
        reference_append(ids, tree, &trace_id, Vec::new(), &mut out);
    }
    out
}

fn reference_append(
    ids: &mut Ids,
    node: &SpanNode,
    trace_id: &[u8; 16],
    parent_span_id: Vec<u8>,
    out: &mut Vec<Span>,
) {
    let span_id = ids.span_id().to_vec();
    let kind = if node.client {
        SpanKind::Client
    } else {
        SpanKind::Internal
    };
    out.push(Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.clone(),
        parent_span_id,
        flags: SPAN_FLAGS,
        name: node.name.to_string(),
        kind: kind as i32,
        start_time_unix_nano: node.start.0,
        end_time_unix_nano: node.end.0,
        attributes: reference_key_values(&node.attrs),
        events: node
            .events
            .iter()
            .map(|event| Event {
                time_unix_nano: event.at.0,
                name: event.name.to_string(),
                attributes: reference_key_values(&event.attrs),
                dropped_attributes_count: 0,
            })
            .collect(),
        status: node.error.as_ref().map(|message| Status {
            message: message.to_string(),
            code: StatusCode::Error as i32,
        }),
        ..Span::default()
    });
    for child in &node.children {
        reference_append(ids, child, trace_id, span_id.clone(), out);
    }
}

fn reference_key_values(attrs: &[Attr]) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(key, value)| KeyValue {
            key: (*key).to_owned(),
            value: Some(AnyValue {
                value: Some(match value {
                    Value::Str(v) => any_value::Value::StringValue(v.to_string()),
                    Value::Int(v) => any_value::Value::IntValue(*v),
                    Value::Bool(v) => any_value::Value::BoolValue(*v),
                }),
            }),
            ..KeyValue::default()
        })
        .collect()
}

fn written(seed: u64, trees: &[SpanNode]) -> (SpanBuffer, u64) {
    let mut ids = ids(seed);
    let mut buffer = SpanBuffer::new(envelope());
    let count = trees
        .iter()
        .map(|tree| buffer.append_tree(&mut ids, tree))
        .sum();
    (buffer, count)
}

fn decode(bytes: &[u8]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest::decode(bytes).expect("the request decodes")
}

fn spans_of(request: &ExportTraceServiceRequest) -> &[Span] {
    &request.resource_spans[0].scope_spans[0].spans
}

fn envelope() -> Envelope {
    Envelope::new("probe", "host-1", Some("device-7"), &[])
}

#[test]
fn written_spans_decode_as_the_reference_messages() {
    let mut trees = one_request_trees();
    trees.push(odd_tree());
    let (mut buffer, count) = written(7, &trees);
    let expected = reference_spans(&mut ids(7), &trees);
    assert_eq!(count as usize, expected.len());
    assert_eq!(buffer.len(), expected.len());
    let (bytes, taken) = buffer.take_request(usize::MAX);
    assert_eq!(taken, count);
    assert!(buffer.is_empty());
    let request = decode(&bytes);
    assert_eq!(spans_of(&request), expected.as_slice());
}

#[test]
fn every_span_has_its_trees_trace_id_and_a_known_parent() {
    let (mut buffer, _) = written(1, &one_request_trees());
    let request = decode(&buffer.take_request(usize::MAX).0);
    let spans = spans_of(&request);
    assert!(spans.len() > 3, "{}", spans.len());
    let ids: HashSet<&[u8]> = spans.iter().map(|s| s.span_id.as_slice()).collect();
    assert_eq!(ids.len(), spans.len(), "span IDs are unique");
    for span in spans {
        assert_eq!(span.trace_id.len(), 16);
        assert_eq!(span.span_id.len(), 8);
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        if span.parent_span_id.is_empty() {
            assert_eq!(span.kind, SpanKind::Client as i32, "{}", span.name);
            continue;
        }
        let parent = spans
            .iter()
            .find(|p| p.span_id == span.parent_span_id)
            .expect("the parent is exported too");
        assert_eq!(parent.trace_id, span.trace_id, "{}", span.name);
        // Parents come first, so a collector that reads in order knows them.
        let at = |s: &Span| spans.iter().position(|x| x.span_id == s.span_id);
        assert!(at(parent) < at(span));
    }
}

#[test]
fn requests_take_at_most_their_bound_in_order_and_carry_the_resource() {
    let trees = one_request_trees();
    let (mut buffer, count) = written(3, &trees);
    let expected = reference_spans(&mut ids(3), &trees);
    let mut received = Vec::new();
    let mut requests = 0;
    while !buffer.is_empty() && requests < 100 {
        let (bytes, taken) = buffer.take_request(2);
        requests += 1;
        let request = decode(&bytes);
        assert_eq!(spans_of(&request).len() as u64, taken);
        assert!(taken <= 2 && taken > 0);
        let keys: Vec<&str> = request.resource_spans[0]
            .resource
            .as_ref()
            .map(|r| r.attributes.iter().map(|a| a.key.as_str()).collect())
            .unwrap_or_default();
        for key in [
            "service.name",
            "host.name",
            "device.id",
            "telemetry.sdk.name",
        ] {
            assert!(keys.contains(&key), "{keys:?}");
        }
        let scope = request.resource_spans[0].scope_spans[0].scope.as_ref();
        assert_eq!(scope.map(|s| s.name.as_str()), Some("nettrace"));
        received.extend_from_slice(spans_of(&request));
    }
    assert_eq!(requests as u64, count.div_ceil(2));
    assert_eq!(received, expected);
}

/// Spans left behind by a bounded request go out in the next one, before spans written
/// after them, and every request decodes.
#[test]
fn spans_written_after_a_bounded_request_follow_those_left_behind() {
    let trees = one_request_trees();
    let mut ids = ids(5);
    let mut buffer = SpanBuffer::new(envelope());
    let first = buffer.append_tree(&mut ids, &trees[0]);
    let (bytes, taken) = buffer.take_request(2);
    assert_eq!((taken, buffer.len() as u64), (2, first - 2));
    let mut received = spans_of(&decode(&bytes)).to_vec();
    let second = buffer.append_tree(&mut ids, &trees[0]);
    let (bytes, taken) = buffer.take_request(usize::MAX);
    assert_eq!(taken, first + second - 2);
    assert!(buffer.is_empty());
    received.extend_from_slice(spans_of(&decode(&bytes)));
    // The same IDs, drawn in the same order.
    let reference_ids = &mut self::ids(5);
    let mut expected = reference_spans(reference_ids, &trees[..1]);
    expected.extend(reference_spans(reference_ids, &trees[..1]));
    assert_eq!(received, expected);
}

/// A batch starts as large as the longest request so far, not as the small rest of a split
/// batch that went last.
#[test]
fn a_new_batch_starts_at_the_longest_requests_size() {
    let trees = one_request_trees();
    let mut ids = ids(9);
    let mut buffer = SpanBuffer::new(envelope());
    let count = buffer.append_tree(&mut ids, &trees[0]);
    let (full, _) = buffer.take_request(count as usize - 1);
    let (rest, taken) = buffer.take_request(usize::MAX);
    assert_eq!(taken, 1);
    assert!(rest.len() < full.len());
    buffer.append_tree(&mut ids, &trees[0]);
    assert!(
        buffer.bytes.capacity() >= full.len(),
        "{}",
        buffer.bytes.capacity()
    );
}

#[test]
fn an_empty_buffer_gives_an_empty_request() {
    let (bytes, taken) = SpanBuffer::new(envelope()).take_request(10);
    assert_eq!(taken, 0);
    assert!(spans_of(&decode(&bytes)).is_empty());
}

#[test]
fn extra_resource_attributes_are_kept_unless_their_key_is_taken() {
    let extra = [
        ("deployment.environment".to_owned(), "ci".to_owned()),
        ("service.name".to_owned(), "from-env".to_owned()),
        ("telemetry.sdk.name".to_owned(), "other".to_owned()),
    ];
    let envelope = Envelope::new("probe", "host-1", None, &extra);
    let request = decode(&envelope.request(&[]));
    let attrs: Vec<(String, String)> = request.resource_spans[0]
        .resource
        .iter()
        .flat_map(|r| &r.attributes)
        .map(|a| {
            let value = match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(text)) => text.clone(),
                other => format!("{other:?}"),
            };
            (a.key.clone(), value)
        })
        .collect();
    let get = |key: &str| {
        attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("service.name"), Some("probe"));
    assert_eq!(get("deployment.environment"), Some("ci"));
    assert_eq!(get("telemetry.sdk.name"), Some("nettrace"));
    for key in ["service.name", "telemetry.sdk.name"] {
        assert_eq!(attrs.iter().filter(|(k, _)| k == key).count(), 1, "{key}");
    }
}
