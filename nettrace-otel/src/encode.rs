//! Span trees ([`SpanNode`]) written as OTLP protobuf bytes: one `Span` per node with fresh
//! random IDs (a trace ID per tree, a span ID per node, the parent's ID on each child), the
//! attributes as typed values, the events, and the error as status.
//!
//! The bytes are written straight from the trees into one buffer per batch ([`SpanBuffer`]),
//! behind room for the export request's header ([`Envelope`]), which is written there when
//! the batch is sent: no message objects are built (they cost half of the exporter's CPU in
//! allocations and frees), and a batch is never copied into its request (BENCHMARKS.md,
//! issue 15). The wire
//! format is opentelemetry-proto's (`opentelemetry/proto/trace/v1/trace.proto`); the tests
//! decode what is written with that crate's generated types.
use std::time::SystemTime;

use bytes::Bytes;
use opentelemetry_proto::tonic::{
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
    resource::v1::Resource,
};
use prost::{Message as _, encoding::encoded_len_varint};
use rand::{Rng as _, SeedableRng as _, rngs::SmallRng};

use crate::spans::{Attr, SpanEvent, SpanNode, UnixNanos, Value};

/// W3C trace flag "sampled", and OTLP's "the parent is known to be local" bit: the flags
/// an SDK sets on the spans it records.
const SPAN_FLAGS: u32 = 0x01 | 0x100;
/// `Span.kind`: internal (a phase) and client (a request).
const KIND_INTERNAL: u8 = 1;
const KIND_CLIENT: u8 = 3;
/// `Status.code`: error.
const STATUS_ERROR: u64 = 2;

/// Random trace and span IDs (never all zero, which OTLP reads as invalid).
pub(crate) struct Ids(SmallRng);

impl Ids {
    /// A generator seeded from the operating system, or from the clock and the process ID
    /// when it has no randomness to give (IDs must be unique, not secret).
    pub(crate) fn new() -> Self {
        Self(SmallRng::try_from_os_rng().unwrap_or_else(|_| {
            let nanos = UnixNanos::of(SystemTime::now()).0;
            SmallRng::seed_from_u64(nanos ^ (u64::from(std::process::id()) << 32))
        }))
    }

    fn trace_id(&mut self) -> [u8; 16] {
        self.0.random::<u128>().max(1).to_be_bytes()
    }

    fn span_id(&mut self) -> [u8; 8] {
        self.0.random::<u64>().max(1).to_be_bytes()
    }
}

/// Encoded spans waiting to be sent, each a `ScopeSpans.spans` field, in the order written
/// (parents before their children), behind room for the header of the export request that
/// will carry them: a request is the buffer itself, not a copy of it.
#[derive(Debug)]
pub(crate) struct SpanBuffer {
    envelope: Envelope,
    /// [`Envelope::headroom`] bytes for the request's header, then the spans (empty while no
    /// span waits).
    bytes: Vec<u8>,
    /// Where each span's field ends in `bytes`.
    ends: Vec<usize>,
    /// One span's body while it is written (its length precedes it).
    scratch: Vec<u8>,
    /// The longest request taken so far: `bytes` starts at that capacity, so that a batch
    /// is not copied each time it outgrows its allocation. (The last request is often the
    /// small rest of a split batch, so it is the longest that counts.)
    longest_request: usize,
}

impl SpanBuffer {
    /// An empty buffer whose requests carry `envelope`.
    pub(crate) fn new(envelope: Envelope) -> Self {
        Self {
            envelope,
            bytes: Vec::new(),
            ends: Vec::new(),
            scratch: Vec::new(),
            longest_request: 0,
        }
    }

    /// How many spans are waiting.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether no span is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Writes the spans of `tree`, a fresh trace ID for all of them; returns how many.
    pub(crate) fn append_tree(&mut self, ids: &mut Ids, tree: &SpanNode) -> u64 {
        if self.bytes.is_empty() {
            self.bytes.reserve(self.longest_request);
            self.bytes.resize(self.envelope.headroom(), 0);
        }
        let trace_id = ids.trace_id();
        self.append(ids, tree, &trace_id, None)
    }

    fn append(
        &mut self,
        ids: &mut Ids,
        node: &SpanNode,
        trace_id: &[u8; 16],
        parent: Option<&[u8; 8]>,
    ) -> u64 {
        let span_id = ids.span_id();
        self.scratch.clear();
        write_span(&mut self.scratch, node, trace_id, &span_id, parent);
        length_delimited(&mut self.bytes, 2, &self.scratch);
        self.ends.push(self.bytes.len());
        let mut count = 1;
        for child in &node.children {
            count += self.append(ids, child, trace_id, Some(&span_id));
        }
        count
    }

    /// Removes the first `max` spans (or all, when fewer wait) and returns them as one
    /// export request, with how many it holds. The spans are not copied, except those left
    /// behind when more than `max` wait.
    pub(crate) fn take_request(&mut self, max: usize) -> (Bytes, u64) {
        let count = self.ends.len().min(max);
        let Some(end) = count.checked_sub(1).map(|last| self.ends[last]) else {
            return (self.envelope.request(&[]).into(), 0);
        };
        let headroom = self.envelope.headroom();
        let rest = if count < self.ends.len() {
            let mut rest = Vec::with_capacity(headroom + self.bytes.len() - end);
            rest.resize(headroom, 0);
            rest.extend_from_slice(&self.bytes[end..]);
            self.bytes.truncate(end);
            rest
        } else {
            Vec::new()
        };
        let mut request = std::mem::replace(&mut self.bytes, rest);
        self.longest_request = self.longest_request.max(request.len());
        self.ends.drain(..count);
        for at in &mut self.ends {
            *at = *at - end + headroom;
        }
        let spans = request.get(headroom..).unwrap_or_default();
        let header = self.envelope.header(spans.len());
        let Some(start) = headroom.checked_sub(header.len()) else {
            // Not reached: the headroom is the longest header there can be.
            let mut whole = header;
            whole.extend_from_slice(spans);
            return (whole.into(), count as u64);
        };
        request[start..headroom].copy_from_slice(&header);
        (Bytes::from(request).slice(start..), count as u64)
    }
}

/// What every export request repeats: the exporter's resource and instrumentation scope,
/// encoded once.
#[derive(Debug)]
pub(crate) struct Envelope {
    resource: Vec<u8>,
    scope: Vec<u8>,
}

impl Envelope {
    /// The resource `service.name`, `host.name`, `device.id` when set, the `extra`
    /// attributes whose keys those do not take, and what wrote the spans
    /// (`telemetry.sdk.*`: nettrace itself, not an SDK); the scope `nettrace`.
    pub(crate) fn new(
        service_name: &str,
        host_name: &str,
        device_id: Option<&str>,
        extra: &[(String, String)],
    ) -> Self {
        let mut attrs = vec![("service.name", service_name), ("host.name", host_name)];
        if let Some(device) = device_id {
            attrs.push(("device.id", device));
        }
        let written_by = [
            ("telemetry.sdk.name", "nettrace"),
            ("telemetry.sdk.language", "rust"),
            ("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
        ];
        // Keys are unique in OTLP: the extras come after, and only under keys not taken.
        for (key, value) in extra {
            let taken = attrs
                .iter()
                .chain(&written_by)
                .any(|(taken, _)| taken == key);
            if !taken {
                attrs.push((key.as_str(), value.as_str()));
            }
        }
        attrs.extend(written_by);
        let resource = Resource {
            attributes: attrs
                .into_iter()
                .map(|(key, value)| KeyValue {
                    key: key.to_owned(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(value.to_owned())),
                    }),
                    ..KeyValue::default()
                })
                .collect(),
            ..Resource::default()
        };
        let scope = InstrumentationScope {
            name: "nettrace".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ..InstrumentationScope::default()
        };
        Self {
            resource: resource.encode_to_vec(),
            scope: scope.encode_to_vec(),
        }
    }

    /// The longest [`Self::header`] there can be: the resource, the scope, and four keys
    /// (one byte each) with lengths of the longest varint (10 bytes each).
    fn headroom(&self) -> usize {
        self.resource.len() + self.scope.len() + 4 * (1 + 10)
    }

    /// What precedes `spans_len` bytes of encoded `spans` fields in an
    /// `ExportTraceServiceRequest` of one `ResourceSpans` with one `ScopeSpans`.
    fn header(&self, spans_len: usize) -> Vec<u8> {
        let scope_spans = field_len(self.scope.len()) + spans_len;
        let resource_spans = field_len(self.resource.len()) + field_len(scope_spans);
        let mut out = Vec::with_capacity(field_len(resource_spans) - spans_len);
        length_prefix(&mut out, 1, resource_spans);
        length_delimited(&mut out, 1, &self.resource);
        length_prefix(&mut out, 2, scope_spans);
        length_delimited(&mut out, 1, &self.scope);
        out
    }

    /// The whole request holding `spans` (encoded `spans` fields).
    fn request(&self, spans: &[u8]) -> Vec<u8> {
        let mut out = self.header(spans.len());
        out.extend_from_slice(spans);
        out
    }
}

/// A `Span` message's body.
fn write_span(
    out: &mut Vec<u8>,
    node: &SpanNode,
    trace_id: &[u8; 16],
    span_id: &[u8; 8],
    parent: Option<&[u8; 8]>,
) {
    length_delimited(out, 1, trace_id);
    length_delimited(out, 2, span_id);
    if let Some(parent) = parent {
        length_delimited(out, 4, parent);
    }
    length_delimited(out, 5, node.name.as_bytes());
    key(out, 6, VARINT);
    out.push(if node.client {
        KIND_CLIENT
    } else {
        KIND_INTERNAL
    });
    fixed64(out, 7, node.start.0);
    fixed64(out, 8, node.end.0);
    for attr in &node.attrs {
        key_value(out, 9, attr);
    }
    for event in &node.events {
        write_event(out, event);
    }
    if let Some(message) = &node.error {
        let status = field_len(message.len()) + 2;
        length_prefix(out, 15, status);
        length_delimited(out, 2, message.as_bytes());
        key(out, 3, VARINT);
        varint(out, STATUS_ERROR);
    }
    // Field 16 takes a two-byte key.
    varint(out, u64::from(16 << 3 | FIXED32));
    out.extend_from_slice(&SPAN_FLAGS.to_le_bytes());
}

/// A `Span.events` field.
fn write_event(out: &mut Vec<u8>, event: &SpanEvent) {
    let attrs: usize = event
        .attrs
        .iter()
        .map(|(key, value)| field_len(key_value_len(key.as_bytes(), any_value_len(value))))
        .sum();
    length_prefix(out, 11, 9 + field_len(event.name.len()) + attrs);
    fixed64(out, 1, event.at.0);
    length_delimited(out, 2, event.name.as_bytes());
    for attr in &event.attrs {
        key_value(out, 3, attr);
    }
}

/// A `KeyValue` message as field `tag`.
fn key_value(out: &mut Vec<u8>, tag: u8, (name, value): &Attr) {
    let name = name.as_bytes();
    let any_value = any_value_len(value);
    let body = key_value_len(name, any_value);
    if body < 0x80 {
        // Nearly every attribute: every length takes one byte, and the bytes between the
        // name and the value go in one write.
        out.reserve(2 + body);
        out.extend_from_slice(&[
            tag << 3 | LENGTH_DELIMITED,
            body as u8,
            1 << 3 | LENGTH_DELIMITED,
            name.len() as u8,
        ]);
        out.extend_from_slice(name);
        if let Value::Str(text) = value {
            let text = text.as_bytes();
            out.extend_from_slice(&[
                2 << 3 | LENGTH_DELIMITED,
                any_value as u8,
                1 << 3 | LENGTH_DELIMITED,
                text.len() as u8,
            ]);
            out.extend_from_slice(text);
            return;
        }
        out.extend_from_slice(&[2 << 3 | LENGTH_DELIMITED, any_value as u8]);
    } else {
        length_prefix(out, tag, body);
        length_delimited(out, 1, name);
        length_prefix(out, 2, any_value);
    }
    match value {
        Value::Str(text) => length_delimited(out, 1, text.as_bytes()),
        Value::Bool(flag) => {
            key(out, 2, VARINT);
            out.push(u8::from(*flag));
        }
        Value::Int(number) => {
            key(out, 3, VARINT);
            // int64 is written as its two's complement, as prost does.
            varint(out, *number as u64);
        }
    }
}

/// The length of a `KeyValue` body: its key, and an `AnyValue` of `any_value` bytes.
fn key_value_len(key: &[u8], any_value: usize) -> usize {
    field_len(key.len()) + field_len(any_value)
}

/// The length of an `AnyValue` body (its one `value` field, always written).
fn any_value_len(value: &Value) -> usize {
    match value {
        Value::Str(text) => field_len(text.len()),
        Value::Bool(_) => 2,
        Value::Int(number) => 1 + encoded_len_varint(*number as u64),
    }
}

/// The length of a length-delimited field of `len` bytes (tags below 16 take one byte).
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// Wire types of protobuf field keys.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;
const FIXED32: u8 = 5;

/// The key of field `tag` (below 16, so one byte).
fn key(out: &mut Vec<u8>, tag: u8, wire_type: u8) {
    debug_assert!(tag < 16);
    out.push(tag << 3 | wire_type);
}

/// A base-128 varint (what prost's generic writer does, without its per-byte buffer checks).
fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn length_prefix(out: &mut Vec<u8>, tag: u8, len: usize) {
    key(out, tag, LENGTH_DELIMITED);
    varint(out, len as u64);
}

fn length_delimited(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    length_prefix(out, tag, bytes.len());
    out.extend_from_slice(bytes);
}

fn fixed64(out: &mut Vec<u8>, tag: u8, value: u64) {
    key(out, tag, FIXED64);
    out.extend_from_slice(&value.to_le_bytes());
}

#[cfg(test)]
mod tests;
