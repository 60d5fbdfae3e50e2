//! The layering of rpc-core's modules stays visible: a module imports a thing from the module
//! that defines it, never from the crate root's re-exports, and the proxy knows nothing of
//! naming (it is given a resolver) nor the protocol's rules of the daemon.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
    found
}

/// The lines of `path` that are code, not comments, with their numbers.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .map(|(n, line)| (n + 1, line.to_owned()))
        .collect()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `crate::` followed by an item (a capital letter or a `{` list), not a module path.
fn imports_from_the_root(line: &str) -> bool {
    line.match_indices("crate::").any(|(at, _)| {
        let rest = &line[at + "crate::".len()..];
        let preceded_by_colons = line[..at].ends_with("::");
        !preceded_by_colons
            && rest
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_uppercase() || c == '{')
    })
}

/// The code lines of `files` that `breaks` a rule, as `path:line: code`.
fn offenders(files: Vec<PathBuf>, breaks: impl Fn(&str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for path in files {
        for (n, line) in code_lines(&path) {
            if breaks(&line) {
                found.push(format!("{}:{n}: {}", path.display(), line.trim()));
            }
        }
    }
    found
}

#[test]
fn modules_import_from_the_module_that_defines_a_thing() {
    let found = offenders(sources(&src()), imports_from_the_root);
    assert!(
        found.is_empty(),
        "imports through the crate root:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_proxy_does_not_reach_into_naming_or_the_daemon() {
    let mut files = sources(&src().join("proxy"));
    files.push(src().join("proxy.rs"));
    let found = offenders(files, |line| {
        line.contains("crate::naming") || line.contains("crate::daemon")
    });
    assert!(
        found.is_empty(),
        "the proxy reaches up:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_catches_root_imports() {
    assert!(imports_from_the_root("use crate::{Config, Error};"));
    assert!(imports_from_the_root("use crate::Config;"));
    assert!(!imports_from_the_root("use crate::config::Config;"));
    assert!(!imports_from_the_root("let x = ::rpc_core::Dispatch;"));
}
