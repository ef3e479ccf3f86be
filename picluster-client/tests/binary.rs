//! The `picluster` binary as built: it starts, knows its version and shows its help.
//! The workspace's integration tests (`/tests`, `binaries.rs`) run it further; this
//! test is also what makes `cargo test --workspace` build it for them.

use std::process::Command;

#[test]
fn the_binary_starts_and_knows_its_version() {
    let exe = env!("CARGO_BIN_EXE_picluster");
    let out = Command::new(exe).arg("--version").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("picluster {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(exe).arg("--help").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("RUST_LOG"));
    // A command line that does not parse: exit 2, the reason on stderr.
    let out = Command::new(exe).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("frobnicate"));
}

#[test]
fn the_binary_writes_its_completions_and_man_pages() {
    let exe = env!("CARGO_BIN_EXE_picluster");
    for (shell, marker) in [
        ("bash", "_picluster()"),
        ("zsh", "#compdef picluster"),
        ("fish", "complete -c picluster"),
    ] {
        let out = Command::new(exe)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(marker), "{shell}: {text}");
        assert!(text.contains("submit"), "{shell}");
    }
    let dir = std::env::temp_dir().join(format!("picluster-man-{}", std::process::id()));
    let out = Command::new(exe)
        .arg("manpages")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for page in [
        "picluster.1",
        "picluster-submit.1",
        "picluster-submit-sha256d.1",
        "picluster-token-create.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(text.starts_with(".ie"), "{page} is roff");
        assert!(text.contains(".SH NAME"), "{page}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
