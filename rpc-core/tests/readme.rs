//! The README's dependency block declares every crate its examples use, with the features
//! they need, so a newcomer who copies it gets a program that compiles.

const README: &str = include_str!("../../README.md");

/// The text of every fenced block of `language` in the README.
fn blocks(language: &str) -> Vec<String> {
    let fence = format!("```{language}");
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in README.lines() {
        match &mut current {
            None if line.trim_end() == fence => current = Some(String::new()),
            Some(block) if line.trim_end() == "```" => {
                found.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    found
}

/// The `[dependencies]` line of `name` in the README's block.
fn dependency<'a>(toml: &'a str, name: &str) -> &'a str {
    toml.lines()
        .find(|line| line.split('=').next().is_some_and(|key| key.trim() == name))
        .unwrap_or_else(|| panic!("the README's dependency block lacks `{name}`:\n{toml}"))
}

#[test]
fn the_dependency_block_covers_the_quick_start() {
    let tomls = blocks("toml");
    assert_eq!(tomls.len(), 1, "one dependency block");
    let toml = &tomls[0];
    assert!(toml.starts_with("[dependencies]"), "{toml}");
    assert!(dependency(toml, "rpc-core").contains("path"));
    let tokio = dependency(toml, "tokio");
    for feature in ["macros", "rt-multi-thread"] {
        assert!(tokio.contains(feature), "tokio needs `{feature}`: {tokio}");
    }
    assert!(dependency(toml, "serde").contains("derive"));

    // Every crate the README's Rust code names is declared.
    let rust = blocks("rust").concat();
    assert!(!rust.is_empty());
    for (used, declared) in [
        ("rpc_core::", "rpc-core"),
        ("tokio::", "tokio"),
        ("serde::", "serde"),
    ] {
        if rust.contains(used) {
            dependency(toml, declared);
        }
    }
    if rust.contains("#[tokio::main]") {
        assert!(tokio.contains("macros") && tokio.contains("rt-multi-thread"));
    }
}
