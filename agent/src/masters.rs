//! The `--master` flag: the masters' `HOST:PORT[,HOST:PORT...]` list,
//! tried in turn ([`crate::session::Failover`]). Keel's masters elect their
//! leader among themselves, so unlike Mesos (`--master=zk://...`) there is
//! no ZooKeeper, or any other URL, to give: a URL is refused with a message
//! that says so and names what was given.

/// The list Keel takes, for messages.
pub const FORM: &str = "the masters' HOST:PORT[,HOST:PORT...] list";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterListError {
    #[error("--master is empty: Keel takes {FORM}")]
    Empty,
    #[error(
        "--master {given:?} is a {scheme}:// URL, but Keel takes {FORM}, e.g. \
         --master m1:5050,m2:5050,m3:5050{hint}"
    )]
    Url {
        given: String,
        scheme: String,
        hint: &'static str,
    },
    #[error("--master {given:?}: {entry:?} is not HOST:PORT (Keel takes {FORM})")]
    NotHostPort { given: String, entry: String },
    #[error("--master {given:?}: {entry:?} has no host")]
    NoHost { given: String, entry: String },
    #[error("--master {given:?}: {entry:?} has an invalid port")]
    Port { given: String, entry: String },
}

const ZK_HINT: &str = " (Keel has no ZooKeeper: its masters elect their leader themselves, so \
     name the masters, not a ZooKeeper ensemble)";

/// Reads `--master`: `HOST:PORT` entries separated by commas (blanks
/// around them and empty entries are ignored).
pub fn parse(given: &str) -> Result<Vec<String>, MasterListError> {
    if let Some((scheme, _)) = given.trim().split_once("://") {
        let hint = if scheme.eq_ignore_ascii_case("zk") {
            ZK_HINT
        } else {
            ""
        };
        return Err(MasterListError::Url {
            given: given.to_string(),
            scheme: scheme.to_string(),
            hint,
        });
    }
    let masters: Vec<String> = given
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    if masters.is_empty() {
        return Err(MasterListError::Empty);
    }
    for entry in &masters {
        let err = |make: fn(String, String) -> MasterListError| make(given.into(), entry.clone());
        let Some((host, port)) = entry.rsplit_once(':') else {
            return Err(err(|given, entry| MasterListError::NotHostPort {
                given,
                entry,
            }));
        };
        if host.is_empty() {
            return Err(err(|given, entry| MasterListError::NoHost { given, entry }));
        }
        if !port.parse::<u16>().is_ok_and(|p| p != 0) {
            return Err(err(|given, entry| MasterListError::Port { given, entry }));
        }
    }
    Ok(masters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_host_ports() {
        assert_eq!(
            parse(" m1:5050, 10.0.0.2:5050,,[::1]:5051 ").unwrap(),
            ["m1:5050", "10.0.0.2:5050", "[::1]:5051"]
        );
    }

    #[test]
    fn a_zookeeper_url_is_refused_naming_it_and_what_keel_takes() {
        let given = "zk://10.0.0.1:2181,10.0.0.2:2181/mesos";
        let e = parse(given).unwrap_err();
        assert!(matches!(&e, MasterListError::Url { scheme, .. } if scheme == "zk"));
        let text = e.to_string();
        assert!(text.contains(given), "{text}");
        assert!(text.contains("HOST:PORT[,HOST:PORT...]"), "{text}");
        assert!(text.contains("no ZooKeeper"), "{text}");
        assert!(!text.contains("invalid port"), "{text}");
    }

    #[test]
    fn any_other_url_too() {
        for given in [
            "http://m1:5050",
            "file:///etc/mesos/zk",
            "grpc://m1:5050,m2:5050",
        ] {
            let text = parse(given).unwrap_err().to_string();
            assert!(text.contains(given), "{text}");
            assert!(text.contains("HOST:PORT[,HOST:PORT...]"), "{text}");
            assert!(!text.contains("ZooKeeper"), "{text}");
        }
    }

    #[test]
    fn malformed_entries_are_named() {
        let cases = [
            ("", MasterListError::Empty),
            (
                "m1:5050,m2",
                MasterListError::NotHostPort {
                    given: "m1:5050,m2".into(),
                    entry: "m2".into(),
                },
            ),
            (
                ":5050",
                MasterListError::NoHost {
                    given: ":5050".into(),
                    entry: ":5050".into(),
                },
            ),
            (
                "m1:0",
                MasterListError::Port {
                    given: "m1:0".into(),
                    entry: "m1:0".into(),
                },
            ),
            (
                "m1:http",
                MasterListError::Port {
                    given: "m1:http".into(),
                    entry: "m1:http".into(),
                },
            ),
        ];
        for (given, want) in cases {
            assert_eq!(parse(given), Err(want), "{given:?}");
        }
    }
}
