fn main() {
    // generate_context! embeds ../ui/dist. A plain `cargo build` on a tree where the front
    // end was never built would fail inside the macro with an unhelpful message; give it a
    // page that says what to do instead (`make ui` builds the real one).
    let dist = std::path::Path::new("../ui/dist");
    if !dist.join("index.html").exists() {
        let _ = std::fs::create_dir_all(dist);
        let _ = std::fs::write(
            dist.join("index.html"),
            "<!doctype html><meta charset=utf-8><title>Kaipiao</title>\
             <p data-placeholder>The front end was not built: run <code>make ui</code> and build again.</p>",
        );
    }
    println!("cargo:rerun-if-changed=../ui/dist");
    tauri_build::build()
}
