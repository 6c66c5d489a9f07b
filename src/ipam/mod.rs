//! Address pools, address sets, the allocator and IP sharing rules (pure, no Kubernetes types).
