//! A lake written by the previous release keeps working: `tests/fixtures/previous_release/`
//! is `examples/demo` built by lakebuild 0.1.0 as it was before the layered source tree and
//! the lake format version (made by `tests/fixtures/make-previous-release.sh`). Its ops'
//! source text changed since, so their code versions — and so every key — changed: the
//! first build re-runs them and cuts every partition off (identical content), writes the
//! format version, and the next build has nothing to do. A lake of a newer format is
//! refused before anything is read or written.

mod common;
use common::*;
use lakebuild::core::record::PartitionOutcome;
use std::path::Path;

const ASSETS: [&str; 4] = ["prices", "returns", "momentum", "summary"];

fn copy_dir(from: &Path, to: &Path) -> R {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}

fn previous_release() -> R<Proj> {
    let p = Proj::new()?;
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/previous_release");
    copy_dir(&fixture, p.root())?;
    Ok(p)
}

#[test]
fn a_lake_written_by_the_previous_release_rebuilds_by_cutoff_then_is_fresh() -> R {
    let p = previous_release()?;
    assert!(!p.path("lake/_lakebuild/format.json").exists());
    let before: Vec<_> = ASSETS.iter().map(|a| p.hashes(a)).collect::<R<_>>()?;
    let versions: Vec<_> = ASSETS.iter().map(|a| p.version(a)).collect::<R<_>>()?;
    assert!(
        before.iter().all(|h| !h.is_empty()),
        "the fixture holds data"
    );
    // Read commands work on it as it is.
    let status = p.ok(&["status"])?;
    assert!(status.contains("prices"), "{status}");
    p.ok(&["why", "summary"])?;

    p.ok(&["build"])?;
    for (i, a) in ASSETS.iter().enumerate() {
        assert_eq!(&p.hashes(a)?, &before[i], "{a}: content changed");
        let commit = p.last_commit(a)?;
        assert!(
            p.version(a)? > versions[i],
            "{a} was re-keyed by a new commit"
        );
        assert!(
            commit
                .partitions
                .iter()
                .all(|x| x.outcome == PartitionOutcome::CutOff),
            "{a}: every partition is cut off: {:?}",
            commit
                .partitions
                .iter()
                .map(|x| (x.id, x.outcome))
                .collect::<Vec<_>>()
        );
    }
    let format: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        p.path("lake/_lakebuild/format.json"),
    )?)?;
    assert_eq!(format["format"], 1);
    let out = p.ok(&["build"])?;
    assert!(out.contains("nothing to do"), "{out}");
    Ok(())
}

#[test]
fn a_lake_of_a_newer_format_is_refused_and_left_untouched() -> R {
    let p = previous_release()?;
    p.write("lake/_lakebuild/format.json", "{\"format\": 2}")?;
    let versions: Vec<_> = ASSETS.iter().map(|a| p.version(a)).collect::<R<_>>()?;
    for args in [&["build"][..], &["status"], &["why", "summary"]] {
        let out = p.fails(args, 2)?;
        assert!(
            out.contains("has format 2, written by a newer lakebuild"),
            "{args:?}: {out}"
        );
        assert!(out.contains("upgrade lakebuild"), "{out}");
    }
    let after: Vec<_> = ASSETS.iter().map(|a| p.version(a)).collect::<R<_>>()?;
    assert_eq!(versions, after);
    Ok(())
}
