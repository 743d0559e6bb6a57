//! The kernel module index as `depmod` writes it, read without libkmod:
//! `modules.dep` (hard dependencies), `modules.softdep` (`pre:` soft
//! dependencies such as ext4's `crypto-crc32c`), `modules.alias` (device
//! modaliases and other aliases, shell glob patterns) and `modules.builtin`.
//!
//! Pure over the files' text; [`ModuleIndex::load`] reads them from a
//! directory. Both init (loading at boot) and the bundle builder (taking the
//! closure of the modules to ship) use it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KmodError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file} line {line}: {reason}")]
    Parse {
        file: &'static str,
        line: usize,
        reason: String,
    },
    #[error("module or alias {0:?} is not in modules.dep, modules.alias or modules.builtin")]
    Unknown(String),
    #[error("module dependency loop through {0}")]
    Cycle(String),
}

/// Module names use `_` and `-` interchangeably; the kernel uses `_`.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a path in modules.dep: `kernel/net/bridge/bridge.ko.xz`
/// -> `bridge`.
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    normalize(stem)
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModuleIndex {
    /// name -> (path relative to the modules dir, direct and indirect deps).
    modules: BTreeMap<String, (String, Vec<String>)>,
    /// (pattern, module) in file order.
    aliases: Vec<(String, String)>,
    /// name -> `pre:` soft dependencies (module names or aliases).
    softdeps: HashMap<String, Vec<String>>,
    builtin: HashSet<String>,
}

impl ModuleIndex {
    /// Reads `modules.dep`, and `modules.alias`, `modules.softdep` and
    /// `modules.builtin` where present, from `dir` (`/lib/modules/<release>`).
    pub fn load(dir: &Path) -> Result<Self, KmodError> {
        let read = |name: &str, required: bool| -> Result<String, KmodError> {
            let path = dir.join(name);
            match fs::read_to_string(&path) {
                Ok(t) => Ok(t),
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                    Ok(String::new())
                }
                Err(source) => Err(KmodError::Read { path, source }),
            }
        };
        Self::parse(
            &read("modules.dep", true)?,
            &read("modules.alias", false)?,
            &read("modules.softdep", false)?,
            &read("modules.builtin", false)?,
        )
    }

    pub fn parse(dep: &str, alias: &str, softdep: &str, builtin: &str) -> Result<Self, KmodError> {
        let mut idx = ModuleIndex::default();
        for (n, line) in lines(dep) {
            let (path, deps) = line.split_once(':').ok_or(KmodError::Parse {
                file: "modules.dep",
                line: n,
                reason: "no ':'".into(),
            })?;
            let deps = deps.split_whitespace().map(module_name).collect();
            idx.modules
                .insert(module_name(path), (path.trim().to_string(), deps));
        }
        for (n, line) in lines(alias) {
            let mut w = line.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some("alias"), Some(pattern), Some(module)) => {
                    idx.aliases.push((pattern.to_string(), normalize(module)))
                }
                _ => {
                    return Err(KmodError::Parse {
                        file: "modules.alias",
                        line: n,
                        reason: format!("not `alias PATTERN MODULE`: {line:?}"),
                    });
                }
            }
        }
        for (n, line) in lines(softdep) {
            let mut w = line.split_whitespace();
            if w.next() != Some("softdep") {
                return Err(KmodError::Parse {
                    file: "modules.softdep",
                    line: n,
                    reason: format!("not `softdep MODULE ...`: {line:?}"),
                });
            }
            let Some(module) = w.next() else { continue };
            let mut pre = true;
            let mut list = Vec::new();
            for word in w {
                match word {
                    "pre:" => pre = true,
                    "post:" => pre = false,
                    dep if pre => list.push(dep.to_string()),
                    _ => {}
                }
            }
            idx.softdeps
                .entry(normalize(module))
                .or_default()
                .extend(list);
        }
        for (_, line) in lines(builtin) {
            idx.builtin.insert(module_name(line));
        }
        Ok(idx)
    }

    pub fn contains(&self, module: &str) -> bool {
        self.modules.contains_key(&normalize(module))
    }

    pub fn is_builtin(&self, module: &str) -> bool {
        self.builtin.contains(&normalize(module))
    }

    /// The path of a module relative to the modules dir.
    pub fn path(&self, module: &str) -> Option<&str> {
        self.modules
            .get(&normalize(module))
            .map(|(p, _)| p.as_str())
    }

    pub fn module_names(&self) -> impl Iterator<Item = &str> {
        self.modules.keys().map(String::as_str)
    }

    /// Modules whose alias patterns match `alias` (a modalias such as
    /// `pci:v00008086d0000100Esv...`, or a name such as `crypto-crc32c`),
    /// in file order, without duplicates.
    pub fn lookup_alias(&self, alias: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (pattern, module) in &self.aliases {
            if glob_match(pattern, alias) && !out.contains(module) {
                out.push(module.clone());
            }
        }
        out
    }

    /// A module name or alias to the modules it stands for: the module
    /// itself when it exists (or is built in), else every alias match.
    pub fn resolve(&self, name: &str) -> Result<Vec<String>, KmodError> {
        let n = normalize(name);
        if self.modules.contains_key(&n) || self.builtin.contains(&n) {
            return Ok(vec![n]);
        }
        let found = self.lookup_alias(name);
        if found.is_empty() {
            return Err(KmodError::Unknown(name.to_string()));
        }
        Ok(found)
    }

    /// Every module `names` need, dependencies before the modules that use
    /// them, soft `pre:` dependencies included, built-ins left out.
    /// Soft dependencies that resolve to nothing are skipped, as modprobe does.
    pub fn load_order(&self, names: &[&str]) -> Result<Vec<String>, KmodError> {
        let mut order = Vec::new();
        let mut done = BTreeSet::new();
        for name in names {
            for module in self.resolve(name)? {
                self.visit(&module, &mut order, &mut done, &mut Vec::new())?;
            }
        }
        Ok(order)
    }

    fn visit(
        &self,
        module: &str,
        order: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Result<(), KmodError> {
        if done.contains(module) || self.builtin.contains(module) {
            return Ok(());
        }
        if stack.iter().any(|m| m == module) {
            return Err(KmodError::Cycle(format!(
                "{} -> {module}",
                stack.join(" -> ")
            )));
        }
        let Some((_, deps)) = self.modules.get(module) else {
            return Err(KmodError::Unknown(module.to_string()));
        };
        stack.push(module.to_string());
        for soft in self.softdeps.get(module).into_iter().flatten() {
            for m in self.resolve(soft).unwrap_or_default() {
                self.visit(&m, order, done, stack)?;
            }
        }
        // modules.dep lists the whole closure; visiting each keeps the order
        // right whatever order depmod wrote them in.
        for dep in deps {
            self.visit(dep, order, done, stack)?;
        }
        stack.pop();
        done.insert(module.to_string());
        order.push(module.to_string());
        Ok(())
    }
}

/// Non-empty, non-comment lines with their 1-based numbers.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// fnmatch(3) without flags, as modprobe matches aliases: `*`, `?`,
/// `[abc]`, `[a-z]`, `[!x]`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with one backtrack point for the last `*`.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class_match(&p, pi, t[ti])
                        && matched
                    {
                        pi = next;
                        ti += 1;
                        continue;
                    }
                }
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the bracket expression starting at `p[start] == '['`;
/// returns (matched, index after `]`), or None for an unterminated bracket.
fn class_match(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() && (p[i] != ']' || first) {
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    if i >= p.len() {
        return None;
    }
    Some((matched != negate, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/fs/ext4/ext4.ko.xz: kernel/fs/mbcache.ko.xz kernel/lib/crc16.ko.xz kernel/fs/jbd2/jbd2.ko.xz
kernel/fs/mbcache.ko.xz:
kernel/lib/crc16.ko.xz:
kernel/fs/jbd2/jbd2.ko.xz:
kernel/crypto/crc32c_generic.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/drivers/nvme/host/nvme.ko: kernel/drivers/nvme/host/nvme-core.ko
kernel/drivers/nvme/host/nvme-core.ko:
";
    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias pci:v00001AF4d00001000sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias crypto-crc32c crc32c_generic
alias crypto-crc32c crc32c-intel
alias pci:v*d*sv*sd*bc01sc08i02* nvme
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
";
    const SOFTDEP: &str = "softdep ext4 pre: crypto-crc32c post: nothing\n";
    const BUILTIN: &str = "kernel/drivers/virtio/virtio_pci.ko\n";

    fn index() -> ModuleIndex {
        ModuleIndex::parse(DEP, ALIAS, SOFTDEP, BUILTIN).unwrap()
    }

    #[test]
    fn names_from_paths() {
        assert_eq!(
            module_name("kernel/drivers/nvme/host/nvme-core.ko.xz"),
            "nvme_core"
        );
        assert_eq!(module_name("kernel/fs/ext4/ext4.ko"), "ext4");
    }

    #[test]
    fn dependencies_come_first() {
        let order = index().load_order(&["virtio-net", "nvme"]).unwrap();
        assert_eq!(
            order,
            [
                "failover",
                "net_failover",
                "virtio_net",
                "nvme_core",
                "nvme"
            ]
        );
    }

    #[test]
    fn soft_pre_dependencies_by_alias_are_loaded_before() {
        let order = index().load_order(&["ext4"]).unwrap();
        assert_eq!(
            order,
            [
                "crc32c_generic",
                "crc32c_intel",
                "mbcache",
                "crc16",
                "jbd2",
                "ext4"
            ]
        );
    }

    #[test]
    fn modaliases_resolve_and_builtins_need_nothing() {
        let idx = index();
        assert_eq!(
            idx.lookup_alias("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"),
            ["virtio_pci"]
        );
        assert_eq!(
            idx.load_order(&["virtio_pci"]).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            idx.lookup_alias("pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02"),
            ["nvme"]
        );
        assert_eq!(
            idx.lookup_alias("virtio:d00000001v00001AF4"),
            ["virtio_net"]
        );
        assert!(idx.lookup_alias("pci:v000010ECd00008139sv*").is_empty());
        assert!(matches!(idx.resolve("8139too"), Err(KmodError::Unknown(_))));
        assert_eq!(
            idx.path("nvme-core"),
            Some("kernel/drivers/nvme/host/nvme-core.ko")
        );
    }

    #[test]
    fn cycles_are_reported() {
        let idx = ModuleIndex::parse("a.ko: b.ko\nb.ko: a.ko\n", "", "", "").unwrap();
        assert!(matches!(idx.load_order(&["a"]), Err(KmodError::Cycle(_))));
    }

    #[test]
    fn malformed_lines_name_the_file_and_line() {
        let e = ModuleIndex::parse("ok.ko:\nbroken\n", "", "", "").unwrap_err();
        assert_eq!(e.to_string(), "modules.dep line 2: no ':'");
        let e = ModuleIndex::parse("", "alias x\n", "", "").unwrap_err();
        assert!(e.to_string().starts_with("modules.alias line 1"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("pci:v*d*bc02sc*i*", "pci:v0000d0001bc02sc00i00"));
        assert!(!glob_match(
            "pci:v*d*bc02sc*i*",
            "pci:v0000d0001bc01sc00i00"
        ));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("usb:v*p*d*dc[0-9]*", "usb:v1p2d3dc7x"));
        assert!(!glob_match("x[!0-9]", "x5"));
        assert!(glob_match("x[!0-9]", "xa"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a", ""));
        assert!(glob_match("a*b*c", "aXXbYYbZc"));
    }
}
