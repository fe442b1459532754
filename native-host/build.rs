//! Release builds for ELF targets link the gateway with `hot-text.ld`: the functions a serving
//! gateway runs (start-up, initialize, tools/list, tools/call, idle) are laid out together at the
//! front of the text, so the kernel maps about 1.4 MiB of it instead of 4.4 MiB scattered over the
//! whole text in 64–128 KiB fault-around windows (README "Lean and fast": RSS idle 8.2 → 6.2 MiB).
//!
//! The script only adds an output section before `.text` (`INSERT BEFORE`), so the default layout
//! stays. Its patterns leave the symbol hashes out, so most of them survive a dependency or
//! toolchain change, but not all: the inliner decides differently and functions get new names (a
//! build with other hashes kept 2.0 MiB of text resident instead of 1.4). A pattern that matches
//! nothing costs nothing: a stale list only loses part of the saving, `scripts/test-release.sh`
//! fails when it has lost much, and `scripts/hot-text.sh` regenerates the list.
//! Debug builds, test binaries and non-ELF targets (Windows, macOS) link as before, and so does a
//! build with `MCP_EDGE_GATEWAY_NO_HOT_TEXT=1` (scripts/size-report.sh: cargo-bloat counts the
//! crates of `.text` only, so the functions moved to `.text.hot` would be missing from its table).

fn main() {
    println!("cargo:rerun-if-changed=hot-text.ld");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MCP_EDGE_GATEWAY_NO_HOT_TEXT");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let elf = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux" || os == "android");
    let off = std::env::var_os("MCP_EDGE_GATEWAY_NO_HOT_TEXT").is_some_and(|v| v == "1");
    if release && elf && !off {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hot-text.ld");
        println!("cargo:rustc-link-arg-bin=mcp-edge-gateway=-Wl,-T,{script}");
    }
}
