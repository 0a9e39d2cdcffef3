//! Error collection for validation: positions, paths and redaction.
//!
//! [`Diagnostics`] turns "this field is wrong" into a [`ConfigError`] with file, line,
//! column and path: it finds the field in the interpolated text ([`locate`]), maps the
//! column back to the original text, and redacts interpolated values from the message.
//! It also converts serde_yaml errors, whose text is "path: problem at line L column C".
//! Errors on a line with a bad `${...}` are dropped as consequences of that one.
//! It does not decide what is wrong; [`super::validate`] does.

use super::interpolate::Interpolated;
use super::locate::{self, FieldPath, Target};
use super::raw;
use super::{ConfigError, ConfigErrors, Topology};
use std::collections::BTreeSet;

/// Collects errors with positions in the original text.
pub(super) struct Diagnostics<'a> {
    file: &'a str,
    interpolated: &'a Interpolated,
    errors: Vec<ConfigError>,
    /// Lines with a bad `${...}`: later errors there are consequences, not news.
    interpolation_lines: BTreeSet<usize>,
}

impl<'a> Diagnostics<'a> {
    pub(super) fn new(file: &'a str, interpolated: &'a Interpolated) -> Self {
        let mut diagnostics = Self {
            file,
            interpolated,
            errors: Vec::new(),
            interpolation_lines: BTreeSet::new(),
        };
        for error in &interpolated.errors {
            diagnostics.interpolation_lines.insert(error.line);
            diagnostics.errors.push(ConfigError {
                file: file.to_string(),
                line: error.line,
                column: error.column,
                path: String::new(),
                message: error.message.clone(),
            });
        }
        diagnostics
    }

    pub(super) fn text(&self) -> &'a str {
        &self.interpolated.text
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
        let mut message = error.to_string();
        if line > 0 {
            message = message.replacen(&format!(" at line {line} column {column}"), "", 1);
        }
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
        self.push(line, column, path, message);
    }

    fn push(&mut self, line: usize, column: usize, path: String, message: String) {
        let column = if line > 0 {
            self.interpolated.input_column(line, column)
        } else {
            column
        };
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line,
            column,
            path,
            message: self.interpolated.redact(&message),
        });
    }

    pub(super) fn error_count(&self) -> usize {
        self.errors.len()
    }

    pub(super) fn finish(self, topology: Option<Topology>) -> Result<Topology, ConfigErrors> {
        let interpolation_count = self.interpolated.errors.len();
        let mut errors: Vec<ConfigError> = self
            .errors
            .into_iter()
            .enumerate()
            .filter(|(index, error)| {
                *index < interpolation_count || !self.interpolation_lines.contains(&error.line)
            })
            .map(|(_, error)| error)
            .collect();
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
