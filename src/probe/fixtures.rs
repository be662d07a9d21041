//! The captured packets of `tests/fixtures/probe/` (see its README), for the tests.

macro_rules! fixture {
    ($name:literal) => {
        (
            $name,
            hex(include_str!(concat!(
                "../../tests/fixtures/probe/",
                $name,
                ".hex"
            ))),
        )
    };
}

/// A fixture file: `#` comment lines, then hex digits (whitespace ignored).
fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.bytes().filter(|b| !b.is_ascii_whitespace()))
        .collect();
    assert_eq!(digits.len() % 2, 0, "odd number of hex digits");
    digits
        .chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).expect("ascii"), 16).expect("hex"))
        .collect()
}

/// Every fixture, by name (the file name without `.hex`).
pub fn all_fixtures() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        fixture!("v4-syn-out"),
        fixture!("v4-rst-out"),
        fixture!("v4-synack"),
        fixture!("v4-rst"),
        fixture!("v4-unreach-admin"),
        fixture!("v4-time-exceeded"),
        fixture!("v4-unreach-net"),
        fixture!("v4-unreach-host"),
        fixture!("v4-time-exceeded-ipopts"),
        fixture!("v4-frag-needed"),
        fixture!("v4-time-exceeded-rfc4884"),
        fixture!("v6-syn-out"),
        fixture!("v6-rst-out"),
        fixture!("v6-synack"),
        fixture!("v6-rst"),
        fixture!("v6-unreach-admin"),
        fixture!("v6-time-exceeded"),
        fixture!("v6-unreach-noroute"),
        fixture!("v6-unreach-addr"),
        fixture!("v6-time-exceeded-dstopt"),
        fixture!("v6-packet-too-big"),
        fixture!("v6-time-exceeded-rfc4884"),
    ]
}

/// One fixture by name.
pub fn get(name: &str) -> Vec<u8> {
    all_fixtures()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| b)
        .expect("fixture listed")
}
