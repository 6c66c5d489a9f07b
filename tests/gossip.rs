//! Gossip members on loopback UDP (127.0.0.1, OS-chosen ports), in one process.
//!
//! Every wait polls with a generous limit; nothing asserts how long anything took.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use ferrolb::gossip::{Gossip, GossipConfig, GossipHandle, GossipKey, SwimTiming};

const KEY: &[u8] = b"integration-test-key-0123456789";
const PATIENCE: Duration = Duration::from_secs(30);

fn config(name: &str, key: &[u8], seeds: Vec<SocketAddr>, timing: SwimTiming) -> GossipConfig {
    GossipConfig {
        node_name: name.to_string(),
        bind_addr: "127.0.0.1:0".parse().unwrap(),
        advertise_addr: None,
        seeds,
        keys: GossipKey::from_bytes(key, "test").unwrap().into(),
        reload: None,
        timing,
        withdrawn: false,
    }
}

/// Three members a, b, c; b and c are seeded with a.
async fn cluster(timing: SwimTiming) -> Vec<GossipHandle> {
    let a = Gossip::start(config("a", KEY, vec![], timing.clone()))
        .await
        .unwrap();
    let seed = vec![a.local_addr()];
    let b = Gossip::start(config("b", KEY, seed.clone(), timing.clone()))
        .await
        .unwrap();
    let c = Gossip::start(config("c", KEY, seed, timing)).await.unwrap();
    let all = vec![a, b, c];
    for member in &all {
        wait_for_members(member, &["a", "b", "c"]).await;
    }
    all
}

/// Slow, forgiving timing for tests that are not about failure detection, so a starved test
/// machine cannot cause a false suspicion mid-test.
fn patient() -> SwimTiming {
    SwimTiming {
        probe_period: Duration::from_secs(1),
        probe_rtt: Duration::from_millis(400),
        suspect_to_down_after: Duration::from_secs(10),
        ..SwimTiming::default()
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

async fn wait_for_members(member: &GossipHandle, expected: &[&str]) {
    let expected = set(expected);
    let mut watch = member.members();
    let reached = tokio::time::timeout(PATIENCE, watch.wait_for(|live| *live == expected)).await;
    assert!(
        matches!(reached, Ok(Ok(_))),
        "{} never saw {expected:?}; it sees {:?}",
        member.identity().name,
        *member.members().borrow()
    );
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_converge_and_a_crashed_one_is_declared_down() {
    let members = cluster(SwimTiming::default()).await;
    assert_eq!(members[0].stats().members.alive, 3);
    assert!(members[1].stats().joined);

    members[2].abort(); // crash: no leave message
    wait_for_members(&members[0], &["a", "b"]).await;
    wait_for_members(&members[1], &["a", "b"]).await;
    let a = members[0].stats();
    assert!(a.members.down >= 1, "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_leave_removes_the_member_without_failure_detection() {
    // Failure detection would take two minutes with this timing, so a removal within the test's
    // patience can only come from the leave announcement.
    let timing = SwimTiming {
        suspect_to_down_after: Duration::from_secs(120),
        ..patient()
    };
    let members = cluster(timing).await;
    members[2].leave().await;
    assert!(members[2].stats().left);
    wait_for_members(&members[0], &["a", "b"]).await;
    wait_for_members(&members[1], &["a", "b"]).await;
    // Leaving twice is harmless.
    members[2].leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_the_wrong_key_never_joins_and_is_counted() {
    let members = cluster(patient()).await;
    let before = members[0].stats().drops.auth;
    let intruder = Gossip::start(config(
        "intruder",
        b"some-other-key-0123456789",
        vec![members[0].local_addr(), members[1].local_addr()],
        SwimTiming::default(),
    ))
    .await
    .unwrap();
    // The intruder re-announces every second while alone; wait for several to be refused.
    wait_until("announces refused as unauthenticated", || {
        members[0].stats().drops.auth >= before + 3
    })
    .await;
    for member in &members {
        assert_eq!(*member.members().borrow(), set(&["a", "b", "c"]));
    }
    assert_eq!(*intruder.members().borrow(), set(&["intruder"]));
    assert!(!intruder.stats().joined);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbled_datagrams_are_dropped_and_counted() {
    let members = cluster(patient()).await;
    let target = members[0].local_addr();
    let before = members[0].stats().drops;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let garbage: [&[u8]; 4] = [
        b"",
        b"\x02short",
        &[0x02; 80], // right version byte, wrong tag
        &[0x01; 52], // long enough, the first envelope version (no longer spoken)
    ];
    for packet in garbage {
        socket.send_to(packet, target).await.unwrap();
    }
    wait_until("four garbled datagrams counted", || {
        let now = members[0].stats().drops;
        (now.auth + now.decode) - (before.auth + before.decode) >= 4
    })
    .await;
    let after = members[0].stats().drops;
    assert_eq!(
        after.auth - before.auth,
        1,
        "only the well-formed one reaches the tag check"
    );
    assert_eq!(after.decode - before.decode, 3);
    // Still a healthy cluster.
    assert_eq!(*members[0].members().borrow(), set(&["a", "b", "c"]));
}

#[tokio::test]
async fn bad_configuration_is_refused_before_binding() {
    let mut bad = config("", KEY, vec![], SwimTiming::default());
    let err = Gossip::start(bad.clone()).await.err().unwrap();
    assert!(err.to_string().contains("node name is empty"), "{err}");
    bad.node_name = "a".into();
    bad.bind_addr = "0.0.0.0:0".parse().unwrap();
    let err = Gossip::start(bad).await.err().unwrap();
    assert!(err.to_string().contains("--host-ip"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_given_seeds_later_joins() {
    let members = cluster(patient()).await;
    let late = Gossip::start(config("d", KEY, vec![], patient()))
        .await
        .unwrap();
    assert_eq!(*late.members().borrow(), set(&["d"]));
    late.set_seeds(vec![late.local_addr(), members[1].local_addr()])
        .await;
    for member in members.iter().chain([&late]) {
        wait_for_members(member, &["a", "b", "c", "d"]).await;
    }
}

/// A speaker's own work must not make it look dead: a pass over thousands of Services or a
/// re-list being decoded keeps its runtime's workers busy for a while. Members a and b are
/// started from this test's single-threaded runtime, which is then blocked for well over the
/// time c needs to declare an unanswering member down; c runs on a runtime of its own. a and b
/// answer c's probes from their own threads throughout, so c never loses them.
#[test]
fn a_member_answers_while_the_runtime_that_started_it_is_blocked() {
    use std::sync::{Arc, Mutex};

    let speaker = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (a, b) = speaker.block_on(async {
        let a = Gossip::start(config("a", KEY, vec![], SwimTiming::default()))
            .await
            .unwrap();
        let b = Gossip::start(config(
            "b",
            KEY,
            vec![a.local_addr()],
            SwimTiming::default(),
        ))
        .await
        .unwrap();
        (a, b)
    });
    // c, and a record of every member set it saw, on a runtime of its own.
    let seen: Arc<Mutex<Vec<BTreeSet<String>>>> = Arc::default();
    let (c_ready, c_started) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let record = seen.clone();
    let seed = vec![a.local_addr()];
    let other = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let c = Gossip::start(config("c", KEY, seed, SwimTiming::default()))
                .await
                .unwrap();
            wait_for_members(&c, &["a", "b", "c"]).await;
            c_ready.send(()).unwrap();
            let mut members = c.members();
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    r = members.changed() => {
                        r.unwrap();
                        record.lock().unwrap().push(members.borrow_and_update().clone());
                    }
                }
            }
        });
    });
    c_started.recv_timeout(PATIENCE).expect("c joined a and b");
    // The speaker's runtime busy: nothing on it runs for 3 s (c declares an unanswering member
    // down within about 0.7 s with the default timing).
    std::thread::sleep(Duration::from_secs(3));
    speaker.block_on(async { tokio::time::sleep(Duration::from_millis(500)).await });
    assert_eq!(
        *a.members().borrow(),
        set(&["a", "b", "c"]),
        "{:?}",
        a.stats()
    );
    stop.send(()).unwrap();
    other.join().unwrap();
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().all(|live| *live == set(&["a", "b", "c"])),
        "c lost a member while their starter's runtime was blocked: {seen:?}"
    );
    drop((a, b));
}
