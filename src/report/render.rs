//! The Markdown and HTML reports: Tera templates embedded in the binary (or
//! a user's own), rendered from the [`Analysis`] and, for HTML, its charts.
//!
//! Templates receive `a` (the analysis, documented in docs/templates.md)
//! and `charts` (SVG charts with titles). HTML templates are auto-escaped;
//! Markdown ones get the `md` filter, which keeps a user's text from
//! breaking a table. The history page (`history.html`) is rendered by the
//! same engine from its own context, `h` ([`super::history`]).

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use tera::{Context, Tera, Value};

use super::charts;
use crate::analysis::Analysis;

/// The built-in templates: name and source.
pub const BUILT_IN: [(&str, &str); 3] = [
    ("report.md", include_str!("../../templates/report.md")),
    ("roadmap.md", include_str!("../../templates/roadmap.md")),
    ("report.html", include_str!("../../templates/report.html")),
];

/// The history page's template (`phasebench history report`).
pub const HISTORY: (&str, &str) = ("history.html", include_str!("../../templates/history.html"));

/// Why a report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template file could not be read.
    #[error("cannot read template `{path}`: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The template has a syntax error or failed while rendering.
    #[error("template `{name}`: {message}")]
    Template {
        /// Template name.
        name: String,
        /// Tera's explanation, with its causes.
        message: String,
    },
}

fn tera_message(error: &tera::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// `+12.3%` from a fraction; `n/a` for anything else.
fn percent(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let digits = args.get("digits").and_then(Value::as_u64).unwrap_or(1) as usize;
    let signed = args.get("signed").and_then(Value::as_bool).unwrap_or(true);
    Ok(Value::String(match value.as_f64() {
        Some(x) if x.is_finite() && signed => format!("{:+.digits$}%", x * 100.0),
        Some(x) if x.is_finite() => format!("{:.digits$}%", x * 100.0),
        _ => "n/a".into(),
    }))
}

/// A p-value: three decimals, or `<0.001`; `n/a` for anything else.
fn pvalue(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(match value.as_f64() {
        Some(p) if p < 0.001 => "<0.001".into(),
        Some(p) if p.is_finite() => format!("{p:.3}"),
        _ => "n/a".into(),
    }))
}

/// A number with a fixed count of decimals; `n/a` for anything else.
fn fixed(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let digits = args.get("digits").and_then(Value::as_u64).unwrap_or(2) as usize;
    Ok(Value::String(match value.as_f64() {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "n/a".into(),
    }))
}

/// Text safe inside a Markdown table cell: pipes escaped, lines joined,
/// HTML-significant characters neutralised (Markdown renderers pass HTML through).
fn markdown(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '\n' | '\r' => out.push(' '),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '`' => out.push('\''),
            _ => out.push(c),
        }
    }
    Ok(Value::String(out))
}

fn engine(templates: &[(&str, &str)]) -> Result<Tera, RenderError> {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![".html", ".htm", ".xml", ".svg"]);
    tera.register_filter("percent", percent);
    tera.register_filter("fixed", fixed);
    tera.register_filter("pvalue", pvalue);
    tera.register_filter("md", markdown);
    tera.add_raw_templates(templates.to_vec()).map_err(|error| RenderError::Template {
        name: templates.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", "),
        message: tera_message(&error),
    })?;
    Ok(tera)
}

fn context(analysis: &Analysis, html: bool) -> Context {
    let mut context = Context::new();
    context.insert("a", analysis);
    context.insert("charts", &if html { charts::all(analysis) } else { charts::Charts::default() });
    context
}

/// Renders built-in template `name` (`report.md`, `roadmap.md`, `report.html`).
pub fn built_in(name: &str, analysis: &Analysis) -> Result<String, RenderError> {
    let tera = engine(&BUILT_IN)?;
    tera.render(name, &context(analysis, name.ends_with(".html")))
        .map_err(|error| RenderError::Template { name: name.into(), message: tera_message(&error) })
}

/// Renders a user's template file; a name ending in `.html` is auto-escaped and gets the charts.
pub fn user(path: &Path, analysis: &Analysis) -> Result<String, RenderError> {
    let source = std::fs::read_to_string(path)
        .map_err(|error| RenderError::Read { path: path.display().to_string(), message: error.to_string() })?;
    let name = path.file_name().map_or_else(|| "template".into(), |name| name.to_string_lossy().into_owned());
    let tera = engine(&[(name.as_str(), source.as_str())])?;
    let html = [".html", ".htm"].iter().any(|suffix| name.ends_with(suffix));
    tera.render(&name, &context(analysis, html))
        .map_err(|error| RenderError::Template { name, message: tera_message(&error) })
}

/// Renders the history page from its context, given to the template as `h`.
pub(super) fn history_page(page: &impl Serialize) -> Result<String, RenderError> {
    let tera = engine(&[HISTORY])?;
    let mut context = Context::new();
    context.insert("h", page);
    tera.render(HISTORY.0, &context)
        .map_err(|error| RenderError::Template { name: HISTORY.0.into(), message: tera_message(&error) })
}
