// One cfg alias for the browser build, used only at the leaves (src/web): the protocol and engine
// modules never look at the target.
fn main() {
    cfg_aliases::cfg_aliases! {
        wasm_browser: { all(target_family = "wasm", target_os = "unknown") },
    }
}
