//! Maintenance tasks of the eric workspace, run as `cargo xtask <task>`.
//!
//! A plain binary with no dependencies: it shells out to cargo, git, tar and sha256sum.
//!
//! * `ci`: what CI checks: formatting, the layering (no async runtime under the
//!   runtime-free crates), licenses and bans (`cargo deny`), clippy with warnings denied,
//!   the README's test command, docs of every feature with rustdoc's warnings denied, each library
//!   crate built alone and with `--no-default-features`, and the workspace built with the
//!   toolchain of its declared `rust-version`.
//! * `release <version>`: bumps every crate's version and the versions of the
//!   inter-crate dependencies together, refuses when the tree is dirty or CHANGELOG.md has
//!   no entry for the version, packages each crate in dependency order, commits and tags.
//! * `release --dry-run [--no-verify]`: `cargo publish --dry-run` of the publishable
//!   crates together (cargo orders them by their dependencies and packages each against
//!   the ones before it, so crates not yet on crates.io are found), each built from its
//!   package unless `--no-verify`. Needs the crates.io index (network). Uploads nothing.
//! * `dist`: a release build of `eric` in a tarball, with its SHA-256 checksum.
//! * `fuzz [--seconds N] [--sanitizer address|none] [TARGET]`: runs the libFuzzer targets
//!   of `fuzz/` (all, one after another, or TARGET) for N seconds each through
//!   `cargo +nightly fuzz run` (AddressSanitizer unless `--sanitizer none`), starting
//!   from the committed corpus; new inputs go to `target/fuzz-corpus/TARGET`, crashes to
//!   `fuzz/artifacts/TARGET`. Needs a nightly toolchain and cargo-fuzz.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The publishable crates, in dependency order (each depends only on earlier ones).
const CRATES: [&str; 6] = [
    "eric-core",
    "eric-sse",
    "eric-processing",
    "eric-socket",
    "eric-redis",
    "eric-cli",
];

/// The library crates, checked alone and without default features.
const LIBRARIES: [&str; 5] = [
    "eric-core",
    "eric-sse",
    "eric-processing",
    "eric-socket",
    "eric-redis",
];

/// The README's test command, run by `ci` (keep the two in step).
const TEST_COMMAND: [&str; 2] = ["test", "--workspace"];

/// The crates whose normal dependencies include no async runtime, with the features of
/// the build that must stay runtime-free (ARCHITECTURE.md): eric-core and
/// eric-processing never need one, eric-sse only for its `http` feature.
const RUNTIME_FREE: [(&str, &[&str]); 3] = [
    ("eric-core", &["--all-features"]),
    ("eric-sse", &["--no-default-features"]),
    ("eric-processing", &["--all-features"]),
];

/// The fuzz targets of `fuzz/` (fuzz/Cargo.toml), run by `fuzz` when none is named.
const FUZZ_TARGETS: [&str; 5] = [
    "socket_command",
    "sse_parser",
    "http_head",
    "python_json",
    "access",
];

/// How long `fuzz` runs each target when `--seconds` is not given.
const DEFAULT_FUZZ_SECONDS: u64 = 60;

/// Crates that are (or start) an async runtime.
const RUNTIMES: [&str; 4] = ["tokio", "async-std", "smol", "async-executor"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["ci"] => ci(),
        ["release", version] if *version != "--dry-run" => release(version, false),
        ["release", "--dry-run"] => publish_dry_run(false),
        ["release", "--dry-run", "--no-verify"] => publish_dry_run(true),
        ["release", version, "--no-verify"] => release(version, true),
        ["dist"] => dist(),
        ["fuzz", rest @ ..] => fuzz_args(rest).and_then(fuzz),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 ci                               fmt, layering, deny, clippy, tests, docs,\n  \
                                                  each crate alone, the rust-version build\n  \
                 release <version> [--no-verify]  bump versions, package, commit and tag\n  \
                 release --dry-run [--no-verify]  cargo publish --dry-run of every crate\n  \
                 dist                             release tarball of `eric` with its SHA-256\n  \
                 fuzz [--seconds N] [--sanitizer address|none] [TARGET]\n  \
                                                  run the fuzz targets (nightly, cargo-fuzz)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

/// The root of the repository the task works on: the git top level of the current
/// directory (so tests can run the task on a throwaway copy).
fn root() -> Result<PathBuf> {
    let out = output(Command::new("git").args(["rev-parse", "--show-toplevel"]))?;
    Ok(PathBuf::from(out.trim()))
}

fn run(command: &mut Command) -> Result {
    eprintln!("$ {}", describe(command));
    let status = command
        .status()
        .map_err(|e| format!("cannot run {}: {e}", describe(command)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", describe(command)))
    }
}

fn output(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .map_err(|e| format!("cannot run {}: {e}", describe(command)))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed: {}",
            describe(command),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `command` runs and exits successfully, its output thrown away: is a tool there.
fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn cargo(root: &Path) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(root);
    command
}

fn ci() -> Result {
    let root = root()?;
    run(cargo(&root).args(["fmt", "--all", "--", "--check"]))?;
    layering(&root)?;
    deny(&root)?;
    run(cargo(&root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo(&root).args(TEST_COMMAND))?;
    // Every feature, as docs.rs builds them, and no rustdoc warning.
    run(cargo(&root)
        .args(["doc", "--workspace", "--all-features", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    for library in LIBRARIES {
        run(cargo(&root).args(["check", "-p", library]))?;
        run(cargo(&root).args(["check", "-p", library, "--no-default-features"]))?;
    }
    rust_version_build(&root)?;
    Ok(())
}

/// Checks that the runtime-free crates have no async runtime among their normal
/// dependencies.
fn layering(root: &Path) -> Result {
    for (krate, features) in RUNTIME_FREE {
        let mut tree = cargo(root);
        tree.args(["tree", "-p", krate, "-e", "normal", "--prefix", "none"])
            .args(features);
        eprintln!("$ {}", describe(&tree));
        let listing = output(&mut tree)?;
        if let Some(runtime) = runtimes_in(&listing).first() {
            return Err(format!(
                "{krate} depends on the async runtime {runtime} (`{}`); it must stay \
                 runtime-free (see ARCHITECTURE.md)",
                describe(&tree)
            ));
        }
    }
    Ok(())
}

/// The async runtimes a `cargo tree --prefix none` listing names.
fn runtimes_in(listing: &str) -> Vec<&str> {
    let mut found: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| RUNTIMES.contains(name))
        .collect();
    found.dedup();
    found
}

/// `cargo deny check licenses bans` against deny.toml: the checks that need no advisory
/// database.
fn deny(root: &Path) -> Result {
    let installed = succeeds(cargo(root).args(["deny", "--version"]));
    if !installed {
        return Err(
            "cargo-deny is missing, so the license and ban checks cannot run: \
                    install it (`cargo install --locked cargo-deny`; .ci/run installs a \
                    prebuilt one)"
                .into(),
        );
    }
    run(cargo(root).args(["deny", "--locked", "check", "licenses", "bans"]))
}

/// `cargo check --workspace` with the toolchain of the declared `rust-version`: the
/// libraries and binaries must build for anyone on that toolchain (the tests need not).
fn rust_version_build(root: &Path) -> Result {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))
        .map_err(|e| format!("cannot read Cargo.toml: {e}"))?;
    let version = declared_rust_version(&manifest)
        .ok_or("Cargo.toml declares no `rust-version` in [workspace.package]")?;
    let toolchain_present =
        succeeds(Command::new("rustup").args(["run", &version, "rustc", "--version"]));
    if !toolchain_present {
        return Err(format!(
            "the toolchain of the declared rust-version {version} is missing, so the \
             workspace cannot be checked with it: install it \
             (`rustup toolchain install {version} --profile minimal`; .ci/run does)"
        ));
    }
    // The outer cargo's variables would point the inner one at the newer toolchain.
    let mut check = Command::new("rustup");
    check
        .current_dir(root)
        .args(["run", &version, "cargo", "check", "--workspace", "--locked"])
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("RUSTUP_TOOLCHAIN");
    run(&mut check)
}

/// The `rust-version` of `[workspace.package]` in the root Cargo.toml.
fn declared_rust_version(manifest: &str) -> Option<String> {
    let mut section = "";
    for line in manifest.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed;
            continue;
        }
        if section != "[workspace.package]" {
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            continue;
        };
        if key.trim() == "rust-version" {
            return Some(value.trim().trim_matches('"').to_owned());
        }
    }
    None
}

fn git_is_clean(root: &Path) -> Result<bool> {
    Ok(output(
        Command::new("git")
            .current_dir(root)
            .args(["status", "--porcelain"]),
    )?
    .trim()
    .is_empty())
}

/// Whether CHANGELOG.md has a heading for `version` (`## 1.2.3` or `## [1.2.3]`).
fn changelog_has(root: &Path, version: &str) -> Result<bool> {
    let changelog = std::fs::read_to_string(root.join("CHANGELOG.md"))
        .map_err(|e| format!("cannot read CHANGELOG.md: {e}"))?;
    Ok(changelog.lines().any(|line| {
        let Some(heading) = line.strip_prefix("## ") else {
            return false;
        };
        let first = heading.split_whitespace().next().unwrap_or("");
        first == version || first == format!("[{version}]") || first == format!("v{version}")
    }))
}

fn is_version(text: &str) -> bool {
    let core = text.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// Rewrites the root Cargo.toml: `[workspace.package] version` and the `version = "..."`
/// of every inter-crate entry of `[workspace.dependencies]`.
fn bump_manifest(manifest: &str, version: &str) -> String {
    let mut section = String::new();
    let mut out = String::with_capacity(manifest.len());
    for line in manifest.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            section = trimmed.to_owned();
        }
        let replaced = if section == "[workspace.package]" && trimmed.starts_with("version") {
            format!("version = \"{version}\"")
        } else if section == "[workspace.dependencies]"
            && CRATES.iter().any(|c| trimmed.starts_with(&format!("{c} ")))
            && trimmed.contains("path =")
        {
            replace_version_value(line, version)
        } else {
            line.to_owned()
        };
        out.push_str(&replaced);
        out.push('\n');
    }
    out
}

fn replace_version_value(line: &str, version: &str) -> String {
    let Some(start) = line.find("version = \"") else {
        return line.to_owned();
    };
    let value_start = start + "version = \"".len();
    let Some(len) = line[value_start..].find('"') else {
        return line.to_owned();
    };
    format!(
        "{}{}{}",
        &line[..value_start],
        version,
        &line[value_start + len..]
    )
}

fn release(version: &str, no_verify: bool) -> Result {
    let root = root()?;
    if !is_version(version) {
        return Err(format!("{version:?} is not a version like 1.2.3"));
    }
    if !git_is_clean(&root)? {
        return Err("the working tree has uncommitted changes: commit or stash them first".into());
    }
    if !changelog_has(&root, version)? {
        return Err(format!(
            "CHANGELOG.md has no entry for {version}: add a `## {version}` section first"
        ));
    }
    let manifest_path = root.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path).map_err(|e| e.to_string())?;
    std::fs::write(&manifest_path, bump_manifest(&manifest, version)).map_err(|e| e.to_string())?;
    // Refresh Cargo.lock with the new versions.
    run(cargo(&root)
        .args(["metadata", "--format-version", "1", "--offline"])
        .stdout(std::process::Stdio::null()))
    .or_else(|_| {
        run(cargo(&root)
            .args(["metadata", "--format-version", "1"])
            .stdout(std::process::Stdio::null()))
    })?;
    // One packaging run in dependency order: cargo stages each crate for the next.
    let mut package = cargo(&root);
    package.args(["package", "--allow-dirty"]);
    for krate in CRATES {
        package.args(["-p", krate]);
    }
    if no_verify {
        package.arg("--no-verify");
    }
    run(&mut package)?;
    run(Command::new("git").current_dir(&root).args([
        "commit",
        "-q",
        "-am",
        &format!("Release {version}"),
    ]))?;
    run(Command::new("git").current_dir(&root).args([
        "tag",
        "-a",
        &format!("v{version}"),
        "-m",
        &format!("eric {version}"),
    ]))?;
    eprintln!("released {version}: commit and tag v{version} made; push them when ready");
    Ok(())
}

/// `cargo publish --dry-run` of [`CRATES`], in one run: cargo sorts them by their
/// dependencies and checks each against the packages of the ones before it.
fn publish_dry_run(no_verify: bool) -> Result {
    let root = root()?;
    let mut publish = cargo(&root);
    publish.args(["publish", "--dry-run", "--allow-dirty"]);
    for krate in CRATES {
        publish.args(["-p", krate]);
    }
    if no_verify {
        publish.arg("--no-verify");
    }
    run(&mut publish)?;
    eprintln!("dry run done: {} crates would publish", CRATES.len());
    Ok(())
}

fn dist() -> Result {
    let root = root()?;
    run(cargo(&root).args(["build", "--release", "-p", "eric-cli"]))?;
    let version = output(Command::new(root.join("target/release/eric")).arg("--version"))?;
    let version = version
        .split_whitespace()
        .last()
        .unwrap_or("unknown")
        .to_owned();
    let target = output(Command::new("rustc").arg("-vV"))?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    let name = format!("eric-{version}-{target}");
    let dist = root.join("target/dist");
    let staging = dist.join(&name);
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
    for (from, to) in [
        ("target/release/eric", "eric"),
        ("README.md", "README.md"),
        ("CHANGELOG.md", "CHANGELOG.md"),
    ] {
        std::fs::copy(root.join(from), staging.join(to))
            .map_err(|e| format!("copying {from}: {e}"))?;
    }
    let tarball = format!("{name}.tar.gz");
    run(Command::new("tar")
        .current_dir(&dist)
        .args(["czf", &tarball, &name]))?;
    let sum = output(Command::new("sha256sum").current_dir(&dist).arg(&tarball))?;
    std::fs::write(dist.join(format!("{tarball}.sha256")), &sum).map_err(|e| e.to_string())?;
    std::fs::remove_dir_all(&staging).map_err(|e| e.to_string())?;
    eprintln!("{}", dist.join(&tarball).display());
    print!("{sum}");
    Ok(())
}

/// The sanitizers `fuzz --sanitizer` takes: cargo-fuzz's default, and none (eric's
/// crates have no unsafe code but a cache prefetch, which reads nothing, and without
/// it a target runs several times faster).
const FUZZ_SANITIZERS: [&str; 2] = ["address", "none"];

/// What `fuzz [--seconds N] [--sanitizer S] [TARGET]` asked for.
#[derive(Debug, PartialEq)]
struct FuzzArgs {
    /// How long each target runs.
    seconds: u64,
    /// The sanitizer the targets are built with.
    sanitizer: &'static str,
    /// The targets, in the order they run.
    targets: Vec<&'static str>,
}

/// Reads the arguments of `fuzz`.
fn fuzz_args(args: &[&str]) -> Result<FuzzArgs> {
    let mut seconds = DEFAULT_FUZZ_SECONDS;
    let mut sanitizer = FUZZ_SANITIZERS[0];
    let mut targets: Vec<&'static str> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if *arg == "--sanitizer" {
            let value = args.next().ok_or("--sanitizer needs address or none")?;
            sanitizer = FUZZ_SANITIZERS
                .iter()
                .find(|s| *s == value)
                .ok_or_else(|| format!("--sanitizer {value}: expected address or none"))?;
        } else if *arg == "--seconds" {
            let value = args.next().ok_or("--seconds needs a number")?;
            seconds = value
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("--seconds {value}: not a positive number"))?;
        } else if let Some(target) = FUZZ_TARGETS.iter().find(|t| *t == arg) {
            targets.push(target);
        } else {
            return Err(format!(
                "{arg:?} is no fuzz target: expected one of {}",
                FUZZ_TARGETS.join(", ")
            ));
        }
    }
    if targets.is_empty() {
        targets = FUZZ_TARGETS.to_vec();
    }
    Ok(FuzzArgs {
        seconds,
        sanitizer,
        targets,
    })
}

/// Runs each target for its seconds with `cargo +nightly fuzz run`.
fn fuzz(args: FuzzArgs) -> Result {
    let root = root()?;
    // Through rustup's `cargo`, so that `+nightly` picks the toolchain; the outer
    // cargo's variables would pin the inner one to the stable toolchain.
    let nightly_cargo = || {
        let mut command = Command::new("cargo");
        command
            .current_dir(&root)
            .arg("+nightly")
            .env_remove("CARGO")
            .env_remove("RUSTC")
            .env_remove("RUSTDOC")
            .env_remove("RUSTUP_TOOLCHAIN");
        command
    };
    let installed = succeeds(nightly_cargo().args(["fuzz", "--version"]));
    if !installed {
        return Err(
            "`cargo +nightly fuzz` does not run: install a nightly toolchain \
                    (`rustup toolchain install nightly`) and cargo-fuzz \
                    (`cargo install cargo-fuzz`)"
                .into(),
        );
    }
    for target in args.targets {
        let work = root.join("target/fuzz-corpus").join(target);
        std::fs::create_dir_all(&work)
            .map_err(|e| format!("cannot create {}: {e}", work.display()))?;
        let seeds = root.join("fuzz/corpus").join(target);
        run(nightly_cargo()
            .args(["fuzz", "run", "--sanitizer", args.sanitizer, target])
            .arg(&work)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={}", args.seconds))
            .arg("-print_final_stats=1"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bump_rewrites_the_workspace_version_and_inter_crate_entries_only() {
        let manifest = "[workspace.package]\nversion = \"0.1.0\"\n\n[workspace.dependencies]\n\
                        eric-core = { path = \"eric-core\", version = \"0.1.0\" }\n\
                        serde = { version = \"1\" }\n";
        let bumped = bump_manifest(manifest, "0.2.0");
        assert!(bumped.contains("version = \"0.2.0\"\n\n"));
        assert!(bumped.contains("eric-core = { path = \"eric-core\", version = \"0.2.0\" }"));
        assert!(bumped.contains("serde = { version = \"1\" }"));
    }

    #[test]
    fn the_declared_rust_version_is_read_from_the_workspace_package_only() {
        let manifest = "[package]\nrust-version = \"1.60\"\n\n[workspace.package]\n\
                        version = \"0.1.0\"\nrust-version = \"1.85\"\n";
        assert_eq!(declared_rust_version(manifest).as_deref(), Some("1.85"));
        assert_eq!(
            declared_rust_version("[workspace.package]\nversion = \"1\"\n"),
            None
        );
    }

    #[test]
    fn runtimes_are_found_by_crate_name_only() {
        let listing = "eric-core v0.1.0 (/src/eric-core)\nparking_lot v0.12.5\n\
                       tokio-like v1.0.0\nserde v1.0.0\n";
        assert!(runtimes_in(listing).is_empty());
        let listing = "eric-sse v0.1.0 (/src/eric-sse)\ntokio v1.54.1\nbytes v1.0.0\n\
                       tokio v1.54.1 (*)\n";
        assert_eq!(runtimes_in(listing), ["tokio"]);
    }

    #[test]
    fn fuzz_runs_every_target_for_a_minute_unless_told_otherwise() {
        let plan = |seconds, sanitizer, targets| FuzzArgs {
            seconds,
            sanitizer,
            targets,
        };
        assert_eq!(
            fuzz_args(&[]),
            Ok(plan(60, "address", FUZZ_TARGETS.to_vec()))
        );
        assert_eq!(
            fuzz_args(&["--seconds", "600", "http_head"]),
            Ok(plan(600, "address", vec!["http_head"]))
        );
        assert_eq!(
            fuzz_args(&["sse_parser", "--sanitizer", "none", "--seconds", "5"]),
            Ok(plan(5, "none", vec!["sse_parser"]))
        );
        assert!(fuzz_args(&["--sanitizer", "memory"]).is_err());
        assert!(fuzz_args(&["--sanitizer"]).is_err());
        assert!(fuzz_args(&["--seconds"]).is_err());
        assert!(fuzz_args(&["--seconds", "0"]).is_err());
        assert!(fuzz_args(&["--seconds", "ten"]).is_err());
        assert!(fuzz_args(&["jwt"]).is_err());
    }

    #[test]
    fn fuzz_targets_are_those_of_the_fuzz_manifest() {
        let manifest = include_str!("../../fuzz/Cargo.toml");
        let declared: Vec<&str> = manifest
            .lines()
            .filter_map(|line| line.strip_prefix("name = \""))
            .filter_map(|rest| rest.strip_suffix('"'))
            .filter(|name| *name != "eric-fuzz")
            .collect();
        assert_eq!(declared, FUZZ_TARGETS);
    }

    /// The manifests of the workspace members, by path.
    fn member_manifests() -> Vec<(String, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let members = workspace
            .lines()
            .find_map(|line| line.strip_prefix("members = "))
            .expect("a one-line members list");
        members
            .split('"')
            .skip(1)
            .step_by(2)
            .map(|member| {
                let manifest = std::fs::read_to_string(root.join(member).join("Cargo.toml"));
                (member.to_owned(), manifest.unwrap())
            })
            .collect()
    }

    #[test]
    fn the_crates_released_are_the_members_that_may_be_published() {
        let publishable: Vec<String> = member_manifests()
            .into_iter()
            .filter(|(_, manifest)| !manifest.lines().any(|l| l.trim() == "publish = false"))
            .map(|(member, _)| member)
            .collect();
        let mut released: Vec<String> = CRATES.iter().map(|c| (*c).to_owned()).collect();
        released.sort();
        let mut publishable = publishable;
        publishable.sort();
        assert_eq!(released, publishable);
    }

    #[test]
    fn every_published_crate_has_what_crates_io_and_docs_rs_show() {
        for (member, manifest) in member_manifests() {
            if !CRATES.contains(&member.as_str()) {
                continue;
            }
            for needed in [
                "description = ",
                "readme = ",
                "keywords = ",
                "categories = ",
                "license.workspace = true",
                "repository.workspace = true",
                "[package.metadata.docs.rs]",
                "all-features = true",
            ] {
                assert!(
                    manifest.lines().any(|l| l.starts_with(needed)),
                    "{member}/Cargo.toml has no `{needed}`"
                );
            }
        }
    }

    #[test]
    fn versions_must_have_three_numeric_parts() {
        assert!(is_version("1.2.3"));
        assert!(is_version("0.2.0-rc.1"));
        assert!(!is_version("1.2"));
        assert!(!is_version("v1.2.3"));
    }
}
