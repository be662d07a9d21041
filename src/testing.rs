//! Test helpers shared by the unit tests of several modules.

/// A capture of `lab/capture-facts` (`tests/fixtures/facts/NAME.json`): the facts a run gathered
/// and the report it printed, as JSON values.
pub fn capture(name: &str) -> (serde_json::Value, serde_json::Value) {
    let path = format!(
        "{}/tests/fixtures/facts/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("capture (lab/capture-facts)");
    let mut doc: serde_json::Value = serde_json::from_str(&text).expect("capture JSON");
    (doc["facts"].take(), doc["report"].take())
}
