//! `${VAR}` and `${VAR:-default}` in the topology's values.
//!
//! Substitution happens on each scalar value while serde reads it ([`super::raw::Text`] and
//! [`super::raw::Typed`]), never on the file's text: a value cannot change the document's
//! structure or need quoting, and an error carries its scalar's line, column and field path
//! from serde_yaml like any other type error. Keys are not substituted. `$${` is a literal
//! `${`. `${VAR:-default}` uses `default` when VAR is unset or empty (shell semantics); an
//! unset VAR without a default is an error naming it.
//!
//! Values from the environment never appear in messages: each such substitution is recorded
//! so that messages can be redacted ([`Substitutions::redact`]). Defaults are written in
//! the file, not secrets, and messages show them. The environment is reachable from `Deserialize`
//! impls through a thread-local scope set by [`with_environment`] for one parse.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Values shorter than this are not redacted: they cannot be meaningful secrets and
/// replacing them would garble messages ("3" inside "u32").
const REDACT_MIN_LEN: usize = 3;

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// The variables one parse may use, resolved up front, and what it substituted.
struct Scope {
    variables: BTreeMap<String, Option<String>>,
    substitutions: Substitutions,
}

/// `(variable name, value)` of every substitution made during one parse.
#[derive(Debug, Default)]
pub struct Substitutions(Vec<(String, String)>);

impl Substitutions {
    /// Replaces every substituted value in `message` by its `${VAR}` reference, so that
    /// error messages that quote a field's value never print a secret.
    pub fn redact(&self, message: &str) -> String {
        let mut by_length: Vec<&(String, String)> = self.0.iter().collect();
        by_length.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
        let mut redacted = message.to_string();
        for (name, value) in by_length {
            if value.chars().count() >= REDACT_MIN_LEN {
                redacted = redacted.replace(value.as_str(), &format!("${{{name}}}"));
            }
        }
        redacted
    }
}

/// Runs `read` with `${VAR}` resolved through `env` for every name `text` mentions, and
/// returns its result with what was substituted.
pub fn with_environment<R>(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    read: impl FnOnce() -> R,
) -> (R, Substitutions) {
    let variables = text
        .match_indices("${")
        .filter_map(|(start, _)| {
            let body = &text[start + 2..];
            let end = body.find(['}', '\n'])?;
            let name = body[..end].split(":-").next().unwrap_or_default();
            Some((name.to_string(), env(name)))
        })
        .collect();
    let scope = Scope {
        variables,
        substitutions: Substitutions::default(),
    };
    /// Ends the scope even if `read` panics, so no later parse on this thread sees it.
    struct Restore(Option<Scope>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            SCOPE.with(|cell| *cell.borrow_mut() = previous);
        }
    }
    let restore = Restore(SCOPE.with(|cell| cell.borrow_mut().replace(scope)));
    let result = read();
    let substitutions = SCOPE
        .with(|cell| cell.borrow_mut().take())
        .map(|scope| scope.substitutions)
        .unwrap_or_default();
    drop(restore);
    (result, substitutions)
}

/// `value` with its `${...}` references substituted; the message says what is wrong
/// otherwise. Outside [`with_environment`] values are returned unchanged. `secret`: the
/// values may be secrets, to be redacted from messages (not for numbers, booleans and
/// choices, whose redaction would only garble messages like "expected `earliest`").
pub fn substitute(value: &str, secret: bool) -> Result<Cow<'_, str>, String> {
    if !value.contains("${") {
        return Ok(Cow::Borrowed(value));
    }
    SCOPE.with(|cell| {
        let mut cell = cell.borrow_mut();
        let Some(scope) = cell.as_mut() else {
            return Ok(Cow::Borrowed(value));
        };
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(start) = rest.find('$') {
            out.push_str(&rest[..start]);
            let from_dollar = &rest[start..];
            if let Some(tail) = from_dollar.strip_prefix("$${") {
                out.push_str("${");
                rest = tail;
                continue;
            }
            let Some(reference) = from_dollar.strip_prefix("${") else {
                out.push('$');
                rest = &from_dollar[1..];
                continue;
            };
            let Some(close) = reference.find('}') else {
                return Err(
                    "unterminated variable reference: \"${\" without a closing \"}\"".to_string(),
                );
            };
            let body = &reference[..close];
            rest = &reference[close + 1..];
            out.push_str(&scope.resolve(body, secret)?);
        }
        out.push_str(rest);
        Ok(Cow::Owned(out))
    })
}

impl Scope {
    /// The value of the reference `${body}`, recorded for redaction if `secret`.
    fn resolve(&mut self, body: &str, secret: bool) -> Result<String, String> {
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        if !is_variable_name(name) {
            return Err(format!("invalid variable reference ${{{body}}}: expected ${{NAME}} or ${{NAME:-default}} where NAME is letters, digits and '_'"));
        }
        let set = self.variables.get(name).cloned().flatten();
        let value = match (set, default) {
            (Some(value), Some(default)) if value.is_empty() => return Ok(default.to_string()),
            (Some(value), _) => value,
            // A default is written in the file, not a secret from the environment: messages
            // show it (a path that was tried reads as that path).
            (None, Some(default)) => return Ok(default.to_string()),
            (None, None) => {
                return Err(format!("environment variable {name} is not set (referenced as ${{{name}}}); set it or write ${{{name}:-default}}"));
            }
        };
        if secret {
            self.substitutions.0.push((name.to_string(), value.clone()));
        }
        Ok(value)
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("9092".to_string()),
            "PLAIN" => Some("hunter2".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn run(value: &str) -> (Result<String, String>, Substitutions) {
        with_environment(value, &env, || {
            substitute(value, true).map(|substituted| substituted.into_owned())
        })
    }

    #[test]
    fn references_are_substituted_inside_values() {
        assert_eq!(run("host:${PORT}").0.unwrap(), "host:9092");
        assert_eq!(run("${PLAIN}${PORT} $x $").0.unwrap(), "hunter29092 $x $");
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        assert_eq!(run("${NOPE:-a:b}").0.unwrap(), "a:b");
        assert_eq!(run("${EMPTY:-d}").0.unwrap(), "d");
        assert_eq!(run("${PLAIN:-d}").0.unwrap(), "hunter2");
    }

    #[test]
    fn escapes_stay_literal() {
        assert_eq!(run("$${PLAIN}").0.unwrap(), "${PLAIN}");
    }

    #[test]
    fn bad_references_are_errors_naming_them() {
        let unset = run("x${NOT_SET}").0.unwrap_err();
        assert!(
            unset.starts_with("environment variable NOT_SET is not set"),
            "{unset}"
        );
        assert!(run("${1BAD}")
            .0
            .unwrap_err()
            .contains("invalid variable reference ${1BAD}"));
        assert!(run("${UNCLOSED").0.unwrap_err().contains("unterminated"));
    }

    #[test]
    fn outside_a_parse_values_are_unchanged() {
        assert_eq!(substitute("${PLAIN}", true).unwrap(), "${PLAIN}");
    }

    #[test]
    fn redact_replaces_values_with_references() {
        let (_, substitutions) = run("${PLAIN} ${PORT}");
        assert_eq!(
            substitutions.redact("bad value \"hunter2\" on 9092"),
            "bad value \"${PLAIN}\" on ${PORT}"
        );
    }

    /// A default comes from the file, so messages show it: a path that was tried reads as
    /// the path, not as the reference.
    #[test]
    fn defaults_are_not_redacted() {
        let (value, substitutions) = run("${NOPE:-/etc/kmirror}/ca.pem ${EMPTY:-abc}");
        assert_eq!(value.unwrap(), "/etc/kmirror/ca.pem abc");
        let message = "cannot read /etc/kmirror/ca.pem: No such file (abc)";
        assert_eq!(substitutions.redact(message), message);
    }
}
