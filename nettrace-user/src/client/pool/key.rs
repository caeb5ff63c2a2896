//! [`PoolKey`]: which requests may share a connection: the same scheme, host and port, through
//! the same proxy (with the same credentials).
//!
//! Looked up a few times per request (the idle list, then the host's entry when the connection
//! comes back), so it is cheap to build (reference-counted parts of the request's URI, no
//! allocation) and hashed once, when built (FxHash, not SipHash): the map hashes the stored
//! value.
use std::hash::{Hash, Hasher};

use http::{
    HeaderValue, Uri,
    uri::{Authority, Scheme},
};

use super::super::proxy::ProxyRoute;

/// The identity of a pooled connection's destination.
#[derive(Clone, Debug)]
pub(crate) struct PoolKey {
    scheme: Scheme,
    authority: Authority,
    /// The proxy's URL and `Proxy-Authorization`, when the request goes through one. Boxed:
    /// rare, and the key is moved with every request (and kept in its response body), so
    /// its size is copied several times per request.
    proxy: Option<Box<(Uri, Option<HeaderValue>)>>,
    /// The hash of the fields above ([`PoolKey::hash_fields`]), consistent with `eq`.
    hash: u64,
}

impl PoolKey {
    /// The key of a request for `uri` through `proxy`; `None` when `uri` is not absolute.
    pub(crate) fn new(uri: &Uri, proxy: Option<&ProxyRoute>) -> Option<Self> {
        let scheme = uri.scheme()?.clone();
        let authority = uri.authority()?.clone();
        let proxy = proxy.map(|p| Box::new((p.uri.clone(), p.authorization.clone())));
        let hash = Self::hash_fields(&scheme, &authority, proxy.as_deref().map(|(uri, _)| uri));
        Some(Self {
            scheme,
            authority,
            proxy,
            hash,
        })
    }

    /// The hash of a key's fields. Consistent with `eq`: the authority's case is ignored.
    /// Hashed in 8-byte words, not byte by byte (one FxHash round per word).
    fn hash_fields(scheme: &Scheme, authority: &Authority, proxy: Option<&Uri>) -> u64 {
        let mut state = rustc_hash::FxHasher::default();
        scheme.as_str().len().hash(&mut state);
        let authority = authority.as_str().as_bytes();
        for chunk in authority.chunks(8) {
            let mut word = [0u8; 8];
            for (to, from) in word.iter_mut().zip(chunk) {
                *to = from.to_ascii_lowercase();
            }
            state.write_u64(u64::from_le_bytes(word));
        }
        state.write_usize(authority.len());
        if let Some(uri) = proxy {
            uri.authority().map(Authority::as_str).hash(&mut state);
        }
        state.finish()
    }

    /// `scheme://authority/`: what the connector dials.
    pub(crate) fn dial_uri(&self) -> Option<Uri> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query("/")
            .build()
            .ok()
    }
}

impl PartialEq for PoolKey {
    fn eq(&self, other: &Self) -> bool {
        // `Authority` compares host names ignoring ASCII case, as DNS does. Equal keys have
        // equal hashes: a different hash answers at once.
        self.hash == other.hash
            && self.scheme == other.scheme
            && self.authority == other.authority
            && self.proxy == other.proxy
    }
}

impl Eq for PoolKey {}

impl Hash for PoolKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    fn key(uri: &str) -> PoolKey {
        PoolKey::new(&uri.parse().expect("a valid URI"), None).expect("an absolute URI")
    }

    fn hash(key: &PoolKey) -> u64 {
        rustc_hash::FxBuildHasher.hash_one(key)
    }

    #[test]
    fn keys_differ_by_scheme_host_port_and_proxy_but_not_path_or_case() {
        assert_eq!(key("http://a.test:8080/x"), key("http://A.Test:8080/y?q"));
        assert_eq!(
            hash(&key("http://a.test:8080/x")),
            hash(&key("http://A.Test:8080/y"))
        );
        assert_ne!(key("http://a.test/"), key("https://a.test/"));
        assert_ne!(key("http://a.test:1/"), key("http://a.test:2/"));
        assert_ne!(key("http://a.test/"), key("http://b.test/"));
        let proxy = ProxyRoute::new(&"http://proxy.test:3128".parse().expect("a valid URI"));
        let proxied = PoolKey::new(&"http://a.test/".parse().expect("valid"), Some(&proxy));
        assert_ne!(proxied, Some(key("http://a.test/")));
        assert!(PoolKey::new(&"/relative".parse().expect("valid"), None).is_none());
        assert_eq!(
            key("https://a.test:8443/p").dial_uri(),
            Some("https://a.test:8443/".parse().expect("valid"))
        );
    }
}
