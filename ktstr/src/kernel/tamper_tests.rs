//! A package or index that is not what Debian signed is refused, for real:
//! the suite's private apt state is updated from the real mirror, then one
//! recorded hash or size, or the signed Release file itself, is altered so
//! what apt receives no longer matches, and the real code path runs. These
//! need the network (Debian's mirror) and fail saying so without it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::super::store::tests::TempDir;
use super::*;

/// The default suite's private apt state, freshly updated from the mirror.
fn fresh_index(store: &KernelStore) -> Apt {
    open_index(store, DEFAULT_SUITE, &Progress::new())
        .unwrap_or_else(|e| panic!("this test needs the network (Debian's mirror) and could not reach it: {e:#}"))
}

/// The lists file of `kind` (`Packages`, `InRelease`), uncompressed in
/// place by apt's own reader so it can be edited (apt reads a list stored
/// uncompressed as well as compressed).
fn list_file(apt_dir: &Path, kind: &str) -> PathBuf {
    let lists = apt_dir.join("lists");
    let tag = format!("_{kind}");
    let file = fs::read_dir(&lists)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains(&tag)))
        .unwrap_or_else(|| panic!("no {kind} list in {}", lists.display()));
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let plain = lists.join(format!("{}{tag}", name.split(&tag).next().unwrap()));
    if plain != file {
        let out = Command::new("/usr/lib/apt/apt-helper").arg("cat-file").arg(&file).output().unwrap();
        assert!(out.status.success(), "apt-helper cat-file {}: {}", file.display(), apt::output_text(&out));
        fs::write(&plain, &out.stdout).unwrap();
        fs::remove_file(&file).unwrap();
    }
    plain
}

/// Rewrites `field` in every stanza of `package` in a Packages file.
fn edit_field(packages: &Path, package: &str, field: &str, edit: impl Fn(&str) -> String) {
    let text = fs::read_to_string(packages).unwrap();
    let (mut ours, mut edits) = (false, 0);
    let prefix = format!("{field}: ");
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if let Some(name) = l.strip_prefix("Package: ") {
                ours = name == package;
            }
            match l.strip_prefix(&prefix) {
                Some(value) if ours => {
                    edits += 1;
                    format!("{prefix}{}", edit(value))
                }
                _ => l.to_string(),
            }
        })
        .collect();
    assert!(edits > 0, "no {field} of {package} in {}", packages.display());
    fs::write(packages, lines.join("\n") + "\n").unwrap();
}

fn no_staging_left(store: &KernelStore) {
    let left: Vec<_> = fs::read_dir(store.dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".staging-"))
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "staging left: {left:?}");
}

#[test]
fn a_package_that_does_not_match_the_signed_index_is_refused() {
    let tmp = TempDir::new("tampered-package");
    let store = KernelStore::new(tmp.0.join("kernels"));
    let apt = fresh_index(&store);
    let meta_pkg = format!("linux-image-{DEFAULT_FLAVOUR}");
    let release =
        release_from_meta(&first(apt.show(&[&meta_pkg]).unwrap(), &meta_pkg).unwrap(), DEFAULT_FLAVOUR).unwrap();
    // The index now expects other bytes than the mirror serves: another
    // SHA256 for the (small) image package, another size for the base one.
    let packages = list_file(&store.apt_dir(DEFAULT_SUITE), "Packages");
    let flip = |hash: &str| format!("{}{}", if hash.starts_with('0') { '1' } else { '0' }, &hash[1..]);
    edit_field(&packages, &format!("linux-image-{release}"), "SHA256", flip);
    edit_field(&packages, &format!("linux-base-{release}"), "Size", |v| (v.parse::<u64>().unwrap() + 1).to_string());

    let opts = FetchOptions { release: Some(release.clone()), ..FetchOptions::default() };
    let err = format!("{:#}", fetch_into(&store, &opts).unwrap_err());
    let stage = format!("fetching kernel {release}: downloading linux-image-{release}, linux-base-{release}");
    assert!(err.starts_with(&stage), "{err}");
    assert!(
        err.contains("a package does not match Debian's signed package index (apt: ")
            && err.contains("so ktstr refused it: it was altered by the mirror, a proxy or on disk"),
        "{err}"
    );
    assert!(err.contains(&format!("delete this suite's private apt state {}", store.apt_dir(DEFAULT_SUITE).display())));
    // apt's own lines are kept below, and both checks fired.
    let apt_said = err.split_once("apt said:\n").map_or("", |(_, a)| a);
    assert!(apt_said.contains("Hash Sum mismatch") && apt_said.contains("File has unexpected size"), "{err}");
    assert!(store.list().is_empty(), "a tampered kernel was installed");
    no_staging_left(&store);
}

#[test]
fn an_index_that_does_not_match_debians_signature_is_refused() {
    let tmp = TempDir::new("tampered-index");
    let store = KernelStore::new(tmp.0.join("kernels"));
    let apt = fresh_index(&store);
    let apt_dir = store.apt_dir(DEFAULT_SUITE);
    let signed = fs::read_to_string(list_file(&apt_dir, "InRelease")).unwrap();
    let packages = fs::read_to_string(list_file(&apt_dir, "Packages")).unwrap();

    // A local mirror serving Debian's own signed InRelease, but a Packages
    // file edited after signing (one package's size).
    let mirror = tmp.0.join("mirror");
    let dists = mirror.join("dists").join(DEFAULT_SUITE);
    fs::create_dir_all(dists.join("main/binary-amd64")).unwrap();
    fs::write(dists.join("InRelease"), &signed).unwrap();
    let altered = packages.replacen("\nSize: ", "\nSize: 9", 1);
    fs::write(dists.join("main/binary-amd64/Packages"), altered).unwrap();
    let xz = Command::new("xz").arg("-kf").arg(dists.join("main/binary-amd64/Packages")).output().unwrap();
    assert!(xz.status.success(), "xz: {}", apt::output_text(&xz));
    let uri = format!("file://{}", mirror.display());

    let served = Apt::prepare_at(&tmp.0.join("apt-packages"), DEFAULT_SUITE, &uri, &apt.keyring).unwrap();
    let err = served.update().unwrap_err().to_string();
    let stage = format!("updating the {DEFAULT_SUITE} package index from {uri}");
    assert!(
        err.starts_with(&format!(
            "{stage}: the package index does not match the archive's signed Release file (apt: Hash Sum mismatch), \
             so ktstr refused it"
        )),
        "{err}"
    );
    assert!(!served.has_index(), "the altered index was kept");

    // The Release file itself edited after signing.
    fs::write(dists.join("InRelease"), signed.replacen("\nDate: ", "\nDate: 1", 1)).unwrap();
    let served = Apt::prepare_at(&tmp.0.join("apt-release"), DEFAULT_SUITE, &uri, &apt.keyring).unwrap();
    let err = served.update().unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{stage}: the archive's Release file does not match its signature (apt: BADSIG), so ktstr refused it"
        )),
        "{err}"
    );
    assert!(!err.contains("keyring may predate"), "a bad signature blamed on the keyring: {err}");
    assert!(err.contains("apt said:\n") && err.contains("The following signatures were invalid"), "{err}");
    assert!(!served.has_index(), "the altered index was kept");
}
