//! A minimal OTLP/HTTP collector for the tests and the `export_cost` bench (which includes
//! this file by path): it reads every request whole and answers 200 with an empty body (an
//! empty `ExportTraceServiceResponse`, a full success), on threads named `otlp-sink`; over
//! HTTPS too, with a self-signed certificate for 127.0.0.1.
#![allow(dead_code)]
use std::{
    io::{BufRead as _, BufReader, Read, Write},
    net::TcpListener,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc::{Receiver, SyncSender, sync_channel},
    },
};

/// A collector that holds its first connection until released: `accepted` says when the
/// exporter is waiting on it, and nothing is answered before `release` gets a message.
pub(crate) struct HeldCollector {
    /// Its endpoint, `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// Receives once the first connection is accepted.
    pub(crate) accepted: Receiver<()>,
    /// Send to let it answer.
    pub(crate) release: SyncSender<()>,
    /// Requests answered so far.
    pub(crate) requests: Arc<AtomicUsize>,
}

/// A collector that answers at once; its endpoint.
pub(crate) fn start() -> String {
    listen(None, Arc::default(), Arc::default(), None)
}

/// A "collector" that answers every request with a 307 redirect to `to`; its endpoint.
pub(crate) fn redirecting(to: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let reply = format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {to}/v1/traces\r\ncontent-length: 0\r\n\r\n"
    );
    std::thread::Builder::new()
        .name("otlp-sink".to_owned())
        .spawn(move || {
            for mut stream in listener.incoming().flatten() {
                // Read the request head, then answer; the body is left unread.
                let mut head = [0; 4096];
                let _ = stream.read(&mut head);
                let _ = stream.write_all(reply.as_bytes());
            }
        })
        .expect("sink thread");
    url
}

/// A collector over HTTPS (`https://127.0.0.1:PORT`) that answers at once; its endpoint and
/// its self-signed certificate as PEM (the root a client must trust).
pub(crate) fn start_tls() -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .and_then(|params| params.self_signed(&key))
        .expect("certificate");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|builder| {
        builder.with_no_client_auth().with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
    })
    .expect("server TLS");
    let url = listen(None, Arc::default(), Arc::default(), Some(Arc::new(config)));
    (url.replacen("http:", "https:", 1), cert.pem())
}

/// A collector that answers at once and keeps the header lines of every request (lower
/// case, as `name: value`); its endpoint and those lines.
pub(crate) fn recording() -> (String, Arc<Mutex<Vec<String>>>) {
    let headers = Arc::new(Mutex::new(Vec::new()));
    (listen(None, Arc::default(), headers.clone(), None), headers)
}

/// A collector that holds its first connection (see [`HeldCollector`]).
pub(crate) fn held() -> HeldCollector {
    let (accepted_tx, accepted) = sync_channel(1);
    let (release, released) = sync_channel(1);
    let requests = Arc::new(AtomicUsize::new(0));
    let url = listen(
        Some((accepted_tx, released)),
        requests.clone(),
        Arc::default(),
        None,
    );
    HeldCollector {
        url,
        accepted,
        release,
        requests,
    }
}

fn listen(
    mut hold: Option<(SyncSender<()>, Receiver<()>)>,
    requests: Arc<AtomicUsize>,
    headers: Arc<Mutex<Vec<String>>>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    std::thread::Builder::new()
        .name("otlp-sink".to_owned())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some((accepted, released)) = hold.take() {
                    let _ = accepted.send(());
                    let _ = released.recv();
                }
                let (requests, headers, tls) = (requests.clone(), headers.clone(), tls.clone());
                let _ = std::thread::Builder::new()
                    .name("otlp-sink".to_owned())
                    .spawn(move || match tls {
                        Some(config) => {
                            if let Ok(connection) = rustls::ServerConnection::new(config) {
                                serve(
                                    rustls::StreamOwned::new(connection, stream),
                                    &requests,
                                    &headers,
                                );
                            }
                        }
                        None => serve(stream, &requests, &headers),
                    });
            }
        })
        .expect("sink thread");
    url
}

/// Answers the requests of one connection until it closes.
fn serve(stream: impl Read + Write, requests: &AtomicUsize, headers: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Ok(mut seen) = headers.lock() {
                seen.push(line.trim_end().to_ascii_lowercase());
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err()
            || reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                .is_err()
        {
            return;
        }
        requests.fetch_add(1, Ordering::Relaxed);
    }
}
