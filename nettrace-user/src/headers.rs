//! Header fields for the trace, by [`HdrFieldsOpt`] and the exclude callback.
//!
//! A request keeps a [`HeaderCapture`]: every field of its header map packed into bytes,
//! which become the trace's [`HttpHeader`] only when a snapshot is taken, by the options the
//! recorder holds. Responses are packed into one buffer the recorder shares between all the
//! requests of a trace, so they cost no allocation of their own; a request's own fields (the
//! caller's, usually few or none) get one buffer. Values are copied, not shared: a parsed
//! response's values point into hyper's read buffer, and keeping them would pin that buffer
//! (measured: a 1 MiB download 14% slower) for as long as the trace lives.
//!
//! ```ignore
//! let capture = HeaderCapture::new(request.headers(), &options);
//! let shared = HeaderCapture::pack_into(response.headers(), &options, &mut recorder_buffer);
//! // Later, in a snapshot:
//! let fields: HttpHeader = capture.map(|c| c.fields(&recorder_buffer, &options)).unwrap_or_default();
//! ```
use std::{fmt, sync::Arc};

use http::HeaderMap;

use crate::model::{HdrFieldsOpt, HttpHeader, HttpHeaderKv};

/// Decides whether a header field (by canonical name) is left out of the trace entirely.
pub type HeaderFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// How HTTP requests are recorded (Go's `WithHTTPReqTrace`).
#[derive(Clone, Default)]
pub struct HttpReqTraceOptions {
    /// Which header fields are recorded, and how much of them.
    pub header_fields: HdrFieldsOpt,
    /// Returns true for a header field (by name) that must not be recorded at all.
    pub exclude_header_field: Option<HeaderFilter>,
}

impl fmt::Debug for HttpReqTraceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpReqTraceOptions")
            .field("header_fields", &self.header_fields)
            .field("exclude_header_field", &self.exclude_header_field.is_some())
            .finish()
    }
}

/// Bytes before each packed field: the name's length (`u16`) and the value's (`u32`).
const FIELD_HEAD: usize = 6;

/// Bytes reserved per field: the head, a name and a value of common lengths.
const TYPICAL_FIELD: usize = 48;

/// Header fields kept for the trace, turned into the model's form on demand.
///
/// Each field (a name and one of its values, in the map's order, so the values of one name
/// are adjacent) is packed as `[name len: u16 LE][value len: u32 LE][name][value]`, in a
/// buffer of its own or in one the recorder shares between the requests of a trace.
#[derive(Clone, Debug)]
pub(crate) enum HeaderCapture {
    /// In its own buffer.
    Owned(Vec<u8>),
    /// At `start..end` of the recorder's buffer ([`HeaderCapture::pack_into`]).
    Shared { start: usize, end: usize },
}

impl HeaderCapture {
    /// Keeps `headers` if the options record any header field.
    pub(crate) fn new(headers: &HeaderMap, options: &HttpReqTraceOptions) -> Option<Self> {
        if options.header_fields == HdrFieldsOpt::Disabled {
            return None;
        }
        // Room for typical fields up front, grown if the values are longer. The buffer is
        // kept as it is (shrinking it would cost another allocator call).
        let mut packed = Vec::with_capacity(headers.len() * TYPICAL_FIELD);
        pack(headers, &mut packed);
        Some(Self::Owned(packed))
    }

    /// Keeps `headers` at the end of `buffer` (the recorder's), if the options record any
    /// header field: no allocation of its own.
    pub(crate) fn pack_into(
        headers: &HeaderMap,
        options: &HttpReqTraceOptions,
        buffer: &mut Vec<u8>,
    ) -> Option<Self> {
        if options.header_fields == HdrFieldsOpt::Disabled {
            return None;
        }
        let start = buffer.len();
        pack(headers, buffer);
        Some(Self::Shared {
            start,
            end: buffer.len(),
        })
    }

    /// The fields as the trace records them, by `options` (those the capture was made with);
    /// `shared` is the buffer of [`HeaderCapture::pack_into`].
    pub(crate) fn fields(&self, shared: &[u8], options: &HttpReqTraceOptions) -> HttpHeader {
        let packed = match self {
            Self::Owned(packed) => packed.as_slice(),
            Self::Shared { start, end } => shared.get(*start..*end).unwrap_or_default(),
        };
        fields(Packed(packed), options)
    }
}

/// Appends the fields of `headers` to `packed`, in one pass.
fn pack(headers: &HeaderMap, packed: &mut Vec<u8>) {
    for (name, value) in headers {
        // Header names are at most 64 KiB - 1 bytes (`http` refuses longer ones); a value over
        // 4 GiB cannot be received. Either would only be cut short in the trace.
        let name = name.as_str().as_bytes();
        let name = &name[..name.len().min(usize::from(u16::MAX))];
        let value = value.as_bytes();
        let value = &value[..value.len().min(u32::MAX as usize)];
        let mut head = [0; FIELD_HEAD];
        head[..2].copy_from_slice(&(name.len() as u16).to_le_bytes());
        head[2..].copy_from_slice(&(value.len() as u32).to_le_bytes());
        packed.extend_from_slice(&head);
        packed.extend_from_slice(name);
        packed.extend_from_slice(value);
    }
}

/// Reads the fields back out of a packed buffer, in order.
#[derive(Clone, Copy)]
struct Packed<'a>(&'a [u8]);

impl<'a> Iterator for Packed<'a> {
    /// A name (lower case, as `http` keeps it) and one of its values.
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (head, rest) = self.0.split_at_checked(FIELD_HEAD)?;
        let name_len = usize::from(u16::from_le_bytes([head[0], head[1]]));
        let value_len = u32::from_le_bytes([head[2], head[3], head[4], head[5]]) as usize;
        let (name, rest) = rest.split_at_checked(name_len)?;
        let (value, rest) = rest.split_at_checked(value_len)?;
        self.0 = rest;
        Some((name, value))
    }
}

/// The header fields of `packed` as the options say to record them. Names are written in
/// Go's canonical form (`Content-Type`), so Go consumers find them where they look.
fn fields(packed: Packed<'_>, options: &HttpReqTraceOptions) -> HttpHeader {
    let mut fields = Vec::new();
    if options.header_fields == HdrFieldsOpt::Disabled {
        return HttpHeader(fields);
    }
    // The canonical name of the current run of fields with one name, `None` when excluded.
    let mut current: Option<(&[u8], Option<String>)> = None;
    for (name, value) in packed {
        let canonical = match &current {
            Some((last, canonical)) if *last == name => canonical.clone(),
            _ => {
                let canonical = canonical_name(&String::from_utf8_lossy(name));
                let kept = match &options.exclude_header_field {
                    Some(exclude) if exclude(&canonical) => None,
                    _ => Some(canonical),
                };
                if options.header_fields == HdrFieldsOpt::NamesOnly
                    && let Some(name) = &kept
                {
                    fields.push(HttpHeaderKv {
                        field_name: name.clone(),
                        ..HttpHeaderKv::default()
                    });
                }
                current = Some((name, kept.clone()));
                kept
            }
        };
        let Some(field_name) = canonical else {
            continue;
        };
        if options.header_fields == HdrFieldsOpt::NamesOnly {
            continue;
        }
        let text = String::from_utf8_lossy(value);
        let field_val_len = u32::try_from(text.chars().count()).unwrap_or(u32::MAX);
        fields.push(HttpHeaderKv {
            field_name,
            field_val: match options.header_fields {
                HdrFieldsOpt::WithValues => text.into_owned(),
                _ => String::new(),
            },
            field_val_len,
        });
    }
    HttpHeader(fields)
}

/// Go's `CanonicalMIMEHeaderKey`: the first letter and every letter after a hyphen upper case,
/// the rest lower case.
pub(crate) fn canonical_name(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("accept", "text/html".parse().unwrap());
        h.append("x-multi", "a".parse().unwrap());
        h.append("x-multi", "bcd".parse().unwrap());
        h.insert("authorization", "secret".parse().unwrap());
        h.append("x-empty", "".parse().unwrap());
        h
    }

    fn with(mode: HdrFieldsOpt) -> HttpReqTraceOptions {
        HttpReqTraceOptions {
            header_fields: mode,
            exclude_header_field: Some(Arc::new(|name: &str| name == "Authorization")),
        }
    }

    fn capture(headers: &HeaderMap, options: &HttpReqTraceOptions) -> HttpHeader {
        let owned = HeaderCapture::new(headers, options).map(|c| c.fields(&[], options));
        let mut shared = b"before".to_vec();
        let packed = HeaderCapture::pack_into(headers, options, &mut shared);
        let in_shared = packed.map(|c| c.fields(&shared, options));
        assert_eq!(owned, in_shared, "both forms read back the same");
        owned.unwrap_or_default()
    }

    #[test]
    fn the_four_modes() {
        assert!(HeaderCapture::new(&headers(), &with(HdrFieldsOpt::Disabled)).is_none());

        let names = capture(&headers(), &with(HdrFieldsOpt::NamesOnly));
        let listed: Vec<_> = names.0.iter().map(|f| f.field_name.as_str()).collect();
        assert_eq!(listed, ["Accept", "X-Multi", "X-Empty"]);
        assert!(
            names
                .0
                .iter()
                .all(|f| f.field_val.is_empty() && f.field_val_len == 0)
        );

        let lengths = capture(&headers(), &with(HdrFieldsOpt::ValueLenOnly));
        let listed: Vec<_> = lengths
            .0
            .iter()
            .map(|f| (f.field_name.as_str(), f.field_val.as_str(), f.field_val_len))
            .collect();
        assert_eq!(
            listed,
            [
                ("Accept", "", 9),
                ("X-Multi", "", 1),
                ("X-Multi", "", 3),
                ("X-Empty", "", 0)
            ]
        );

        let values = capture(&headers(), &with(HdrFieldsOpt::WithValues));
        let listed: Vec<_> = values
            .0
            .iter()
            .map(|f| (f.field_name.as_str(), f.field_val.as_str(), f.field_val_len))
            .collect();
        assert_eq!(
            listed,
            [
                ("Accept", "text/html", 9),
                ("X-Multi", "a", 1),
                ("X-Multi", "bcd", 3),
                ("X-Empty", "", 0)
            ]
        );
        assert!(values.get("Authorization").is_none(), "excluded");
    }

    #[test]
    fn empty_and_opaque_values() {
        let options = with(HdrFieldsOpt::WithValues);
        let empty = HeaderCapture::new(&HeaderMap::new(), &options).unwrap();
        assert!(empty.fields(&[], &options).0.is_empty());

        let mut h = HeaderMap::new();
        h.insert("x-bin", http::HeaderValue::from_bytes(b"a\xffb").unwrap());
        let fields = capture(&h, &options);
        assert_eq!(fields.0[0].field_val, "a\u{fffd}b");
        assert_eq!(fields.0[0].field_val_len, 3);
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical_name("content-type"), "Content-Type");
        assert_eq!(canonical_name("x-FOO-bar"), "X-Foo-Bar");
    }
}
