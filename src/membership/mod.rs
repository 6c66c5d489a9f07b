//! Gossip liveness of speakers (SWIM), authenticated.
