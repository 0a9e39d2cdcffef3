//! Name matching and renaming: anchored regex patterns, include/exclude filters, and the
//! rename template that turns a source topic name into a target topic name.
//!
//! A pattern matches a name only if it matches the WHOLE name, like Java's
//! `Pattern.matches()` that MirrorMaker 2 uses: `orders` matches "orders" but not
//! "orders.eu"; write `orders.*` for that. A filter matches a name that matches at least
//! one include pattern and no exclude pattern.
//!
//! The module also offers a little static reasoning used by the cycle and collision
//! checks: the literal prefix every match of a pattern starts with, and whether two sets
//! of (renamed) names are provably disjoint. The reasoning is conservative: "disjoint"
//! is only answered when it is certain; otherwise the caller assumes overlap.
//! It does not look at the topics that exist on a cluster.

use regex::Regex;
use std::fmt;

/// A compiled, fully anchored regular expression, remembering the text it came from.
#[derive(Clone)]
pub struct Pattern {
    text: String,
    regex: Regex,
}

impl Pattern {
    /// Compiles `text` with whole-name (anchored) semantics.
    ///
    /// The error is a one-line explanation such as `invalid regex "orders(": unclosed group`.
    pub fn new(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("empty regex; it would only match an empty name".to_string());
        }
        // Compile the pattern as written first so that the message refers to the user's text.
        if let Err(error) = Regex::new(text) {
            return Err(format!("invalid regex {text:?}: {}", regex_problem(&error)));
        }
        let regex = Regex::new(&format!("^(?:{text})$"))
            .map_err(|error| format!("invalid regex {text:?}: {}", regex_problem(&error)))?;
        Ok(Self {
            text: text.to_string(),
            regex,
        })
    }

    /// The pattern as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern matches the whole of `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }

    /// A literal string every matching name starts with ("" when nothing is known).
    pub fn literal_prefix(&self) -> String {
        split_literal_prefix(&self.text).0
    }

    /// `Some(name)` if the pattern is a plain name (no regex syntax but escapes), which it
    /// alone matches.
    pub fn literal_name(&self) -> Option<String> {
        let (prefix, rest) = split_literal_prefix(&self.text);
        (rest.is_empty() || rest == "$")
            .then_some(prefix)
            .filter(|p| !p.is_empty())
    }

    /// `Some(p)` if the pattern is exactly "`p` followed by anything" (`p.*`), i.e. it
    /// matches every name starting with `p`.
    pub fn matches_every_name_with_prefix(&self) -> Option<String> {
        let (prefix, rest) = split_literal_prefix(&self.text);
        let rest = rest.strip_suffix('$').unwrap_or(rest);
        (rest == ".*").then_some(prefix)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// The last line of the regex crate's multi-line syntax error ("unclosed group").
fn regex_problem(error: &regex::Error) -> String {
    match error {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("error: "))
            .unwrap_or(text.as_str())
            .to_string(),
        regex::Error::CompiledTooBig(limit) => {
            format!("compiled regex exceeds the size limit of {limit} bytes")
        }
        other => other.to_string(),
    }
}

/// Splits `pattern` into the literal text every match starts with and the rest.
///
/// Stops at the first construct that is not a plain literal (`.`, classes, groups,
/// escapes such as `\d`); a literal followed by `?`, `*` or `{` is optional or repeated,
/// so it is left in the rest. A top-level `|` means no common prefix is known.
fn split_literal_prefix(pattern: &str) -> (String, &str) {
    let body = pattern.strip_prefix('^').unwrap_or(pattern);
    if has_top_level_alternation(body) {
        return (String::new(), body);
    }
    let mut prefix = String::new();
    let mut rest = body;
    loop {
        let mut chars = rest.chars();
        let Some(c) = chars.next() else { break };
        let (literal, consumed) = match c {
            '\\' => match chars.next() {
                Some(e) if ".-\\*+?()[]{}|^$/#&~ ".contains(e) => (e, 1 + e.len_utf8()),
                _ => break,
            },
            '.' | '[' | ']' | '(' | ')' | '{' | '}' | '|' | '^' | '$' | '*' | '+' | '?' => break,
            c => (c, c.len_utf8()),
        };
        let after = &rest[consumed..];
        match after.chars().next() {
            Some('?' | '*' | '{') => break,
            Some('+') => {
                prefix.push(literal);
                rest = after;
                break;
            }
            _ => {
                prefix.push(literal);
                rest = after;
            }
        }
    }
    (prefix, rest)
}

/// Whether `pattern` has a `|` outside any group or character class.
fn has_top_level_alternation(pattern: &str) -> bool {
    let mut depth = 0usize;
    let mut in_class = false;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => depth = depth.saturating_sub(1),
            '|' if !in_class && depth == 0 => return true,
            _ => {}
        }
    }
    false
}

/// Include/exclude patterns: a name passes if some include matches and no exclude does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NameFilter {
    pub include: Vec<Pattern>,
    pub exclude: Vec<Pattern>,
}

impl NameFilter {
    pub fn matches(&self, name: &str) -> bool {
        self.include.iter().any(|p| p.matches(name))
            && !self.exclude.iter().any(|p| p.matches(name))
    }
}

/// One piece of a [`RenameTemplate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    Source,
    Target,
    Topic,
}

/// A rename template such as `"{source}.{topic}"`, with exactly one `{topic}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenameTemplate {
    text: String,
    parts: Vec<TemplatePart>,
}

/// Characters Kafka allows in topic names.
pub fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

impl RenameTemplate {
    /// The default, MirrorMaker 2's `DefaultReplicationPolicy` naming.
    pub const DEFAULT: &'static str = "{source}.{topic}";

    /// Parses a template. Placeholders: `{source}`, `{target}` (cluster names) and
    /// `{topic}` (the source topic name), which must appear exactly once. Literal text
    /// may only use characters legal in topic names.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if c == '{' {
                let Some(end) = rest.find('}') else {
                    return Err(format!(
                        "rename template {text:?} has a '{{' without a closing '}}'"
                    ));
                };
                let part = match &rest[1..end] {
                    "source" => TemplatePart::Source,
                    "target" => TemplatePart::Target,
                    "topic" => TemplatePart::Topic,
                    other => {
                        return Err(format!(
                            "rename template {text:?} has an unknown placeholder {{{other}}}; known: {{source}}, {{target}}, {{topic}}"
                        ))
                    }
                };
                if !literal.is_empty() {
                    parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(part);
                rest = &rest[end + 1..];
            } else if is_topic_char(c) {
                literal.push(c);
                rest = &rest[c.len_utf8()..];
            } else {
                return Err(format!(
                    "rename template {text:?} contains {c:?}; topic names may only contain letters, digits, '.', '_' and '-'"
                ));
            }
        }
        if !literal.is_empty() {
            parts.push(TemplatePart::Literal(literal));
        }
        match parts.iter().filter(|p| **p == TemplatePart::Topic).count() {
            1 => Ok(Self {
                text: text.to_string(),
                parts,
            }),
            0 => Err(format!("rename template {text:?} must contain {{topic}}")),
            _ => Err(format!(
                "rename template {text:?} must contain {{topic}} only once"
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the template keeps topic names unchanged (`"{topic}"`).
    pub fn is_identity(&self) -> bool {
        self.parts == [TemplatePart::Topic]
    }

    /// The target topic name for `topic` mirrored from cluster `source` to `target`.
    pub fn render(&self, source: &str, target: &str, topic: &str) -> String {
        let mut name = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Literal(text) => name.push_str(text),
                TemplatePart::Source => name.push_str(source),
                TemplatePart::Target => name.push_str(target),
                TemplatePart::Topic => name.push_str(topic),
            }
        }
        name
    }

    /// The fixed text before and after `{topic}` once the cluster names are filled in.
    pub fn affixes(&self, source: &str, target: &str) -> (String, String) {
        let rendered = self.render(source, target, "\u{0}");
        let (before, after) = rendered
            .split_once('\u{0}')
            .unwrap_or((rendered.as_str(), ""));
        (before.to_string(), after.to_string())
    }

    /// The inverse of [`render`](Self::render): the source topic that `name` was renamed
    /// from by this template, if `name` has the template's shape (and is not empty).
    pub fn original_topic<'n>(&self, source: &str, target: &str, name: &'n str) -> Option<&'n str> {
        let (before, after) = self.affixes(source, target);
        let topic = name
            .strip_prefix(before.as_str())?
            .strip_suffix(after.as_str())?;
        (!topic.is_empty()).then_some(topic)
    }
}

/// Renamed-topic spaces of two flows that write to the same cluster: `prefix + t + suffix`
/// for every source topic `t` the flow's filter passes.
pub struct RenamedTopics<'a> {
    pub prefix: &'a str,
    pub suffix: &'a str,
    pub filter: &'a NameFilter,
}

/// Whether no name can be in both spaces, as far as plain names, literal prefixes and
/// suffixes prove. `false` means "possibly overlapping".
pub fn provably_disjoint(a: &RenamedTopics<'_>, b: &RenamedTopics<'_>) -> bool {
    if !a.suffix.ends_with(b.suffix) && !b.suffix.ends_with(a.suffix) {
        return true;
    }
    // An include that is a plain name renames one topic: the other space holds its new
    // name or not.
    let one_name = |include: &Pattern, space: &RenamedTopics<'_>, other: &RenamedTopics<'_>| {
        include.literal_name().map(|topic| {
            !space.filter.matches(&topic)
                || !produces(other, &format!("{}{topic}{}", space.prefix, space.suffix))
        })
    };
    a.filter.include.iter().all(|include_a| {
        b.filter.include.iter().all(|include_b| {
            if let Some(disjoint) = one_name(include_a, a, b).or_else(|| one_name(include_b, b, a))
            {
                return disjoint;
            }
            let prefix_a = format!("{}{}", a.prefix, include_a.literal_prefix());
            let prefix_b = format!("{}{}", b.prefix, include_b.literal_prefix());
            !prefix_a.starts_with(&prefix_b) && !prefix_b.starts_with(&prefix_a)
                || excluded_by(&prefix_b, a)
                || excluded_by(&prefix_a, b)
        })
    })
}

/// Whether `name` is in `space`: the source topic it would be renamed from passes the
/// space's filter.
fn produces(space: &RenamedTopics<'_>, name: &str) -> bool {
    name.strip_prefix(space.prefix)
        .and_then(|topic| topic.strip_suffix(space.suffix))
        .is_some_and(|topic| !topic.is_empty() && space.filter.matches(topic))
}

/// Whether every renamed name starting with `prefix` is excluded by `space`'s filter.
fn excluded_by(prefix: &str, space: &RenamedTopics<'_>) -> bool {
    space.filter.exclude.iter().any(|exclude| {
        exclude
            .matches_every_name_with_prefix()
            .is_some_and(|excluded| prefix.starts_with(&format!("{}{excluded}", space.prefix)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> NameFilter {
        NameFilter {
            include: include.iter().map(|p| Pattern::new(p).unwrap()).collect(),
            exclude: exclude.iter().map(|p| Pattern::new(p).unwrap()).collect(),
        }
    }

    #[test]
    fn patterns_match_the_whole_name() {
        let orders = Pattern::new("orders").unwrap();
        assert!(orders.matches("orders"));
        assert!(!orders.matches("orders.eu"));
        assert!(!orders.matches("my-orders"));
        let prefixed = Pattern::new("orders\\..*").unwrap();
        assert!(prefixed.matches("orders.eu"));
        assert!(!prefixed.matches("orders"));
        let alternation = Pattern::new("a|b").unwrap();
        assert!(alternation.matches("a") && alternation.matches("b") && !alternation.matches("ab"));
        assert!(Pattern::new("^orders$").unwrap().matches("orders"));
    }

    #[test]
    fn invalid_patterns_explain_the_problem_on_one_line() {
        let error = Pattern::new("orders(").unwrap_err();
        assert_eq!(error, "invalid regex \"orders(\": unclosed group");
        assert!(Pattern::new("").is_err());
        assert!(Pattern::new("[z-a]")
            .unwrap_err()
            .starts_with("invalid regex \"[z-a]\": "));
    }

    #[test]
    fn literal_prefixes() {
        let prefix = |p: &str| Pattern::new(p).unwrap().literal_prefix();
        assert_eq!(prefix("orders\\..*"), "orders.");
        assert_eq!(prefix("orders.*"), "orders");
        assert_eq!(prefix("ab*"), "a");
        assert_eq!(prefix("ab+c"), "ab");
        assert_eq!(prefix("ab?"), "a");
        assert_eq!(prefix("a{2}"), "");
        assert_eq!(prefix("a|b"), "");
        assert_eq!(prefix("(?i)orders"), "");
        assert_eq!(prefix("orders\\.(eu|us)"), "orders.");
        assert_eq!(prefix("^__.*"), "__");
        assert_eq!(prefix("\\d+"), "");
        let every = |p: &str| Pattern::new(p).unwrap().matches_every_name_with_prefix();
        assert_eq!(every("__.*"), Some("__".to_string()));
        assert_eq!(every("kmirror.*$"), Some("kmirror".to_string()));
        assert_eq!(every(".*"), Some(String::new()));
        assert_eq!(every(".*\\.internal"), None);
    }

    #[test]
    fn filters_include_then_exclude() {
        let f = filter(&[".*"], &["__.*", "kmirror.*"]);
        assert!(f.matches("orders"));
        assert!(!f.matches("__consumer_offsets"));
        assert!(!f.matches("kmirror-offsets"));
    }

    #[test]
    fn templates_render_and_invert() {
        let t = RenameTemplate::parse("{source}.{topic}").unwrap();
        assert_eq!(t.render("east", "west", "orders"), "east.orders");
        assert_eq!(
            t.original_topic("east", "west", "east.orders"),
            Some("orders")
        );
        assert_eq!(t.original_topic("east", "west", "west.orders"), None);
        assert!(!t.is_identity());
        let t = RenameTemplate::parse("{topic}").unwrap();
        assert!(t.is_identity());
        assert_eq!(t.render("a", "b", "orders"), "orders");
        let t = RenameTemplate::parse("mirror-{target}.{topic}.from-{source}").unwrap();
        assert_eq!(t.render("a", "b", "x"), "mirror-b.x.from-a");
        assert_eq!(
            t.affixes("a", "b"),
            ("mirror-b.".to_string(), ".from-a".to_string())
        );
    }

    #[test]
    fn template_errors() {
        let e = |t: &str| RenameTemplate::parse(t).unwrap_err();
        assert!(e("{source}").contains("must contain {topic}"));
        assert!(e("{topic}.{topic}").contains("only once"));
        assert!(e("{src}.{topic}").contains("unknown placeholder {src}"));
        assert!(e("{source}/{topic}").contains("'/'"));
        assert!(e("{source.{topic}").contains("unknown placeholder"));
        assert!(e("{topic").contains("without a closing"));
    }

    #[test]
    fn disjointness_is_proved_by_prefixes_and_exclusions() {
        let space = |prefix, filter| RenamedTopics {
            prefix,
            suffix: "",
            filter,
        };
        let all = filter(&[".*"], &[]);
        let a = filter(&["a\\..*"], &[]);
        let b = filter(&["b\\..*"], &[]);
        let all_but_b = filter(&[".*"], &["b\\..*"]);
        assert!(!provably_disjoint(&space("", &all), &space("", &a)));
        assert!(provably_disjoint(&space("", &a), &space("", &b)));
        assert!(provably_disjoint(&space("", &all_but_b), &space("", &b)));
        assert!(provably_disjoint(
            &space("east.", &all),
            &space("west.", &all)
        ));
        assert!(!provably_disjoint(&space("east.", &all), &space("", &all)));
        assert!(provably_disjoint(&space("east.", &all), &space("", &b)));
        let suffixed = RenamedTopics {
            prefix: "",
            suffix: ".m",
            filter: &all,
        };
        let other = RenamedTopics {
            prefix: "",
            suffix: ".n",
            filter: &all,
        };
        assert!(provably_disjoint(&suffixed, &other));
    }

    /// A plain name in one flow's include renames one topic, which the other flow's
    /// filter passes or not: `big` and `big2` never meet, nor does `big` with `.*` minus
    /// `big`; `big` with `b.*` does.
    #[test]
    fn disjointness_is_proved_by_plain_names() {
        let space = |prefix, filter| RenamedTopics {
            prefix,
            suffix: "",
            filter,
        };
        let big = filter(&["big"], &[]);
        let big2 = filter(&["big2"], &[]);
        let all_but_big = filter(&[".*"], &["big"]);
        let b_any = filter(&["b.*"], &[]);
        assert_eq!(
            Pattern::new("big").unwrap().literal_name().as_deref(),
            Some("big")
        );
        assert_eq!(
            Pattern::new("big\\.eu$").unwrap().literal_name().as_deref(),
            Some("big.eu")
        );
        assert_eq!(Pattern::new("big.*").unwrap().literal_name(), None);
        assert!(provably_disjoint(&space("", &big), &space("", &big2)));
        assert!(provably_disjoint(&space("", &big2), &space("", &big)));
        assert!(provably_disjoint(
            &space("", &big),
            &space("", &all_but_big)
        ));
        assert!(!provably_disjoint(&space("", &big), &space("", &b_any)));
        assert!(!provably_disjoint(&space("", &big), &space("", &big)));
        // Renamed: "x.big" from a flow renaming to "x.{topic}" against "x.big" kept as is.
        let x_big = filter(&["x\\.big"], &[]);
        assert!(!provably_disjoint(&space("x.", &big), &space("", &x_big)));
        assert!(provably_disjoint(&space("y.", &big), &space("", &x_big)));
    }
}
