//! `cargo xtask tidy`: checks that workspace crates only depend on the siblings `ARCHITECTURE.md` allows.
//!
//! The allowed edges are written once, in `ARCHITECTURE.md`, inside a fenced code block between
//! [`START_MARKER`] and [`END_MARKER`]; one line per crate:
//!
//! ```text
//! ppo-sched ->
//! ppo-core -> ppo-models, ppo-sched
//! ```
//!
//! The actual edges come from `cargo metadata --format-version 1 --no-deps`: normal and build
//! dependencies on other workspace members (dev-dependencies are not part of the layering).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;

/// A crate name mapped to the set of workspace crates it depends on (or may depend on).
pub type Edges = BTreeMap<String, BTreeSet<String>>;

/// Marker line opening the allowed-edges table in `ARCHITECTURE.md`.
pub const START_MARKER: &str = "<!-- allowed-edges:start -->";
/// Marker line closing the allowed-edges table in `ARCHITECTURE.md`.
pub const END_MARKER: &str = "<!-- allowed-edges:end -->";
/// File (relative to the workspace root) holding the allowed-edges table.
pub const ARCHITECTURE_FILE: &str = "ARCHITECTURE.md";
/// Workspace members that need not appear in the table.
pub const EXEMPT: &[&str] = &["xtask"];

/// What a successful check looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TidySummary {
    /// Number of workspace members checked (exempt crates not counted).
    pub crates: usize,
    /// Number of intra-workspace dependency edges found.
    pub edges: usize,
}

/// Parses the allowed-edges table out of the text of `ARCHITECTURE.md`.
///
/// Blank lines and lines starting with `#` inside the code block are ignored. Errors name the
/// offending line (1-based, counted in the whole document) for malformed lines, duplicate crates,
/// self-edges, missing markers or a missing/unclosed code block.
pub fn parse_allowed_edges(doc: &str) -> Result<Edges> {
    let lines: Vec<&str> = doc.lines().collect();
    let marker_lines = |marker: &str| -> Vec<usize> {
        (0..lines.len())
            .filter(|&i| lines[i].trim() == marker)
            .collect()
    };
    let starts = marker_lines(START_MARKER);
    let ends = marker_lines(END_MARKER);
    let start = match starts.as_slice() {
        [] => bail!("marker `{START_MARKER}` not found"),
        [one] => *one,
        [_, second, ..] => bail!("line {}: second `{START_MARKER}` marker", second + 1),
    };
    let end = match ends.as_slice() {
        [] => bail!("marker `{END_MARKER}` not found"),
        [one] => *one,
        [_, second, ..] => bail!("line {}: second `{END_MARKER}` marker", second + 1),
    };
    ensure!(
        end > start,
        "line {}: `{END_MARKER}` comes before `{START_MARKER}` (line {})",
        end + 1,
        start + 1
    );

    let mut table = Edges::new();
    let mut defined_at: BTreeMap<String, usize> = BTreeMap::new();
    let mut open_fence: Option<usize> = None;
    let mut fence_done = false;
    for (idx, raw) in lines.iter().enumerate().take(end).skip(start + 1) {
        let lineno = idx + 1;
        let line = raw.trim();
        if line.starts_with("```") || line.starts_with("~~~") {
            match open_fence {
                None if fence_done => {
                    bail!("line {lineno}: a second code block between the allowed-edges markers")
                }
                None => open_fence = Some(lineno),
                Some(_) => {
                    open_fence = None;
                    fence_done = true;
                }
            }
            continue;
        }
        // Prose between the markers but outside the code block is allowed and ignored.
        if open_fence.is_none() || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (krate, deps) =
            parse_edge_line(line).with_context(|| format!("line {lineno}: `{line}`"))?;
        if let Some(first) = defined_at.get(&krate) {
            bail!("line {lineno}: `{krate}` already has a line (line {first})");
        }
        defined_at.insert(krate.clone(), lineno);
        table.insert(krate, deps);
    }
    if let Some(opened) = open_fence {
        bail!("line {opened}: code block opened here is not closed before `{END_MARKER}`");
    }
    ensure!(
        fence_done,
        "no fenced code block between `{START_MARKER}` (line {}) and `{END_MARKER}` (line {})",
        start + 1,
        end + 1
    );
    ensure!(
        !table.is_empty(),
        "the allowed-edges table (lines {}-{}) has no entries",
        start + 1,
        end + 1
    );
    Ok(table)
}

/// Parses one `crate -> dep, dep` line (already trimmed, known non-empty).
fn parse_edge_line(line: &str) -> Result<(String, BTreeSet<String>)> {
    let Some((lhs, rhs)) = line.split_once("->") else {
        bail!("expected `<crate> -> <dep>, <dep>, ...` (or `<crate> ->` for no sibling deps)");
    };
    let krate = lhs.trim();
    check_crate_name(krate).context("bad crate name left of `->`")?;
    let mut deps = BTreeSet::new();
    let rhs = rhs.trim();
    if !rhs.is_empty() {
        for dep in rhs.split(',').map(str::trim) {
            check_crate_name(dep).context("bad dependency name right of `->`")?;
            ensure!(dep != krate, "`{krate}` lists itself as a dependency");
            ensure!(deps.insert(dep.to_owned()), "`{dep}` is listed twice");
        }
    }
    Ok((krate.to_owned(), deps))
}

fn check_crate_name(name: &str) -> Result<()> {
    ensure!(!name.is_empty(), "empty name");
    ensure!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "`{name}` is not a crate name (only ASCII letters, digits, `-` and `_`)"
    );
    Ok(())
}

/// Compares the actual dependency graph against the allowed table and returns one message per
/// violation (empty when the layering is respected).
///
/// `actual` must have every workspace member as a key (with an empty set when it has no sibling
/// dependencies). Reported: each edge not in the table, each member (other than [`EXEMPT`] ones)
/// missing from the table, and each crate named in the table that is not a workspace member.
pub fn check_edges(allowed: &Edges, actual: &Edges) -> Vec<String> {
    let mut violations = Vec::new();
    for (krate, deps) in actual {
        match allowed.get(krate) {
            Some(ok) => {
                for dep in deps.difference(ok) {
                    violations.push(format!(
                        "{krate} -> {dep}: edge not allowed ({ARCHITECTURE_FILE} allows {krate} -> {})",
                        render_set(ok)
                    ));
                }
            }
            None if EXEMPT.contains(&krate.as_str()) => {}
            None => violations.push(format!(
                "{krate}: workspace member missing from the allowed-edges table in {ARCHITECTURE_FILE}"
            )),
        }
    }
    let mut unknown = BTreeSet::new();
    for (krate, deps) in allowed {
        for name in std::iter::once(krate).chain(deps) {
            if !actual.contains_key(name) {
                unknown.insert(name.as_str());
            }
        }
    }
    for name in unknown {
        violations.push(format!(
            "{name}: named in the allowed-edges table in {ARCHITECTURE_FILE} but not a workspace member"
        ));
    }
    violations
}

fn render_set(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "(nothing)".to_owned()
    } else {
        set.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    workspace_members: Vec<String>,
}

#[derive(Deserialize)]
struct Package {
    id: String,
    name: String,
    dependencies: Vec<Dependency>,
}

#[derive(Deserialize)]
struct Dependency {
    name: String,
    kind: Option<String>,
}

/// Extracts the intra-workspace dependency graph from `cargo metadata --format-version 1` JSON.
///
/// Every workspace member is a key; its value holds the members it depends on through normal or
/// build dependencies. Dev-dependencies and dependencies outside the workspace are ignored.
pub fn workspace_edges(metadata_json: &str) -> Result<Edges> {
    let meta: Metadata =
        serde_json::from_str(metadata_json).context("parsing `cargo metadata` output")?;
    let member_ids: BTreeSet<&str> = meta.workspace_members.iter().map(String::as_str).collect();
    let members: Vec<&Package> = meta
        .packages
        .iter()
        .filter(|p| member_ids.contains(p.id.as_str()))
        .collect();
    let names: BTreeSet<&str> = members.iter().map(|p| p.name.as_str()).collect();
    let mut edges = Edges::new();
    for pkg in members {
        let deps = pkg
            .dependencies
            .iter()
            .filter(|d| matches!(d.kind.as_deref(), None | Some("normal") | Some("build")))
            .filter(|d| names.contains(d.name.as_str()))
            .map(|d| d.name.clone())
            .collect();
        edges.insert(pkg.name.clone(), deps);
    }
    Ok(edges)
}

/// Runs `cargo metadata --format-version 1 --no-deps` on the workspace at `root` and returns its JSON.
pub fn cargo_metadata(root: &Path) -> Result<String> {
    let manifest = root.join("Cargo.toml");
    let output = Command::new(crate::cargo_bin())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .context("running `cargo metadata`")?;
    ensure!(
        output.status.success(),
        "`cargo metadata --manifest-path {}` failed ({}):\n{}",
        manifest.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).context("`cargo metadata` printed non-UTF-8 output")
}

/// Reads and parses the allowed-edges table from the given `ARCHITECTURE.md`.
///
/// A missing file is an error that says where it was expected and what it is for.
pub fn load_allowed_edges(architecture_md: &Path) -> Result<Edges> {
    let text = match std::fs::read_to_string(architecture_md) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} not found: it must hold the allowed crate-dependency table between `{START_MARKER}` \
             and `{END_MARKER}` (the single source of truth for `cargo xtask tidy`)",
            architecture_md.display()
        ),
        Err(err) => {
            return Err(err).with_context(|| format!("reading {}", architecture_md.display()));
        }
    };
    parse_allowed_edges(&text).with_context(|| {
        format!(
            "malformed allowed-edges table in {}",
            architecture_md.display()
        )
    })
}

/// Checks the workspace at `root` against the table in `architecture_md`.
///
/// Returns an error listing every violation when the layering is broken.
pub fn check_layering(root: &Path, architecture_md: &Path) -> Result<TidySummary> {
    let allowed = load_allowed_edges(architecture_md)?;
    let actual = workspace_edges(&cargo_metadata(root)?)?;
    let violations = check_edges(&allowed, &actual);
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().map(|v| format!("  - {v}")).collect();
        bail!(
            "crate layering check failed ({} problem{}; table in {}):\n{}",
            violations.len(),
            if violations.len() == 1 { "" } else { "s" },
            architecture_md.display(),
            list.join("\n")
        );
    }
    Ok(TidySummary {
        crates: actual
            .keys()
            .filter(|k| !EXEMPT.contains(&k.as_str()))
            .count(),
        edges: actual.values().map(BTreeSet::len).sum(),
    })
}

/// `cargo xtask tidy`: checks the workspace at `root` against `root/ARCHITECTURE.md`.
pub fn tidy(root: &Path) -> Result<TidySummary> {
    check_layering(root, &root.join(ARCHITECTURE_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(table: &str) -> String {
        format!(
            "# Architecture\n\nSome prose.\n\n{START_MARKER}\nThe allowed edges:\n\n```text\n{table}```\n{END_MARKER}\n\nMore prose.\n"
        )
    }

    fn edges(list: &[(&str, &[&str])]) -> Edges {
        list.iter()
            .map(|(k, deps)| {
                (
                    (*k).to_owned(),
                    deps.iter().map(|d| (*d).to_owned()).collect(),
                )
            })
            .collect()
    }

    const TABLE: &str = "ppo-sched ->\nppo-models ->\n\n# core sits on models and sched\nppo-core -> ppo-models, ppo-sched\n";

    #[test]
    fn parses_table() {
        let parsed = parse_allowed_edges(&doc(TABLE)).unwrap();
        assert_eq!(
            parsed,
            edges(&[
                ("ppo-sched", &[]),
                ("ppo-models", &[]),
                ("ppo-core", &["ppo-models", "ppo-sched"]),
            ])
        );
    }

    #[test]
    fn malformed_line_is_an_error_naming_the_line() {
        let text = doc("ppo-sched ->\nppo-core => ppo-models\n");
        let err = format!("{:#}", parse_allowed_edges(&text).unwrap_err());
        let lineno = text
            .lines()
            .position(|l| l.starts_with("ppo-core =>"))
            .unwrap()
            + 1;
        assert!(err.contains(&format!("line {lineno}")), "{err}");
        assert!(err.contains("ppo-core => ppo-models"), "{err}");
    }

    #[test]
    fn other_malformed_tables_are_errors() {
        let cases = [
            (doc("ppo-core -> ppo-models,,ppo-sched\n"), "empty name"),
            (doc("ppo-core -> ppo-models,\n"), "empty name"),
            (doc(" -> ppo-models\n"), "left of"),
            (doc("ppo-core -> ppo core\n"), "not a crate name"),
            (doc("ppo-core -> ppo-core\n"), "itself"),
            (doc("ppo-core -> a, a\n"), "twice"),
            (doc("ppo-core ->\nppo-core -> a\n"), "already has a line"),
            (doc(""), "no entries"),
            ("no markers here".to_owned(), "not found"),
            (
                format!("{START_MARKER}\nppo-core ->\n{END_MARKER}\n"),
                "no fenced code block",
            ),
            (
                format!("{START_MARKER}\n```\nppo-core ->\n{END_MARKER}\n"),
                "not closed",
            ),
            (
                format!("{END_MARKER}\n{START_MARKER}\n```\nppo-core ->\n```\n"),
                "comes before",
            ),
        ];
        for (text, needle) in cases {
            let err = format!("{:#}", parse_allowed_edges(&text).unwrap_err());
            assert!(err.contains(needle), "expected {needle:?} in {err:?}");
        }
    }

    #[test]
    fn clean_graph_has_no_violations() {
        let allowed = parse_allowed_edges(&doc(TABLE)).unwrap();
        let actual = edges(&[
            ("ppo-sched", &[]),
            ("ppo-models", &[]),
            ("ppo-core", &["ppo-models"]),
            ("xtask", &[]),
        ]);
        assert_eq!(check_edges(&allowed, &actual), Vec::<String>::new());
    }

    #[test]
    fn violating_edge_is_reported() {
        let allowed = parse_allowed_edges(&doc(TABLE)).unwrap();
        let actual = edges(&[
            ("ppo-sched", &["ppo-core"]),
            ("ppo-models", &["ppo-sched"]),
            ("ppo-core", &["ppo-models", "ppo-sched"]),
        ]);
        let violations = check_edges(&allowed, &actual);
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(
            violations
                .iter()
                .any(|v| v.starts_with("ppo-sched -> ppo-core:"))
        );
        assert!(
            violations
                .iter()
                .any(|v| v.starts_with("ppo-models -> ppo-sched:"))
        );
    }

    #[test]
    fn missing_crate_is_reported_and_xtask_is_exempt() {
        let allowed = parse_allowed_edges(&doc(TABLE)).unwrap();
        let actual = edges(&[
            ("ppo-sched", &[]),
            ("ppo-models", &[]),
            ("ppo-core", &[]),
            ("ppo-log", &[]),
            ("xtask", &["ppo-core"]),
        ]);
        let violations = check_edges(&allowed, &actual);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].starts_with("ppo-log: workspace member missing"));
    }

    #[test]
    fn unknown_crate_in_table_is_reported() {
        let allowed = parse_allowed_edges(&doc("ppo-core -> ppo-shed\n")).unwrap();
        let actual = edges(&[("ppo-core", &[])]);
        let violations = check_edges(&allowed, &actual);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].starts_with("ppo-shed: named in the allowed-edges table"));
    }

    #[test]
    fn metadata_keeps_normal_and_build_deps_on_members_only() {
        let json = r#"{
          "workspace_members": ["a-id", "b-id", "c-id"],
          "packages": [
            {"id": "a-id", "name": "a", "dependencies": [
              {"name": "b", "kind": null},
              {"name": "c", "kind": "dev"},
              {"name": "serde", "kind": null}
            ]},
            {"id": "b-id", "name": "b", "dependencies": [
              {"name": "c", "kind": "build"}
            ]},
            {"id": "c-id", "name": "c", "dependencies": []},
            {"id": "ext-id", "name": "ext", "dependencies": [{"name": "a", "kind": null}]}
          ]
        }"#;
        assert_eq!(
            workspace_edges(json).unwrap(),
            edges(&[("a", &["b"]), ("b", &["c"]), ("c", &[])])
        );
    }

    #[test]
    fn missing_architecture_file_is_a_clear_error() {
        let path = std::env::temp_dir()
            .join(format!("xtask-no-such-dir-{}", std::process::id()))
            .join(ARCHITECTURE_FILE);
        let err = format!("{:#}", load_allowed_edges(&path).unwrap_err());
        assert!(err.contains("not found"), "{err}");
        assert!(err.contains(START_MARKER), "{err}");
    }
}
