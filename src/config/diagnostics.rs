//! Error collection for validation: positions, paths and redaction.
//!
//! [`Diagnostics`] turns "this field is wrong" into a [`ConfigError`] with file, line,
//! column and path: it finds the field in the text ([`locate`]) and, when done, redacts
//! `${VAR}` values from the messages. It also converts serde_yaml errors, whose text is
//! "path: problem at line L column C". It does not decide what is wrong;
//! [`super::validate`] does.

use super::interpolate::Substitutions;
use super::locate::{self, FieldPath, Target};
use super::raw;
use super::{ConfigError, ConfigErrors, Topology};

/// Collects errors with positions in the text.
pub(super) struct Diagnostics<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> Diagnostics<'a> {
    pub(super) fn new(file: &'a str, text: &'a str) -> Self {
        Self {
            file,
            text,
            errors: Vec::new(),
        }
    }

    pub(super) fn text(&self) -> &'a str {
        self.text
    }

    /// An error about the value at `path`.
    pub(super) fn at(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.located(path, Target::Value, message.into());
    }

    /// An error about the `occurrence`-th key that ends `path`.
    pub(super) fn at_key(
        &mut self,
        path: &FieldPath,
        occurrence: usize,
        message: impl Into<String>,
    ) {
        self.located(path, Target::Key { occurrence }, message.into());
    }

    pub(super) fn located(&mut self, path: &FieldPath, target: Target, message: String) {
        let position = locate::locate_nearest(self.text(), path, target);
        let (line, column) = position.map_or((0, 0), |p| (p.line, p.column));
        self.push(line, column, path.to_string(), message);
    }

    /// A serde_yaml error: its message is "path: problem at line L column C".
    pub(super) fn serde(&mut self, error: &serde_yaml::Error, item: &FieldPath) {
        let (line, column) = error.location().map_or((0, 0), |l| (l.line(), l.column()));
        let mut message = raw::without_location(error);
        // The path starts with the item's own path (or, for the whole document, with a
        // top-level key) and ends at the first ": ".
        let prefixes: Vec<String> = if item.is_root() {
            raw::TOP_LEVEL_KEYS
                .iter()
                .map(|key| key.to_string())
                .collect()
        } else {
            vec![item.to_string()]
        };
        let mut path = String::new();
        for prefix in prefixes {
            let after = message.strip_prefix(prefix.as_str()).unwrap_or("");
            if !after.starts_with([':', '.', '[']) {
                continue;
            }
            if let Some(end) = after.find(": ").map(|end| end + prefix.len()) {
                path = message[..end].to_string();
                message = message[end + 2..].to_string();
                break;
            }
        }
        let in_flow_collection =
            message.contains("flow mapping") || message.contains("flow sequence");
        let line_text = self
            .text
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or_default();
        if in_flow_collection && line_text.contains("${") {
            message.push_str("; inside `{ }` or `[ ]` write a `${VAR}` value in quotes");
        }
        self.push(line, column, path, message);
    }

    fn push(&mut self, line: usize, column: usize, path: String, message: String) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line,
            column,
            path,
            message,
        });
    }

    pub(super) fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// The topology, or every error with the values of `substitutions` redacted.
    pub(super) fn finish(
        self,
        topology: Option<Topology>,
        substitutions: &Substitutions,
    ) -> Result<Topology, ConfigErrors> {
        let mut errors = self.errors;
        for error in &mut errors {
            error.message = substitutions.redact(&error.message);
        }
        errors.sort_by_key(|error| (error.line, error.column));
        match topology {
            Some(topology) if errors.is_empty() => Ok(topology),
            _ if !errors.is_empty() => Err(ConfigErrors { errors }),
            _ => Err(ConfigErrors {
                errors: vec![ConfigError {
                    file: self.file.to_string(),
                    line: 0,
                    column: 0,
                    path: String::new(),
                    message: "the topology could not be read".to_string(),
                }],
            }),
        }
    }
}
