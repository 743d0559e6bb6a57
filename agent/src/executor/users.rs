//! Which user a task runs as: `CommandInfo.user`, else the framework's
//! user, looked up in `<root>/etc/passwd` (tests use temp trees), as Mesos
//! does with `--switch_user` (on by default).

use std::path::Path;

/// A local account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    /// Mesos' wording.
    #[error("Failed to get user information for '{0}'")]
    Unknown(String),
    #[error("the agent (uid {agent}) cannot run tasks as {user} (uid {uid})")]
    NotPermitted { agent: u32, user: String, uid: u32 },
}

/// `name`'s entry in a passwd text.
pub fn parse_passwd(text: &str, name: &str) -> Option<Account> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 7 && f[0] == name).then_some(())?;
        Some(Account {
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
        })
    })
}

/// The account to switch to for `user` (`None`: stay as the agent).
pub fn account(root: &Path, user: &str, agent_uid: u32) -> Result<Option<Account>, UserError> {
    if user.is_empty() || (user == "root" && agent_uid == 0) {
        // The appliance has no passwd file; root needs no lookup.
        return Ok(None);
    }
    let text = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    let acct = parse_passwd(&text, user).ok_or_else(|| UserError::Unknown(user.to_string()))?;
    if acct.uid == agent_uid {
        return Ok(None);
    }
    if agent_uid != 0 {
        return Err(UserError::NotPermitted {
            agent: agent_uid,
            user: user.to_string(),
            uid: acct.uid,
        });
    }
    Ok(Some(acct))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
        broken:x:abc:1::/:\n";

    #[test]
    fn looks_users_up() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), PASSWD).unwrap();
        let root = dir.path();
        assert_eq!(account(root, "root", 0), Ok(None), "already root");
        assert_eq!(
            account(root, "nobody", 0),
            Ok(Some(Account {
                uid: 65534,
                gid: 65534
            }))
        );
        assert_eq!(account(root, "", 0), Ok(None));
        assert_eq!(
            account(root, "ghost", 0),
            Err(UserError::Unknown("ghost".into()))
        );
        assert_eq!(
            account(root, "broken", 0),
            Err(UserError::Unknown("broken".into()))
        );
        assert!(matches!(
            account(root, "root", 1000),
            Err(UserError::NotPermitted { .. })
        ));
        assert_eq!(
            UserError::Unknown("ghost".into()).to_string(),
            "Failed to get user information for 'ghost'"
        );
    }
}
