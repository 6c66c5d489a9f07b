use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::bgp::wire::SegmentKind;

const HOP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const HOP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11);

fn ctx(internal: bool) -> PathContext {
    PathContext {
        local_as: 64_512,
        internal,
        four_octet_as: true,
        next_hop_v4: Some(HOP4),
        next_hop_v6: Some(HOP6),
        families: vec![AddressFamily::IPV4_UNICAST, AddressFamily::IPV6_UNICAST],
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn attrs(pref: Option<u32>, communities: &[u32]) -> RouteAttrs {
    RouteAttrs {
        local_pref: pref,
        communities: communities.iter().map(|c| Community(*c)).collect(),
        large_communities: BTreeSet::new(),
    }
}

/// The peer's view: each UPDATE emitted, parsed back as the peer reads it, and applied. Checks
/// every message's size and the attributes every route must carry on the way.
fn apply(model: &mut Routes, updates: &[UpdateRepr], ctx: &PathContext) {
    for update in updates {
        let bytes = Message::Update(Box::new(update.clone()))
            .emit(ctx.wire_context())
            .expect("every UPDATE emits");
        assert!(bytes.len() <= MAX_MESSAGE_LEN, "{} bytes", bytes.len());
        let Message::Update(parsed) = Message::parse(&bytes, ctx.wire_context()).unwrap() else {
            panic!("not an UPDATE");
        };
        for p in &parsed.withdrawn {
            model.remove(&IpNet::V4(*p));
        }
        if let Some(MpUnreach::Ipv6(ps)) = &parsed.attributes.mp_unreach {
            for p in ps {
                model.remove(&IpNet::V6(*p));
            }
        }
        let a = &parsed.attributes;
        let mut reached: Vec<IpNet> = parsed.nlri.iter().map(|p| IpNet::V4(*p)).collect();
        if !parsed.nlri.is_empty() {
            assert_eq!(a.next_hop, ctx.next_hop_v4);
        }
        if let Some(MpReach::Ipv6 { next_hop, nlri, .. }) = &a.mp_reach {
            assert_eq!(Some(*next_hop), ctx.next_hop_v6);
            reached.extend(nlri.iter().map(|p| IpNet::V6(*p)));
        }
        if reached.is_empty() {
            continue;
        }
        assert_eq!(a.origin, Some(Origin::Igp));
        assert_eq!(a.med, None);
        let path = a.as_path.clone().unwrap();
        if ctx.internal {
            assert!(path.segments.is_empty());
            assert!(a.local_pref.is_some());
        } else {
            assert_eq!(path.segments.len(), 1);
            assert_eq!(path.segments[0].kind, SegmentKind::Sequence);
            assert_eq!(path.segments[0].asns, [ctx.local_as]);
            assert_eq!(a.local_pref, None);
        }
        assert!(a.communities.is_sorted());
        assert!(a.large_communities.is_sorted());
        let got = RouteAttrs {
            local_pref: a.local_pref,
            communities: a.communities.iter().copied().collect(),
            large_communities: a.large_communities.iter().copied().collect(),
        };
        for p in reached {
            model.insert(p, got.clone());
        }
    }
}

/// What the peer should hold of `desired`, as it reads it (LOCAL_PREF only on iBGP, 100 when
/// unset).
fn expected(desired: &Routes, ctx: &PathContext) -> Routes {
    desired
        .iter()
        .filter(|(p, _)| ctx.sendable(p))
        .map(|(p, a)| {
            let mut a = a.clone();
            a.local_pref = ctx.internal.then(|| a.local_pref.unwrap_or(100));
            (*p, a)
        })
        .collect()
}

#[test]
fn announces_groups_and_withdraws() {
    let ctx = ctx(true);
    let mut rib = AdjRibOut::new();
    let mut desired = Routes::new();
    desired.insert(net("192.0.2.100/32"), attrs(None, &[2, 1]));
    desired.insert(net("192.0.2.101/32"), attrs(None, &[1, 2]));
    desired.insert(net("198.51.100.0/24"), attrs(Some(200), &[]));
    desired.insert(net("2001:db8::100/128"), attrs(None, &[1, 2]));
    let updates = rib.updates(&desired, &ctx);
    // One group of three prefixes (two v4 in NLRI, one v6 in MP_REACH) and one of one.
    assert_eq!(updates.len(), 3, "{updates:#?}");
    let first = &updates[0];
    assert_eq!(
        first.nlri.len() + updates[1].nlri.len() + updates[2].nlri.len(),
        3
    );
    let mut model = Routes::new();
    apply(&mut model, &updates, &ctx);
    assert_eq!(model, expected(&desired, &ctx));
    assert_eq!(model[&net("192.0.2.100/32")].local_pref, Some(100));
    assert_eq!(model[&net("198.51.100.0/24")].local_pref, Some(200));

    // Nothing changed: nothing to send.
    assert!(rib.updates(&desired, &ctx).is_empty());

    // One withdrawn, one changed: a withdrawal and one announcement.
    desired.remove(&net("192.0.2.100/32"));
    desired.insert(net("2001:db8::100/128"), attrs(Some(50), &[]));
    let updates = rib.updates(&desired, &ctx);
    assert_eq!(updates.len(), 2, "{updates:#?}");
    assert_eq!(
        updates[0].withdrawn,
        [net("192.0.2.100/32").to_string().parse().unwrap()]
    );
    apply(&mut model, &updates, &ctx);
    assert_eq!(model, expected(&desired, &ctx));

    // IPv6 withdrawn through MP_UNREACH.
    desired.remove(&net("2001:db8::100/128"));
    let updates = rib.updates(&desired, &ctx);
    assert!(matches!(
        updates[0].attributes.mp_unreach,
        Some(MpUnreach::Ipv6(ref p)) if p.len() == 1
    ));
    apply(&mut model, &updates, &ctx);
    assert_eq!(model, expected(&desired, &ctx));
}

#[test]
fn ebgp_routes_carry_our_as_and_no_local_pref() {
    let ctx = ctx(false);
    let mut rib = AdjRibOut::new();
    let desired = Routes::from([(net("192.0.2.100/32"), attrs(Some(300), &[7]))]);
    let updates = rib.updates(&desired, &ctx);
    assert_eq!(updates.len(), 1);
    let a = &updates[0].attributes;
    assert_eq!(a.as_path, Some(AsPath::sequence(vec![64_512])));
    assert_eq!(a.local_pref, None);
    assert_eq!(a.next_hop, Some(HOP4));
    assert_eq!(a.communities, [Community(7)]);
}

#[test]
fn families_without_negotiation_or_next_hop_are_skipped_and_said() {
    let mut ctx = ctx(false);
    ctx.families = vec![AddressFamily::IPV4_UNICAST, AddressFamily::IPV6_UNICAST];
    ctx.next_hop_v6 = None;
    let desired = Routes::from([
        (net("192.0.2.100/32"), RouteAttrs::default()),
        (net("2001:db8::100/128"), RouteAttrs::default()),
    ]);
    let mut rib = AdjRibOut::new();
    let updates = rib.updates(&desired, &ctx);
    assert_eq!(updates.len(), 1);
    assert!(updates[0].attributes.mp_reach.is_none());
    assert_eq!(rib.sent().len(), 1);
    assert_eq!(
        skipped(&desired, &ctx),
        BTreeSet::from([Skipped::NoNextHop(AddressFamily::IPV6_UNICAST)])
    );
    ctx.families = vec![AddressFamily::IPV6_UNICAST];
    ctx.next_hop_v6 = Some(HOP6);
    let s = skipped(&desired, &ctx);
    assert_eq!(
        s,
        BTreeSet::from([Skipped::NotNegotiated(AddressFamily::IPV4_UNICAST)])
    );
    assert!(s.iter().next().unwrap().to_string().contains("1/1"));
}

#[test]
fn reset_sends_everything_again_and_end_of_rib_follows_each_family() {
    let ctx = ctx(true);
    let desired = Routes::from([(net("192.0.2.100/32"), RouteAttrs::default())]);
    let mut rib = AdjRibOut::new();
    assert_eq!(rib.updates(&desired, &ctx).len(), 1);
    rib.reset();
    assert_eq!(rib.updates(&desired, &ctx).len(), 1);
    let eor = end_of_rib(&ctx);
    assert_eq!(eor.len(), 2);
    assert_eq!(eor[0].is_end_of_rib(), Some(AddressFamily::IPV4_UNICAST));
    assert_eq!(eor[1].is_end_of_rib(), Some(AddressFamily::IPV6_UNICAST));
}

#[test]
fn ten_thousand_prefixes_split_below_the_message_limit() {
    let ctx = ctx(true);
    let desired: Routes = (0..10_000u32)
        .map(|i| {
            let v4 = IpNet::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 32).unwrap();
            (v4, attrs(None, &[1, 2, 3]))
        })
        .chain((0..3_000u128).map(|i| {
            let v6 = Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + i);
            (
                IpNet::new(IpAddr::V6(v6), 128).unwrap(),
                RouteAttrs::default(),
            )
        }))
        .collect();
    let mut rib = AdjRibOut::new();
    let updates = rib.updates(&desired, &ctx);
    // 5 bytes per /32: ~810 per message; 17 per /128: ~240 per message.
    assert!(updates.len() < 13 + 14, "{} messages", updates.len());
    let mut model = Routes::new();
    apply(&mut model, &updates, &ctx);
    assert_eq!(model, expected(&desired, &ctx));
    // Withdrawing all of them splits too.
    let updates = rib.updates(&Routes::new(), &ctx);
    assert!(updates.len() > 2);
    apply(&mut model, &updates, &ctx);
    assert!(model.is_empty());
}

fn arb_prefix() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (0u32..64, 24u8..=32).prop_map(|(i, len)| {
            IpNet::new(IpAddr::V4(Ipv4Addr::from(0xc000_0200 + i * 3)), len)
                .unwrap()
                .trunc()
        }),
        (0u128..64, 64u8..=128).prop_map(|(i, len)| {
            let a = Ipv6Addr::from(0x2001_0db8_u128 << 96 | i << 8);
            IpNet::new(IpAddr::V6(a), len).unwrap().trunc()
        }),
    ]
}

fn arb_attrs() -> impl Strategy<Value = RouteAttrs> {
    (
        prop::option::of(0u32..3),
        prop::collection::btree_set(0u32..4, 0..3),
        prop::collection::btree_set((0u32..2, 0u32..2, 0u32..2), 0..2),
    )
        .prop_map(|(local_pref, communities, large)| RouteAttrs {
            local_pref,
            communities: communities.into_iter().map(Community).collect(),
            large_communities: large
                .into_iter()
                .map(|(global, local1, local2)| LargeCommunity {
                    global,
                    local1,
                    local2,
                })
                .collect(),
        })
}

fn arb_routes() -> impl Strategy<Value = Routes> {
    prop::collection::btree_map(arb_prefix(), arb_attrs(), 0..300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the sequence of desired tables, the peer ends up holding exactly the last one
    /// (of the families it can carry), and no message is over 4096 bytes.
    #[test]
    fn the_peer_always_holds_exactly_what_is_desired(
        tables in prop::collection::vec(arb_routes(), 1..5),
        internal in any::<bool>(),
        v6 in any::<bool>(),
    ) {
        let mut ctx = ctx(internal);
        if !v6 {
            ctx.next_hop_v6 = None;
        }
        let mut rib = AdjRibOut::new();
        let mut model = Routes::new();
        for desired in &tables {
            let updates = rib.updates(desired, &ctx);
            apply(&mut model, &updates, &ctx);
            prop_assert_eq!(&model, &expected(desired, &ctx));
            prop_assert_eq!(rib.sent().len(), model.len());
        }
    }
}
