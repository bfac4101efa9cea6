//! The layering the compiler does not check: the core never reaches HTTP or the config loader.
//!
//! Every module under `src/` is core except the adapters and the composition root (`api/`,
//! `config/`, `server/`, `cli.rs`, `cli/`, `main.rs`, `lib.rs`), so a module a later change
//! adds is held to the rule from its first line. A core module may not name `axum` or `hyper`,
//! nor import `crate::api` or `crate::config`; HTTP lives in `api/`, and each feature owns its
//! settings, which `config` composes.

use std::path::{Path, PathBuf};

/// What is not core: the adapters and the composition root.
const OUTSIDE_CORE: &[&str] = &[
    "api", "cli", "cli.rs", "config", "server", "main.rs", "lib.rs",
];

/// What a core module may not mention (outside comments).
const FORBIDDEN: &[&str] = &["axum", "hyper", "crate::api", "crate::config"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether `word` stands in `line` as a whole name (not inside a longer identifier).
fn names(line: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    line.match_indices(word).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(|c| ident(c) && c != '_')
    })
}

#[test]
fn core_modules_never_reach_http_or_the_config_loader() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut core = Vec::new();
    for entry in std::fs::read_dir(&src).expect("src") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if OUTSIDE_CORE.contains(&name) {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, &mut core);
        } else if name.ends_with(".rs") {
            core.push(path);
        }
    }
    assert!(core.len() > 20, "the core was found: {core:?}");
    let mut offences = Vec::new();
    for file in &core {
        let text = std::fs::read_to_string(file).expect("source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in FORBIDDEN {
                if names(code, word) {
                    offences.push(format!(
                        "{}:{}: `{word}` in `{}`",
                        file.strip_prefix(&src).unwrap_or(file).display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "core modules reach HTTP or the config loader:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_check_sees_what_it_forbids() {
    assert!(names("use axum::Router;", "axum"));
    assert!(names("use hyper_util::rt;", "hyper"));
    assert!(names("crate::config::Secret", "crate::config"));
    assert!(!names("let axumish = 1;", "axum"));
    assert!(!names("crate::configured", "crate::config"));
}
