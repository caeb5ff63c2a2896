//! Describes a peer certificate for the trace: subject, issuer, validity, CA flag, parsed from
//! its DER with x509-parser.
use time::OffsetDateTime;
use x509_parser::{certificate::X509Certificate, prelude::FromDer, x509::X509Name};

use crate::model::{PeerCert, Timestamp};

/// The trace's description of one DER certificate. A certificate that does not parse is still
/// listed, with its subject saying so.
pub(crate) fn describe(der: &[u8]) -> PeerCert {
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => PeerCert {
            subject: distinguished_name(cert.subject()),
            issuer: distinguished_name(cert.issuer()),
            not_before: absolute(cert.validity().not_before.to_datetime()),
            not_after: absolute(cert.validity().not_after.to_datetime()),
            is_ca: cert.is_ca(),
        },
        Err(error) => PeerCert {
            subject: format!("<unparsable certificate: {error}>"),
            ..PeerCert::default()
        },
    }
}

fn absolute(at: OffsetDateTime) -> Timestamp {
    Timestamp::Absolute(at)
}

/// A name as Go's `pkix.Name.String()` writes it: attributes Go does not model first, then
/// `SERIALNUMBER, CN, OU, O, POSTALCODE, STREET, L, ST, C` (Go rebuilds the name in a fixed order
/// and prints it reversed, RFC 2253 style), several values of one attribute joined with `+`,
/// e.g. `CN=example.test,O=Acme Co`.
pub(crate) fn distinguished_name(name: &X509Name<'_>) -> String {
    /// Go's standard attributes, in the order its string form lists them.
    const STANDARD: [(&str, &str); 9] = [
        ("2.5.4.5", "SERIALNUMBER"),
        ("2.5.4.3", "CN"),
        ("2.5.4.11", "OU"),
        ("2.5.4.10", "O"),
        ("2.5.4.17", "POSTALCODE"),
        ("2.5.4.9", "STREET"),
        ("2.5.4.7", "L"),
        ("2.5.4.8", "ST"),
        ("2.5.4.6", "C"),
    ];
    let attributes: Vec<(String, String)> = name
        .iter_attributes()
        .map(|attr| {
            let value = attr
                .as_str()
                .map(escape)
                .unwrap_or_else(|_| "#".to_owned() + &hex(attr.attr_value().data));
            (attr.attr_type().to_id_string(), value)
        })
        .collect();
    let mut parts: Vec<String> = attributes
        .iter()
        .rev()
        .filter(|(oid, _)| STANDARD.iter().all(|(known, _)| known != oid))
        .map(|(oid, value)| format!("{oid}={value}"))
        .collect();
    for (oid, key) in STANDARD {
        let values: Vec<String> = attributes
            .iter()
            .filter(|(o, _)| o == oid)
            .map(|(_, value)| format!("{key}={value}"))
            .collect();
        if !values.is_empty() {
            parts.push(values.join("+"));
        }
    }
    parts.join(",")
}

/// RFC 2253 escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i + 1 == value.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_rfc_2253() {
        assert_eq!(escape("Acme, Inc"), "Acme\\, Inc");
        assert_eq!(escape(" lead"), "\\ lead");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn garbage_is_listed_not_dropped() {
        let cert = describe(b"not a certificate");
        assert!(
            cert.subject.starts_with("<unparsable certificate"),
            "{}",
            cert.subject
        );
    }
}
