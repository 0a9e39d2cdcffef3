//! Field paths (`flows[0].topics.include[1]`) and finding them in the YAML text.
//!
//! serde_yaml keeps no spans on parsed values, but it does attach the position of the
//! value being deserialized to any error raised while deserializing it. This module uses
//! that: to find a path it re-runs the real parser with a `DeserializeSeed` that walks
//! down the path (skipping everything else) and fails on purpose at the target; the
//! error's location is the target's line and column. The same walker deserializes one
//! item of the document on its own ([`deserialize_at`]), which lets the loader report
//! type errors of several clusters and flows instead of stopping at the first.
//!
//! Because the real parser does the work, positions are right for block style, flow
//! style (`{ a: 1 }` on one line), quoting and anchors alike. A mapping value points at
//! its first key (block style) or its `{`; a scalar at its first character. Keys are
//! compared as text. Each lookup parses the whole text again, which is fine for
//! configuration files (small, and lookups happen only for errors).

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess,
    Visitor,
};
use std::fmt;
use std::marker::PhantomData;

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path to a field of the topology, printed like `flows[0].topics.include[1]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The document root (prints as an empty string).
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path extended by a mapping key.
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.into()));
        Self(segments)
    }

    /// This path extended by a sequence index.
    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }

    /// The path without its last segment (the root stays the root).
    pub fn parent(&self) -> Self {
        let mut segments = self.0.clone();
        segments.pop();
        Self(segments)
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if position == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// What to point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The value at the path.
    Value,
    /// The key that ends the path; `occurrence` counts repeated keys (0 = the first).
    Key { occurrence: usize },
}

/// A 1-based line and column in the YAML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Marks the error this module raises on purpose, to tell it from real parse errors.
const MARKER: &str = "<kmirror locate marker>";
const NOT_FOUND: &str = "<kmirror locate: path not found>";

/// Finds `path` in `text`, or `None` if the path does not exist there.
pub fn locate(text: &str, path: &FieldPath, target: Target) -> Option<Position> {
    let occurrence = match target {
        Target::Key { occurrence } if !path.is_root() => Some(occurrence),
        _ => None,
    };
    let walker = Walker {
        path: path.segments(),
        leaf: Locate { occurrence },
    };
    let error = walker
        .deserialize(serde_yaml::Deserializer::from_str(text))
        .err()?;
    if !error.to_string().contains(MARKER) {
        return None;
    }
    error.location().map(|location| Position {
        line: location.line(),
        column: location.column(),
    })
}

/// Finds `path`, or failing that its nearest ancestor that exists.
pub fn locate_nearest(text: &str, path: &FieldPath, target: Target) -> Option<Position> {
    if let Some(position) = locate(text, path, target) {
        return Some(position);
    }
    let mut ancestor = path.parent();
    loop {
        if let Some(position) = locate(text, &ancestor, Target::Value) {
            return Some(position);
        }
        if ancestor.is_root() {
            return None;
        }
        ancestor = ancestor.parent();
    }
}

/// Deserializes only the value at `path`, ignoring the rest of the document. Errors
/// carry serde_yaml's location and its full path (e.g. `flows[2].limits: ...`).
/// `Ok(None)` means the path does not exist.
pub fn deserialize_at<T: DeserializeOwned>(
    text: &str,
    path: &FieldPath,
) -> Result<Option<T>, serde_yaml::Error> {
    let walker = Walker {
        path: path.segments(),
        leaf: Extract(PhantomData::<T>),
    };
    match walker.deserialize(serde_yaml::Deserializer::from_str(text)) {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.to_string().contains(NOT_FOUND) => Ok(None),
        Err(error) => Err(error),
    }
}

/// What to do once the walk reaches the end of the path.
trait Leaf<'de> {
    type Value;
    /// `Some(n)`: the target is the n-th occurrence of the last key, not its value.
    fn key_occurrence(&self) -> Option<usize>;
    fn leaf<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error>;
}

struct Locate {
    occurrence: Option<usize>,
}

impl<'de> Leaf<'de> for Locate {
    type Value = ();

    fn key_occurrence(&self) -> Option<usize> {
        self.occurrence
    }

    fn leaf<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        // Every visit fails with "invalid type: ..., expected <MARKER>", and serde_yaml
        // attaches the position of the value being visited.
        deserializer.deserialize_any(FailVisitor)
    }
}

struct FailVisitor;

impl Visitor<'_> for FailVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MARKER)
    }
}

struct Extract<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> Leaf<'de> for Extract<T> {
    type Value = T;

    fn key_occurrence(&self) -> Option<usize> {
        None
    }

    fn leaf<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        T::deserialize(deserializer)
    }
}

/// Walks down `path`, skipping every other key and element.
struct Walker<'p, L> {
    path: &'p [Segment],
    leaf: L,
}

impl<'de, L: Leaf<'de>> DeserializeSeed<'de> for Walker<'_, L> {
    type Value = L::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<L::Value, D::Error> {
        if self.path.is_empty() {
            self.leaf.leaf(deserializer)
        } else {
            deserializer.deserialize_any(self)
        }
    }
}

impl<'de, L: Leaf<'de>> Visitor<'de> for Walker<'_, L> {
    type Value = L::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{NOT_FOUND}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<L::Value, A::Error> {
        let Some((Segment::Key(wanted), rest)) = self.path.split_first() else {
            return Err(de::Error::custom(NOT_FOUND));
        };
        let key_occurrence = if rest.is_empty() {
            self.leaf.key_occurrence()
        } else {
            None
        };
        let mut seen = 0;
        loop {
            let fail_on_match = key_occurrence == Some(seen);
            let Some(matched) = map.next_key_seed(KeyProbe {
                wanted,
                fail_on_match,
            })?
            else {
                return Err(de::Error::custom(NOT_FOUND));
            };
            if matched && key_occurrence.is_none() {
                let value = map.next_value_seed(Walker {
                    path: rest,
                    leaf: self.leaf,
                })?;
                // serde_yaml checks that a visitor consumed the whole mapping.
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                return Ok(value);
            }
            seen += usize::from(matched);
            map.next_value::<IgnoredAny>()?;
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<L::Value, A::Error> {
        let Some((Segment::Index(wanted), rest)) = self.path.split_first() else {
            return Err(de::Error::custom(NOT_FOUND));
        };
        for _ in 0..*wanted {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(NOT_FOUND));
            }
        }
        let Some(value) = seq.next_element_seed(Walker {
            path: rest,
            leaf: self.leaf,
        })?
        else {
            return Err(de::Error::custom(NOT_FOUND));
        };
        // serde_yaml checks that a visitor consumed the whole sequence.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(value)
    }
}

/// Reads one mapping key; `true` if it is the wanted one. Fails with [`MARKER`] on the
/// wanted key when that key is the target.
struct KeyProbe<'w> {
    wanted: &'w str,
    fail_on_match: bool,
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyProbe<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a scalar key ({NOT_FOUND})")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        if key != self.wanted {
            Ok(false)
        } else if self.fail_on_match {
            Err(E::custom(MARKER))
        } else {
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
clusters:
  east: { bootstrap: [\"a:9092\", \"b:9092\"] }
  west:
    bootstrap:
      - c:9092
flows:
  - name: one
    topics:
      include: [\"x.*\", \"orders(\"]
  - name: two
    source: east
clusters: {}
";

    fn at(path: &FieldPath, target: Target) -> Option<(usize, usize)> {
        locate(TEXT, path, target).map(|p| (p.line, p.column))
    }

    #[test]
    fn paths_print_like_serde_yaml() {
        let path = FieldPath::root()
            .key("flows")
            .index(0)
            .key("topics")
            .key("include")
            .index(1);
        assert_eq!(path.to_string(), "flows[0].topics.include[1]");
        assert_eq!(FieldPath::root().to_string(), "");
    }

    #[test]
    fn block_style_values_and_items() {
        let flows = FieldPath::root().key("flows");
        assert_eq!(
            at(&flows.index(1).key("source"), Target::Value),
            Some((11, 13))
        );
        assert_eq!(at(&flows.index(1), Target::Value), Some((10, 5)));
        let west = FieldPath::root().key("clusters").key("west");
        assert_eq!(
            at(&west.key("bootstrap").index(0), Target::Value),
            Some((5, 9))
        );
        assert_eq!(at(&west, Target::Key { occurrence: 0 }), Some((3, 3)));
    }

    #[test]
    fn flow_style_values_on_one_line() {
        let include = FieldPath::root()
            .key("flows")
            .index(0)
            .key("topics")
            .key("include");
        assert_eq!(at(&include.index(1), Target::Value), Some((9, 24)));
        let east = FieldPath::root().key("clusters").key("east");
        assert_eq!(
            at(&east.key("bootstrap").index(1), Target::Value),
            Some((2, 33))
        );
    }

    #[test]
    fn repeated_keys_by_occurrence() {
        let clusters = FieldPath::root().key("clusters");
        assert_eq!(at(&clusters, Target::Key { occurrence: 0 }), Some((1, 1)));
        assert_eq!(at(&clusters, Target::Key { occurrence: 1 }), Some((12, 1)));
        assert_eq!(at(&clusters, Target::Key { occurrence: 2 }), None);
    }

    #[test]
    fn missing_paths_fall_back_to_the_nearest_ancestor() {
        let missing = FieldPath::root().key("flows").index(1).key("target");
        assert_eq!(at(&missing, Target::Value), None);
        let nearest = locate_nearest(TEXT, &missing, Target::Value).map(|p| (p.line, p.column));
        assert_eq!(nearest, Some((10, 5)));
    }

    #[test]
    fn deserialize_at_extracts_one_item() {
        let name: Option<String> =
            deserialize_at(TEXT, &FieldPath::root().key("flows").index(1).key("name")).unwrap();
        assert_eq!(name.as_deref(), Some("two"));
        let missing: Option<String> = deserialize_at(TEXT, &FieldPath::root().key("nope")).unwrap();
        assert_eq!(missing, None);
        let error =
            deserialize_at::<u32>(TEXT, &FieldPath::root().key("flows").index(0).key("name"))
                .unwrap_err();
        assert_eq!(
            error.location().map(|l| (l.line(), l.column())),
            Some((7, 11))
        );
        assert!(
            error.to_string().starts_with("flows[0].name: invalid type"),
            "{error}"
        );
    }
}
