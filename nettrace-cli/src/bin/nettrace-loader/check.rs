//! `nettrace-loader check`: loads and attaches the programs, traces one loopback TCP connection
//! of its own and prints what the kernel reported about it: a quick proof that the kernel side
//! works on this machine.
use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use nettrace::{
    KernelTime,
    kernel::{ClientId, KernelConfig, KernelEvent, KernelTcpState, KernelTracer},
};

/// Loads the programs, traces one loopback connection and prints the kernel's events.
pub(crate) async fn check(config: KernelConfig) -> Result<()> {
    let (tracer, mut events) = KernelTracer::load(&config).context("loading the eBPF programs")?;
    for attachment in tracer.attachments() {
        println!("attached {attachment}");
    }

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let server = listener.local_addr()?;
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let cookie = tracer.register(std::os::fd::AsFd::as_fd(&socket), ClientId(0))?;
    let started = KernelTime::now();
    socket.connect(&server.into())?;
    let mut client: TcpStream = socket.into();
    let (mut accepted, _) = listener.accept()?;
    client.write_all(b"nettrace check")?;
    client.shutdown(Shutdown::Write)?;
    let mut received = Vec::new();
    accepted.read_to_end(&mut received)?;
    drop(accepted);
    drop(client);
    println!("traced a loopback connection to {server} ({cookie}):");

    let deadline = Duration::from_secs(5);
    let result = tokio::time::timeout(deadline, async {
        loop {
            let event = events.next().await?;
            print_event(started, &event);
            if matches!(&event, KernelEvent::TcpState(c) if c.new == KernelTcpState::Close) {
                return anyhow::Ok(());
            }
        }
    })
    .await;
    match result {
        Ok(done) => done?,
        Err(_) => bail!("the kernel reported no CLOSE of the connection within {deadline:?}"),
    }
    println!("lost events: {}", tracer.lost_events(ClientId(0))?);
    tracer.unregister(cookie)?;
    Ok(())
}

fn print_event(started: KernelTime, event: &KernelEvent) {
    let at = event.time().saturating_since(started).as_secs_f64() * 1e3;
    match event {
        KernelEvent::TcpState(change) => {
            println!("  +{at:.3}ms state {:?} -> {:?}", change.old, change.new);
        }
        KernelEvent::SockOps(record) => println!(
            "  +{at:.3}ms sock_ops {:?} {} -> {} srtt {}us segs out/in {}/{}",
            record.op,
            record.local,
            record.remote,
            record.counters.srtt_us,
            record.counters.segs_out,
            record.counters.segs_in
        ),
        KernelEvent::SockMsg(call) => {
            println!(
                "  +{at:.3}ms {:?} call returned {}",
                call.direction, call.ret
            );
        }
        KernelEvent::SockCalls(totals) => {
            let calls = &totals.calls;
            println!(
                "  +{at:.3}ms calls so far: {} sent, {} received",
                calls.send_calls, calls.recv_calls
            );
        }
        KernelEvent::TcpReset(reset) => println!("  +{at:.3}ms reset {:?}", reset.direction),
        KernelEvent::SocketCreated(_)
        | KernelEvent::SocketReleased(_)
        | KernelEvent::Connect(_) => println!("  +{at:.3}ms {event:?}"),
        KernelEvent::Packet(packet) => println!(
            "  +{at:.3}ms packet {:?} {} of {} bytes on interface {}",
            packet.direction,
            packet.data.len(),
            packet.packet_len,
            packet.ifindex
        ),
    }
}
