//! completions/ and man/ are generated from the clap definition and committed. This test fails
//! when they are stale; regenerate with `VMPATH_REGENERATE=1 cargo test --test generated`.

use std::path::{Path, PathBuf};

use clap_complete::Shell;

fn render() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for (shell, file) in [
        (Shell::Bash, "completions/vmpath.bash"),
        (Shell::Zsh, "completions/_vmpath"),
        (Shell::Fish, "completions/vmpath.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut vmpath::cli::command(), "vmpath", &mut buf);
        out.push((PathBuf::from(file), buf));
    }
    let cmd = vmpath::cli::command();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut buf)
        .expect("render man page");
    out.push((PathBuf::from("man/vmpath.1"), buf));
    for sub in cmd.get_subcommands() {
        let name = format!("vmpath-{}", sub.get_name());
        let static_name: &'static str = name.clone().leak();
        let sub = sub.clone().name(static_name);
        let mut buf = Vec::new();
        clap_mangen::Man::new(sub).render(&mut buf).expect("render");
        out.push((PathBuf::from(format!("man/{name}.1")), buf));
    }
    out
}

#[test]
fn completions_and_man_pages_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let regenerate = std::env::var_os("VMPATH_REGENERATE").is_some();
    let mut stale = Vec::new();
    for (rel, bytes) in render() {
        let path = root.join(&rel);
        if regenerate {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, &bytes).expect("write");
            continue;
        }
        match std::fs::read(&path) {
            Ok(old) if old == bytes => {}
            _ => stale.push(rel.display().to_string()),
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files: {stale:?}; run VMPATH_REGENERATE=1 cargo test --test generated and commit them"
    );
}
