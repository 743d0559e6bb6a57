//! The `--acls` file: Mesos' local authorizer ACLs (`acls.proto`) in its
//! JSON form, and their evaluation as `src/authorizer/local/authorizer.cpp`
//! does it.
//!
//! Each action has a list of rules `{"principals": ENTITY, "<objects>":
//! ENTITY}`, an entity being `{"values": [...]}` (type SOME), `{"type":
//! "ANY"}` or `{"type": "NONE"}`. A request (a principal, or ANY without
//! one; an object, or ANY) is decided by the first rule whose subjects and
//! objects both *match* it, and then allowed if both *allow* it; when no
//! rule matches, `permissive` (default true) decides. Role objects are
//! hierarchical: a value `eng/%` stands for every role under `eng/`.
//!
//! Keys Mesos knows but Keel does not act on (nested containers, resource
//! providers, ...) are accepted with a warning, so an existing Mesos file
//! loads; any other key is an error naming it, so that a typo cannot
//! silently leave an action open. Keel adds `view_agents`,
//! `manage_masters` and `manage_tokens` (see `docs/design/0006-trust.md`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

pub use super::action::Action;

/// Largest ACL file read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Most rules, all actions together.
pub const MAX_RULES: usize = 10_000;

/// Top-level keys of Mesos' `ACLs` that Keel reads but does not enforce.
const MESOS_ONLY: &[&str] = &[
    "view_executors",
    "access_mesos_logs",
    "get_endpoints",
    "launch_nested_containers_as_user",
    "launch_nested_containers_under_parent_with_user",
    "kill_nested_containers",
    "wait_nested_containers",
    "launch_nested_container_sessions_as_user",
    "launch_nested_container_sessions_under_parent_with_user",
    "attach_containers_input",
    "attach_containers_output",
    "view_containers",
    "remove_nested_containers",
    "launch_standalone_containers",
    "kill_standalone_containers",
    "wait_standalone_containers",
    "remove_standalone_containers",
    "view_standalone_containers",
    "modify_resource_provider_configs",
    "mark_resource_providers_gone",
    "view_resource_providers",
    "prune_images",
    "create_block_disks",
    "destroy_block_disks",
    "create_mount_disks",
    "destroy_mount_disks",
    "destroy_raw_disks",
];

#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("cannot read ACL file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ACL file {path} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("ACL file {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The subjects or the objects of a rule, or of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entity {
    Some(Vec<String>),
    Any,
    None,
}

impl Entity {
    fn request(value: Option<&str>) -> Entity {
        match value {
            Some(v) => Entity::Some(vec![v.to_string()]),
            None => Entity::Any,
        }
    }

    fn subset(request: &[String], acl: &[String]) -> bool {
        request.iter().all(|v| acl.contains(v))
    }

    /// Mesos' `matches`: whether a rule with `acl` applies to `request`.
    fn matches(request: &Entity, acl: &Entity) -> bool {
        match (request, acl) {
            (Entity::None, acl) => *acl == Entity::None,
            (Entity::Any, acl) => matches!(acl, Entity::Any | Entity::None),
            (Entity::Some(_), Entity::Any | Entity::None) => true,
            (Entity::Some(r), Entity::Some(a)) => Self::subset(r, a),
        }
    }

    /// Mesos' `allows`: whether the rule that applies lets it through.
    fn allows(request: &Entity, acl: &Entity) -> bool {
        match (request, acl) {
            (Entity::None, acl) => *acl == Entity::None,
            (Entity::Any, acl) => *acl == Entity::Any,
            (Entity::Some(_), Entity::Any) => true,
            (Entity::Some(_), Entity::None) => false,
            (Entity::Some(r), Entity::Some(a)) => Self::subset(r, a),
        }
    }

    fn parse(v: &Json) -> Result<Entity, String> {
        let Json::Object(fields) = v else {
            return Err("an entity must be an object".into());
        };
        if let Some(k) = fields.keys().find(|k| *k != "type" && *k != "values") {
            return Err(format!("unknown entity field '{k}'"));
        }
        let values = match fields.get("values") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or("'values' must be strings")?,
            Some(_) => return Err("'values' must be a list of strings".into()),
        };
        match fields.get("type").map(|t| t.as_str()) {
            None | Some(Some("SOME")) => Ok(Entity::Some(values)),
            Some(Some("ANY")) => Ok(Entity::Any),
            Some(Some("NONE")) => Ok(Entity::None),
            Some(_) => Err("'type' must be SOME, ANY or NONE".into()),
        }
    }
}

/// One rule as evaluated. A role rule's `x/%` value becomes a rule of
/// its own, as Mesos splits them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Plain {
        subjects: Entity,
        objects: Entity,
    },
    /// Every role under `prefix` (which ends with `/`).
    Nested {
        subjects: Entity,
        prefix: String,
    },
}

/// The parsed ACLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acls {
    permissive: bool,
    rules: BTreeMap<Action, Vec<Rule>>,
    /// Mesos keys present in the file that Keel does not enforce.
    ignored: Vec<String>,
}

impl Default for Acls {
    /// No rules, permissive: everything is allowed (Mesos without `--acls`).
    fn default() -> Self {
        Acls {
            permissive: true,
            rules: BTreeMap::new(),
            ignored: Vec::new(),
        }
    }
}

impl Acls {
    /// Reads `path` (within [`MAX_FILE_BYTES`]; a `file://` prefix is
    /// dropped, as Mesos does); errors name the file.
    pub fn load(path: &Path) -> Result<Acls, AclError> {
        let path = &super::credentials::without_file_scheme(path);
        let read = |source| AclError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let mut text = String::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(AclError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        Acls::parse(&text).map_err(|e| AclError::Invalid {
            path: path.to_path_buf(),
            reason: e.0,
        })
    }

    /// Parses the JSON text of an ACL file.
    pub fn parse(text: &str) -> Result<Acls, Invalid> {
        let top: Json =
            serde_json::from_str(text).map_err(|e| Invalid(format!("not JSON: {e}")))?;
        let Json::Object(top) = top else {
            return Err(Invalid("the ACLs must be a JSON object".into()));
        };
        let mut acls = Acls::default();
        let mut count = 0;
        for (key, value) in &top {
            if key == "permissive" {
                acls.permissive = value
                    .as_bool()
                    .ok_or_else(|| Invalid("'permissive' must be true or false".into()))?;
                continue;
            }
            if MESOS_ONLY.contains(&key.as_str()) {
                acls.ignored.push(key.clone());
                continue;
            }
            let action = Action::from_key(key).ok_or_else(|| {
                Invalid(format!(
                    "unknown ACL '{key}' (Keel knows {})",
                    Action::ALL.map(Action::key).join(", ")
                ))
            })?;
            let Json::Array(items) = value else {
                return Err(Invalid(format!("'{key}' must be a list of rules")));
            };
            count += items.len();
            if count > MAX_RULES {
                return Err(Invalid(format!("more than {MAX_RULES} rules")));
            }
            let rules = acls.rules.entry(action).or_default();
            for (i, item) in items.iter().enumerate() {
                let at = |e: String| Invalid(format!("{key}[{i}]: {e}"));
                let Json::Object(fields) = item else {
                    return Err(at("a rule must be an object".into()));
                };
                parse_rule(action, fields, rules).map_err(at)?;
            }
        }
        acls.ignored.sort();
        Ok(acls)
    }

    /// Whether the file had Mesos ACLs Keel does not enforce (their keys).
    pub fn ignored(&self) -> &[String] {
        &self.ignored
    }

    pub fn permissive(&self) -> bool {
        self.permissive
    }

    /// Whether every request of `action` is allowed: no rules for it, and
    /// permissive.
    pub fn allows_all(&self, action: Action) -> bool {
        self.permissive && self.rules.get(&action).is_none_or(Vec::is_empty)
    }

    /// Whether `principal` (ANY when none) may perform `action` on
    /// `object` (ANY when none).
    pub fn authorized(
        &self,
        principal: Option<&str>,
        action: Action,
        object: Option<&str>,
    ) -> bool {
        let subject = Entity::request(principal);
        let object = Entity::request(object);
        for rule in self.rules.get(&action).map(Vec::as_slice).unwrap_or(&[]) {
            match rule {
                Rule::Plain { subjects, objects } => {
                    if Entity::matches(&subject, subjects) && Entity::matches(&object, objects) {
                        return Entity::allows(&subject, subjects)
                            && Entity::allows(&object, objects);
                    }
                }
                Rule::Nested { subjects, prefix } => {
                    let under =
                        matches!(&object, Entity::Some(v) if v[0].starts_with(prefix.as_str()));
                    if under && Entity::matches(&subject, subjects) {
                        return Entity::allows(&subject, subjects);
                    }
                }
            }
        }
        self.permissive
    }
}

/// Why an ACL file does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn parse_rule(
    action: Action,
    fields: &Map<String, Json>,
    rules: &mut Vec<Rule>,
) -> Result<(), String> {
    let object_field = action.object_field();
    if let Some(k) = fields
        .keys()
        .find(|k| *k != "principals" && *k != object_field)
    {
        return Err(format!(
            "unknown field '{k}' (expected 'principals' and '{object_field}')"
        ));
    }
    let entity = |name: &str| match fields.get(name) {
        Some(v) => Entity::parse(v).map_err(|e| format!("'{name}': {e}")),
        None => Err(format!("'{name}' is required")),
    };
    let subjects = entity("principals")?;
    let objects = entity(object_field)?;
    match objects {
        Entity::Some(values) if action.hierarchical_roles() => {
            let (nested, plain): (Vec<String>, Vec<String>) =
                values.into_iter().partition(|v| v.ends_with("/%"));
            for v in nested {
                rules.push(Rule::Nested {
                    subjects: subjects.clone(),
                    prefix: v[..v.len() - 1].to_string(),
                });
            }
            if !plain.is_empty() {
                rules.push(Rule::Plain {
                    subjects,
                    objects: Entity::Some(plain),
                });
            }
        }
        objects => rules.push(Rule::Plain { subjects, objects }),
    }
    Ok(())
}

#[cfg(test)]
#[path = "acls_tests.rs"]
mod tests;
