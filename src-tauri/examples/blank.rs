//! The baseline of the cold-start and memory benchmarks (`benches/app.rs`): a Tauri 2
//! window with the same WebKitGTK, the same size and a one-input static page, and nothing
//! else — no engine, no IPC, no front-end framework. What kaipiao-app costs beyond it is
//! ours; what they share is the platform's.
//!
//! Built by the benchmark: `cargo build -p kaipiao-app --example blank --features bench-baseline`.

fn main() {
    tauri::Builder::default()
        .run(tauri::generate_context!("examples/blank/tauri.conf.json"))
        .unwrap_or_else(|e| {
            eprintln!("blank: {e}");
            std::process::exit(1);
        });
}
