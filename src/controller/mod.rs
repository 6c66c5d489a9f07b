//! Kubernetes edge of the allocator: reconcile, status, events, leader lease.
