//! Why the allocator said no: every error names the pool, address and services involved, so the
//! controller can put it in an event verbatim.

use std::net::IpAddr;

use super::types::{Family, FamilyPolicy, Port, ServiceKey};

/// An allocation or re-registration the allocator refused. The allocator's state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("address pool {pool:?} does not exist")]
    UnknownPool { pool: String },

    #[error("{ip} is not in any address pool")]
    NotInAnyPool { ip: IpAddr },

    #[error("{ip} is in pool {actual:?}, not in the requested pool {requested:?}")]
    NotInRequestedPool {
        ip: IpAddr,
        requested: String,
        actual: String,
    },

    #[error("{ip} ends in .0 or .255 and pool {pool:?} avoids buggy IPs")]
    BuggyIp { ip: IpAddr, pool: String },

    #[error(
        "{first} (pool {first_pool:?}) and {second} (pool {second_pool:?}) are in different pools; a service's addresses must come from one pool"
    )]
    DifferentPools {
        first: IpAddr,
        first_pool: String,
        second: IpAddr,
        second_pool: String,
    },

    #[error("more than one {family} address given ({first}, {second}); at most one per family")]
    DuplicateFamily {
        family: Family,
        first: IpAddr,
        second: IpAddr,
    },

    #[error("{ip} is an {family} address but the service's IP family policy is {policy}")]
    FamilyNotAllowed {
        ip: IpAddr,
        family: Family,
        policy: FamilyPolicy,
    },

    #[error("the service requires dual-stack but no {missing} address was requested")]
    MissingFamily { missing: Family },

    #[error("no addresses given to register")]
    NoAddresses,

    #[error("pool {pool:?} has no {family} addresses")]
    PoolLacksFamily { pool: String, family: Family },

    #[error("no free {family} address in pool {pool:?}")]
    PoolExhausted { pool: String, family: Family },

    #[error("pool {pool:?} is not for this service: its serviceAllocation admits only {admits}")]
    PoolNotAllowed { pool: String, admits: String },

    #[error("no auto-assign pool has {}", describe_wanted(.policy))]
    NoFreeAddress { policy: FamilyPolicy },

    #[error("{ip} is already used by {holder}: {reason}")]
    Conflict {
        ip: IpAddr,
        holder: ServiceKey,
        reason: ConflictReason,
    },
}

fn describe_wanted(policy: &FamilyPolicy) -> String {
    match policy {
        FamilyPolicy::Single(f) => format!("a free {f} address"),
        FamilyPolicy::PreferDualStack { .. } => "a free IPv4 or IPv6 address".to_owned(),
        FamilyPolicy::RequireDualStack { .. } => {
            "a free IPv4 and IPv6 address pair in one pool".to_owned()
        }
    }
}

/// Why two services may not share an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConflictReason {
    #[error("neither service may share it unless both carry the same allow-shared-ip key (this one has {ours}, the holder has {theirs})", ours = show_key(.ours), theirs = show_key(.theirs))]
    SharingKeyMismatch {
        ours: Option<String>,
        theirs: Option<String>,
    },
    #[error("both services use port {port}")]
    PortOverlap { port: Port },
    #[error("the services' externalTrafficPolicy differs")]
    TrafficPolicyMismatch,
    #[error("both services use externalTrafficPolicy Local but select different pods")]
    SelectorMismatch,
}

fn show_key(key: &Option<String>) -> String {
    match key {
        Some(k) => format!("key {k:?}"),
        None => "no key".to_owned(),
    }
}

/// A pool set that `set_pools` refused; the previous pools stay in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolSpecError {
    #[error("a pool has an empty name")]
    EmptyName,
    #[error("pool {pool:?} is defined more than once")]
    DuplicatePool { pool: String },
    #[error("pool {pool:?} has no addresses")]
    NoRanges { pool: String },
    #[error("pool {pool:?}: range {start}-{end} mixes IPv4 and IPv6")]
    MixedFamilies {
        pool: String,
        start: IpAddr,
        end: IpAddr,
    },
    #[error("pool {pool:?}: range {start}-{end} starts after it ends")]
    StartAfterEnd {
        pool: String,
        start: IpAddr,
        end: IpAddr,
    },
    #[error("pool {pool:?} range {range} overlaps pool {other_pool:?} range {other_range}")]
    Overlap {
        pool: String,
        range: String,
        other_pool: String,
        other_range: String,
    },
}
