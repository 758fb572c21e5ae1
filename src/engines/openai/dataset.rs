//! Prompts from a conversation dataset: a ShareGPT-style JSON array or JSON
//! Lines file, reduced to the first human turn of every conversation.
//!
//! Two shapes of conversation are read, the one vLLM's serving benchmark
//! takes (`{"conversations": [{"from": "human", "value": …}, …]}`) and the
//! chat-message one (`{"messages": [{"role": "user", "content": …}, …]}`).
//! Other fields of an entry are ignored. An entry without a human turn, or
//! whose first human turn is empty, is skipped; a file that does not parse,
//! or in which no entry is usable, is an error naming the file and the line.

use std::path::Path;

use serde::Deserialize;

/// One entry of the file, either shape; unknown fields are ignored.
#[derive(Deserialize)]
struct RawEntry {
    #[serde(default)]
    conversations: Option<Vec<RawTurn>>,
    #[serde(default)]
    messages: Option<Vec<RawMessage>>,
}

/// A ShareGPT turn.
#[derive(Deserialize)]
struct RawTurn {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

/// A chat message. `content` as an array of parts is not a plain prompt,
/// so anything but a string makes the message unusable rather than the file.
#[derive(Deserialize)]
struct RawMessage {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Option<serde_json::Value>,
}

impl RawEntry {
    /// The first human turn's text, if the entry has a non-empty one.
    fn prompt(self) -> Option<String> {
        let text = if let Some(turns) = self.conversations {
            turns.into_iter().find(|turn| matches!(turn.from.as_deref(), Some("human" | "user")))?.value
        } else {
            match self.messages?.into_iter().find(|message| message.role.as_deref() == Some("user"))?.content {
                Some(serde_json::Value::String(text)) => Some(text),
                _ => None,
            }
        }?;
        (!text.trim().is_empty()).then_some(text)
    }
}

/// Why a dataset cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DatasetError {
    /// What is wrong, naming the file and where in it.
    pub message: String,
}

/// The prompts of a dataset file: the first human turn of every usable conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// The prompts, in file order; never empty.
    pub prompts: Vec<String>,
}

impl Dataset {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Dataset, DatasetError> {
        let name = path.display();
        let bytes =
            std::fs::read(path).map_err(|error| DatasetError { message: format!("cannot read `{name}`: {error}") })?;
        Dataset::parse(&bytes).map_err(|message| DatasetError { message: format!("`{name}`: {message}") })
    }

    /// Parses a JSON array of conversations, or one conversation per line.
    pub fn parse(bytes: &[u8]) -> Result<Dataset, String> {
        let text = std::str::from_utf8(bytes).map_err(|error| {
            let line = bytes[..error.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
            format!("line {line}: not UTF-8 text")
        })?;
        let text = text.trim_start_matches('\u{feff}');
        let entries = if text.trim_start().starts_with('[') {
            // serde_json's errors carry the line and column.
            serde_json::from_str::<Vec<RawEntry>>(text).map_err(|error| {
                format!("not a JSON array of conversations: {error}")
            })?
        } else {
            let mut entries = Vec::new();
            for (index, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let entry = serde_json::from_str::<RawEntry>(line)
                    .map_err(|error| format!("line {}: not a JSON conversation: {error}", index + 1))?;
                entries.push(entry);
            }
            entries
        };
        let total = entries.len();
        let prompts: Vec<String> = entries.into_iter().filter_map(RawEntry::prompt).collect();
        if prompts.is_empty() {
            return Err(format!(
                "none of its {total} entries has a human turn (`conversations` with `from: human`, or `messages` \
                 with `role: user`)"
            ));
        }
        Ok(Dataset { prompts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_both_shapes_and_both_layouts() {
        let cases: &[(&str, &[&str])] = &[
            (
                r#"[{"id": "a", "conversations": [{"from": "gpt", "value": "hi"}, {"from": "human", "value": "Q1"},
                    {"from": "gpt", "value": "A1"}]}, {"conversations": []}, {"messages": [{"role": "system",
                    "content": "be brief"}, {"role": "user", "content": "Q2"}]}]"#,
                &["Q1", "Q2"],
            ),
            (
                "{\"conversations\": [{\"from\": \"human\", \"value\": \"L1\"}]}\n\n{\"messages\": [{\"role\": \
                 \"user\", \"content\": \"L2\"}]}\n",
                &["L1", "L2"],
            ),
            (r#"[{"messages": [{"role": "user", "content": [{"type": "text"}]}]}, {"conversations": [{"from": "human", "value": "ok"}]}]"#, &["ok"]),
        ];
        for (text, expected) in cases {
            let dataset = Dataset::parse(text.as_bytes()).unwrap_or_else(|error| panic!("{text}: {error}"));
            assert_eq!(dataset.prompts, *expected, "{text}");
        }
    }

    #[test]
    fn errors_say_where() {
        let cases: &[(&str, &str)] = &[
            ("{\"conversations\": []}\n{oops}\n", "line 2: not a JSON conversation"),
            ("[{\"conversations\": []},\n {\"conversations\": 3}]", "line 2 column"),
            ("[]", "none of its 0 entries"),
            ("{\"conversations\": [{\"from\": \"gpt\", \"value\": \"x\"}]}", "none of its 1 entries"),
            ("", "none of its 0 entries"),
        ];
        for (text, expected) in cases {
            let error = Dataset::parse(text.as_bytes()).unwrap_err();
            assert!(error.contains(expected), "{text:?}: `{error}` lacks `{expected}`");
        }
        let error = Dataset::load(Path::new("/no/such/set.json")).unwrap_err();
        assert!(error.message.starts_with("cannot read `/no/such/set.json`"), "{}", error.message);
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Dataset::parse(&bytes);
        }

        #[test]
        fn never_panics_on_json_like_text(text in r#"[\[\]{}":, a-z0-9\n]{0,200}"#) {
            if let Ok(dataset) = Dataset::parse(text.as_bytes()) {
                prop_assert!(!dataset.prompts.is_empty());
            }
        }
    }
}
