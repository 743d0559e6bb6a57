use super::*;

fn tree() -> (tempfile::TempDir, Sandboxes, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandboxes::new(dir.path());
    let run = sb.root().join("a-S0/frameworks/fw/executors/t1/runs/c1");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("stdout"), "hello\n").unwrap();
    std::fs::write(run.join("stderr"), "").unwrap();
    std::os::unix::fs::symlink("c1", run.parent().unwrap().join("latest")).unwrap();
    std::fs::write(dir.path().join("secret"), "no").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), run.join("planted")).unwrap();
    std::os::unix::fs::symlink("/etc", run.join("etc")).unwrap();
    (dir, sb, run)
}

#[test]
fn virtual_and_real_paths_resolve() {
    let (_d, sb, run) = tree();
    let virt = "/frameworks/fw/executors/t1/runs/latest/stdout";
    assert!(matches!(sb.open(virt, Some("a-S0")), Ok(Opened::File(..))));
    let abs = run.join("stdout");
    let rel = sb.resolve(abs.to_str().unwrap(), None).unwrap();
    assert_eq!(
        rel,
        Path::new("a-S0/frameworks/fw/executors/t1/runs/c1/stdout")
    );
    assert!(matches!(
        sb.open(abs.to_str().unwrap(), None),
        Ok(Opened::File(..))
    ));
    assert!(matches!(
        sb.resolve(virt, None),
        Err(FilesError::NotFound(_))
    ));
}

#[test]
fn nothing_outside_the_sandboxes_is_served() {
    let (d, sb, run) = tree();
    for bad in ["relative/x", "", "/frameworks/../../secret"] {
        assert!(
            matches!(sb.resolve(bad, Some("a")), Err(FilesError::BadRequest(_))),
            "{bad}"
        );
    }
    let outside = [
        d.path().join("secret"),
        run.join("planted"),
        run.join("etc/passwd"),
        PathBuf::from("/etc/passwd"),
        d.path().to_path_buf(),
    ];
    for p in outside {
        let shown = p.display().to_string();
        assert!(
            matches!(sb.open(&shown, None), Err(FilesError::NotFound(_))),
            "{shown} was served"
        );
    }
}

#[test]
fn a_latest_link_must_name_a_sibling_run() {
    let (d, sb, run) = tree();
    let runs = run.parent().unwrap();
    std::fs::create_dir_all(sb.root().join("a-S0/frameworks/fw/executors/t2/runs")).unwrap();
    let other = sb
        .root()
        .join("a-S0/frameworks/fw/executors/t2/runs/latest");
    std::os::unix::fs::symlink(d.path(), &other).unwrap();
    let v = "/frameworks/fw/executors/t2/runs/latest/secret";
    assert!(matches!(
        sb.open(v, Some("a-S0")),
        Err(FilesError::NotFound(_))
    ));
    std::fs::remove_file(runs.join("latest")).unwrap();
    std::os::unix::fs::symlink("../../t1/runs/c1", runs.join("latest")).unwrap();
    let v = "/frameworks/fw/executors/t1/runs/latest/stdout";
    assert!(matches!(
        sb.open(v, Some("a-S0")),
        Err(FilesError::NotFound(_))
    ));
}

#[test]
fn special_and_linked_files_are_refused_unopened() {
    let (d, sb, run) = tree();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        run.join("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    std::fs::hard_link(d.path().join("secret"), run.join("hard")).unwrap();
    for name in ["fifo", "hard"] {
        let p = run.join(name).display().to_string();
        let refused = sb.open(&p, None).err();
        assert!(
            matches!(refused, Some(FilesError::Refused { .. })),
            "{name}: {refused:?}"
        );
        assert!(matches!(
            sb.browse(&p, None),
            Err(FilesError::Refused { .. })
        ));
    }
}

#[test]
fn browse_lists_a_directory_without_following_links() {
    let (_d, sb, _run) = tree();
    let v = "/frameworks/fw/executors/t1/runs/latest";
    let entries = sb.browse(v, Some("a-S0")).unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("{v}/etc"),
            format!("{v}/planted"),
            format!("{v}/stderr"),
            format!("{v}/stdout")
        ]
    );
    assert_eq!(entries[0].mode, "lrwxrwxrwx");
    assert_eq!(entries[3].size, 6);
    assert!(entries[3].mode.starts_with("-rw"));
    assert!(entries[3].mtime > 1.6e9);
    let one = sb.browse(&format!("{v}/stdout"), Some("a-S0")).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].path, format!("{v}/stdout"));
    assert!(matches!(
        sb.browse(&format!("{v}/etc"), Some("a-S0")),
        Err(FilesError::NotFound(_))
    ));
}

#[test]
fn modes_and_utf8_prefixes() {
    assert_eq!(mode_string(0o40755), "drwxr-xr-x");
    assert_eq!(mode_string(0o100640), "-rw-r-----");
    let text = "añb".as_bytes();
    assert_eq!(utf8_prefix(&text[..2]), b"a");
    assert_eq!(utf8_prefix(text), text);
    assert_eq!(utf8_prefix(b"\xffx"), b"\xffx", "invalid bytes are kept");
}
