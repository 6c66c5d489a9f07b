//! MetalLB legacy ConfigMap schema, parsing and validation (pure).
