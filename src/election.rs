//! Per-IP owner ranking (pure).
