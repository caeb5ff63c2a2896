//! Criterion benchmarks of the traced client against a plain hyper-util client, on loopback
//! (see BENCHMARKS.md): keep-alive GET of 1 KiB, a new connection per request, a 1 MiB
//! download, each plain vs traced (all userspace options on), plus traced without
//! `sock_trace` to isolate the socket-op recording.
//!
//! ```text
//! CARGO_TARGET_DIR=target/bench cargo bench -p nettrace-user --bench client
//! CARGO_TARGET_DIR=target/bench cargo bench -p nettrace-user --bench client -- --quick
//! ```
//!
//! Every sample builds a fresh client and warms it with one untimed GET; the traced client's
//! trace is cleared (untimed) every [`common::CLEAR_EVERY`] requests.
mod common;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use common::{Conns, Kind};

fn client(c: &mut Criterion) {
    let rt = common::runtime();
    let server = rt.block_on(common::server());
    let small = common::url(&server, &format!("/bytes/{}", common::SMALL));
    let large = common::url(&server, &format!("/bytes/{}", common::LARGE));
    let all = [Kind::Plain, Kind::Traced, Kind::TracedNoSockOps];
    let scenarios = [
        (
            "keep_alive_get_1k",
            Conns::KeepAlive,
            &small,
            Throughput::Elements(1),
            &all[..],
        ),
        (
            "new_conn_get_1k",
            Conns::NewPerRequest,
            &small,
            Throughput::Elements(1),
            &all[..2],
        ),
        (
            "download_1m",
            Conns::KeepAlive,
            &large,
            Throughput::Bytes(common::LARGE as u64),
            &all[..2],
        ),
    ];
    for (name, conns, url, throughput, kinds) in scenarios {
        let mut group = c.benchmark_group(name);
        group
            .throughput(throughput)
            .sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        for &kind in kinds {
            group.bench_function(kind.name(), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(common::sample(kind, conns, url.clone(), iters))
                        .wall
                });
            });
        }
        group.finish();
    }
    drop(server);
}

criterion_group!(benches, client);
criterion_main!(benches);
