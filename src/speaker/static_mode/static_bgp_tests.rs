use super::*;
use crate::speaker::static_mode::static_config::{StaticConfigError, parse};

const FILE: &str = "
node: node-a
gossip:
  bind: 192.0.2.11:7946
addresses:
- service: default/web
  ips: [192.0.2.100, 2001:db8::100]
- service: default/db
  ips: [192.0.2.101]
  bgp:
    communities: ['65000:2']
    local-pref: 300
    peers: [tor]
- service: default/agg1
  ips: [198.51.100.17]
  bgp: {aggregation-length: 24, communities: ['65000:7']}
- service: default/agg2
  ips: [198.51.100.18]
  bgp: {aggregation-length: 24, local-pref: 50}
- service: default/elsewhere
  ips: [192.0.2.102]
  nodes: [node-b]
bgp:
  peers:
  - name: tor
    peer-address: 192.0.2.1
    peer-asn: 64512
    my-asn: 64512
    password: s3cret
    hold-time: 3
  - name: spine
    peer-address: 203.0.113.1
    peer-asn: 65000
    my-asn: 64512
    ebgp-multihop: true
    source-address: 192.0.2.11
    router-id: 192.0.2.11
    connect-time: 5
  - name: other-rack
    peer-address: 192.0.2.254
    peer-asn: 64512
    my-asn: 64512
    nodes: [node-b]
  defaults:
    communities: ['65000:1', 'large:64512:1:2']
";

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn each_peer_of_this_node_gets_each_address_of_this_node_with_its_options() {
    let config = parse(FILE).unwrap();
    let peers = peers_for(&config.node, config.bgp.as_ref(), &config.bgp_addresses());
    let names: Vec<&str> = peers.iter().map(|(s, _)| s.name.as_str()).collect();
    assert_eq!(names, ["tor", "spine"], "other-rack is node-b's only");
    let (tor, tor_routes) = &peers[0];
    assert_eq!(tor.password.as_deref(), Some("s3cret"));
    assert_eq!((tor.port, tor.hold_time), (179, 3));
    let (spine, spine_routes) = &peers[1];
    assert!(spine.ebgp_multihop);
    assert_eq!(spine.connect_time, Some(Duration::from_secs(5)));
    assert_eq!(spine.source, Some("192.0.2.11".parse().unwrap()));

    // The defaults' communities on web (both families), db's own options to tor only, the
    // aggregate of agg1 and agg2 once with both communities and the first local preference,
    // node-b's address nowhere.
    let web = &tor_routes[&net("192.0.2.100/32")];
    assert_eq!(web.communities, BTreeSet::from([Community::new(65000, 1)]));
    let large = LargeCommunity {
        global: 64512,
        local1: 1,
        local2: 2,
    };
    assert_eq!(web.large_communities, BTreeSet::from([large]));
    assert_eq!(web.local_pref, None);
    assert!(tor_routes.contains_key(&net("2001:db8::100/128")));
    let db = &tor_routes[&net("192.0.2.101/32")];
    assert_eq!(db.communities, BTreeSet::from([Community::new(65000, 2)]));
    assert_eq!(db.local_pref, Some(300));
    assert!(!spine_routes.contains_key(&net("192.0.2.101/32")));
    let agg = &tor_routes[&net("198.51.100.0/24")];
    assert_eq!(
        agg.communities,
        BTreeSet::from([Community::new(65000, 1), Community::new(65000, 7)])
    );
    assert_eq!(agg.local_pref, None, "agg1 came first, with no local-pref");
    assert!(!tor_routes.contains_key(&net("192.0.2.102/32")));
    assert_eq!(tor_routes.len(), 4);
    assert_eq!(spine_routes.len(), 3);

    // Without a bgp section, no sessions.
    assert!(peers_for(&config.node, None, &config.bgp_addresses()).is_empty());
}

fn refused(from: &str, to: &str) -> String {
    let text = FILE.replace(from, to);
    assert_ne!(text, FILE, "the replacement applies");
    match parse(&text) {
        Err(StaticConfigError::Bgp(e)) => e.to_string(),
        other => panic!("{from} -> {to}: {other:?}"),
    }
}

#[test]
fn bad_bgp_sections_name_the_peer_or_service_and_field() {
    let e = refused("'65000:2'", "'65000:70000'");
    assert!(e.contains("default/db") && e.contains("65000:70000"), "{e}");
    let e = refused("'large:64512:1:2'", "'large:1:2'");
    assert!(e.contains("bgp.defaults"), "{e}");
    let e = refused(
        "aggregation-length: 24, communities",
        "aggregation-length: 33, communities",
    );
    assert!(e.contains("default/agg1") && e.contains("aggregation-length") && e.contains("33"));
    let e = refused("peers: [tor]", "peers: [nope]");
    assert!(e.contains("\"nope\""), "{e}");
    let e = refused("name: spine", "name: tor");
    assert!(e.contains("\"tor\" is listed twice"), "{e}");
    let e = refused("hold-time: 3", "hold-time: 2");
    assert!(e.contains("\"tor\"") && e.contains("hold time 2"), "{e}");
    let e = refused("password: s3cret", &format!("password: {}", "k".repeat(81)));
    assert!(e.contains("\"tor\"") && e.contains("81 bytes"), "{e}");
    let e = refused(
        "peer-asn: 65000\n    my-asn: 64512\n    ebgp-multihop: true",
        "peer-asn: 64512\n    my-asn: 64512\n    ebgp-multihop: true",
    );
    assert!(
        e.contains("\"spine\"") && e.contains("ebgp-multihop"),
        "{e}"
    );
    let e = refused("my-asn: 64512\n    password", "my-asn: 0\n    password");
    assert!(e.contains("\"tor\"") && e.contains("local AS 0"), "{e}");
    // An unknown field is a syntax error, as elsewhere in the file.
    let text = FILE.replace("hold-time: 3", "holdtime: 3");
    assert!(matches!(parse(&text), Err(StaticConfigError::Syntax(_))));
}

#[test]
fn communities_parse_both_forms() {
    assert_eq!(
        parse_community("65535:65281"),
        Some(AnyCommunity::Standard(Community::NO_EXPORT))
    );
    assert_eq!(
        parse_community("large:4294967295:0:1"),
        Some(AnyCommunity::Large(LargeCommunity {
            global: u32::MAX,
            local1: 0,
            local2: 1
        }))
    );
    for bad in ["65536:1", "1", "1:2:3", "large:1:2:3:4", "large:x:1:2", ""] {
        assert_eq!(parse_community(bad), None, "{bad}");
    }
}

#[test]
fn a_peer_s_bfd_gets_metallb_s_defaults_for_what_is_unset_and_its_ranges() {
    let text = FILE.replace(
        "    password: s3cret\n",
        "    password: s3cret\n    bfd: {transmit-interval: 100, passive-mode: true}\n",
    );
    let config = parse(&text).unwrap();
    let peers = peers_for(&config.node, config.bgp.as_ref(), &config.bgp_addresses());
    let bfd = peers[0].0.bfd.expect("tor runs BFD");
    assert_eq!(bfd.desired_min_tx, Duration::from_millis(100));
    assert_eq!(bfd.required_min_rx, Duration::from_millis(300));
    assert_eq!((bfd.detect_mult, bfd.passive), (3, true));
    assert_eq!(peers[1].0.bfd, None, "spine has none");
    let e = refused(
        "    password: s3cret\n",
        "    password: s3cret\n    bfd: {detect-multiplier: 1}\n",
    );
    assert!(
        e.contains("\"tor\"") && e.contains("detect-multiplier") && e.contains("2-255"),
        "{e}"
    );
    let e = refused(
        "    password: s3cret\n",
        "    password: s3cret\n    bfd: {receive-interval: 9}\n",
    );
    assert!(e.contains("`receive-interval` 9"), "{e}");
    let text = FILE.replace(
        "    password: s3cret\n",
        "    password: s3cret\n    bfd: {echo-mode: true}\n",
    );
    assert!(
        matches!(parse(&text), Err(StaticConfigError::Syntax(_))),
        "echo is not offered"
    );
}
