//! The provider boundary, enforced on the source: only the storage
//! backends name their database crate or hold SQL text; everything else
//! (the engine, the API, the CLI, the tests) goes through the
//! `cairn::store::Provider` trait or a backend's own fixture methods.

use std::path::{Path, PathBuf};

/// Folders whose files may use a database crate and SQL.
const BACKENDS: &[&str] = &["host/src/store/sqlite", "host/src/store/postgres"];

/// Database crates, named as a path or a dependency.
const DB_CRATES: &[&str] = &["rusqlite", "tokio_postgres", "deadpool_postgres", "sqlx"];

/// SQL as it appears in code: statements inside string literals.
const SQL: &[&str] = &[
    "SELECT ",
    "INSERT INTO",
    "DELETE FROM",
    "UPDATE instances",
    "UPDATE work_items",
    "CREATE TABLE",
    "PRAGMA ",
    "BEGIN IMMEDIATE",
    "FOR UPDATE",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// String literals of a Rust source (plain and raw), roughly: enough to
/// find SQL text without tripping on comments that mention a keyword.
fn literals(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        // Skip line comments.
        if bytes[i] == '/' && bytes.get(i + 1) == Some(&'/') {
            while i < bytes.len() && bytes[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if bytes[i] == '\'' {
            // A char literal like '"' must not open a string.
            if bytes.get(i + 2) == Some(&'\'') {
                i += 3;
                continue;
            }
            if bytes.get(i + 1) == Some(&'\\') && bytes.get(i + 3) == Some(&'\'') {
                i += 4;
                continue;
            }
        }
        if bytes[i] == '"' {
            let mut lit = String::new();
            i += 1;
            while i < bytes.len() && bytes[i] != '"' {
                if bytes[i] == '\\' {
                    i += 1;
                }
                if i < bytes.len() {
                    lit.push(bytes[i]);
                }
                i += 1;
            }
            out.push(lit);
        }
        i += 1;
    }
    out
}

#[test]
fn only_backends_name_a_database_crate_or_hold_sql() {
    let root = root();
    let mut files = Vec::new();
    rust_files(&root.join("host/src"), &mut files);
    rust_files(&root.join("tests"), &mut files);
    let this = Path::new(file!()).file_name().unwrap().to_owned();
    let mut checked = 0;
    let mut offences = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
        if BACKENDS.iter().any(|b| rel.starts_with(b)) || file.file_name() == Some(this.as_os_str()) {
            continue;
        }
        checked += 1;
        let src = std::fs::read_to_string(&file).unwrap();
        for (n, line) in src.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for krate in DB_CRATES {
                if code.contains(&format!("{krate}::")) || code.contains(&format!("use {krate}")) {
                    offences.push(format!("{rel}:{}: names {krate}", n + 1));
                }
            }
        }
        for lit in literals(&src) {
            for sql in SQL {
                if lit.contains(sql) {
                    offences.push(format!(
                        "{rel}: SQL text {:?}",
                        lit.chars().take(60).collect::<String>()
                    ));
                }
            }
        }
    }
    assert!(checked > 40, "the scan found only {checked} files");
    // The detectors work: they find the SQLite backend's SQL.
    let backend = std::fs::read_to_string(root.join("host/src/store/sqlite/ops.rs")).unwrap();
    assert!(literals(&backend).iter().any(|l| SQL.iter().any(|s| l.contains(s))));
    assert!(backend.contains("rusqlite::"));
    assert!(
        offences.is_empty(),
        "outside the storage backends:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_decision_core_and_replay_are_pure() {
    let root = root();
    for dir in ["host/src/decide", "host/src/replay", "host/src/history"] {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files);
        assert!(!files.is_empty(), "{dir}");
        for file in files {
            let src = std::fs::read_to_string(&file).unwrap();
            for forbidden in [
                "tokio::",
                "wasmtime",
                "rusqlite",
                "hyper",
                "crate::engine",
                "crate::sandbox",
                "crate::clock",
                "std::fs",
                "random_hex",
            ] {
                assert!(
                    !src.lines()
                        .any(|l| l.split("//").next().unwrap_or("").contains(forbidden)),
                    "{} uses {forbidden}",
                    file.display()
                );
            }
        }
    }
}
