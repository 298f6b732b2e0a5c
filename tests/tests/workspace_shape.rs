//! The workspace keeps the shape docs/ARCHITECTURE.md gives it: every dependency between
//! workspace packages is one the ladder (the ```` ```ladder ```` block there) allows, and
//! only the gateway and the test kit know actix. The doc is the single source of truth:
//! changing the shape means changing the block, in the same commit, for a reviewer to see.
//!
//! Needs no server and no database: it reads the doc and `cargo metadata --no-deps`.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Packages that may depend on actix-web and other `actix-*` crates: the gateway is the
/// HTTP server, and the test kit starts it.
const ACTIX_ALLOWED: &[&str] = &["feria", "feria-testkit"];

/// Where dev-dependencies may go besides the ladder: the kit that starts the server.
const TEST_KIT: &str = "feria-testkit";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// Package name -> the workspace packages it may depend on, from the doc's ladder block.
fn ladder(doc: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut lines = doc.lines();
    lines
        .by_ref()
        .find(|line| line.trim() == "```ladder")
        .expect("docs/ARCHITECTURE.md has a ```ladder block");
    let mut ladder: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in lines {
        if line.trim() == "```" {
            return ladder;
        }
        let text = line.split('#').next().unwrap_or("");
        if text.trim().is_empty() {
            continue;
        }
        let deps = if text.starts_with(char::is_whitespace) {
            // A continuation line: more dependencies of the package above.
            text
        } else {
            let (package, deps) = text
                .split_once(':')
                .unwrap_or_else(|| panic!("ladder line without `package:`: {line:?}"));
            let package = package.trim().to_owned();
            assert!(
                !ladder.contains_key(&package),
                "{package} is listed twice in the ladder"
            );
            ladder.insert(package.clone(), BTreeSet::new());
            current = Some(package);
            deps
        };
        let package = current
            .as_ref()
            .unwrap_or_else(|| panic!("ladder continuation line before any package: {line:?}"));
        let allowed = ladder.get_mut(package).expect("inserted above");
        allowed.extend(deps.split_whitespace().map(str::to_owned));
    }
    panic!("the ```ladder block in docs/ARCHITECTURE.md is not closed");
}

fn metadata(root: &Path) -> Value {
    // Cargo tells the tests it runs where it is; a plain `cargo` from PATH otherwise.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo} metadata: {e}"));
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn workspace_dependencies_follow_the_ladder_in_architecture_md() {
    let root = workspace_root();
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md"))
        .expect("docs/ARCHITECTURE.md is readable");
    let ladder = ladder(&doc);
    let metadata = metadata(&root);
    let packages = metadata["packages"]
        .as_array()
        .expect("cargo metadata lists packages");
    // With --no-deps, `packages` holds exactly the workspace's members.
    let members: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().expect("a package has a name").to_owned())
        .collect();

    let mut problems = Vec::new();
    for member in &members {
        if !ladder.contains_key(member) {
            problems.push(format!(
                "{member} is a workspace package the ladder in docs/ARCHITECTURE.md does not list"
            ));
        }
    }
    for (package, allowed) in &ladder {
        if !members.contains(package) {
            problems.push(format!(
                "the ladder lists {package}, which is no workspace package"
            ));
        }
        for dep in allowed {
            if !ladder.contains_key(dep) {
                problems.push(format!(
                    "the ladder lets {package} depend on {dep}, which the ladder does not list"
                ));
            }
        }
    }

    for package in packages {
        let name = package["name"].as_str().expect("a package has a name");
        let no_allowance = BTreeSet::new();
        let allowed = ladder.get(name).unwrap_or(&no_allowance);
        for dep in package["dependencies"]
            .as_array()
            .expect("a package lists its dependencies")
        {
            let dep_name = dep["name"].as_str().expect("a dependency has a name");
            // null for normal dependencies, "dev" or "build".
            let kind = dep["kind"].as_str().unwrap_or("normal");
            if dep_name.starts_with("actix-") && !ACTIX_ALLOWED.contains(&name) {
                problems.push(format!(
                    "{name} -> {dep_name} ({kind}): only the gateway and the test kit may know actix"
                ));
            }
            // A package naming itself (the kernel turns on its own `testing` feature for
            // its tests) is no edge.
            if !members.contains(dep_name) || dep_name == name {
                continue;
            }
            let ok = allowed.contains(dep_name) || (kind == "dev" && dep_name == TEST_KIT);
            if !ok {
                problems.push(format!(
                    "{name} -> {dep_name} ({kind}): not allowed by the ladder in docs/ARCHITECTURE.md"
                ));
            }
        }
    }

    assert!(
        problems.is_empty(),
        "the workspace departs from docs/ARCHITECTURE.md:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_ladder_parser_reads_continuations_and_comments() {
    let doc = "text\n```ladder\n# heading\na:\nb: a # why\nc: a\n   b\n```\nmore";
    let ladder = ladder(doc);
    assert_eq!(ladder["a"], BTreeSet::new());
    assert_eq!(ladder["b"], BTreeSet::from(["a".to_owned()]));
    assert_eq!(
        ladder["c"],
        BTreeSet::from(["a".to_owned(), "b".to_owned()])
    );
}
