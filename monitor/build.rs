//! Builds the XDP object (`monitor-ebpf`) with aya-build and nightly, so the agent embeds it.
//! `cargo xtask setup` installs bpf-linker under the l2watch tool directory; that directory is
//! put on PATH here so a plain `cargo build` works after setup too.
use std::{env, path::PathBuf};

use anyhow::{anyhow, Context as _};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=L2WATCH_TOOLS_DIR");
    println!("cargo:rerun-if-env-changed=L2WATCH_NO_EBPF");
    // The fuzz build (decoders only, never loads a program) leaves the XDP objects out: they
    // are empty, and loading one is an error that says so.
    if env::var_os("L2WATCH_NO_EBPF").is_some_and(|v| v == "1") {
        let out = PathBuf::from(env::var("OUT_DIR")?);
        for name in ["monitor", "baseline", "storm"] {
            std::fs::write(out.join(name), [])?;
        }
        return Ok(());
    }
    let tools = tools_dir();
    let bin = tools.join("bin");
    let path = env::var_os("PATH").unwrap_or_default();
    let mut paths: Vec<PathBuf> = vec![bin.clone()];
    paths.extend(env::split_paths(&path));
    // SAFETY: build scripts are single-threaded at this point.
    unsafe { env::set_var("PATH", env::join_paths(paths)?) };
    if !bin.join("bpf-linker").exists() && which_in_path("bpf-linker").is_none() {
        return Err(anyhow!(
            "bpf-linker not found in {} or PATH: run `cargo xtask setup` first",
            bin.display()
        ));
    }
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir
        .parent()
        .context("monitor/ has no parent")?
        .join("monitor-ebpf");
    let root_dir = ebpf_dir.to_str().context("non-UTF-8 path")?;
    println!("cargo:rerun-if-changed=../monitor-common/src");
    aya_build::build_ebpf(
        [Package {
            name: "monitor-ebpf",
            root_dir,
            ..Default::default()
        }],
        Toolchain::Nightly,
    )
}

/// Where `cargo xtask setup` keeps bpf-linker; must match xtask's `tools_dir`.
fn tools_dir() -> PathBuf {
    if let Some(dir) = env::var_os("L2WATCH_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    let cache = env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    cache.join("l2watch-tools")
}

fn which_in_path(name: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|p| p.join(name))
        .find(|p| p.exists())
}
