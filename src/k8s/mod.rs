//! What ferrolb reads from Kubernetes objects, shared by the controller and the speaker: which
//! Services are ours and what they ask for, their keys and status IPs, EndpointSlices, Node
//! conditions, ready speaker pods; the client both build and the backoff both put on their
//! watches. Plain functions over `k8s-openapi` types (no API calls besides building the client and
//! writing a ConfigurationState, which both components keep), so both read objects alike.

pub mod access;
pub mod backoff;
pub mod client;
pub mod config_state;
pub mod endpoints;
pub mod metallb;
pub mod networks;
pub mod node;
pub mod pod;
pub mod reflect;
pub mod review;
pub mod service;
pub mod source_hint;

pub use backoff::WatchBackoff;
pub use client::{ClientError, client, fenced_client};

/// The API refuses event notes over 1 kB: a longer note (a config's error list, a Service's
/// sharers) is cut, with a marker, rather than losing the whole event. Both components' events
/// go through it.
pub fn bounded_note(message: &str) -> String {
    const LIMIT: usize = 1024;
    const MARKER: &str = " [...]";
    if message.len() <= LIMIT {
        return message.to_owned();
    }
    let mut end = LIMIT - MARKER.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARKER}", &message[..end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_note_is_cut_at_1_kb_on_a_character_boundary_with_a_marker() {
        assert_eq!(super::bounded_note("short"), "short");
        let exact = "x".repeat(1024);
        assert_eq!(super::bounded_note(&exact), exact);
        // Two-byte characters: the cut may not split one.
        let long = "é".repeat(1000);
        let cut = super::bounded_note(&long);
        assert!(cut.len() <= 1024, "{}", cut.len());
        assert!(cut.ends_with(" [...]"));
        assert!(long.starts_with(cut.trim_end_matches(" [...]")));
    }
}
