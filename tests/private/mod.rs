//! Scripts run in a private network and mount namespace (and, with `pid`, a PID namespace of
//! their own) by the integration tests that need no lab of lab/vmlab (tests/gateway.rs,
//! tests/compute.rs), and the `== NAME` sections of JSON documents they print.

use std::collections::BTreeMap;
use std::process::{Command, Output};

use serde_json::Value;

/// Run `bash SCRIPT ARGS…` under `timeout SECS unshare --net --mount [--pid --fork --kill-child
/// --mount-proc] --propagation private`, with `env` set; the script is given the inode of this
/// network namespace (its own must differ) in `var`.
pub fn run(secs: u32, pid: bool, script: &str, args: &[&str], var: &str) -> Output {
    let outer = std::fs::metadata("/proc/self/ns/net")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .expect("netns");
    let mut cmd = Command::new("timeout");
    cmd.arg(secs.to_string())
        .args(["unshare", "--net", "--mount"]);
    if pid {
        cmd.args(["--pid", "--fork", "--kill-child", "--mount-proc"]);
    }
    cmd.args(["--propagation", "private", "bash", script])
        .args(args)
        .env(var, outer.to_string())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"))
}

// Not every test binary that includes this module uses all of it.
#[allow(dead_code)]
/// The JSON documents a script printed, each after a line `== NAME` (a name without a body,
/// like an end marker, is left out).
pub fn sections(text: &str) -> BTreeMap<String, Value> {
    let mut docs = BTreeMap::new();
    let (mut name, mut body) = (String::new(), String::new());
    for line in text.lines().chain(["== end"]) {
        if let Some(n) = line.strip_prefix("== ") {
            // A section without a body (an end marker) holds no document.
            if !name.is_empty() && !body.trim().is_empty() {
                let v = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("{name}: bad JSON ({e}):\n{body}"));
                docs.insert(std::mem::take(&mut name), v);
            }
            name = n.to_string();
            body.clear();
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    docs
}
