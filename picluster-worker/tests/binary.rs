//! The `picluster-worker` binary as built: it starts, knows its version, and its
//! kernels pass the self-test on this CPU. The workspace's integration tests
//! (`/tests`, `binaries.rs`) run it further; this test is also what makes `cargo test
//! --workspace` build it for them.

use std::process::Command;

#[test]
fn the_binary_starts_and_its_kernels_pass_the_self_test() {
    let exe = env!("CARGO_BIN_EXE_picluster-worker");
    let out = Command::new(exe).arg("--version").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("picluster-worker {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(exe)
        .args(["selftest", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn the_binary_writes_its_completions_and_man_page() {
    let exe = env!("CARGO_BIN_EXE_picluster-worker");
    let out = Command::new(exe)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("--max-temp"));
    let dir = std::env::temp_dir().join(format!("picluster-worker-man-{}", std::process::id()));
    let out = Command::new(exe)
        .arg("manpages")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = std::fs::read_to_string(dir.join("picluster-worker.1")).unwrap();
    assert!(page.contains("max\\-temp"), "{page}");
    std::fs::remove_dir_all(&dir).unwrap();
}
