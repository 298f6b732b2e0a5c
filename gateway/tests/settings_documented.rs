//! The README's configuration table is the one list of settings (the config file's keys,
//! the flags and the environment variables): every setting the binary accepts has a row
//! naming its variable and flag, and every row names a setting that exists.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use clap::CommandFactory;

/// Variables read outside the flag parser: the log filter (tracing's `EnvFilter`).
const ENV_ONLY: &[&str] = &["RUST_LOG"];

/// The rows of the README's `## Configuration` table: variable → flag (empty for none).
fn documented() -> BTreeMap<String, String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("a `## Configuration` section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    let backticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').collect();
        let variables = backticked(cells[1]);
        let flags = backticked(cells[2]);
        assert!(
            flags.is_empty() || flags.len() == variables.len(),
            "a row names as many flags as variables: {line}"
        );
        for (i, variable) in variables.into_iter().enumerate() {
            let flag = flags.get(i).cloned().unwrap_or_default();
            assert!(
                rows.insert(variable.clone(), flag).is_none(),
                "{variable} has two rows"
            );
        }
    }
    rows
}

#[test]
fn every_setting_has_a_row_and_every_row_a_setting() {
    let documented = documented();
    let command = feria::Cli::command();
    let mut accepted = BTreeMap::new();
    for arg in command.get_arguments().filter(|a| a.is_global_set()) {
        let long = arg.get_long().expect("settings are long flags");
        let env = arg
            .get_env()
            .unwrap_or_else(|| panic!("--{long} has an environment variable"))
            .to_string_lossy()
            .into_owned();
        accepted.insert(env, format!("--{long}"));
    }
    for (env, flag) in &accepted {
        match documented.get(env) {
            Some(row_flag) => assert_eq!(row_flag, flag, "the README's flag for {env}"),
            None => panic!("{env} ({flag}) has no row in the README's configuration table"),
        }
    }
    for (env, flag) in &documented {
        if ENV_ONLY.contains(&env.as_str()) {
            assert!(flag.is_empty(), "{env} is read from the environment only");
            continue;
        }
        assert!(
            accepted.contains_key(env),
            "the README documents {env}, which feria does not accept"
        );
    }
}
