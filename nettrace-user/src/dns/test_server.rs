//! A tiny DNS responder for the resolver's tests: UDP and TCP on the same ephemeral port of
//! 127.0.0.1, each query answered by a handler that returns the messages to send back (none
//! for silence). TCP replies are written in three pieces (length prefix split in two) so that
//! the client must reassemble them. Every query is logged for assertions.
//!
//! ```ignore
//! let server = TestServer::start(zone(&[("example.test", "192.0.2.1")])).await;
//! ```
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex, PoisonError},
};

use hickory_proto::{
    op::{Message, OpCode, ResponseCode},
    rr::{
        RData, Record, RecordType,
        rdata::{A, AAAA},
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, UdpSocket},
    task::JoinHandle,
};

/// Which transport a query came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Proto {
    Udp,
    Tcp,
}

/// Answers a query with the messages to send back.
pub(super) type Handler = Arc<dyn Fn(&Message, Proto) -> Vec<Vec<u8>> + Send + Sync>;

/// A query as the server saw it.
pub(super) type Seen = (Proto, String, RecordType);

/// A running responder; stops when dropped.
pub(super) struct TestServer {
    pub(super) addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a responder on 127.0.0.1 (UDP and TCP on one port).
    pub(super) async fn start(handler: Handler) -> Self {
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tasks = vec![
            tokio::spawn(serve_udp(udp, handler.clone(), seen.clone())),
            tokio::spawn(serve_tcp(tcp, handler, seen.clone())),
        ];
        Self { addr, seen, tasks }
    }

    /// The queries received so far.
    pub(super) fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A UDP socket and a TCP listener on the same port (a few tries: the TCP port may be taken).
async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..20 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            return (udp, tcp);
        }
    }
    panic!("no free UDP+TCP port pair on 127.0.0.1");
}

fn log(seen: &Mutex<Vec<Seen>>, proto: Proto, query: &Message) {
    if let Some(q) = query.queries.first() {
        seen.lock().unwrap_or_else(PoisonError::into_inner).push((
            proto,
            q.name().to_ascii(),
            q.query_type(),
        ));
    }
}

async fn serve_udp(socket: UdpSocket, handler: Handler, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut buf = vec![0; 65535];
    while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        log(&seen, Proto::Udp, &query);
        for reply in handler(&query, Proto::Udp) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, handler: Handler, seen: Arc<Mutex<Vec<Seen>>>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve_tcp_conn(stream, handler.clone(), seen.clone()));
    }
}

async fn serve_tcp_conn(mut stream: TcpStream, handler: Handler, seen: Arc<Mutex<Vec<Seen>>>) {
    stream.set_nodelay(true).unwrap();
    loop {
        let mut prefix = [0; 2];
        if stream.read_exact(&mut prefix).await.is_err() {
            return;
        }
        let mut body = vec![0; usize::from(u16::from_be_bytes(prefix))];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let Ok(query) = Message::from_vec(&body) else {
            return;
        };
        log(&seen, Proto::Tcp, &query);
        for reply in handler(&query, Proto::Tcp) {
            let len = u16::try_from(reply.len()).unwrap().to_be_bytes();
            let half = reply.len() / 2;
            let pieces = [&len[..1], &[len[1]][..], &reply[..half], &reply[half..]];
            for piece in pieces {
                if stream.write_all(piece).await.is_err() || stream.flush().await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        }
    }
}

/// A reply to `query` with `rcode` and `answers`, optionally truncated (TC).
pub(super) fn reply(
    query: &Message,
    rcode: ResponseCode,
    answers: Vec<Record>,
    truncated: bool,
) -> Vec<u8> {
    let mut reply = Message::response(query.metadata.id, OpCode::Query);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.truncation = truncated;
    reply.metadata.response_code = rcode;
    reply.add_queries(query.queries.clone());
    reply.add_answers(answers);
    reply.to_vec().unwrap()
}

/// A handler answering A and AAAA queries from `records` (name, address): a listed name
/// without records of the asked type gets an empty NOERROR, any other name NXDOMAIN.
pub(super) fn zone(records: &[(&str, &str)]) -> Handler {
    let by_name = zone_map(records);
    Arc::new(move |query, _| vec![zone_reply(&by_name, query)])
}

/// The reply of a [`zone`] to `query`.
pub(super) fn zone_reply(by_name: &HashMap<String, Vec<IpAddr>>, query: &Message) -> Vec<u8> {
    let Some(question) = query.queries.first() else {
        return reply(query, ResponseCode::FormErr, Vec::new(), false);
    };
    let key = question.name().to_ascii().to_ascii_lowercase();
    let Some(addrs) = by_name.get(&key) else {
        return reply(query, ResponseCode::NXDomain, Vec::new(), false);
    };
    let answers = addrs
        .iter()
        .filter_map(|ip| match (ip, question.query_type()) {
            (IpAddr::V4(v4), RecordType::A) => Some(RData::A(A(*v4))),
            (IpAddr::V6(v6), RecordType::AAAA) => Some(RData::AAAA(AAAA(*v6))),
            _ => None,
        })
        .map(|rdata| Record::from_rdata(question.name().clone(), 60, rdata))
        .collect();
    reply(query, ResponseCode::NoError, answers, false)
}

/// The records of a [`zone`], for handlers that change its behaviour.
pub(super) fn zone_map(records: &[(&str, &str)]) -> HashMap<String, Vec<IpAddr>> {
    let mut by_name: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for (name, ip) in records {
        by_name
            .entry(format!("{}.", name.to_ascii_lowercase()))
            .or_default()
            .push(ip.parse().unwrap());
    }
    by_name
}
