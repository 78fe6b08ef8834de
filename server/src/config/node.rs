//! A typed walk over the parsed TOML document that remembers, for every value, its
//! option path and its place in the file, so each error can point at both.
//!
//! The walk is by hand rather than through serde so that every message says what the
//! option takes in the operator's terms ("one of \"starttls\", \"tls\"", "a port number
//! from 1 to 65535") and so that unknown keys are reported with the keys that are
//! accepted in that very table.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, ConfigOrigin, Problem};

/// The document being read: its origin and text, for error positions.
pub(super) struct Doc<'s> {
    pub(super) origin: ConfigOrigin,
    src: &'s str,
}

impl<'s> Doc<'s> {
    pub(super) fn new(origin: ConfigOrigin, src: &'s str) -> Self {
        Self { origin, src }
    }

    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.src.len());
        self.src.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() + 1
    }

    /// An error at byte range `span` (`None`: no position).
    pub(super) fn error(&self, span: Option<Range<usize>>, path: &str, problem: Problem) -> ConfigError {
        ConfigError {
            origin: self.origin.clone(),
            line: span.map(|s| self.line_of(s.start)),
            path: path.to_string(),
            problem,
        }
    }
}

/// One value of the document with its path.
#[derive(Clone)]
pub(super) struct Node<'a, 'i> {
    doc: &'a Doc<'a>,
    path: String,
    value: &'a DeValue<'i>,
    span: Range<usize>,
}

pub(super) type Result<T> = std::result::Result<T, ConfigError>;

/// A TOML key as it appears in a path: bare when it can be, quoted otherwise.
fn path_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// "a string (\"foo\")", "an integer (5)", ...: what was found, for messages.
fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("the string {:?}", s.as_ref()),
        DeValue::Integer(i) => format!("the integer {i}"),
        DeValue::Float(x) => format!("the float {x}"),
        DeValue::Boolean(b) => format!("the boolean {b}"),
        DeValue::Datetime(d) => format!("the date-time {d}"),
        DeValue::Array(a) if a.is_empty() => "an empty array".into(),
        DeValue::Array(a) if a.len() == 1 => "an array of 1 element".into(),
        DeValue::Array(a) => format!("an array of {} elements", a.len()),
        DeValue::Table(_) => "a table".into(),
    }
}

impl<'a, 'i> Node<'a, 'i> {
    /// The document root.
    pub(super) fn root(doc: &'a Doc<'a>, value: &'a DeValue<'i>, span: Range<usize>) -> Self {
        Self {
            doc,
            path: String::new(),
            value,
            span,
        }
    }

    /// The option path of this value.
    pub(super) fn path(&self) -> &str {
        &self.path
    }

    /// An error about this value.
    pub(super) fn error(&self, problem: Problem) -> ConfigError {
        self.doc.error(Some(self.span.clone()), &self.path, problem)
    }

    /// "expected X, got <this value>" for a value of the wrong type.
    pub(super) fn wrong_type(&self, expected: &str) -> ConfigError {
        self.error(Problem::WrongType {
            expected: expected.into(),
            got: describe(self.value),
        })
    }

    /// "expected X, got <this value>" for a value of the right type but not accepted.
    pub(super) fn bad_value(&self, expected: &str) -> ConfigError {
        self.error(Problem::BadValue {
            expected: expected.into(),
            got: describe(self.value),
        })
    }

    /// A string.
    pub(super) fn str(&self, expected: &str) -> Result<&'a str> {
        match self.value {
            DeValue::String(s) => Ok(s.as_ref()),
            _ => Err(self.wrong_type(expected)),
        }
    }

    /// A boolean.
    pub(super) fn bool(&self) -> Result<bool> {
        match self.value {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.wrong_type("a boolean (true or false)")),
        }
    }

    /// Whether this value is an integer (to choose between "infinity" and a number).
    pub(super) fn is_integer(&self) -> bool {
        matches!(self.value, DeValue::Integer(_))
    }

    /// An integer within `range`; `expected` describes it.
    pub(super) fn integer(&self, range: std::ops::RangeInclusive<u64>, expected: &str) -> Result<u64> {
        let DeValue::Integer(i) = self.value else {
            return Err(self.wrong_type(expected));
        };
        // TOML integers are signed 64-bit; a negative one fails this parse.
        match u64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(self.bad_value(expected)),
        }
    }

    /// A string that must be one of `choices`.
    pub(super) fn one_of(&self, choices: &[&'static str]) -> Result<&'static str> {
        let expected = format!(
            "one of {}",
            choices
                .iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let s = self.str(&expected)?;
        choices
            .iter()
            .find(|c| **c == s)
            .copied()
            .ok_or_else(|| self.bad_value(&expected))
    }

    /// The elements of an array.
    pub(super) fn array(&self, expected: &str) -> Result<Vec<Node<'a, 'i>>> {
        let DeValue::Array(items) = self.value else {
            return Err(self.wrong_type(expected));
        };
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, item)| Node {
                doc: self.doc,
                path: format!("{}[{i}]", self.path),
                value: item.get_ref(),
                span: item.span(),
            })
            .collect())
    }

    /// A table whose keys must all be in `known` (an unknown key is an error naming it).
    pub(super) fn table(&self, known: &[&str]) -> Result<Table<'a, 'i>> {
        let table = self.any_table()?;
        for (key, _) in table.map.iter() {
            if !known.contains(&key.get_ref().as_ref()) {
                return Err(self.doc.error(
                    Some(key.span()),
                    &table.child_path(key.get_ref()),
                    Problem::UnknownOption {
                        known: known.iter().map(|k| k.to_string()).collect(),
                    },
                ));
            }
        }
        Ok(table)
    }

    /// A table with keys chosen by the operator (shaper names, module names).
    pub(super) fn any_table(&self) -> Result<Table<'a, 'i>> {
        match self.value {
            DeValue::Table(map) => Ok(Table {
                node: self.clone(),
                map,
            }),
            _ => Err(self.wrong_type("a table")),
        }
    }
}

/// A TOML table being read.
pub(super) struct Table<'a, 'i> {
    node: Node<'a, 'i>,
    map: &'a DeTable<'i>,
}

impl<'a, 'i> Table<'a, 'i> {
    fn child_path(&self, key: &str) -> String {
        if self.node.path.is_empty() {
            path_key(key)
        } else {
            format!("{}.{}", self.node.path, path_key(key))
        }
    }

    /// The value of `key`, if present.
    pub(super) fn get(&self, key: &str) -> Option<Node<'a, 'i>> {
        self.map.iter().find(|(k, _)| k.get_ref() == key).map(|(k, v)| {
            // Tables created implicitly by a dotted key or header have no text of their
            // own; point at the key instead.
            let span = if v.span().is_empty() { k.span() } else { v.span() };
            Node {
                doc: self.node.doc,
                path: self.child_path(key),
                value: v.get_ref(),
                span,
            }
        })
    }

    /// The value of `key`, which must be present; `expected` describes it.
    pub(super) fn required(&self, key: &str, expected: &str) -> Result<Node<'a, 'i>> {
        self.get(key).ok_or_else(|| self.missing(key, expected))
    }

    /// The error for `key` being absent from this table.
    pub(super) fn missing(&self, key: &str, expected: &str) -> ConfigError {
        self.node.doc.error(
            Some(self.node.span.clone()),
            &self.child_path(key),
            Problem::Missing {
                expected: expected.into(),
            },
        )
    }

    /// All entries, in key order.
    pub(super) fn entries(&self) -> Vec<(&'a str, Node<'a, 'i>)> {
        self.map
            .iter()
            .map(|(k, _)| (k.get_ref().as_ref(), self.get(k.get_ref()).expect("key present")))
            .collect()
    }
}
