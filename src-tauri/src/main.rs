// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // Answered before any window or display is touched: `make package` checks the
    // unpacked .deb with it, on a machine without a display.
    if std::env::args()
        .skip(1)
        .any(|a| a == "--version" || a == "-V")
    {
        println!("kaipiao-app {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    kaipiao_app::run()
}
