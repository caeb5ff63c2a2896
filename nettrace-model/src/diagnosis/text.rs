//! Reading error texts, in this project's wording (rustls, the resolver, the client) and in
//! Go's (`net`, `crypto/x509`, `net/http`): what a trace without the typed facts still says.

/// `text` lower case without spaces, `_` and `-`: rustls writes `NotValidForName`, `not valid
/// for name` or `not_valid_for_name` depending on the version and the context.
pub(super) fn squash(text: &str) -> String {
    text.to_lowercase().replace([' ', '_', '-'], "")
}

/// True when `text` (squashed) contains any of `needles` (squashed already).
pub(super) fn says(text: &str, needles: &[&str]) -> bool {
    if text.is_empty() {
        return false;
    }
    let squashed = squash(text);
    needles.iter().any(|n| squashed.contains(n))
}

/// The name does not exist: `no such host "x" (NXDOMAIN)`, Go's `no such host`.
pub(super) fn nxdomain(text: &str) -> bool {
    says(text, &["nxdomain", "nosuchhost"])
}

/// A nameserver answered with an error: `answered SERVFAIL`, `answered rcode 5`, Go's
/// `server misbehaving`.
pub(super) fn servfail(text: &str) -> bool {
    says(text, &["servfail", "answeredrcode", "servermisbehaving"])
}

/// A nameserver did not answer: `did not answer within 5s`, Go's `lookup x on ns: i/o timeout`.
pub(super) fn dns_timeout(text: &str) -> bool {
    says(text, &["didnotanswer"]) || (says(text, &["lookup"]) && timeout(text))
}

/// Something timed out.
pub(super) fn timeout(text: &str) -> bool {
    says(
        text,
        &["timedout", "timeout", "deadlineexceeded", "didnotanswer"],
    )
}

/// A connection was refused.
pub(super) fn refused(text: &str) -> bool {
    says(text, &["connectionrefused", "econnrefused"])
}

/// A connection was reset.
pub(super) fn reset(text: &str) -> bool {
    says(text, &["resetbypeer", "connectionreset", "econnreset"])
}

/// The certificate has expired (rustls `Expired`, Go `certificate has expired`).
pub(super) fn cert_expired(text: &str) -> bool {
    says(text, &["expired"])
}

/// The certificate is not valid yet (rustls `NotValidYet`; Go's `expired or is not yet valid`
/// needs the validity dates to tell the two apart).
pub(super) fn cert_not_yet_valid(text: &str) -> bool {
    says(text, &["notvalidyet", "notyetvalid"])
}

/// The certificate's issuer is not trusted (rustls `UnknownIssuer`, Go `unknown authority`).
pub(super) fn unknown_ca(text: &str) -> bool {
    says(
        text,
        &[
            "unknownissuer",
            "unknownauthority",
            "unknownca",
            "untrusted",
        ],
    )
}

/// The certificate does not name the host (rustls `NotValidForName`, Go `certificate is valid
/// for x, not y`).
pub(super) fn wrong_host(text: &str) -> bool {
    says(
        text,
        &[
            "notvalidforname",
            "certificateisvalidfor",
            "doesn'tcontainanyipsans",
        ],
    )
}

/// The names a certificate is valid for, as a wrong-host error gives them: rustls's
/// `certificate is only valid for DnsName("a"), IpAddress(..)`, Go's `certificate is valid for
/// a, b, not c`.
pub(super) fn presented_names(error: &str) -> Option<String> {
    let (_, rest) = error.rsplit_once("valid for ")?;
    let names = rest.split(", not ").next().unwrap_or(rest).trim();
    let cleaned = names
        .replace("DnsName(", "")
        .replace("IpAddress(", "")
        .replace(['"', ')'], "");
    (!cleaned.is_empty()).then_some(cleaned)
}

/// The peer does not speak TLS: rustls reads its bytes as a corrupt record
/// (`InvalidContentType`, `corrupt message`), Go says `first record does not look like a TLS
/// handshake`.
pub(super) fn not_tls(text: &str) -> bool {
    says(
        text,
        &[
            "invalidcontenttype",
            "corruptmessage",
            "doesnotlooklikeatlshandshake",
            "invalidmessage",
            "messagetoolarge",
        ],
    )
}

/// A redirect limit was hit: `stopped after 10 redirects`.
pub(super) fn too_many_redirects(text: &str) -> bool {
    says(text, &["redirects", "redirectloop"])
}

/// A request time limit passed: `ReqTimeout timed out after 1s`, `ResponseHeaderTimeout`,
/// Go's `Client.Timeout exceeded`, `context deadline exceeded`, `timeout awaiting response
/// headers`.
pub(super) fn request_timeout(text: &str) -> bool {
    says(
        text,
        &[
            "reqtimeout",
            "responseheadertimeout",
            "client.timeoutexceeded",
            "deadlineexceeded",
            "timeoutawaitingresponseheaders",
        ],
    )
}

/// The proxy wants credentials: status 407 in a `CONNECT` refusal.
pub(super) fn proxy_auth(text: &str) -> bool {
    says(text, &["407", "proxyauthenticationrequired"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_projects_and_gos_wording() {
        assert!(nxdomain("no such host \"gone.test\" (NXDOMAIN)"));
        assert!(nxdomain("lookup gone.test on 8.8.8.8:53: no such host"));
        assert!(servfail("nameserver 127.0.0.1:53 answered SERVFAIL"));
        assert!(servfail("lookup x on 8.8.8.8:53: server misbehaving"));
        assert!(dns_timeout(
            "nameserver 127.0.0.1:53 did not answer within 5s"
        ));
        assert!(dns_timeout("lookup x on 8.8.8.8:53: read udp: i/o timeout"));
        assert!(!dns_timeout("dial tcp 10.0.0.1:443: i/o timeout"));
        assert!(refused("dial tcp 127.0.0.1:1: connect: connection refused"));
        assert!(reset("read tcp: connection reset by peer"));
        assert!(cert_expired("invalid peer certificate: Expired"));
        assert!(cert_not_yet_valid("invalid peer certificate: NotValidYet"));
        assert!(unknown_ca("x509: certificate signed by unknown authority"));
        assert!(wrong_host(
            "x509: certificate is valid for wrong.test, not example.test"
        ));
        assert!(wrong_host("invalid peer certificate: NotValidForName"));
        assert_eq!(
            presented_names(
                "certificate not valid for name \"example.test\"; certificate is only valid \
                 for DnsName(\"wrong.test\")"
            )
            .as_deref(),
            Some("wrong.test")
        );
        assert_eq!(
            presented_names("x509: certificate is valid for a.test, b.test, not c.test").as_deref(),
            Some("a.test, b.test")
        );
        assert!(not_tls(
            "tls: first record does not look like a TLS handshake"
        ));
        assert!(request_timeout("ReqTimeout timed out after 1s"));
        assert!(request_timeout(
            "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        ));
        assert!(!says("", &[""]));
    }
}
