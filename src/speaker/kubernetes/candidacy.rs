//! Whether this speaker takes part in the elections: only while it holds a config with address
//! pools ([`Reconciler::can_announce`]). One that cannot announce would own its share of the
//! addresses and answer none, so it withdraws (from gossip, and by readiness), and says why: its
//! ConfigurationState, a Warning on its Pod, `ferrolb_speaker_election_candidate`.

use tracing::{info, warn};

use super::events;
use super::reconcile::Reconciler;
use crate::gossip::GossipHandle;
use kube::Resource;

/// Why a speaker without a usable config announces nothing, as its ConfigurationState says.
const NO_USABLE_CONFIG: &str = "this speaker holds no config with address pools (none loaded, \
    or every one refused), so it takes part in no election and announces nothing";

/// Joins the elections (`true`) or withdraws from them: with gossip, by leaving the member list
/// (the others elect again at once) and coming back under a renewed identity; without it, by
/// readiness alone (the others count only nodes whose speaker pod is Ready).
pub async fn take_part(membership: &Option<GossipHandle>, candidate: bool, was_known: bool) {
    if candidate {
        if was_known {
            info!("a config with address pools is in force: taking part in the elections again");
        }
    } else {
        warn!("{NO_USABLE_CONFIG}");
    }
    if let Some(m) = membership {
        m.set_candidate(candidate).await;
    }
}

/// The ConfigurationState to show: the last load's, and Invalid while this speaker cannot
/// announce whatever the last load said.
pub fn config_state(reconciler: &Reconciler) -> Option<Option<String>> {
    let state = reconciler.config_state();
    if reconciler.can_announce() {
        return state;
    }
    Some(Some(match state {
        Some(Some(why)) => format!("{why}; {NO_USABLE_CONFIG}"),
        _ => NO_USABLE_CONFIG.to_owned(),
    }))
}

/// The Warning recorded when this speaker withdraws: on its Pod (or its Node without one).
pub fn no_config_warning(reconciler: &Reconciler, pod_name: Option<&str>) -> events::Assigned {
    let why = config_state(reconciler)
        .flatten()
        .unwrap_or_else(|| NO_USABLE_CONFIG.to_owned());
    own_warning(reconciler, pod_name, "NoUsableConfig", why)
}

/// A Warning about this speaker itself: on its Pod (or its Node without one).
fn own_warning(
    reconciler: &Reconciler,
    pod_name: Option<&str>,
    reason: &'static str,
    why: String,
) -> events::Assigned {
    let pod = pod_name.and_then(|name| {
        reconciler
            .stores()
            .speakers
            .state()
            .into_iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
    });
    let reference = match pod {
        Some(pod) => pod.object_ref(&()),
        None => events::node_reference(reconciler.me()),
    };
    events::Assigned {
        service: String::new(),
        reference,
        warning: Some((reason, why)),
        protocol: Default::default(),
    }
}

/// The Warnings answer verification's news call for: `OwnerNotAnswering` on each Service
/// with an address whose owner this node found silent (naming the owner), and
/// `AnswerChecksDeaf` on this speaker when it stopped hearing any reply.
pub fn verification_warnings(
    reconciler: &Reconciler,
    pod_name: Option<&str>,
    silent: Vec<(String, std::net::IpAddr, String)>,
    deafened: bool,
) -> Vec<events::Assigned> {
    let me = reconciler.me();
    let mut out: Vec<events::Assigned> = silent
        .into_iter()
        .filter_map(|(owner, ip, service)| {
            let note = format!(
                "node {owner} announces {ip} but did not answer {} ARP probes in a row from \
                 node {me}, which hears the other nodes; {owner} is told and withdraws from \
                 {ip}, and the next node answers it",
                crate::speaker::answer_check::MISSES
            );
            reconciler.service_warning(&service, ("OwnerNotAnswering", note))
        })
        .collect();
    if deafened {
        let why = format!(
            "node {me} hears no reply to its answer checks, not even from the other nodes' own \
             addresses: its receive path looks broken (a firewall or ebtables rule, the \
             interface), so it reports no owner silent and moves nothing"
        );
        out.push(own_warning(reconciler, pod_name, "AnswerChecksDeaf", why));
    }
    out
}

/// `/readyz`: the announcer can answer on every interface and, with gossip on while other
/// speakers are expected ([`super::reconcile::Reconciler::others_expected`]), this speaker has joined them.
pub fn ready(sockets_open: bool, gossip: bool, joined: bool, others_expected: bool) -> bool {
    sockets_open && (!gossip || joined || !others_expected)
}
