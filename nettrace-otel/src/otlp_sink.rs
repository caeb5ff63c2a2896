//! A minimal OTLP/HTTP collector for the tests and the `export_cost` bench (which includes
//! this file by path): it reads every request whole and answers 200 with an empty body (an
//! empty `ExportTraceServiceResponse`, a full success), on threads named `otlp-sink`.
#![allow(dead_code)]
use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
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
    listen(None, Arc::default(), Arc::default())
}

/// A collector that answers at once and keeps the header lines of every request (lower
/// case, as `name: value`); its endpoint and those lines.
pub(crate) fn recording() -> (String, Arc<Mutex<Vec<String>>>) {
    let headers = Arc::new(Mutex::new(Vec::new()));
    (listen(None, Arc::default(), headers.clone()), headers)
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
                let (requests, headers) = (requests.clone(), headers.clone());
                let _ = std::thread::Builder::new()
                    .name("otlp-sink".to_owned())
                    .spawn(move || serve(stream, &requests, &headers));
            }
        })
        .expect("sink thread");
    url
}

/// Answers the requests of one connection until it closes.
fn serve(stream: TcpStream, requests: &AtomicUsize, headers: &Mutex<Vec<String>>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
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
            || writer
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                .is_err()
        {
            return;
        }
        requests.fetch_add(1, Ordering::Relaxed);
    }
}
