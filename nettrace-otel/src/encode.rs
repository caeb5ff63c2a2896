//! Span trees ([`SpanNode`]) as OTLP protobuf messages: one `Span` per node with fresh random
//! IDs (a trace ID per tree, a span ID per node, the parent's ID on each child), the
//! attributes as typed values, the events, and the error as status. Built straight from the
//! trees, without the OpenTelemetry SDK's span objects, which cost three quarters of the
//! export's CPU (BENCHMARKS.md, issue 15).
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
    resource::v1::Resource,
    trace::v1::{
        ResourceSpans, ScopeSpans, Span, Status,
        span::{Event, SpanKind},
        status::StatusCode,
    },
};
use rand::{Rng as _, SeedableRng as _, rngs::SmallRng};

use crate::spans::{SpanNode, Value};

/// W3C trace flag "sampled", and OTLP's "the parent is known to be local" bit: the flags
/// an SDK sets on the spans it records.
const SPAN_FLAGS: u32 = 0x01 | 0x100;

/// Random trace and span IDs (never all zero, which OTLP reads as invalid).
pub(crate) struct Ids(SmallRng);

impl Ids {
    /// A generator seeded from the operating system, or from the clock and the process ID
    /// when it has no randomness to give (IDs must be unique, not secret).
    pub(crate) fn new() -> Self {
        Self(SmallRng::try_from_os_rng().unwrap_or_else(|_| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            SmallRng::seed_from_u64(nanos ^ (u64::from(std::process::id()) << 32))
        }))
    }

    fn trace_id(&mut self) -> Vec<u8> {
        self.0.random::<u128>().max(1).to_be_bytes().to_vec()
    }

    fn span_id(&mut self) -> Vec<u8> {
        self.0.random::<u64>().max(1).to_be_bytes().to_vec()
    }
}

/// Appends the spans of `tree` to `out` (parents before their children); returns how many.
/// Takes the tree to move its strings into the messages rather than copy them.
pub(crate) fn append_tree(ids: &mut Ids, tree: SpanNode, out: &mut Vec<Span>) -> u64 {
    let trace_id = ids.trace_id();
    append(ids, tree, &trace_id, Vec::new(), out)
}

fn append(
    ids: &mut Ids,
    node: SpanNode,
    trace_id: &[u8],
    parent_span_id: Vec<u8>,
    out: &mut Vec<Span>,
) -> u64 {
    let span_id = ids.span_id();
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
        name: node.name,
        kind: kind as i32,
        start_time_unix_nano: unix_nanos(node.start),
        end_time_unix_nano: unix_nanos(node.end),
        attributes: key_values(node.attrs),
        events: node
            .events
            .into_iter()
            .map(|event| Event {
                time_unix_nano: unix_nanos(event.at),
                name: event.name,
                attributes: key_values(event.attrs),
                dropped_attributes_count: 0,
            })
            .collect(),
        status: node.error.map(|message| Status {
            message,
            code: StatusCode::Error as i32,
        }),
        ..Span::default()
    });
    let mut count = 1;
    for child in node.children {
        count += append(ids, child, trace_id, span_id.clone(), out);
    }
    count
}

/// The attributes of the exporter's resource: `service.name`, `host.name`, `device.id` when
/// set, and what wrote the spans (`telemetry.sdk.*`: nettrace itself, not an SDK).
pub(crate) fn resource(service_name: &str, host_name: &str, device_id: Option<&str>) -> Resource {
    let mut attrs = vec![
        ("service.name", Value::Str(service_name.to_owned())),
        ("host.name", Value::Str(host_name.to_owned())),
    ];
    if let Some(device) = device_id {
        attrs.push(("device.id", Value::Str(device.to_owned())));
    }
    attrs.extend([
        ("telemetry.sdk.name", Value::Str("nettrace".to_owned())),
        ("telemetry.sdk.language", Value::Str("rust".to_owned())),
        (
            "telemetry.sdk.version",
            Value::Str(env!("CARGO_PKG_VERSION").to_owned()),
        ),
    ]);
    Resource {
        attributes: key_values(attrs),
        ..Resource::default()
    }
}

/// One export request: `spans` under `resource` and the `nettrace` instrumentation scope.
pub(crate) fn request(resource: &Resource, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "nettrace".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..InstrumentationScope::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn key_values(attrs: Vec<(&'static str, Value)>) -> Vec<KeyValue> {
    attrs
        .into_iter()
        .map(|(key, value)| KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(match value {
                    Value::Str(v) => any_value::Value::StringValue(v),
                    Value::Int(v) => any_value::Value::IntValue(v),
                    Value::Bool(v) => any_value::Value::BoolValue(v),
                }),
            }),
            ..KeyValue::default()
        })
        .collect()
}

/// Nanoseconds since the Unix epoch (0 before it, saturated after 2554).
fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use prost::Message as _;

    use super::*;
    use crate::spans::request_trees;

    fn encoded_spans() -> Vec<Span> {
        let trace: nettrace_model::HttpTrace =
            serde_json::from_str(crate::tests_support::ONE_REQUEST).expect("trace");
        let mut ids = Ids::new();
        let mut spans = Vec::new();
        let mut count = 0;
        for tree in request_trees(&trace) {
            count += append_tree(&mut ids, tree, &mut spans);
        }
        assert_eq!(count as usize, spans.len());
        spans
    }

    #[test]
    fn every_span_has_its_trees_trace_id_and_a_known_parent() {
        let spans = encoded_spans();
        assert!(spans.len() > 3, "{}", spans.len());
        let ids: HashSet<&[u8]> = spans.iter().map(|s| s.span_id.as_slice()).collect();
        assert_eq!(ids.len(), spans.len(), "span IDs are unique");
        for span in &spans {
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
    fn a_request_reads_back_as_the_same_spans() {
        let spans = encoded_spans();
        let request = request(
            &resource("probe", "host-1", Some("device-7")),
            spans.clone(),
        );
        let bytes = request.encode_to_vec();
        let back = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(back, request);
        let resource_attrs: Vec<&str> = back.resource_spans[0]
            .resource
            .as_ref()
            .map(|r| r.attributes.iter().map(|a| a.key.as_str()).collect())
            .unwrap_or_default();
        for key in ["service.name", "host.name", "device.id"] {
            assert!(resource_attrs.contains(&key), "{resource_attrs:?}");
        }
        assert_eq!(back.resource_spans[0].scope_spans[0].spans, spans);
    }
}
