//! `ARCHITECTURE.md` names only paths that exist. Every backticked token
//! that looks like a repository path (it contains `/` or ends in `.rs`,
//! `.md`, `.toml` or `.proto`) must name a file or directory: from the
//! repository root, or, in a crate's table row, from the crate's directory,
//! its `src/`, or anywhere below it (`node.rs` in the master's row, under
//! `raft/`, is `master/src/replication/raft/node.rs`). Outside the table a
//! name may also stand for a path anywhere in the repository
//! (`core/offers.rs`). Host paths and routes (`/sys/...`, `/api/v1`),
//! commands (with spaces), placeholders (`<work_dir>/...`) and [`SKIP`] are
//! not repository paths.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Tokens that look like paths but name none in the repository.
const SKIP: &[&str] = &[
    // A label namespace of the agent's I/O isolation.
    "keel.io/*",
    // A cgroup, below /sys/fs/cgroup.
    "keel/service",
    // Built by `cargo xtask pxe`, not committed.
    "target/pxe/{vmlinuz,initramfs.img,boot.ipxe}",
];

const DOC: &str = "ARCHITECTURE.md";

/// A path the document names, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub line: usize,
    pub token: String,
    /// The directory of the crate whose table row names it.
    pub crate_dir: Option<String>,
}

/// Checks the document in the repository at `root`; fails naming every
/// path that does not exist.
pub fn run(root: &Path) -> Result<()> {
    let doc = std::fs::read_to_string(root.join(DOC))
        .with_context(|| format!("cannot read {}", root.join(DOC).display()))?;
    let mut tree = BTreeSet::new();
    walk(root, "", &mut tree)?;
    let missing = missing(&doc, &tree);
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing
        .iter()
        .map(|n| match &n.crate_dir {
            Some(dir) => format!("  {DOC}:{}: `{}` (in the row of {dir}/)", n.line, n.token),
            None => format!("  {DOC}:{}: `{}`", n.line, n.token),
        })
        .collect();
    bail!(
        "{DOC} names paths that do not exist (fix the text, or add a name that is \
         no path to archcheck::SKIP):\n{}",
        list.join("\n")
    )
}

/// The named paths that `tree` (every file and directory, relative to the
/// root, directories ending in `/`) does not hold.
pub fn missing(doc: &str, tree: &BTreeSet<String>) -> Vec<Named> {
    named(doc)
        .into_iter()
        .filter(|n| !resolves(n, tree))
        .collect()
}

/// The path-like backticked tokens of `doc`, in order.
fn named(doc: &str) -> Vec<Named> {
    let rows: Vec<Option<String>> = doc.lines().map(crate_dir).collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut parts = doc.split('`');
    // Text and code spans alternate; a span may run over a line break.
    while let Some(text) = parts.next() {
        line += text.matches('\n').count();
        let Some(token) = parts.next() else { break };
        if looks_like_path(token) {
            out.push(Named {
                line,
                token: token.to_string(),
                crate_dir: rows.get(line - 1).cloned().flatten(),
            });
        }
        line += token.matches('\n').count();
    }
    out
}

/// The crate directory of a table row: `| `name` | `dir/` | ... |`.
fn crate_dir(line: &str) -> Option<String> {
    let mut cells = line.strip_prefix('|')?.split('|');
    let _name = cells.next()?;
    let dir = cells.next()?.trim().strip_prefix('`')?.strip_suffix("/`")?;
    (!dir.is_empty() && !dir.contains('`')).then(|| dir.to_string())
}

fn looks_like_path(token: &str) -> bool {
    let pathy = token.contains('/')
        || [".rs", ".md", ".toml", ".proto"]
            .iter()
            .any(|ext| token.ends_with(ext));
    pathy
        && !SKIP.contains(&token)
        && !token.starts_with('/')
        && !token.contains(char::is_whitespace)
        && !token.contains('<')
}

fn resolves(n: &Named, tree: &BTreeSet<String>) -> bool {
    let dir = n.token.ends_with('/');
    let name = n.token.trim_end_matches('/');
    let key = |p: String| if dir { p + "/" } else { p };
    let Some(crate_dir) = &n.crate_dir else {
        return tree.contains(&key(name.to_string())) || below(tree, "", name, dir);
    };
    [
        name.to_string(),
        format!("{crate_dir}/{name}"),
        format!("{crate_dir}/src/{name}"),
    ]
    .into_iter()
    .any(|p| tree.contains(&key(p)))
        || below(tree, &format!("{crate_dir}/"), name, dir)
}

/// Whether a path under `prefix` ends in `/name` (a directory if `dir`).
fn below(tree: &BTreeSet<String>, prefix: &str, name: &str, dir: bool) -> bool {
    let tail = if dir {
        format!("/{name}/")
    } else {
        format!("/{name}")
    };
    tree.range(prefix.to_string()..)
        .take_while(|p| p.starts_with(prefix))
        .any(|p| p.ends_with(&tail))
}

/// Collects the paths under `root/rel`, skipping hidden entries and
/// `target/`; directories end in `/`. Symbolic links are not followed.
fn walk(root: &Path, rel: &str, tree: &mut BTreeSet<String>) -> Result<()> {
    let dir = root.join(rel);
    let entries =
        std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || (rel.is_empty() && name == "target") {
            continue;
        }
        let path = format!("{rel}{name}");
        if entry.file_type()?.is_dir() {
            tree.insert(format!("{path}/"));
            walk(root, &format!("{path}/"), tree)?;
        } else {
            tree.insert(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# Arch

| crate | dir | what |
|---|---|---|
| `keel-master` | `master/` | `registry/`: pure. `raft/` (`node.rs`, `wal/`, `gone.rs`). `benches/raft.rs`. `src/lib.rs`. |
| `xtask` | `xtask/` | `main.rs`, `master/Cargo.toml`, `keel.io/*`. |

Outside: `docs/design/0003-raft-store.md`, `core/offers.rs`, `/sys/fs/cgroup`,
`POST /api/v1`, `<work_dir>/registry.log`, `x.md`, `keel-agent --master
/var/lib/keel/agent`, `missing/dir/`, `Replicator`, `--masters`.
";

    fn tree() -> BTreeSet<String> {
        [
            "master/",
            "master/Cargo.toml",
            "master/benches/",
            "master/benches/raft.rs",
            "master/src/",
            "master/src/lib.rs",
            "master/src/core/",
            "master/src/core/offers.rs",
            "master/src/registry/",
            "master/src/replication/",
            "master/src/replication/raft/",
            "master/src/replication/raft/node.rs",
            "master/src/replication/raft/wal/",
            "xtask/",
            "xtask/src/",
            "xtask/src/main.rs",
            "docs/",
            "docs/design/",
            "docs/design/0003-raft-store.md",
        ]
        .into_iter()
        .map(str::to_string)
        .collect()
    }

    #[test]
    fn paths_are_found_in_the_rows_crate_and_below() {
        let missing: Vec<(usize, String, Option<String>)> = missing(DOC, &tree())
            .into_iter()
            .map(|n| (n.line, n.token, n.crate_dir))
            .collect();
        assert_eq!(
            missing,
            [
                (5, "gone.rs".into(), Some("master".into())),
                (9, "x.md".into(), None),
                (10, "missing/dir/".into(), None),
            ]
        );
    }

    #[test]
    fn only_path_like_tokens_are_names() {
        let tokens: Vec<String> = named(DOC).into_iter().map(|n| n.token).collect();
        for not_a_path in [
            "/sys/fs/cgroup",
            "POST /api/v1",
            "<work_dir>/registry.log",
            "keel.io/*",
            "Replicator",
            "--masters",
            "keel-master",
        ] {
            assert!(!tokens.iter().any(|t| t == not_a_path), "{not_a_path}");
        }
        assert!(tokens.iter().any(|t| t == "master/Cargo.toml"));
        // A span over a line break is a command, and the lines after it
        // keep their numbers.
        assert!(!tokens.iter().any(|t| t.contains("keel-agent")));
    }

    #[test]
    fn directories_and_files_are_told_apart() {
        let named = |token: &str| Named {
            line: 1,
            token: token.into(),
            crate_dir: Some("master".into()),
        };
        assert!(resolves(&named("wal/"), &tree()));
        assert!(!resolves(&named("wal"), &tree()));
        assert!(resolves(&named("node.rs"), &tree()));
        assert!(!resolves(&named("node.rs/"), &tree()));
    }

    #[test]
    fn the_repositorys_own_document_names_only_existing_paths() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        run(root).unwrap();
    }
}
