//! The shape of the code, checked: data flows one way (collect → port → check → pipelines →
//! output → cmd → cli), no import cycles between modules, commands do not call each other, and
//! no source file carries more than 1,000 lines of non-test code. Reads `src/` as text: every
//! `crate::…`, `use crate::{…}` and `super::…` path in non-test code is an edge from the file's
//! module to the deepest module the path names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`collect::bgp`, `walk`, "" for the crate root) → its file.
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&src).expect("under src").with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            (parts.join("::"), p)
        })
        .collect()
}

/// The file's code without its test module and without comments.
fn code(p: &Path) -> String {
    let text = std::fs::read_to_string(p).expect("read source");
    let text = match text.find("\n#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text.as_str(),
    };
    text.lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string literal ("http://") keeps the line: no path sits there.
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path that follows `at` in `s` (one per occurrence), `use` groups expanded
/// (`crate::check::{self, sg::Flow}` → `check`, `check::sg::Flow`).
fn paths_after(s: &str, at: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(at) {
        let before = rest[..i].chars().last();
        rest = &rest[i + at.len()..];
        if before.is_some_and(is_ident) {
            continue;
        }
        tree(rest, Vec::new(), &mut out);
    }
    out
}

/// One use tree at the start of `s`, under `prefix`: a path, then optionally `::{a, b::{c}}`.
/// Returns how many bytes it read.
fn tree(s: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix;
    let mut i = 0;
    let b = s.as_bytes();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'{' {
            i += 1;
            loop {
                i += tree(&s[i..], path.clone(), out);
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                match b.get(i) {
                    Some(b',') => i += 1,
                    Some(b'}') => return i + 1,
                    _ => return i,
                }
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                if b.get(i) == Some(&b'}') {
                    return i + 1;
                }
            }
        }
        let start = i;
        while i < b.len() && is_ident(b[i] as char) {
            i += 1;
        }
        let seg = &s[start..i];
        if !seg.is_empty() && seg != "self" {
            path.push(seg.to_string());
        }
        if s[i..].starts_with("::") && !seg.is_empty() {
            i += 2;
            continue;
        }
        out.push(path);
        return i;
    }
}

#[cfg(test)]
fn split(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    tree(s, Vec::new(), &mut out);
    out.into_iter().next().unwrap_or_default()
}

/// The deepest known module a path names.
fn target(mods: &BTreeMap<String, PathBuf>, path: &[String]) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| mods.contains_key(m))
}

/// Every edge module → module (a module's own children and itself excluded).
fn edges() -> BTreeSet<(String, String)> {
    let mods = modules();
    let mut out = BTreeSet::new();
    for (m, file) in &mods {
        // A module file of tests (`mod tests;` under #[cfg(test)]) is test code, as a test
        // module inside a file is.
        if m.ends_with("::tests") {
            continue;
        }
        let s = code(file);
        let here: Vec<String> = if m.is_empty() {
            Vec::new()
        } else {
            m.split("::").map(String::from).collect()
        };
        let mut found: Vec<Vec<String>> = paths_after(&s, "crate::");
        // super:: relative to the module's parent, once per `super`.
        for p in paths_after(&s, "super::") {
            let mut ups = 1;
            let mut p = p.as_slice();
            while p.first().is_some_and(|x| x == "super") {
                ups += 1;
                p = &p[1..];
            }
            if here.len() >= ups {
                let mut full: Vec<String> = here[..here.len() - ups].to_vec();
                full.extend(p.iter().cloned());
                found.push(full);
            }
        }
        for p in found {
            if let Some(t) = target(&mods, &p) {
                let own = t == *m || t.starts_with(&format!("{m}::")) && !m.is_empty();
                if !own {
                    out.insert((m.clone(), t));
                }
            }
        }
    }
    out
}

/// The component of a module at a depth (`collect::bgp::frr` at 1 → `collect`, at 2 →
/// `collect::bgp`).
fn at_depth(m: &str, d: usize) -> String {
    m.split("::").take(d).collect::<Vec<_>>().join("::")
}

fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let i = stack.iter().position(|x| x == m).unwrap_or(0);
                    let mut c = stack[i..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n) {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn graph_at(
    edges: &BTreeSet<(String, String)>,
    keep: impl Fn(&str) -> Option<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in edges {
        if let (Some(a), Some(b)) = (keep(a), keep(b)) {
            if a != b {
                g.entry(a).or_default().insert(b);
            }
        }
    }
    g
}

#[test]
fn the_edge_finder_sees_paths_groups_and_super() {
    assert_eq!(split("collect::bgp::Spoken;"), ["collect", "bgp", "Spoken"]);
    let p = paths_after(
        "use crate::{error::Error, model::{self, Check}};\nuse crate::check::{self, sg};",
        "crate::",
    );
    let want: Vec<Vec<String>> = [
        &["error", "Error"][..],
        &["model"],
        &["model", "Check"],
        &["check"],
        &["check", "sg"],
    ]
    .iter()
    .map(|v| v.iter().map(|x| x.to_string()).collect())
    .collect();
    assert_eq!(p, want);
    let e = edges();
    assert!(
        e.contains(&("walk::checks".into(), "check::sg".into())),
        "{e:?}"
    );
    assert!(
        e.contains(&("walk::checks".into(), "walk::gather".into())),
        "super:: paths: {e:?}"
    );
    assert!(e.contains(&("cmd::walk".into(), "cmd::args".into())));
}

#[test]
fn no_import_cycle_between_top_level_modules_or_within_collect_and_check() {
    let e = edges();
    let top = graph_at(&e, |m| (!m.is_empty()).then(|| at_depth(m, 1)));
    assert_eq!(cycle(&top), None, "a cycle between top-level modules");
    for area in [
        "collect", "check", "cmd", "port", "walk", "compute", "gateway", "plumb", "probe",
        "output", "path",
    ] {
        let g = graph_at(&e, |m| {
            (m.split("::").next() == Some(area) && m.contains("::")).then(|| at_depth(m, 2))
        });
        assert_eq!(cycle(&g), None, "a cycle inside {area}");
    }
}

#[test]
fn data_flows_one_way() {
    // Each top-level module and what it may use. Anything else is a layering violation.
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("model", &[][..]),
        ("error", &["model"][..]),
        ("collect", &["error"][..]),
        ("port", &["collect", "error"][..]),
        ("check", &["collect", "port", "error", "model"][..]),
        ("walk", &["check", "collect", "port", "error", "model"][..]),
        (
            "compute",
            &["check", "collect", "port", "error", "model"][..],
        ),
        (
            "gateway",
            &["check", "collect", "port", "error", "model"][..],
        ),
        ("probe", &["collect", "error", "model"][..]),
        // The whole path: Neutron's records (collect), vmpath over SSH on each host.
        ("path", &["check", "collect", "port", "error", "model"][..]),
        (
            "plumb",
            &["walk", "check", "collect", "port", "error", "model"][..],
        ),
        // The config file is read with collect's bounded reader; trusted accounts become a
        // collect::trust policy.
        ("config", &["collect", "error"][..]),
        (
            "output",
            &[
                "walk", "compute", "gateway", "plumb", "probe", "model", "error",
            ][..],
        ),
        (
            "cmd",
            &[
                "walk", "compute", "gateway", "plumb", "probe", "path", "check", "collect", "port",
                "output", "config", "error", "model",
            ][..],
        ),
        ("cli", &["cmd", "check", "model", "error"][..]),
        // Fuzz entry points drive the parsers and the pure checks; nothing uses them.
        (
            "fuzzing",
            &[
                "collect", "check", "port", "walk", "gateway", "probe", "config", "error", "model",
            ][..],
        ),
    ]);
    let mut bad = Vec::new();
    for (a, b) in edges() {
        if a.is_empty() {
            continue; // lib.rs / main.rs
        }
        let (ta, tb) = (at_depth(&a, 1), at_depth(&b, 1));
        if ta == tb || b.is_empty() {
            continue;
        }
        match allowed.get(ta.as_str()) {
            Some(ok) if ok.contains(&tb.as_str()) => {}
            Some(_) => bad.push(format!("{a} -> {b}")),
            None => bad.push(format!(
                "{a}: a top-level module the layering test does not know"
            )),
        }
    }
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
}

#[test]
fn commands_do_not_call_each_other() {
    let bad: Vec<String> = edges()
        .into_iter()
        .filter(|(a, b)| a.starts_with("cmd::") && b.starts_with("cmd::") && b != "cmd::args")
        .map(|(a, b)| format!("{a} -> {b}"))
        .collect();
    assert!(bad.is_empty(), "commands use each other: {bad:?}");
}

#[test]
fn no_source_file_has_more_than_1000_lines_of_non_test_code() {
    let mut big = Vec::new();
    for (m, p) in modules() {
        let text = std::fs::read_to_string(&p).expect("read");
        // A file that is itself a test module (`#[cfg(test)] mod tests;`) counts as test code.
        if p.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let non_test = text
            .find("\n#[cfg(test)]")
            .map(|i| text[..i].lines().count())
            .unwrap_or_else(|| text.lines().count());
        if non_test > 1000 {
            big.push(format!("{m} ({}): {non_test} lines", p.display()));
        }
    }
    assert!(
        big.is_empty(),
        "files above 1,000 lines of non-test code:\n{}",
        big.join("\n")
    );
}

/// Is the byte offset `at` of `code` inside a block that only debug builds compile or run:
/// an `if cfg!(debug_assertions) {` block, or an item under `#[cfg(debug_assertions)]`?
fn debug_only(code: &str, at: usize) -> bool {
    ["if cfg!(debug_assertions)", "#[cfg(debug_assertions)]"]
        .iter()
        .flat_map(|guard| code[..at].match_indices(guard).map(|(i, _)| i))
        .any(|i| {
            // The guarded block: the first `{` after the guard, with no `;` before it (an
            // attribute on a `use` or a statement guards nothing further on).
            let Some(open) = code[i..at].find('{').map(|o| i + o) else {
                return false;
            };
            if code[i..open].contains(';') {
                return false;
            }
            let mut depth = 0i32;
            for c in code[open..at].chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            return false; // the block closed before `at`
                        }
                    }
                    _ => {}
                }
            }
            depth > 0
        })
}

#[test]
fn the_guard_finder_sees_blocks_and_items() {
    let src =
        "#[cfg(debug_assertions)]\nfn hooks() { let v = \"HOOK\"; }\nfn other() { \"HOOK\" }\n\
fn f() { if cfg!(debug_assertions) { \"HOOK\" } else { \"HOOK\" } }\n\
#[cfg(debug_assertions)]\nuse x;\nfn g() { \"HOOK\" }";
    let hits: Vec<bool> = src
        .match_indices("HOOK")
        .map(|(i, _)| debug_only(src, i))
        .collect();
    assert_eq!(hits, [true, false, true, false, false]);
}

#[test]
fn plumb_test_hooks_are_read_by_debug_builds_only() {
    let mut seen = BTreeMap::new();
    let mut bad = Vec::new();
    for (m, p) in modules() {
        let s = code(&p);
        // A read names the variable as a string literal of its own (`env::var("…")`, a
        // constant, clap's `env = "…"`); messages that mention it are no read.
        for var in ["\"VMPATH_PLUMB_FAIL_STEP\"", "\"VMPATH_PLUMB_HOLD_MS\""] {
            for (i, _) in s.match_indices(var) {
                *seen.entry(var).or_insert(0) += 1;
                if !debug_only(&s, i) {
                    let line = s[..i].lines().count();
                    bad.push(format!("{m} ({}:{line}): {var}", p.display()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "test hooks a release binary would honour (guard them with cfg!(debug_assertions) or \
#[cfg(debug_assertions)]):\n{}",
        bad.join("\n")
    );
    assert_eq!(seen.len(), 2, "the hooks are read somewhere: {seen:?}");
}
