//! A keep-alive HTTP server on 127.0.0.1 (the loopback fixture of the tests: HTTP/1.1 and
//! h2c, TCP_NODELAY) for the long-run measurements of BENCHMARKS.md: prints its URL (routes
//! `/`, `/bytes/<n>`) and serves until killed.
//!
//! ```text
//! cargo run --release -p nettrace-cli --example bench_server
//! ```
#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let server = nettrace_tests::scenario::plain_server().await;
    println!("{}", server.url("/"));
    std::future::pending::<()>().await;
}
