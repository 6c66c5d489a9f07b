use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;

use super::*;
use crate::telemetry::TextRegistry;

fn peer() -> Peer {
    Peer::new("tor", 64500, 64501, "192.0.2.1".parse().expect("IP"))
}

fn no_secret(_: &str) -> Option<String> {
    None
}

#[test]
fn a_peer_becomes_the_session_metallb_would_open() {
    let mut p = peer();
    p.hold_time = Duration::from_secs(9);
    p.connect_time = Some(Duration::from_secs(5));
    p.router_id = Some("192.0.2.11".parse().expect("IP"));
    p.ebgp_multihop = true;
    p.password = Some("s3cret".into());
    let spec = peer_spec(&p, &no_secret).expect("valid");
    assert_eq!(spec.name, "tor");
    assert_eq!(spec.peer_as, PeerAs::Exact(64501));
    assert_eq!((spec.local_as, spec.port, spec.hold_time), (64500, 179, 9));
    assert_eq!(spec.router_id, Some("192.0.2.11".parse().expect("IP")));
    assert_eq!(spec.connect_time, Some(Duration::from_secs(5)));
    assert!(spec.ebgp_multihop);
    assert_eq!(spec.password.as_deref(), Some("s3cret"));
    p.dynamic_asn = Some(DynamicAsn::External);
    assert_eq!(
        peer_spec(&p, &no_secret).expect("valid").peer_as,
        PeerAs::External
    );
}

#[test]
fn an_ipv6_router_id_and_a_missing_secret_are_refused_naming_the_field() {
    let mut p = peer();
    p.router_id = Some("2001:db8::1".parse().expect("IP"));
    let e = peer_spec(&p, &no_secret).expect_err("IPv6 router ID");
    assert!(e.contains("routerID"), "{e}");
    let mut p = peer();
    p.password_secret = Some("bgp-auth".into());
    let e = peer_spec(&p, &no_secret).expect_err("no Secret");
    assert!(e.contains("passwordSecret \"bgp-auth\""), "{e}");
    let found = |name: &str| (name == "bgp-auth").then(|| "from-secret".to_owned());
    assert_eq!(
        peer_spec(&p, &found).expect("valid").password.as_deref(),
        Some("from-secret")
    );
}

#[test]
fn only_basic_auth_secrets_give_a_password() {
    let mut secret = Secret {
        type_: Some("kubernetes.io/basic-auth".into()),
        data: Some(BTreeMap::from([(
            "password".to_owned(),
            ByteString(b"hunter2".to_vec()),
        )])),
        ..Secret::default()
    };
    assert_eq!(secret_password(&secret).as_deref(), Some("hunter2"));
    secret.type_ = Some("Opaque".into());
    assert_eq!(secret_password(&secret), None);
}

#[test]
fn standard_and_large_communities_go_to_their_attributes() {
    let route = Route {
        local_pref: Some(150),
        communities: [
            Community::Standard(0xfde8_0001),
            Community::Large {
                global_admin: 64500,
                local_data1: 1,
                local_data2: 2,
            },
        ]
        .into(),
    };
    let attrs = attributes(&route);
    assert_eq!(attrs.local_pref, Some(150));
    assert_eq!(
        attrs.communities.into_iter().collect::<Vec<_>>(),
        [WireCommunity(0xfde8_0001)]
    );
    assert_eq!(
        attrs.large_communities.into_iter().collect::<Vec<_>>(),
        [LargeCommunity {
            global: 64500,
            local1: 1,
            local2: 2
        }]
    );
}

#[tokio::test]
async fn without_peers_nothing_runs_and_no_series_is_exported() {
    let text = TextRegistry::default();
    let metrics = BgpMetrics::with_names(&text, crate::metrics::Naming::Metallb);
    let mut side = BgpSide::new("node-a", metrics, 0);
    side.apply(None, None, &no_secret).await;
    side.refresh();
    assert!(side.services().is_empty());
    let mut out = String::new();
    text.write_text(&mut out);
    assert_eq!(out, "");
    // Never resolves: nothing to wait for.
    let changed = side.changed();
    assert!(
        tokio::time::timeout(Duration::from_millis(50), changed)
            .await
            .is_err()
    );
    side.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_cannot_start_is_exported_as_down_for_the_alert() {
    let text = TextRegistry::default();
    let metrics = BgpMetrics::with_names(&text, crate::metrics::Naming::Metallb);
    let mut side = BgpSide::new("node-a", metrics, 0);
    let mut p = peer();
    p.password_secret = Some("missing".into());
    let config = Config {
        peers: vec![p],
        ..Config::default()
    };
    let routes = NodeRoutes {
        peers: BTreeMap::from([("tor".to_owned(), BTreeMap::new())]),
        ..NodeRoutes::default()
    };
    side.apply(Some(&config), Some(routes), &no_secret).await;
    let mut out = String::new();
    text.write_text(&mut out);
    assert!(
        out.contains("metallb_bgp_session_up{peer=\"192.0.2.1:179\"} 0"),
        "{out}"
    );
    // Gone from the config: gone from the metrics.
    side.apply(Some(&Config::default()), None, &no_secret).await;
    let mut out = String::new();
    text.write_text(&mut out);
    assert_eq!(out, "");
    side.shutdown().await;
}
