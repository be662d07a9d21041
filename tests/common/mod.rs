//! The lab harness the integration test binaries share (tests/lab.rs, tests/plumb.rs): one lab
//! per test binary in its own directory (or an already running one named by VMPATH_LAB_DIR, left
//! running), torn down at exit, handed out with a lock so tests that plant faults never overlap.
//! Outside CI the tests skip (with a message) when the lab cannot run here; with CI=true that
//! is a failure.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

/// The lab's identities both test binaries use (lab/vmlab defines them; `vmlab info` has all).
pub const VM1: &str = "198.51.100.11";
pub const VM1_PORT: &str = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51";
pub const VM1_TAP: &str = "tap3f1c2a4e-5b";
pub const VM2: &str = "198.51.100.12";
pub const VM3: &str = "198.51.100.21";

pub struct Lab {
    pub dir: PathBuf,
    pub lock: Mutex<()>,
}

static LAB: OnceLock<Result<Lab, String>> = OnceLock::new();
static OWNED_DIR: OnceLock<PathBuf> = OnceLock::new();

pub fn vmlab() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("lab/vmlab")
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

extern "C" fn teardown() {
    if let Some(dir) = OWNED_DIR.get() {
        let _ = Command::new(vmlab())
            .arg("down")
            .arg("--dir")
            .arg(dir)
            .output();
    }
}

/// Start a lab in a fresh directory named after `name` and this process.
fn start(name: &str) -> Result<Lab, String> {
    if let Ok(dir) = std::env::var("VMPATH_LAB_DIR") {
        return Ok(Lab {
            dir: dir.into(),
            lock: Mutex::new(()),
        });
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("the lab needs root (network namespaces, daemons)".into());
    }
    let dir = std::env::temp_dir().join(format!("vmpath-{name}-{}", std::process::id()));
    let _ = OWNED_DIR.set(dir.clone());
    // SAFETY: registering a plain extern "C" function with no captured state.
    unsafe {
        libc::atexit(teardown);
    }
    let t = Instant::now();
    let out = Command::new(vmlab())
        .arg("up")
        .arg("--dir")
        .arg(&dir)
        .output()
        .map_err(|e| format!("cannot run lab/vmlab: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "lab/vmlab up failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    eprintln!(
        "lab up in {:.1} s at {}",
        t.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(Lab {
        dir,
        lock: Mutex::new(()),
    })
}

/// The lab and its lock, or None (skip) outside CI when it cannot run here. `name` names the
/// lab's directory (one lab per test binary).
pub fn lab(name: &str) -> Option<(&'static Lab, MutexGuard<'static, ()>)> {
    match LAB.get_or_init(|| start(name)) {
        Ok(l) => Some((l, l.lock.lock().unwrap_or_else(|p| p.into_inner()))),
        Err(e) if in_ci() => panic!("lab unavailable in CI: {e}"),
        Err(e) => {
            eprintln!("SKIPPED (not in CI): {e}");
            None
        }
    }
}

impl Lab {
    /// `lab/vmlab ARGS[0] --dir DIR ARGS[1..]`, which must succeed.
    pub fn vmlab(&self, args: &[&str]) -> Output {
        let out = Command::new(vmlab())
            .arg(args[0])
            .arg("--dir")
            .arg(&self.dir)
            .args(&args[1..])
            .output()
            .expect("run lab/vmlab");
        assert!(
            out.status.success(),
            "vmlab {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}
