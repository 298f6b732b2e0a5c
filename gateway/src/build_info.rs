//! What this binary is: its version and the build it came from (see `build.rs`), for
//! `feria --version` and the `/healthz` body, so that an operator can tell which build
//! answers on each node.

/// The release version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit built (12 hex digits), or `unknown` outside a checkout.
pub const COMMIT: &str = env!("FERIA_BUILD_COMMIT");
/// The date of that commit (`YYYY-MM-DD`): reproducible, unlike the time of the build.
pub const COMMIT_DATE: &str = env!("FERIA_BUILD_COMMIT_DATE");
/// `rustc --version` of the compiler.
pub const RUSTC: &str = env!("FERIA_BUILD_RUSTC");
/// `debug` or `release`.
pub const PROFILE: &str = env!("FERIA_BUILD_PROFILE");
/// The target triple.
pub const TARGET: &str = env!("FERIA_BUILD_TARGET");

/// `feria --version`: the version, then one `key: value` line per fact.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("FERIA_BUILD_COMMIT"),
    " (",
    env!("FERIA_BUILD_COMMIT_DATE"),
    ")\nprofile: ",
    env!("FERIA_BUILD_PROFILE"),
    "\ntarget: ",
    env!("FERIA_BUILD_TARGET"),
    "\nrustc: ",
    env!("FERIA_BUILD_RUSTC"),
);
