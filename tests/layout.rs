//! The layout the project keeps (README, "Layout"): no import circles
//! between the files of a crate, no source file past about 700 lines in
//! core, backends and layers, and the same module names in both SQL
//! backends.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under `src/`: `records/index.rs` is
/// `["records", "index"]`, `records/mod.rs` and `lib.rs` their folder's.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_string());
    }
    parts
}

/// The paths a file names: `crate::a::b`, `super::a` and `self::a`
/// (resolved against `module`), one per `use` tree leaf or inline path.
fn named_paths(text: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // Drop comments and string literals crudely: only code lines count.
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &code[i..];
        let (base, skip): (Vec<String>, usize) = if rest.starts_with("crate::") {
            (Vec::new(), "crate::".len())
        } else if rest.starts_with("super::") {
            let mut m = module.to_vec();
            m.pop();
            (m, "super::".len())
        } else if rest.starts_with("self::") {
            (module.to_vec(), "self::".len())
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let prev = if i == 0 { b' ' } else { bytes[i - 1] };
        if prev.is_ascii_alphanumeric() || prev == b'_' || prev == b':' {
            i += skip;
            continue;
        }
        let mut path = base;
        let mut j = i + skip;
        // Segments until something that is not `ident::`.
        loop {
            let seg: String = code[j..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if seg.is_empty() {
                // A `{` group: every leaf's first segment.
                if code[j..].starts_with('{') {
                    let end = j + code[j..].find('}').unwrap_or(0);
                    for leaf in code[j + 1..end].split(',') {
                        let first: String = leaf
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !first.is_empty() && first != "self" {
                            let mut p = path.clone();
                            p.push(first);
                            out.push(p);
                        }
                    }
                    out.push(path.clone());
                }
                break;
            }
            path.push(seg.clone());
            j += seg.len();
            if code[j..].starts_with("::") {
                j += 2;
            } else {
                break;
            }
        }
        if !path.is_empty() {
            out.push(path);
        }
        i = j.max(i + 1);
    }
    out
}

/// Import edges between the files of one crate, and the circles in them.
fn circles(src: &Path) -> Vec<Vec<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_of(src, f), f.clone()))
        .collect();
    let name = |m: &Vec<String>| {
        modules[m]
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &modules {
        let text = fs::read_to_string(file).unwrap();
        let from = name(module);
        for path in named_paths(&text, module) {
            // The deepest module the path names.
            let mut target = None;
            for n in (0..=path.len()).rev() {
                if modules.contains_key(&path[..n]) {
                    target = Some(path[..n].to_vec());
                    break;
                }
            }
            let Some(t) = target else { continue };
            // A module naming its own children (re-exports, `mod x`) or
            // itself is structure, not an import.
            if t == *module || (t.len() > module.len() && t[..module.len()] == module[..]) {
                continue;
            }
            // The crate root only declares and re-exports.
            if t.is_empty() {
                continue;
            }
            edges.entry(from.clone()).or_default().insert(name(&t));
        }
    }
    // Every circle, found from each node by depth-first search.
    let mut found: BTreeSet<Vec<String>> = BTreeSet::new();
    fn walk(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        found: &mut BTreeSet<Vec<String>>,
    ) {
        if let Some(at) = stack.iter().position(|s| s == node) {
            let mut c = stack[at..].to_vec();
            let min = c.iter().enumerate().min_by_key(|(_, s)| *s).unwrap().0;
            c.rotate_left(min);
            found.insert(c);
            return;
        }
        if stack.len() > 12 {
            return;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            walk(next, edges, stack, found);
        }
        stack.pop();
    }
    for node in edges.keys() {
        walk(node, &edges, &mut Vec::new(), &mut found);
    }
    found.into_iter().collect()
}

#[test]
fn no_import_circles_in_any_crate() {
    let crates = [
        "core/src",
        "backends/memory/src",
        "backends/sqlite/src",
        "backends/postgres/src",
        "layers/cache/src",
        "layers/group-commit/src",
        "layers/observe/src",
        "layers/recorder/src",
        "conformance/src",
        "cli/src",
        "src",
    ];
    let mut all = Vec::new();
    for c in crates {
        for circle in circles(&root().join(c)) {
            all.push(format!("{c}: {}", circle.join(" -> ")));
        }
    }
    assert!(all.is_empty(), "import circles:\n{}", all.join("\n"));
}

#[test]
fn the_checker_sees_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    fs::write(src.join("a.rs"), "use crate::b::B;\npub struct A;\n").unwrap();
    fs::write(src.join("b.rs"), "pub struct B(crate::a::A);\n").unwrap();
    assert_eq!(circles(src), vec![vec!["a.rs".to_string(), "b.rs".into()]]);
    fs::write(src.join("b.rs"), "pub struct B;\n").unwrap();
    assert!(circles(src).is_empty());
}

#[test]
fn no_source_file_past_about_700_lines() {
    let mut long = Vec::new();
    for dir in ["core/src", "backends", "layers"] {
        let mut files = Vec::new();
        rust_files(&root().join(dir), &mut files);
        for f in files {
            let n = fs::read_to_string(&f).unwrap().lines().count();
            if n > 750 {
                long.push(format!("{} ({n} lines)", f.display()));
            }
        }
    }
    assert!(long.is_empty(), "files past about 700 lines: {long:?}");
}

#[test]
fn both_sql_backends_have_the_same_modules() {
    let names = |b: &str| -> BTreeSet<String> {
        let mut files = Vec::new();
        rust_files(&root().join("backends").join(b).join("src"), &mut files);
        files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            // SQLite keeps its own small pool and its plan tests.
            .filter(|n| n != "pool.rs" && n != "plans.rs")
            .collect()
    };
    assert_eq!(names("sqlite"), names("postgres"));
    for domain in [
        "store.rs",
        "metrics.rs",
        "events.rs",
        "idempotency.rs",
        "records.rs",
        "batch.rs",
        "admin.rs",
    ] {
        assert!(names("memory").contains(domain), "memory has {domain} too");
    }
}
