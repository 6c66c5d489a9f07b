//! Responder decisions per second with 10,000 owned IPs: `cargo bench --bench responder`.
//! Each iteration decides and emits replies for a batch of distinct request frames, so the
//! owned-set lookups hit different addresses, as on a busy LAN.

use std::collections::HashSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrolb::layer2::arp::{ArpOperation, ArpRepr};
use ferrolb::layer2::ndp::{NdpMessage, NdpRepr, multicast_mac, solicited_node};
use ferrolb::layer2::{Decision, Interface, Mac, decide};

const OWNED: u32 = 10_000;
const BATCH: u32 = 1_024;
const OWN_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);
const CLIENT: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

/// The i-th IPv4 address of 198.18.0.0/15, the range RFC 2544 sets aside for benchmarks.
fn v4(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i)
}

fn v6(i: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)) + u128::from(i))
}

fn arp_request(target_ip: Ipv4Addr) -> Vec<u8> {
    ArpRepr {
        eth_dst: Mac::BROADCAST,
        eth_src: CLIENT,
        operation: ArpOperation::Request,
        sender_mac: CLIENT,
        sender_ip: Ipv4Addr::new(198, 19, 255, 254),
        target_mac: Mac::ZERO,
        target_ip,
    }
    .to_vec()
}

fn solicitation(target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    NdpRepr {
        eth_dst: multicast_mac(group),
        eth_src: CLIENT,
        src_ip: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
        dst_ip: group,
        hop_limit: 255,
        message: NdpMessage::NeighborSolicit {
            target,
            source_ll: Some(CLIENT),
        },
    }
    .to_vec()
}

/// Decides every frame and emits each reply into one reused buffer, as the socket edge does.
fn answer_all(frames: &[Vec<u8>], iface: &Interface, owned: &HashSet<IpAddr>) -> usize {
    let mut buf = [0u8; 128];
    let mut sent = 0;
    for frame in frames {
        if let Decision::Reply { reply, .. } = decide(frame, iface, owned) {
            sent += reply.emit(&mut buf).map_or(0, |_| 1);
        }
    }
    sent
}

fn responder(c: &mut Criterion) {
    let iface = Interface {
        name: "eth0".into(),
        index: 2,
        mac: OWN_MAC,
    };
    let owned_v4: HashSet<IpAddr> = (0..OWNED).map(|i| IpAddr::V4(v4(i))).collect();
    let owned_v6: HashSet<IpAddr> = (0..OWNED).map(|i| IpAddr::V6(v6(i))).collect();
    // Spread the batch over the whole owned range (7 is coprime with 10,000).
    let spread = |i: u32| (i * 7) % OWNED;
    let arp_owned: Vec<Vec<u8>> = (0..BATCH).map(|i| arp_request(v4(spread(i)))).collect();
    let arp_unowned: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| arp_request(v4(OWNED + spread(i))))
        .collect();
    let ns_owned: Vec<Vec<u8>> = (0..BATCH).map(|i| solicitation(v6(spread(i)))).collect();

    assert_eq!(answer_all(&arp_owned, &iface, &owned_v4), BATCH as usize);
    assert_eq!(answer_all(&arp_unowned, &iface, &owned_v4), 0);
    assert_eq!(answer_all(&ns_owned, &iface, &owned_v6), BATCH as usize);

    let mut group = c.benchmark_group("responder_10k_owned");
    group.throughput(Throughput::Elements(u64::from(BATCH)));
    group.bench_function("arp_request_owned", |b| {
        b.iter(|| answer_all(black_box(&arp_owned), &iface, &owned_v4))
    });
    group.bench_function("arp_request_not_owned", |b| {
        b.iter(|| answer_all(black_box(&arp_unowned), &iface, &owned_v4))
    });
    group.bench_function("ndp_solicitation_owned", |b| {
        b.iter(|| answer_all(black_box(&ns_owned), &iface, &owned_v6))
    });
    group.finish();
}

criterion_group!(benches, responder);
criterion_main!(benches);
