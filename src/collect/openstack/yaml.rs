//! YAML (clouds.yaml, secure.yaml) into a JSON value, from the parser's events. Aliases are
//! expanded under a budget of nodes, so a small file cannot expand into gigabytes ("billion
//! laughs"); flow nesting is bounded by the parser (255 levels) and block nesting by the file's
//! size cap. Plain scalars are typed as YAML 1.2's core schema types them (`true`, `null`,
//! `~`, integers, floats); quoted ones stay strings.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, EventReceiver, Parser};
use yaml_rust2::scanner::TScalarStyle;

/// The most nodes one file may expand into (aliases included).
pub const MAX_NODES: usize = 100_000;

enum Frame {
    Seq(Vec<Value>, usize),
    Map(Map<String, Value>, Option<String>, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Value, usize)>,
    /// Nodes made so far, alias expansions counted by their size.
    nodes: usize,
    docs: Vec<Value>,
    error: Option<String>,
}

fn plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    // A leading zero (`0123`, an id) stays text: YAML 1.1 would read it as octal, 1.2 as 123,
    // and neither is what the file's author meant.
    let digits = s.trim_start_matches(['-', '+']);
    if digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0.") {
        return Value::String(s.to_string());
    }
    if let Ok(i) = s.parse::<i64>() {
        return Value::Number(i.into());
    }
    if s.bytes().any(|b| b.is_ascii_digit()) && !s.contains(['x', 'o', 'X']) {
        if let Some(n) = s.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(s.to_string())
}

fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The number of nodes in a value (for the alias budget).
fn size(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(size).sum::<usize>(),
        Value::Object(m) => 1 + m.values().map(size).sum::<usize>(),
        _ => 1,
    }
}

impl Builder {
    fn fail(&mut self, m: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(m.into());
        }
    }

    fn add(&mut self, v: Value, anchor: usize, cost: usize) {
        self.nodes = self.nodes.saturating_add(cost);
        if self.nodes > MAX_NODES {
            self.fail(format!(
                "the file expands into more than {MAX_NODES} nodes (aliases?)"
            ));
            return;
        }
        if anchor > 0 {
            let n = size(&v);
            self.anchors.insert(anchor, (v.clone(), n));
        }
        match self.stack.last_mut() {
            None => self.docs.push(v),
            Some(Frame::Seq(items, _)) => items.push(v),
            Some(Frame::Map(m, key, _)) => match key.take() {
                None => *key = Some(key_text(&v)),
                Some(k) => {
                    // YAML's merge key (`<<: *base`): the base's keys where this map has none.
                    if k == "<<" {
                        if let Value::Object(base) = v {
                            for (bk, bv) in base {
                                m.entry(bk).or_insert(bv);
                            }
                        }
                    } else {
                        m.insert(k, v);
                    }
                }
            },
        }
    }
}

impl EventReceiver for Builder {
    fn on_event(&mut self, ev: Event) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::Scalar(s, style, anchor, _) => {
                let v = if style == TScalarStyle::Plain {
                    plain(&s)
                } else {
                    Value::String(s)
                };
                self.add(v, anchor, 1);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(Vec::new(), anchor)),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map(Map::new(), None, anchor)),
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq(items, a)) => self.add(Value::Array(items), a, 1),
                Some(Frame::Map(m, _, a)) => self.add(Value::Object(m), a, 1),
                None => self.fail("unbalanced YAML events"),
            },
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some((v, n)) => self.add(v, 0, n),
                None => self.fail("an alias names no anchor"),
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// The first document of `text` as JSON (`Null` for an empty file). The error says where.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut b = Builder::default();
    let mut p = Parser::new_from_str(text);
    p.load(&mut b, false).map_err(|e| e.to_string())?;
    if let Some(e) = b.error {
        return Err(e);
    }
    Ok(b.docs.into_iter().next().unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_plain_scalars_and_keeps_quoted_ones() {
        let v = parse("a: true\nb: '1'\nc: 12\nd: ~\ne: public\nf: \"false\"\ng: 1.5\n").unwrap();
        assert_eq!(v["a"], Value::Bool(true));
        assert_eq!(v["b"], Value::String("1".into()));
        assert_eq!(v["c"], Value::Number(12.into()));
        assert_eq!(v["d"], Value::Null);
        assert_eq!(v["e"], "public");
        assert_eq!(v["f"], "false");
        assert_eq!(v["g"].as_f64(), Some(1.5));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let v = parse(
            "base: &b\n  auth_url: http://x\n  region_name: R1\nclouds:\n  one:\n    <<: *b\n    region_name: R2\n  two: *b\n",
        )
        .unwrap();
        assert_eq!(v["clouds"]["one"]["auth_url"], "http://x");
        assert_eq!(v["clouds"]["one"]["region_name"], "R2");
        assert_eq!(v["clouds"]["two"]["region_name"], "R1");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&s).unwrap_err();
        assert!(e.contains("nodes"), "{e}");
    }

    #[test]
    fn bad_yaml_and_deep_flow_nesting_are_errors_not_panics() {
        assert!(parse("a: [1, 2\n").is_err());
        assert!(parse(&"[".repeat(300)).is_err());
        assert!(parse("a: *nope\n").is_err());
        assert_eq!(parse("").unwrap(), Value::Null);
    }
}
