//! `${VAR}` and `${VAR:-default}` substitution in the topology text, before YAML parsing.
//!
//! Substitution works on the text so that serde_yaml's line/column positions stay useful,
//! but it is YAML-aware enough not to let a value change the document's structure:
//! - inside `"double"` quotes the value is escaped (`\`, `"`, line breaks);
//! - inside `'single'` quotes `'` is doubled; a line break is refused;
//! - in an unquoted (plain) scalar a value that YAML would read differently (`#`, `: `,
//!   leading `*`/`&`/`!`/quotes, flow brackets, surrounding spaces, …) is written as a
//!   double-quoted string when `${VAR}` is the whole scalar, and refused otherwise;
//! - `${` inside comments is left alone; `$${` is a literal `${`.
//!
//! `${VAR:-default}` uses `default` when VAR is unset or empty (shell semantics). An unset
//! VAR without a default is an error naming the variable and its line and column. Values
//! never appear in messages: the module records them so that later error messages can be
//! redacted (see [`Interpolated::redact`]).
//!
//! Not handled: block scalars (`|`, `>`) are scanned like plain text, and a quote that
//! opens a scalar is recognised by what precedes it on the line (start of line, `: `,
//! `- `, `[`, `{`, `,`), which covers the block-style YAML kmirror topologies use.

/// The substituted text plus what is needed to map positions back to the original.
#[derive(Debug, Default)]
pub struct Interpolated {
    /// The text after substitution; same number of lines as the input.
    pub text: String,
    /// Problems found, with 1-based positions in the original text.
    pub errors: Vec<InterpolationError>,
    /// Per (0-based) line, the column shifts introduced by substitutions, in order.
    shifts: Vec<Vec<Shift>>,
    /// `(variable name, value)` of every substitution, for [`Interpolated::redact`].
    substitutions: Vec<(String, String)>,
}

/// A bad or unresolvable `${...}` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpolationError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// One replaced span on a line, in character columns (0-based).
#[derive(Debug, Clone, Copy)]
struct Shift {
    output_start: usize,
    output_len: usize,
    input_start: usize,
    input_len: usize,
}

/// Values shorter than this are not redacted: they cannot be meaningful secrets and
/// replacing them would garble messages ("3" inside "u32").
const REDACT_MIN_LEN: usize = 3;

impl Interpolated {
    /// Maps a 1-based column on a 1-based line of the substituted text back to the
    /// original text. A column inside a substituted value maps to its `${`.
    pub fn input_column(&self, line: usize, column: usize) -> usize {
        let Some(shifts) = line.checked_sub(1).and_then(|index| self.shifts.get(index)) else {
            return column;
        };
        let output = column.saturating_sub(1);
        let mut input = output;
        for shift in shifts {
            if output < shift.output_start {
                break;
            }
            if output < shift.output_start + shift.output_len {
                return shift.input_start + 1;
            }
            input = shift.input_start
                + shift.input_len
                + (output - shift.output_start - shift.output_len);
        }
        input + 1
    }

    /// Replaces every substituted value in `message` by its `${VAR}` reference, so that
    /// error messages that quote a field's value never print a secret.
    pub fn redact(&self, message: &str) -> String {
        let mut redacted = message.to_string();
        let mut by_length: Vec<&(String, String)> = self.substitutions.iter().collect();
        by_length.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
        for (name, value) in by_length {
            if value.chars().count() >= REDACT_MIN_LEN {
                redacted = redacted.replace(value.as_str(), &format!("${{{name}}}"));
            }
        }
        redacted
    }
}

/// Where a `${` occurs, which decides how its value must be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    DoubleQuoted,
    SingleQuoted,
    Plain { whole_scalar: bool, in_flow: bool },
}

/// Substitutes `${VAR}` references in `text` using `env` to look variables up.
pub fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Interpolated {
    let mut scanner = Scanner {
        env,
        out: Interpolated::default(),
        quote: None,
        flow_depth: 0,
    };
    for (index, line) in text.split('\n').enumerate() {
        if index > 0 {
            scanner.out.text.push('\n');
        }
        scanner.line(index, line);
    }
    scanner.out
}

struct Scanner<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    out: Interpolated,
    /// The open quote character, carried across lines for multi-line quoted scalars.
    quote: Option<char>,
    /// Depth of `[`/`{` flow collections, carried across lines.
    flow_depth: usize,
}

impl Scanner<'_> {
    fn line(&mut self, line_index: usize, line: &str) {
        let chars: Vec<char> = line.chars().collect();
        let mut shifts = Vec::new();
        let mut output_column = 0usize;
        // Last non-blank character outside quotes on this line, and whether blanks followed it.
        let mut previous: Option<char> = None;
        let mut blank_since_previous = false;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            if c == '$' && next == Some('$') && chars.get(i + 2) == Some(&'{') {
                self.out.text.push_str("${");
                shifts.push(Shift {
                    output_start: output_column,
                    output_len: 2,
                    input_start: i,
                    input_len: 3,
                });
                output_column += 2;
                i += 3;
                previous = Some('{');
                blank_since_previous = false;
                continue;
            }
            if c == '$' && next == Some('{') {
                let at_scalar_start =
                    self.quote.is_none() && self.scalar_starts(previous, blank_since_previous);
                let context = match self.quote {
                    Some('"') => Context::DoubleQuoted,
                    Some(_) => Context::SingleQuoted,
                    None => Context::Plain {
                        whole_scalar: false,
                        in_flow: self.flow_depth > 0,
                    },
                };
                let consumed = self.reference(line_index, &chars, i, at_scalar_start, context);
                let replacement = consumed.replacement;
                let replacement_len = replacement.chars().count();
                self.out.text.push_str(&replacement);
                shifts.push(Shift {
                    output_start: output_column,
                    output_len: replacement_len,
                    input_start: i,
                    input_len: consumed.input_len,
                });
                output_column += replacement_len;
                i += consumed.input_len;
                if self.quote.is_none() {
                    previous = Some('x');
                    blank_since_previous = false;
                }
                continue;
            }
            match self.quote {
                Some('"') => {
                    if c == '\\' && next.is_some() {
                        self.out.text.push(c);
                        self.out.text.push(chars[i + 1]);
                        output_column += 2;
                        i += 2;
                        continue;
                    }
                    if c == '"' {
                        self.quote = None;
                        previous = Some('"');
                        blank_since_previous = false;
                    }
                }
                Some(_) => {
                    if c == '\'' && next == Some('\'') {
                        self.out.text.push_str("''");
                        output_column += 2;
                        i += 2;
                        continue;
                    }
                    if c == '\'' {
                        self.quote = None;
                        previous = Some('\'');
                        blank_since_previous = false;
                    }
                }
                None => {
                    if c == '#' && (i == 0 || chars[i - 1].is_whitespace()) {
                        // A comment: copy the rest of the line untouched.
                        self.out.text.extend(&chars[i..]);
                        break;
                    }
                    if (c == '"' || c == '\'') && self.scalar_starts(previous, blank_since_previous)
                    {
                        self.quote = Some(c);
                    } else if (c == '[' || c == '{')
                        && (self.flow_depth > 0
                            || self.scalar_starts(previous, blank_since_previous))
                    {
                        self.flow_depth += 1;
                    } else if (c == ']' || c == '}') && self.flow_depth > 0 {
                        self.flow_depth -= 1;
                    }
                    if c.is_whitespace() {
                        blank_since_previous = true;
                    } else {
                        previous = Some(c);
                        blank_since_previous = false;
                    }
                }
            }
            self.out.text.push(c);
            output_column += 1;
            i += 1;
        }
        if self.out.shifts.len() <= line_index {
            self.out.shifts.resize(line_index + 1, Vec::new());
        }
        self.out.shifts[line_index] = shifts;
    }

    /// Whether a scalar may start here, judged by the previous character on the line.
    fn scalar_starts(&self, previous: Option<char>, blank_since_previous: bool) -> bool {
        match previous {
            None => true,
            Some('[' | '{' | ',') => self.flow_depth > 0,
            Some(':' | '-' | '?') => blank_since_previous,
            Some(_) => false,
        }
    }

    /// Resolves the reference starting at `chars[start]` (`$`), recording errors.
    fn reference(
        &mut self,
        line_index: usize,
        chars: &[char],
        start: usize,
        at_scalar_start: bool,
        context: Context,
    ) -> Consumed {
        let line = line_index + 1;
        let column = start + 1;
        let Some(close) = chars[start..]
            .iter()
            .position(|&c| c == '}')
            .map(|p| start + p)
        else {
            let original: String = chars[start..].iter().collect();
            self.error(
                line,
                column,
                "unterminated variable reference: \"${\" without a closing \"}\"".to_string(),
            );
            return Consumed {
                replacement: original,
                input_len: chars.len() - start,
            };
        };
        let original: String = chars[start..=close].iter().collect();
        let unchanged = Consumed {
            replacement: original.clone(),
            input_len: close + 1 - start,
        };
        let body: String = chars[start + 2..close].iter().collect();
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body.as_str(), None),
        };
        if !is_variable_name(name) {
            self.error(
                line,
                column,
                format!("invalid variable reference {original}: expected ${{NAME}} or ${{NAME:-default}} where NAME is letters, digits and '_'"),
            );
            return unchanged;
        }
        let value = match ((self.env)(name), default) {
            (Some(value), Some(default)) if value.is_empty() => default.to_string(),
            (Some(value), _) => value,
            (None, Some(default)) => default.to_string(),
            (None, None) => {
                self.error(
                    line,
                    column,
                    format!("environment variable {name} is not set (referenced as {original}); set it or write ${{{name}:-default}}"),
                );
                return unchanged;
            }
        };
        let whole_scalar =
            at_scalar_start && plain_scalar_ends(chars, close + 1, self.flow_depth > 0);
        let context = match context {
            Context::Plain { in_flow, .. } => Context::Plain {
                whole_scalar,
                in_flow,
            },
            other => other,
        };
        match render(&value, context) {
            Ok(replacement) => {
                self.out.substitutions.push((name.to_string(), value));
                Consumed {
                    replacement,
                    input_len: close + 1 - start,
                }
            }
            Err(problem) => {
                self.error(
                    line,
                    column,
                    format!("value of environment variable {name} {problem}"),
                );
                unchanged
            }
        }
    }

    fn error(&mut self, line: usize, column: usize, message: String) {
        self.out.errors.push(InterpolationError {
            line,
            column,
            message,
        });
    }
}

struct Consumed {
    replacement: String,
    input_len: usize,
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether an unquoted scalar would end at `chars[from]`: end of line, a comment, a
/// key's `:`, or (inside a flow collection) `,`, `]` or `}`.
fn plain_scalar_ends(chars: &[char], from: usize, in_flow: bool) -> bool {
    let rest: String = chars[from..].iter().collect();
    let trimmed = rest.trim_start();
    trimmed.is_empty()
        || (trimmed.starts_with('#') && trimmed.len() < rest.len())
        || trimmed == ":"
        || trimmed.starts_with(": ")
        || (in_flow && trimmed.starts_with([',', ']', '}']))
}

/// Writes `value` so that YAML reads back exactly `value` in `context`, or explains why
/// it cannot (without printing the value).
fn render(value: &str, context: Context) -> Result<String, &'static str> {
    match context {
        Context::DoubleQuoted => Ok(escape_double_quoted(value)),
        Context::SingleQuoted => {
            if value.contains(['\n', '\r']) {
                return Err("contains a line break, which a single-quoted scalar cannot hold; use double quotes");
            }
            Ok(value.replace('\'', "''"))
        }
        Context::Plain {
            whole_scalar,
            in_flow,
        } => {
            if is_plain_safe(value, in_flow) {
                Ok(value.to_string())
            } else if whole_scalar {
                Ok(format!("\"{}\"", escape_double_quoted(value)))
            } else {
                Err("contains characters that would change the YAML structure of this unquoted value; put the whole value in double quotes")
            }
        }
    }
}

fn escape_double_quoted(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if c.is_control() => escaped.push_str(&format!("\\u{:04X}", c as u32)),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Whether YAML reads `value` back unchanged as (part of) an unquoted scalar.
fn is_plain_safe(value: &str, in_flow: bool) -> bool {
    let Some(first) = value.chars().next() else {
        return false;
    };
    let second = value.chars().nth(1);
    if value.trim() != value || value.chars().any(char::is_control) {
        return false;
    }
    if ",[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if "-?:".contains(first) && matches!(second, None | Some(' ' | '\t')) {
        return false;
    }
    if value.contains(": ") || value.contains(" #") || value.contains("\t#") || value.ends_with(':')
    {
        return false;
    }
    !(in_flow && value.contains([',', '[', ']', '{', '}']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PASSWORD" => Some("s3cr:et #x".to_string()),
            "PLAIN" => Some("hunter2".to_string()),
            "PORT" => Some("9092".to_string()),
            "QUOTE" => Some("it's \"q\"".to_string()),
            "EMPTY" => Some(String::new()),
            "MULTI" => Some("a\nb".to_string()),
            _ => None,
        }
    }

    fn run(text: &str) -> Interpolated {
        interpolate(text, &env)
    }

    #[test]
    fn plain_values_are_substituted_as_is() {
        let out = run("password: ${PLAIN}\nport: ${PORT}\n");
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.text, "password: hunter2\nport: 9092\n");
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let out = run("a: ${NOPE:-fallback}\nb: ${EMPTY:-other}\nc: \"${EMPTY}\"\n");
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.text, "a: fallback\nb: other\nc: \"\"\n");
    }

    #[test]
    fn missing_variable_is_an_error_with_its_position() {
        let out = run("clusters:\n  x: { password: ${MISSING_PW} }\n");
        assert_eq!(out.errors.len(), 1);
        let error = &out.errors[0];
        assert_eq!((error.line, error.column), (2, 18));
        assert!(
            error.message.contains("MISSING_PW is not set"),
            "{}",
            error.message
        );
        // The reference is left in place so that parsing can go on.
        assert!(out.text.contains("${MISSING_PW}"));
    }

    #[test]
    fn yaml_significant_values_are_quoted_when_they_are_the_whole_scalar() {
        let out = run("password: ${PASSWORD}\n");
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let value: serde_yaml::Value = serde_yaml::from_str(&out.text).unwrap();
        assert_eq!(value["password"].as_str(), Some("s3cr:et #x"));
    }

    #[test]
    fn yaml_significant_values_inside_a_larger_plain_scalar_are_refused() {
        let out = run("password: pre-${PASSWORD}\n");
        assert_eq!(out.errors.len(), 1);
        assert!(out.errors[0].message.contains("double quotes"));
        assert!(!out.errors[0].message.contains("s3cr"), "value leaked");
    }

    #[test]
    fn quoted_contexts_are_escaped() {
        let out = run("a: \"x ${QUOTE}\"\nb: 'x ${QUOTE}'\nc: \"${MULTI}\"\n");
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let value: serde_yaml::Value = serde_yaml::from_str(&out.text).unwrap();
        assert_eq!(value["a"].as_str(), Some("x it's \"q\""));
        assert_eq!(value["b"].as_str(), Some("x it's \"q\""));
        assert_eq!(value["c"].as_str(), Some("a\nb"));
        assert_eq!(
            out.text.lines().count(),
            3,
            "line breaks must not be introduced"
        );
    }

    #[test]
    fn line_breaks_are_refused_outside_double_quotes() {
        let out = run("a: ${MULTI}x\nb: '${MULTI}'\n");
        assert_eq!(out.errors.len(), 2, "{:?}", out.errors);
    }

    #[test]
    fn comments_and_escapes_are_left_alone() {
        let out = run("# uses ${NOT_SET}\na: $${PLAIN} # ${ALSO_NOT_SET}\n");
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(
            out.text,
            "# uses ${NOT_SET}\na: ${PLAIN} # ${ALSO_NOT_SET}\n"
        );
    }

    #[test]
    fn malformed_references_are_errors() {
        let out = run("a: ${1BAD}\nb: ${UNCLOSED\n");
        assert_eq!(out.errors.len(), 2, "{:?}", out.errors);
        assert!(out.errors[0].message.contains("invalid variable reference"));
        assert!(out.errors[1].message.contains("unterminated"));
    }

    #[test]
    fn flow_context_values_with_commas_are_quoted() {
        let env = |_: &str| Some("a,b".to_string());
        let out = interpolate("x: { k: ${V}, j: 1 }\n", &env);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let value: serde_yaml::Value = serde_yaml::from_str(&out.text).unwrap();
        assert_eq!(value["x"]["k"].as_str(), Some("a,b"));
    }

    #[test]
    fn columns_map_back_to_the_original_text() {
        let out = run("a: ${PORT} ${PLAIN} z\n");
        // Output: "a: 9092 hunter2 z"
        assert_eq!(out.input_column(1, 1), 1);
        assert_eq!(out.input_column(1, 4), 4); // '9' -> '$' of ${PORT}
        assert_eq!(out.input_column(1, 6), 4); // inside the value
        assert_eq!(out.input_column(1, 9), 12); // 'h' -> '$' of ${PLAIN}
        assert_eq!(out.input_column(1, 17), 21); // 'z'
        assert_eq!(out.input_column(2, 5), 5); // untouched line
    }

    #[test]
    fn redact_replaces_values_with_references() {
        let out = run("a: ${PLAIN}\n");
        assert_eq!(
            out.redact("bad value \"hunter2\""),
            "bad value \"${PLAIN}\""
        );
    }
}
