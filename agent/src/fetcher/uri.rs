//! What a URI names: where its bytes come from ([`source`]) and where they
//! go in the sandbox ([`destination`]).

use std::path::{Component, PathBuf};

use keel_api::mesos::CommandUri;

use super::Failure;

/// Where a URI's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Http(String),
    File(PathBuf),
}

pub fn source(uri: &str) -> Result<Source, Failure> {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return Ok(Source::Http(uri.to_string()));
    }
    if let Some(path) = uri.strip_prefix("file://") {
        return Ok(Source::File(PathBuf::from(path)));
    }
    if uri.starts_with('/') {
        return Ok(Source::File(PathBuf::from(uri)));
    }
    Err(Failure::Scheme)
}

/// The file's path in the sandbox: `output_file`, else the URI's basename.
pub fn destination(uri: &CommandUri) -> Result<PathBuf, Failure> {
    let name = match &uri.output_file {
        Some(out) => PathBuf::from(out),
        None => {
            let path = uri.value.split(['?', '#']).next().unwrap_or("");
            let base = path.rsplit('/').next().unwrap_or("");
            PathBuf::from(base)
        }
    };
    let safe = !name.as_os_str().is_empty()
        && name.components().all(|c| matches!(c, Component::Normal(_)));
    if !safe {
        return Err(Failure::Destination(name.display().to_string()));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(value: &str, out: Option<&str>) -> CommandUri {
        CommandUri {
            value: value.into(),
            output_file: out.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn sources_and_names() {
        assert_eq!(
            source("https://h/x.tgz").ok(),
            Some(Source::Http("https://h/x.tgz".into()))
        );
        assert_eq!(
            source("file:///opt/a").ok(),
            Some(Source::File("/opt/a".into()))
        );
        assert_eq!(source("/opt/a").ok(), Some(Source::File("/opt/a".into())));
        assert!(source("ftp://h/a").is_err() && source("hdfs://x").is_err());
        assert_eq!(
            destination(&uri("http://h/d/probe?x=1", None)).ok(),
            Some("probe".into())
        );
        assert_eq!(
            destination(&uri("http://h/p", Some("bin/tool"))).ok(),
            Some("bin/tool".into())
        );
        for bad in [Some("../x"), Some("/etc/x"), Some("a/../../b"), None] {
            let u = uri(
                if bad.is_none() {
                    "http://h/"
                } else {
                    "http://h/x"
                },
                bad,
            );
            assert!(destination(&u).is_err(), "{bad:?}");
        }
    }
}
