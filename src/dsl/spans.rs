//! Source positions of every node in a YAML document, by document path.
//!
//! serde gives typed values but forgets where they came from, so a second,
//! event-level pass over the same text records the line and column of each key
//! and value under its path (`phases[0].workloads[1].targets[0]`). Later stages
//! turn a path, and optionally a byte range inside a scalar, into a
//! [`Location`] for their diagnostics.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diagnostic::{Diagnostic, Location};

/// Where one node starts, and how its text is quoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NodeSpan {
    line: usize,
    column: usize,
    key_line: usize,
    key_column: usize,
    quoted: bool,
    /// Character length of a scalar's source text when it is plain or quoted on one line.
    length: usize,
}

/// Positions of the nodes of one YAML document, keyed by document path.
#[derive(Debug, Default)]
pub struct SpanIndex {
    nodes: HashMap<String, NodeSpan>,
    lines: Vec<String>,
    file: String,
}

impl SpanIndex {
    /// Indexes `source`; a document that does not parse gives an empty index.
    pub fn build(file: &str, source: &str) -> SpanIndex {
        let mut collector = Collector::default();
        let mut parser = Parser::new_from_str(source);
        // A syntax error is reported by the serde pass, which runs on the same
        // text; the index then simply has fewer entries.
        let _ = parser.load(&mut collector, false);
        SpanIndex { nodes: collector.nodes, lines: source.lines().map(str::to_owned).collect(), file: file.to_owned() }
    }

    /// The file name diagnostics carry.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Location of the value at `path`, or of its nearest indexed ancestor.
    pub fn value(&self, path: &str) -> Location {
        match self.find(path) {
            Some((span, exact)) => {
                Location { line: span.line, column: span.column, width: if exact { span.length.max(1) } else { 1 } }
            }
            None => Location::default(),
        }
    }

    /// Location of the key that names the value at `path`.
    pub fn key(&self, path: &str) -> Location {
        match self.nodes.get(path) {
            Some(span) if span.key_line > 0 => {
                let width = path.rsplit(['.', '[']).next().map_or(1, |k| k.chars().count());
                Location { line: span.key_line, column: span.key_column, width }
            }
            _ => self.value(path),
        }
    }

    /// Location of the characters `start..end` (byte offsets) inside the scalar at `path`.
    ///
    /// `text` must be the scalar as it is written in the file; when it is not
    /// (escapes, a scalar folded over several lines, text after `${var}`
    /// substitution) offsets into it mean nothing in the file, so the whole
    /// value is pointed at instead.
    pub fn within(&self, path: &str, text: &str, start: usize, end: usize) -> Location {
        match self.nodes.get(path) {
            Some(span) if self.written_at(span, text) => {
                let before = text.get(..start).map_or(0, |s| s.chars().count());
                let width = text.get(start..end).map_or(1, |s| s.chars().count()).max(1);
                Location { line: span.line, column: span.column + before + usize::from(span.quoted), width }
            }
            _ => self.value(path),
        }
    }

    /// Whether `text` appears verbatim where the scalar `span` starts.
    fn written_at(&self, span: &NodeSpan, text: &str) -> bool {
        let Some(line) = span.line.checked_sub(1).and_then(|i| self.lines.get(i)) else { return false };
        let skip = (span.column - 1) + usize::from(span.quoted);
        match line.char_indices().nth(skip) {
            Some((at, _)) => line[at..].starts_with(text),
            None => text.is_empty(),
        }
    }

    /// A diagnostic at `location`, with the source line filled in.
    pub fn diagnostic(&self, path: &str, mut location: Location, message: impl Into<String>) -> Diagnostic {
        let mut diagnostic = Diagnostic::new(&self.file, path, message);
        // The YAML parser reports "end of stream" errors on the line after the
        // last one; point just past the end of the last line that has text.
        if location.line > self.lines.len() {
            if let Some(at) = self.lines.iter().rposition(|line| !line.trim().is_empty()) {
                location = Location { line: at + 1, column: self.lines[at].chars().count() + 1, width: 1 };
            }
        }
        if location.line > 0 {
            diagnostic.source_line = self.lines.get(location.line - 1).cloned();
        }
        diagnostic.location = location;
        diagnostic
    }

    /// A diagnostic pointing at the value at `path`.
    pub fn at_value(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        self.diagnostic(path, self.value(path), message)
    }

    /// A diagnostic pointing at the key that names `path`.
    pub fn at_key(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        self.diagnostic(path, self.key(path), message)
    }

    /// The source line `line` (1-based), for callers that locate errors themselves.
    pub fn source_line(&self, line: usize) -> Option<&str> {
        line.checked_sub(1).and_then(|i| self.lines.get(i)).map(String::as_str)
    }

    /// Whether the node at `path` is written in the document.
    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(path)
    }

    fn find(&self, path: &str) -> Option<(NodeSpan, bool)> {
        let mut current = path;
        let mut exact = true;
        loop {
            if let Some(span) = self.nodes.get(current) {
                return Some((*span, exact));
            }
            if current.is_empty() {
                return None;
            }
            exact = false;
            // A top-level key that is not written falls back to the document
            // itself (path ""), so "missing `phases`" still has a position.
            current = current.rfind(['.', '[']).map_or("", |cut| &current[..cut]);
        }
    }
}

enum Frame {
    Mapping {
        /// The key whose value comes next, with where it was written.
        key: Option<(String, Marker)>,
        /// True until the mapping's first key has been seen.
        first: bool,
    },
    Sequence {
        /// Index of the next item.
        index: usize,
    },
}

#[derive(Default)]
struct Collector {
    stack: Vec<(Frame, String)>,
    nodes: HashMap<String, NodeSpan>,
}

impl Collector {
    /// Path and key marker of the node that starts now, or `None` when it is a mapping key.
    fn place(&mut self, event: &Event, mark: Marker) -> Option<(String, Option<Marker>)> {
        let Some((frame, parent)) = self.stack.last_mut() else {
            return Some((String::new(), None));
        };
        match frame {
            Frame::Sequence { index } => {
                let path = format!("{parent}[{index}]");
                *index += 1;
                Some((path, None))
            }
            Frame::Mapping { key, first } => match key.take() {
                Some((name, key_mark)) => {
                    let path = if parent.is_empty() { name } else { format!("{parent}.{name}") };
                    Some((path, Some(key_mark)))
                }
                None => {
                    let name = match event {
                        Event::Scalar(value, ..) => value.clone(),
                        _ => String::from("?"),
                    };
                    *key = Some((name, mark));
                    // yaml-rust2 marks a block mapping's start at the first `:`
                    // rather than at its first key; the key is where the mapping
                    // visibly begins. Flow mappings (`{`) start before their key
                    // and keep their mark.
                    if std::mem::take(first) {
                        if let Some(span) = self.nodes.get_mut(parent.as_str()) {
                            if (mark.line(), mark.col() + 1) < (span.line, span.column) {
                                (span.line, span.column) = (mark.line(), mark.col() + 1);
                            }
                        }
                    }
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Collector {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let is_node =
            matches!(event, Event::Scalar(..) | Event::SequenceStart(..) | Event::MappingStart(..) | Event::Alias(..));
        if matches!(event, Event::SequenceEnd | Event::MappingEnd) {
            self.stack.pop();
            return;
        }
        if !is_node {
            return;
        }
        let Some((path, key_mark)) = self.place(&event, mark) else {
            return;
        };
        let (quoted, length) = match &event {
            Event::Scalar(value, style, ..) => {
                let quoted = matches!(style, TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted);
                (quoted, value.chars().count())
            }
            _ => (false, 1),
        };
        let span = NodeSpan {
            line: mark.line(),
            column: mark.col() + 1,
            key_line: key_mark.map_or(0, |m| m.line()),
            key_column: key_mark.map_or(0, |m| m.col() + 1),
            quoted,
            length,
        };
        self.nodes.insert(path.clone(), span);
        match event {
            Event::SequenceStart(..) => self.stack.push((Frame::Sequence { index: 0 }, path)),
            Event::MappingStart(..) => self.stack.push((Frame::Mapping { key: None, first: true }, path)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "scenario: demo\nphases:\n  - name: one\n    workloads:\n      - name: w\n        targets: [\"latency.p99 < 4KiB\"]\n";

    #[test]
    fn finds_values_and_keys_by_path() {
        let index = SpanIndex::build("d.yaml", DOC);
        assert_eq!(index.value("scenario"), Location { line: 1, column: 11, width: 4 });
        assert_eq!(index.key("scenario"), Location { line: 1, column: 1, width: 8 });
        assert_eq!(index.value("phases[0].name"), Location { line: 3, column: 11, width: 3 });
        assert_eq!(index.value("phases[0].workloads[0].name").line, 5);
    }

    #[test]
    fn points_inside_quoted_scalars() {
        let index = SpanIndex::build("d.yaml", DOC);
        let text = "latency.p99 < 4KiB";
        let at = index.within("phases[0].workloads[0].targets[0]", text, 14, 18);
        assert_eq!(at, Location { line: 6, column: 34, width: 4 });
        assert_eq!(&index.source_line(6).unwrap()[33..37], "4KiB");
    }

    #[test]
    fn block_mappings_start_at_their_first_key() {
        let index = SpanIndex::build("d.yaml", DOC);
        assert_eq!(index.value("phases[0]"), Location { line: 3, column: 5, width: 1 });
        assert_eq!(index.value(""), Location { line: 1, column: 1, width: 1 });
    }

    #[test]
    fn within_points_at_the_whole_value_when_the_text_is_not_the_source() {
        let index = SpanIndex::build("d.yaml", DOC);
        let path = "phases[0].workloads[0].targets[0]";
        assert_eq!(index.within(path, "latency.p99 < 4MiB", 14, 18), index.value(path));
    }

    #[test]
    fn falls_back_to_the_nearest_ancestor() {
        let index = SpanIndex::build("d.yaml", DOC);
        let at = index.value("phases[0].workloads[0].missing");
        assert_eq!(at.line, 5);
        assert_eq!(at.width, 1);
    }
}
