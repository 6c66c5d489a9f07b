//! The speaker, in rooms: the files here are what both modes share (the election path
//! `ownership`, the election gate, the announcer and what feeds it, flags, metrics); the
//! Kubernetes mode is [`kubernetes`], the `--static FILE` mode [`static_mode`]. The static mode
//! never imports the Kubernetes mode, and nothing here imports either (`tests/architecture.rs`).

pub mod announcer;
pub mod answer_check;
pub mod bfd;
pub mod bgp;
pub mod bgp_metrics;
pub mod checker;
pub mod cli;
pub mod election_gate;
pub mod handover;
pub mod kubernetes;
pub mod link_state;
pub mod links;
pub mod metrics;
pub mod owned;
pub mod ownership;
pub mod publish;
pub mod static_mode;
pub mod verify;
pub mod withdrawals;

/// Why a speaker's main loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopEnd {
    /// SIGTERM/SIGINT: a clean stop.
    Shutdown,
    /// The gossip member's task ended under a running speaker.
    GossipStopped,
}

/// The gossip member stopped while the speaker was still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("gossip stopped while the speaker was running; exiting so the pod is restarted")]
pub struct GossipStopped;

impl LoopEnd {
    /// A speaker whose gossip stopped can no longer agree with the others on owners, so it
    /// must not look like a clean exit: an error makes the process exit non-zero, the kubelet
    /// restarts it (with `restartPolicy: Always` a clean exit is restarted too, but without
    /// counting as a failure, and a supervisor like systemd's `on-failure` would not restart it).
    pub fn into_result(self) -> Result<(), GossipStopped> {
        match self {
            LoopEnd::Shutdown => Ok(()),
            LoopEnd::GossipStopped => Err(GossipStopped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_shutdown_ends_the_speaker_cleanly() {
        assert_eq!(LoopEnd::Shutdown.into_result(), Ok(()));
        let error = LoopEnd::GossipStopped.into_result().unwrap_err();
        assert!(error.to_string().contains("gossip stopped"));
    }
}
