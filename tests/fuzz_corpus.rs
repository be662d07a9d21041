//! The fuzz corpora without cargo-fuzz: every input under `fuzz/corpus/<target>/` (the seeds,
//! from the captured fixtures) and `fuzz/regressions/<target>/` (inputs that once crashed a
//! parser) goes through the target's entry function, `vmpath::fuzzing::<target>`, the one its
//! fuzz target calls; then, deterministically, truncations and single-byte changes of each
//! corpus input. No input may panic, and none may take long.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vmpath::fuzzing::TARGETS;

/// What one input may take in a debug build (the slowest seeds take a few ms).
const PER_INPUT: Duration = Duration::from_secs(2);

/// Bytes of input one seed's variants may add up to: a small seed gets every truncation and a
/// change at every byte, a large one evenly spaced positions.
const VARIANT_BYTES: usize = 1 << 19;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn entry(target: &str) -> vmpath::fuzzing::Entry {
    TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .unwrap_or_else(|| panic!("no vmpath::fuzzing entry for target {target}"))
        .1
}

/// The files of `dir` (none when it does not exist), sorted by name.
fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Vec<u8>)> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            let data = std::fs::read(&p).expect("corpus file");
            (p, data)
        })
        .collect();
    out.sort();
    out
}

/// Run one input; a panic or an overlong run is returned as a failure.
fn run(f: fn(&[u8]), data: &[u8], what: &dyn Fn() -> String) -> Result<Duration, String> {
    let start = Instant::now();
    let r = panic::catch_unwind(AssertUnwindSafe(|| f(data)));
    let took = start.elapsed();
    match r {
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("{}: panicked: {msg}", what()))
        }
        Ok(()) if took > PER_INPUT => Err(format!("{}: took {took:?}", what())),
        Ok(()) => Ok(took),
    }
}

/// A deterministic generator (xorshift) for the byte changes.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Positions in a seed of `len` bytes where it is cut and where a byte is changed.
fn positions(len: usize) -> Vec<usize> {
    let n = (VARIANT_BYTES / len.max(1)).clamp(64, 4096).min(len);
    (0..n).map(|i| i * len / n.max(1)).collect()
}

fn replay(target: &str) {
    let f = entry(target);
    let corpus = inputs(&root().join("fuzz/corpus").join(target));
    let regressions = inputs(&root().join("fuzz/regressions").join(target));
    assert!(!corpus.is_empty(), "fuzz/corpus/{target} has no seeds");
    let mut failures = Vec::new();
    let mut runs = 0usize;
    let start = Instant::now();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (path, data) in corpus.iter().chain(&regressions) {
        let name = path
            .strip_prefix(root())
            .unwrap_or(path)
            .display()
            .to_string();
        runs += 1;
        if let Err(e) = run(f, data, &|| name.clone()) {
            failures.push(e);
        }
    }
    for (path, data) in &corpus {
        let name = path
            .strip_prefix(root())
            .unwrap_or(path)
            .display()
            .to_string();
        for at in positions(data.len()) {
            runs += 2;
            if let Err(e) = run(f, &data[..at], &|| format!("{name} cut at {at}")) {
                failures.push(e);
            }
            let mut changed = data.clone();
            let r = rng.next();
            // Half the time a bit flip, else a byte that parsers look for.
            changed[at] = if r & 1 == 0 {
                changed[at] ^ (1 << ((r >> 1) % 8))
            } else {
                b"\0\n \t{}[]\",:/-*=0019\xff"[(r >> 1) as usize % 20]
            };
            let was = data[at];
            if let Err(e) = run(f, &changed, &|| {
                format!("{name} byte {at} {was:#04x} -> {:#04x}", changed[at])
            }) {
                failures.push(e);
            }
        }
    }
    eprintln!(
        "{target}: {} corpus + {} regression inputs, {runs} runs in {:?}",
        corpus.len(),
        regressions.len(),
        start.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{target}: {} failing inputs:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

macro_rules! targets {
    ($($t:ident),* $(,)?) => {
        $(
            #[test]
            fn $t() {
                replay(stringify!($t));
            }
        )*
        const TESTED: &[&str] = &[$(stringify!($t)),*];
    };
}

targets!(
    bird,
    frr_json,
    frr_vty,
    iptables,
    nft_json,
    xtnl,
    dnsmasq,
    cmdline,
    keepalived,
    ovsdb,
    ovsctl,
    proc_net,
    packet,
    config,
    walk_facts,
    gateway_facts,
);

/// Every entry has a test here, a fuzz target calling it and a corpus, and every fuzz target and
/// corpus directory belongs to an entry.
#[test]
fn targets_tests_and_corpora_match() {
    let mut names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    let mut tested = TESTED.to_vec();
    tested.sort_unstable();
    assert_eq!(names, tested, "tests/fuzz_corpus.rs tests other targets");
    for t in &names {
        let src = std::fs::read_to_string(root().join(format!("fuzz/fuzz_targets/{t}.rs")))
            .unwrap_or_else(|e| panic!("fuzz/fuzz_targets/{t}.rs: {e}"));
        assert!(
            src.contains(&format!("vmpath::fuzzing::{t}(")),
            "fuzz/fuzz_targets/{t}.rs does not call vmpath::fuzzing::{t}"
        );
    }
    let manifest = std::fs::read_to_string(root().join("fuzz/Cargo.toml")).expect("fuzz crate");
    for dir in ["fuzz/fuzz_targets", "fuzz/corpus", "fuzz/regressions"] {
        for e in std::fs::read_dir(root().join(dir)).into_iter().flatten() {
            let e = e.expect("dir entry");
            let name = e.file_name().to_string_lossy().to_string();
            let name = name.strip_suffix(".rs").unwrap_or(&name).to_string();
            assert!(
                names.contains(&name.as_str()),
                "{dir}/{name}: no such target"
            );
        }
    }
    for t in &names {
        assert!(
            manifest.contains(&format!("name = \"{t}\"")),
            "fuzz/Cargo.toml has no [[bin]] {t}"
        );
    }
}
