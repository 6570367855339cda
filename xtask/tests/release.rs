//! `cargo xtask release` on a throwaway clone of this repository.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn git(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A fresh clone of the repository's HEAD in a temporary directory.
fn throwaway_clone(name: &str) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = std::env::temp_dir().join(format!("eric-xtask-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new("git")
        .args(["clone", "-q"])
        .arg(source)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    git(
        &dir,
        &["config", "user.email", "xtask-test@example.invalid"],
    );
    git(&dir, &["config", "user.name", "xtask test"]);
    dir
}

fn xtask(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(dir)
        .args(args)
        // Keep the clone's packaging away from this workspace's target directory.
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .output()
        .expect("xtask runs")
}

#[test]
fn release_refuses_a_dirty_tree() {
    let dir = throwaway_clone("dirty");
    std::fs::write(dir.join("scratch.txt"), "not committed").unwrap();
    let out = xtask(&dir, &["release", "9.9.9"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("uncommitted changes"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn release_refuses_a_version_without_changelog_entry() {
    let dir = throwaway_clone("changelog");
    let out = xtask(&dir, &["release", "9.9.9"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CHANGELOG.md has no entry for 9.9.9"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn release_bumps_every_crate_packages_them_and_tags() {
    let dir = throwaway_clone("release");
    let changelog = std::fs::read_to_string(dir.join("CHANGELOG.md")).unwrap();
    std::fs::write(
        dir.join("CHANGELOG.md"),
        changelog.replacen("## ", "## 9.9.9\n- test release\n\n## ", 1),
    )
    .unwrap();
    git(&dir, &["commit", "-qam", "changelog for 9.9.9"]);

    let out = xtask(&dir, &["release", "9.9.9", "--no-verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("version = \"9.9.9\"\n"));
    assert!(manifest.contains("eric-core = { path = \"eric-core\", version = \"9.9.9\" }"));
    let packaged = dir.join("target/package");
    for krate in [
        "eric-core",
        "eric-sse",
        "eric-processing",
        "eric-socket",
        "eric-cli",
    ] {
        assert!(
            packaged.join(format!("{krate}-9.9.9.crate")).exists(),
            "{krate} was not packaged"
        );
    }
    let tags = git(&dir, &["tag", "--list"]);
    assert_eq!(String::from_utf8_lossy(&tags.stdout).trim(), "v9.9.9");
    assert!(
        String::from_utf8_lossy(&git(&dir, &["status", "--porcelain"]).stdout)
            .trim()
            .is_empty()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
