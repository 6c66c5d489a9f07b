//! Kubernetes/static edge of the speaker: cluster view, ownership changes.
