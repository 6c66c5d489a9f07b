//! Gossip key changes on three `ferrolb speaker --static` nodes in network namespaces: the key
//! files are replaced the way the kubelet updates a mounted Secret (a new directory, then an
//! atomic swap of the `..data` symlink), and the VIPs are probed every 10 ms throughout.
//! Root only; with `CI` set a missing prerequisite fails the test instead of skipping it.

mod netns;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netns::{Lan, Vip, environment_ready, ranking, wait_for};

const OLD: &str = "the-old-gossip-key-0123456789abcdef";
const NEW: &str = "the-new-gossip-key-fedcba9876543210";
const SETTLE: Duration = Duration::from_secs(20);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrolb"))
}

/// Node `i`'s mounted-Secret directory.
fn secret_dir(lan: &Lan, i: usize) -> PathBuf {
    lan.dir.path().join(format!("secret-{i}"))
}

/// Writes node `i`'s Secret as the kubelet does: files in a fresh directory, then `..data`
/// swapped atomically; `secretkey` and `acceptkey` are symlinks through `..data` made once.
fn write_secret(lan: &Lan, i: usize, send: &str, accept: Option<&str>, version: u32) {
    let dir = secret_dir(lan, i);
    let data = dir.join(format!("..v{version}"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("secretkey"), send).unwrap();
    if let Some(accept) = accept {
        std::fs::write(data.join("acceptkey"), accept).unwrap();
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..v{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for name in ["secretkey", "acceptkey"] {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
}

fn start(lan: &mut Lan, i: usize) {
    let config = lan.nodes[i].config.clone();
    let accept = secret_dir(lan, i).join("acceptkey");
    let metrics = format!("{}:7473", lan.nodes[i].ip4);
    let args: [&OsStr; 8] = [
        "--static".as_ref(),
        config.as_os_str(),
        "--memberlist-accept-key-file".as_ref(),
        accept.as_os_str(),
        "--exclude-interfaces".as_ref(),
        "".as_ref(),
        "--metrics-addr".as_ref(),
        metrics.as_ref(),
    ];
    lan.start_speaker(i, &args, &[]);
}

/// One VIP owned by each node when all three are up.
fn vips_one_per_node(lan: &Lan) -> Vec<String> {
    let names: Vec<&str> = lan.nodes.iter().map(|n| n.name.as_str()).collect();
    (1..=250)
        .map(|i| format!("192.0.2.{i}"))
        .filter(|ip| !["192.0.2.100"].contains(&ip.as_str()))
        .fold(Vec::<String>::new(), |mut picked, ip| {
            let owner = ranking(&ip, &names)[0].clone();
            let taken = picked.iter().any(|p| ranking(p, &names)[0] == owner);
            let node_ip = lan.nodes.iter().any(|n| n.ip4 == ip);
            if picked.len() < 3 && !taken && !node_ip {
                picked.push(ip);
            }
            picked
        })
}

fn wait_members(lan: &Lan, nodes: &[usize], alive: f64) {
    for &i in nodes {
        let got = wait_for(SETTLE, || {
            (lan.metric(i, "ferrolb_members{state=\"alive\"}") == Some(alive)).then_some(())
        });
        assert!(
            got.is_some(),
            "{} never saw {alive} alive members\n{}",
            lan.nodes[i].name,
            lan.log(i)
        );
    }
}

fn wait_keys(lan: &Lan, i: usize, keys: f64) {
    let got = wait_for(SETTLE, || {
        (lan.metric(i, "ferrolb_gossip_keys") == Some(keys)).then_some(())
    });
    assert!(
        got.is_some(),
        "{} never had {keys} keys\n{}",
        lan.nodes[i].name,
        lan.log(i)
    );
}

/// Writes the old key for every node and starts them; `accept_flag`: with
/// `--memberlist-accept-key-file` (the rotation), else with the key file alone.
fn setup(lan: &mut Lan, vips: &[String], accept_flag: bool) {
    let vip_list: Vec<Vip> = vips
        .iter()
        .map(|ip| Vip {
            service: format!("k/{ip}"),
            ips: vec![ip.clone()],
        })
        .collect();
    for i in 0..3 {
        write_secret(lan, i, OLD, None, 0);
        let key = secret_dir(lan, i).join("secretkey");
        lan.write_config(i, &vip_list, &key);
        if accept_flag {
            start(lan, i);
        } else {
            lan.start(i);
        }
    }
    wait_members(lan, &[0, 1, 2], 3.0);
}

/// The documented rotation (accept the new key everywhere, send with it everywhere, drop the
/// old one), each step rolled out node by node with a restart, as `kubectl rollout restart`
/// after a Secret edit would: the speakers never split (all three see each other after every
/// restart), and no request for a VIP is answered by two nodes at any point of the nine restarts:
/// a stopping owner lets go before it tells the others, and a restarted owner takes its VIP back
/// only once the others know it is back. (A split answers twice for as long as it lasts, which is
/// longer than the 20 s the members check waits.)
#[test]
fn key_rotation_across_rolling_restarts_never_gives_two_answerers() {
    if !environment_ready("key_rotation_rolling") {
        return;
    }
    let mut lan = Lan::new(3, binary());
    let vips = vips_one_per_node(&lan);
    assert_eq!(vips.len(), 3);
    setup(&mut lan, &vips, true);
    let refs: Vec<&str> = vips.iter().map(String::as_str).collect();
    // Each VIP's owner counts the prober's requests before the first restart: it probes from the
    // start of the rotation.
    let names: Vec<&str> = lan.nodes.iter().map(|n| n.name.as_str()).collect();
    let owners: Vec<usize> = vips
        .iter()
        .map(|ip| {
            let first = ranking(ip, &names)[0].clone();
            lan.nodes.iter().position(|n| n.name == first).unwrap()
        })
        .collect();
    let requests = |ip: &str| format!("ferrolb_layer2_requests_received{{ip=\"{ip}\"}}");
    let asked: Vec<f64> = vips
        .iter()
        .zip(&owners)
        .map(|(ip, &o)| lan.metric(o, &requests(ip)).unwrap_or(0.0))
        .collect();
    let log = lan.start_prober(&refs, 600);
    for ((ip, &owner), asked) in vips.iter().zip(&owners).zip(&asked) {
        let probing = wait_for(SETTLE, || {
            (lan.metric(owner, &requests(ip))? >= asked + 10.0).then_some(())
        });
        assert!(
            probing.is_some(),
            "the prober's requests never reached {ip}'s owner"
        );
    }
    let steps = [
        (OLD, Some(NEW), 2.0),
        (NEW, Some(OLD), 2.0),
        (NEW, None, 1.0),
    ];
    for (version, (send, accept, keys)) in steps.into_iter().enumerate() {
        for i in 0..3 {
            write_secret(&lan, i, send, accept, version as u32 + 1);
            lan.signal(i, "TERM");
            start(&mut lan, i);
            wait_members(&lan, &[0, 1, 2], 3.0);
            wait_keys(&lan, i, keys);
        }
    }
    // Still probing now (it prints its tallies only when it ends): it ran through the rotation.
    let results = lan.finish_prober(&log, 3);
    for tally in &results {
        eprintln!("{tally:?}");
        assert_eq!(tally.double, 0, "requests answered by two nodes: {tally:?}");
    }
}

/// A key file replaced in place (no restart) is picked up: two nodes switch straight to a new
/// key, and a third node that only knows the new key joins them.
#[test]
fn key_file_replaced_in_place_is_picked_up() {
    if !environment_ready("key_reload_in_place") {
        return;
    }
    let mut lan = Lan::new(3, binary());
    let vips = vips_one_per_node(&lan);
    setup(&mut lan, &vips, false);
    lan.signal(2, "KILL");
    wait_members(&lan, &[0, 1], 2.0);
    for i in 0..2 {
        write_secret(&lan, i, NEW, None, 1);
    }
    write_secret(&lan, 2, NEW, None, 1);
    // Both survivors reloaded once their logs say so; until then node 2 could not join.
    for i in 0..2 {
        let got = wait_for(SETTLE, || {
            lan.log(i).contains("gossip keys reloaded").then_some(())
        });
        assert!(got.is_some(), "{}", lan.log(i));
    }
    lan.start(2);
    wait_members(&lan, &[0, 1, 2], 3.0);
}
