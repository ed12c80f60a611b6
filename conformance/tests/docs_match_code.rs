//! The numbers and names the README gives a newcomer match the code: the
//! number of conformance cases, and the domain traits a backend implements.

const README: &str = include_str!("../../README.md");
const STORE: &str = include_str!("../../core/src/store.rs");

/// The domain traits `Store` is made of, from its declaration.
fn store_traits() -> Vec<String> {
    let decl = STORE
        .split("pub trait Store:")
        .nth(1)
        .and_then(|rest| rest.split('{').next())
        .expect("core/src/store.rs declares `pub trait Store:`");
    decl.split('+')
        .map(|t| t.trim().to_string())
        .filter(|t| t.ends_with("Store"))
        .collect()
}

const NUMBERS: [&str; 11] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
];

#[test]
fn the_readme_counts_the_cases_there_are() {
    let cases = persistkit_conformance::all_cases().len();
    let said = format!("{cases} cases");
    assert!(
        README.contains(&said),
        "README.md must say how many conformance cases there are ({said})"
    );
    for n in README
        .split(" cases")
        .filter_map(|before| before.rsplit(|c: char| !c.is_ascii_digit()).next())
        .filter_map(|d| d.parse::<usize>().ok())
    {
        assert_eq!(n, cases, "README.md says {n} cases; there are {cases}");
    }
}

#[test]
fn the_readme_and_the_store_docs_name_every_domain_trait() {
    let traits = store_traits();
    assert!(traits.len() >= 6, "Store is made of {traits:?}");
    let count = NUMBERS[traits.len()];
    let said = format!("the {count} domain traits");
    for (file, text) in [("README.md", README), ("core/src/store.rs", STORE)] {
        assert!(
            text.contains(&said),
            "{file} must speak of {said:?} ({traits:?})"
        );
        for t in &traits {
            assert!(text.contains(t.as_str()), "{file} must name {t}");
        }
        for other in NUMBERS.iter().filter(|n| **n != count) {
            assert!(
                !text.contains(&format!("{other} domain traits")),
                "{file} speaks of {other} domain traits; there are {count}"
            );
        }
    }
}

/// Distinct crates `cargo tree` lists for `package` with `features`.
fn crates(package: &str, features: &[&str]) -> usize {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args([
        "tree",
        "-p",
        package,
        "-e",
        "normal,build",
        "--prefix",
        "none",
    ]);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let out = cmd.output().expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches(" (*)"))
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort_unstable();
    lines.dedup();
    lines.len()
}

/// The README's "about N crates" for `what`, within a tenth of the truth.
fn about(what: &str, said: usize, actual: usize) {
    let readme = README.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        readme.contains(&format!("about {said}")),
        "README.md must say about {said} crates for {what}"
    );
    let drift = said.abs_diff(actual) as f64 / actual as f64;
    assert!(
        drift <= 0.10,
        "README.md says about {said} crates for {what}; there are {actual}: update it"
    );
}

#[test]
fn the_readme_crate_counts_hold() {
    about(
        "the conformance kit",
        91,
        crates("persistkit-conformance", &[]),
    );
    about("the embedded check", 229, crates("persistkit-cli", &[]));
    about(
        "the check with Docker",
        315,
        crates("persistkit-cli", &["docker"]),
    );
}
