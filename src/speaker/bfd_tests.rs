use super::*;

fn fast() -> Config {
    Config {
        desired_min_tx: Duration::from_millis(50),
        required_min_rx: Duration::from_millis(50),
        detect_mult: 3,
        passive: false,
    }
}

async fn wait(rx: &mut watch::Receiver<BfdStatus>, what: &str, f: impl Fn(&BfdStatus) -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| f(s)))
        .await
        .is_ok_and(|r| r.is_ok());
    assert!(waited, "{what}: {:?}", *rx.borrow());
}

/// Two sessions of one process talk over loopback through the one listener on port 3784 (the
/// first packet found by source address, the rest by discriminator, all with TTL 255); one that
/// stops says AdminDown, which the other takes down without counting a failure.
#[tokio::test]
async fn two_sessions_come_up_over_loopback_and_admin_down_is_no_failure() {
    over_loopback(Hops::Single).await;
}

/// The same through the multi-hop listener on port 4784 (RFC 5883).
#[tokio::test]
async fn two_multihop_sessions_come_up_over_loopback() {
    over_loopback(Hops::Multi { min_ttl: 254 }).await;
}

async fn over_loopback(hops: Hops) {
    let sockets = Arc::new(BfdSockets::default());
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let start = |passive: bool| {
        let (status, rx) = watch::channel(BfdStatus::default());
        let (stop, stop_rx) = oneshot::channel();
        let config = Config { passive, ..fast() };
        let task = tokio::spawn(run(
            "lo".into(),
            config,
            local,
            hops,
            None,
            sockets.clone(),
            status,
            stop_rx,
        ));
        (rx, stop, task)
    };
    let (mut a, stop_a, task_a) = start(false);
    let (mut b, _stop_b, _task_b) = start(true);
    if lock(&sockets.listeners)
        .get(&(false, hops != Hops::Single))
        .is_some_and(JoinHandle::is_finished)
    {
        // CI's machine has no other BFD daemon: there the port must be free.
        assert!(
            std::env::var_os("CI").is_none(),
            "port {} is taken on this host",
            hops.port()
        );
        eprintln!("SKIPPED: port {} is taken on this host", hops.port());
        return;
    }
    wait(&mut a, "a up", |s| s.up).await;
    wait(&mut b, "b up", |s| s.up).await;
    assert!(a.borrow().packets_out > 0 && a.borrow().packets_in > 0);
    let _ = stop_a.send(());
    let _ = task_a.await;
    wait(&mut b, "b down", |s| !s.up).await;
    let b = b.borrow().clone();
    assert_eq!((b.up_events, b.down_events, b.failures), (1, 1, 0), "{b:?}");
    assert!(b.last_down.unwrap().contains("administratively"));
}

#[test]
fn a_sending_socket_binds_a_port_in_the_single_hop_range() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = sending_socket(IpAddr::V4(Ipv4Addr::LOCALHOST), None).unwrap();
        let port = s.local_addr().unwrap().port();
        assert!(SOURCE_PORTS.contains(&port), "{port}");
        let v6 = sending_socket(IpAddr::V6(Ipv6Addr::LOCALHOST), None).unwrap();
        assert!(SOURCE_PORTS.contains(&v6.local_addr().unwrap().port()));
    });
}

#[test]
fn a_config_peer_gets_its_profile_s_timers_with_metallb_s_defaults() {
    let text = "bfd-profiles:\n- {name: fast, transmit-interval: 100, detect-multiplier: 5}\n\
                - {name: far, minimum-ttl: 250}\n\
                peers:\n- {my-asn: 64500, peer-asn: 64501, peer-address: 192.0.2.1, bfd-profile: fast}\n\
                - {my-asn: 64500, peer-asn: 64502, peer-address: 192.0.2.2}\n\
                - {my-asn: 64500, peer-asn: 64503, peer-address: 203.0.113.1, \
                ebgp-multihop: true, bfd-profile: far}\n";
    let config = crate::config::parse(text).unwrap();
    let got: Vec<Option<(Config, Option<u8>)>> = config
        .peers
        .iter()
        .map(|p| peer_config(&config, p))
        .collect();
    let fast = Config {
        desired_min_tx: Duration::from_millis(100),
        required_min_rx: Duration::from_millis(300),
        detect_mult: 5,
        passive: false,
    };
    assert_eq!(
        got,
        [
            Some((fast, None)),
            None,
            Some((profile_config(None, None, None, false), Some(250)))
        ]
    );
}

/// FRR's rule for a peer on a shared network, which MetalLB's FRR modes configure: multi-hop BFD
/// (port 4784) for eBGP multi-hop peers, with the profile's minimum TTL or 254; single hop
/// (3784, TTL 255) otherwise, iBGP included.
#[test]
fn ebgp_multihop_peers_get_multihop_bfd_and_the_others_single_hop() {
    assert_eq!(hops(false, None), Hops::Single);
    assert_eq!(hops(false, Some(250)), Hops::Single);
    assert_eq!(Hops::Single.port(), 3784);
    assert_eq!(Hops::Single.min_ttl(), 255);
    assert_eq!(hops(true, None), Hops::Multi { min_ttl: 254 });
    assert_eq!(hops(true, None).port(), 4784);
    assert_eq!(hops(true, Some(250)), Hops::Multi { min_ttl: 250 });
}

/// The BGP peer tells its watchers of a BFD state change at once and of counters alone seldom:
/// the counters do not make a state change.
#[test]
fn packet_counters_are_no_change_of_state() {
    let up = BfdStatus {
        up: true,
        up_events: 1,
        packets_in: 10,
        packets_out: 12,
        ..BfdStatus::default()
    };
    let more = BfdStatus {
        packets_in: 11,
        packets_out: 15,
        ..up.clone()
    };
    assert!(up.same_state(&more));
    let down = BfdStatus {
        up: false,
        down_events: 1,
        failures: 1,
        ..more.clone()
    };
    assert!(!more.same_state(&down));
}
