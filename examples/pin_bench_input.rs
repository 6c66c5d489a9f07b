//! Writes the `ferrolb plan` inputs of the pinning benchmark (BENCHMARKS.md, "Pinned pools"):
//!
//! ```text
//! cargo run --release --example pin_bench_input -- DIR [SERVICES]
//! ```
//!
//! In DIR: `pinned.yaml` (100 IPAddressPools, the 50 even ones pinned, an L2Advertisement and
//! 200 labelled Namespaces), `unpinned.yaml` (the same without the pins), `legacy.yaml` (the
//! unpinned pools as a legacy ConfigMap config) and `services.yaml` (SERVICES LoadBalancer
//! Services, default 20000). The workload is defined in `benches/support/pin_model.rs`.

#[path = "../benches/support/pin_model.rs"]
mod pin_model;

use std::path::PathBuf;

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .context("usage: pin_bench_input DIR [SERVICES]")?,
    );
    let services: usize = match args.next() {
        Some(n) => n
            .parse()
            .with_context(|| format!("SERVICES {n:?} is not a count"))?,
        None => 20_000,
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let files = [
        ("pinned.yaml", pin_model::crd_yaml(&pin_model::pools(true))),
        (
            "unpinned.yaml",
            pin_model::crd_yaml(&pin_model::pools(false)),
        ),
        ("legacy.yaml", pin_model::legacy_yaml()),
        ("services.yaml", pin_model::services_yaml(services)),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}
