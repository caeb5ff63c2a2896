//! The request `nettrace get` sends, built from its options the way curl builds it: a URL
//! without a scheme is `http://`, a body (-d/--data, --data-binary, --data-raw) makes the
//! method POST unless -X says otherwise and the content type a form's unless -H gives one.
//!
//! ```text
//! nettrace get localhost:8100/form -d name=a -d @more.txt   # POST http://localhost:8100/form
//!                                                          # body "name=a&<more.txt sans CR/LF>"
//! ```
//!
//! The body is read once (a file, standard input), before the first request; each request
//! (`--repeat`) sends the same bytes.
use std::io::Read;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, header};
use nettrace::client::RequestBody;

use crate::args::{DataKind, DataPart, GetArgs};

/// What each request of a run is made of.
pub(crate) struct Plan {
    pub(crate) method: Method,
    pub(crate) url: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Plan {
    /// Reads the options (and the body's files) into a plan.
    pub(crate) fn new(args: &GetArgs) -> Result<Self> {
        let body = body(&args.body)?;
        let method = match &args.method {
            Some(method) => Method::from_bytes(method.as_bytes())
                .with_context(|| format!("invalid method {method:?}"))?,
            None if args.body.is_empty() => Method::GET,
            None => Method::POST,
        };
        let mut headers = HeaderMap::new();
        for line in &args.headers {
            let Some((name, value)) = line.split_once(':') else {
                bail!("header {line:?} is not 'Name: value'");
            };
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("invalid header name in {line:?}"))?;
            let value = HeaderValue::from_str(value.trim())
                .with_context(|| format!("invalid header value in {line:?}"))?;
            headers.append(name, value);
        }
        if !args.body.is_empty() && !headers.contains_key(header::CONTENT_TYPE) {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
        }
        Ok(Self {
            method,
            url: url(&args.url),
            headers,
            body,
        })
    }

    /// A request of the plan (the body is shared, not copied).
    pub(crate) fn request(&self) -> Result<Request<RequestBody>> {
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(&self.url);
        if let Some(headers) = builder.headers_mut() {
            headers.extend(self.headers.clone());
        }
        builder
            .body(RequestBody::from(self.body.clone()))
            .with_context(|| format!("invalid request to {:?}", self.url))
    }
}

/// The URL as curl reads it: without `scheme://`, `http://`.
pub(crate) fn url(given: &str) -> String {
    if given.contains("://") {
        given.to_owned()
    } else {
        format!("http://{given}")
    }
}

/// The body of `parts`, joined with '&' as curl joins them.
fn body(parts: &[DataPart]) -> Result<Bytes> {
    let mut body = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            body.push(b'&');
        }
        match (part.kind, part.value.strip_prefix('@')) {
            (DataKind::Data, Some(file)) => {
                let data = read_file(file)?;
                body.extend(data.into_iter().filter(|b| *b != b'\r' && *b != b'\n'));
            }
            (DataKind::Binary, Some(file)) => body.extend(read_file(file)?),
            _ => body.extend_from_slice(part.value.as_bytes()),
        }
    }
    Ok(Bytes::from(body))
}

/// The whole of `file` (`-`: standard input).
fn read_file(file: &str) -> Result<Vec<u8>> {
    if file == "-" {
        let mut data = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut data)
            .context("reading the request body from standard input")?;
        return Ok(data);
    }
    std::fs::read(file).with_context(|| format!("reading the request body from {file}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_scheme_is_http() {
        assert_eq!(url("localhost:8100/"), "http://localhost:8100/");
        assert_eq!(url("example.com"), "http://example.com");
        assert_eq!(url("https://example.com/"), "https://example.com/");
    }

    #[test]
    fn data_strips_cr_lf_from_files_binary_keeps_them_and_parts_join_with_ampersand() {
        let file = std::env::temp_dir().join(format!("nettrace-request-{}", std::process::id()));
        std::fs::write(&file, b"a=1\r\nb=2\n").unwrap_or_else(|e| panic!("{e}"));
        let at_file = format!("@{}", file.display());
        let part = |kind, value: &str| DataPart {
            kind,
            value: value.to_owned(),
        };
        let joined = body(&[
            part(DataKind::Data, &at_file),
            part(DataKind::Binary, &at_file),
            part(DataKind::Raw, "@raw\r\n"),
            part(DataKind::Data, "x\ny"),
        ]);
        let _ = std::fs::remove_file(&file);
        assert_eq!(
            joined.unwrap_or_else(|e| panic!("{e}")),
            &b"a=1b=2&a=1\r\nb=2\n&@raw\r\n&x\ny"[..]
        );
        assert!(body(&[part(DataKind::Data, "@/no/such/file")]).is_err());
    }
}
