//! Build information for `feria --version` and `/healthz`: the commit the binary was built
//! from, its date, and the compiler. Three strings do not justify a build-info crate
//! (vergen and built pull in libgit2 or a builder framework); `git` and `rustc` answer
//! directly, and a build outside a git checkout (a source tarball) says `unknown`.

use std::process::Command;

fn run(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    // A packager may set the commit explicitly (a build from a tarball).
    println!("cargo:rerun-if-env-changed=FERIA_BUILD_COMMIT");
    let commit = std::env::var("FERIA_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| run("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    let commit_date =
        run("git", &["log", "-1", "--format=%cs"]).unwrap_or_else(|| "unknown".to_owned());
    // Rebuild when HEAD moves: HEAD itself (a checkout), the branch refs (a commit writes
    // the branch's file) and packed-refs. Only paths that exist: cargo treats a missing one
    // as always changed, which would rebuild the server on every build. In a worktree
    // `--git-path` resolves to the worktree's own files.
    for path in ["HEAD", "refs/heads", "packed-refs"] {
        if let Some(resolved) = run("git", &["rev-parse", "--git-path", path])
            && std::path::Path::new(&resolved).exists()
        {
            println!("cargo:rerun-if-changed={resolved}");
        }
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = run(&rustc, &["--version"]).unwrap_or_else(|| "unknown".to_owned());
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".to_owned());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=FERIA_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=FERIA_BUILD_COMMIT_DATE={commit_date}");
    println!("cargo:rustc-env=FERIA_BUILD_RUSTC={rustc_version}");
    println!("cargo:rustc-env=FERIA_BUILD_PROFILE={profile}");
    println!("cargo:rustc-env=FERIA_BUILD_TARGET={target}");
}
