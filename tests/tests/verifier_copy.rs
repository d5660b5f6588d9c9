//! The repository carries a verbatim copy of the independent verifier
//! (`tools/verify_export.py`) so a clone without `shared/` beside it can run it. The copy
//! must never drift from the shared original.

use kaipiao_tests::workspace_dir;

#[test]
fn vendored_verifier_is_a_verbatim_copy_of_the_shared_one() {
    let ws = workspace_dir();
    let copy = std::fs::read(ws.join("tools/verify_export.py"))
        .expect("tools/verify_export.py is part of the repository");
    for shared in [
        ws.join("../shared/tools/verify_export.py"),
        std::path::PathBuf::from("/work/shared/tools/verify_export.py"),
    ] {
        if let Ok(original) = std::fs::read(&shared) {
            assert!(
                copy == original,
                "tools/verify_export.py differs from {}: copy it again",
                shared.display()
            );
        }
    }
}
