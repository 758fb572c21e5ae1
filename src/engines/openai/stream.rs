//! Reading a streamed completion: server-sent events, each a JSON chunk,
//! timed the moment it is read.
//!
//! A chunk carries text when a choice has non-empty `text` (completions),
//! `delta.content`, or `delta.reasoning_content`/`delta.reasoning` (chat,
//! reasoning models). `usage` may come in any chunk (vLLM's continuous usage
//! stats) or only in the last; the last one seen counts. The stream must end
//! with `data: [DONE]`; a stream that ends without it, an event that is not
//! JSON, or a response without any text is malformed.

use std::time::Instant;

use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;

use super::request::{mask_digits, Failure};

/// Token counts a server reported for one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    /// Tokens of the prompt, as the server counted them.
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    /// Tokens generated.
    #[serde(default)]
    pub completion_tokens: Option<u64>,
}

/// What one event of the stream says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `[DONE]`: the stream is complete.
    Done,
    /// A completion chunk.
    Chunk {
        /// Whether it carries generated text.
        text: bool,
        /// Token counts, when this chunk reports them.
        usage: Option<Usage>,
    },
    /// The server reported an error inside the stream (vLLM does, mid-generation).
    Error(String),
}

#[derive(Deserialize)]
struct RawChunk {
    #[serde(default)]
    choices: Option<Vec<RawChoice>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawChoice {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    delta: Option<RawDelta>,
}

#[derive(Deserialize)]
struct RawDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
}

fn non_empty(text: &Option<String>) -> bool {
    text.as_deref().is_some_and(|text| !text.is_empty())
}

impl RawChoice {
    fn has_text(&self) -> bool {
        non_empty(&self.text)
            || self.delta.as_ref().is_some_and(|delta| {
                non_empty(&delta.content) || non_empty(&delta.reasoning_content) || non_empty(&delta.reasoning)
            })
    }
}

/// Parses the data of one server-sent event.
pub fn parse_event(data: &str) -> Result<Event, Failure> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(Event::Done);
    }
    let chunk: RawChunk =
        serde_json::from_str(data).map_err(|_| Failure::Malformed("an event is not a JSON completion chunk"))?;
    if let Some(error) = chunk.error {
        let message = error.get("message").and_then(|m| m.as_str()).map_or_else(|| error.to_string(), str::to_owned);
        return Ok(Event::Error(mask_digits(&message)));
    }
    let text = chunk.choices.as_deref().unwrap_or_default().iter().any(RawChoice::has_text);
    Ok(Event::Chunk { text, usage: chunk.usage })
}

/// The instants and counts of one streamed response.
#[derive(Debug, Default)]
pub struct Timeline {
    /// When each chunk carrying text was read, in order.
    pub text_at: Vec<Instant>,
    /// The last usage the server reported.
    pub usage: Option<Usage>,
    /// When `[DONE]` was read.
    pub done_at: Option<Instant>,
}

impl Timeline {
    /// Forgets the previous response, keeping the allocation.
    pub fn clear(&mut self) {
        self.text_at.clear();
        self.usage = None;
        self.done_at = None;
    }
}

/// Reads a response body to `[DONE]`, noting when each text chunk arrived.
pub async fn read<S, B, E>(body: S, timeline: &mut Timeline, transport: impl Fn(E) -> Failure) -> Result<(), Failure>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
{
    let mut events = body.eventsource();
    while let Some(event) = events.next().await {
        let now = Instant::now();
        let event = match event {
            Ok(event) => event,
            Err(EventStreamError::Transport(error)) => return Err(transport(error)),
            Err(EventStreamError::Utf8(_)) => return Err(Failure::Malformed("the stream is not UTF-8")),
            Err(EventStreamError::Parser(_)) => return Err(Failure::Malformed("bad server-sent event framing")),
        };
        match parse_event(&event.data)? {
            Event::Done => {
                timeline.done_at = Some(now);
                // Read the body to its end, so the connection goes back to
                // the pool for the next request instead of being closed.
                while let Some(Ok(_)) = events.next().await {}
                break;
            }
            Event::Chunk { text, usage } => {
                if text {
                    timeline.text_at.push(now);
                }
                if usage.is_some() {
                    timeline.usage = usage;
                }
            }
            Event::Error(message) => return Err(Failure::InStream(message)),
        }
    }
    if timeline.done_at.is_none() {
        return Err(Failure::Malformed("the stream ended without [DONE]"));
    }
    if timeline.text_at.is_empty() {
        return Err(Failure::Malformed("no text in the response"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn events_as_servers_send_them() {
        let usage = |p, c| Some(Usage { prompt_tokens: Some(p), completion_tokens: Some(c) });
        let cases: &[(&str, Event)] = &[
            ("[DONE]", Event::Done),
            (" [DONE] ", Event::Done),
            (r#"{"choices":[{"index":0,"text":" the","finish_reason":null}]}"#, Event::Chunk { text: true, usage: None }),
            (r#"{"choices":[{"index":0,"text":""}]}"#, Event::Chunk { text: false, usage: None }),
            (r#"{"choices":[{"delta":{"role":"assistant"}}]}"#, Event::Chunk { text: false, usage: None }),
            (r#"{"choices":[{"delta":{"content":"Hi"}}]}"#, Event::Chunk { text: true, usage: None }),
            (r#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#, Event::Chunk { text: true, usage: None }),
            (
                r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#,
                Event::Chunk { text: false, usage: usage(12, 3) },
            ),
            (r#"{"choices":null,"usage":null}"#, Event::Chunk { text: false, usage: None }),
            (r#"{"error":{"message":"out of memory after 1234 tokens","code":500}}"#, Event::Error("out of memory after # tokens".into())),
        ];
        for (data, expected) in cases {
            assert_eq!(parse_event(data).as_ref(), Ok(expected), "{data}");
        }
        for bad in ["{", "not json", "[1,2]", r#"{"choices": 3}"#, r#"{"usage": {"prompt_tokens": -1}}"#] {
            assert!(matches!(parse_event(bad), Err(Failure::Malformed(_))), "{bad}");
        }
    }

    fn read_bytes(parts: Vec<Vec<u8>>) -> (Result<(), Failure>, Timeline) {
        let body = futures_util::stream::iter(parts.into_iter().map(Ok::<_, ()>));
        let mut timeline = Timeline::default();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let result = runtime.block_on(read(body, &mut timeline, |()| Failure::Broken("transport".into())));
        (result, timeline)
    }

    #[test]
    fn a_stream_is_complete_only_with_text_and_done() {
        let text = "data: {\"choices\":[{\"text\":\"a\"}]}\n\n";
        let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n";
        let done = "data: [DONE]\n\n";
        // Events split across reads anywhere still read whole.
        let whole = format!("{text}{text}{usage}{done}");
        let (split_a, split_b) = whole.as_bytes().split_at(17);
        let (result, timeline) = read_bytes(vec![split_a.to_vec(), split_b.to_vec()]);
        assert_eq!(result, Ok(()));
        assert_eq!(timeline.text_at.len(), 2);
        assert_eq!(timeline.usage.and_then(|u| u.completion_tokens), Some(2));
        let cases: &[(String, &str)] = &[
            (format!("{text}{usage}"), "without [DONE]"),
            (format!("{usage}{done}"), "no text"),
            (format!("{text}data: {{oops}}\n\n{done}"), "not a JSON"),
        ];
        for (body, expected) in cases {
            let (result, _) = read_bytes(vec![body.clone().into_bytes()]);
            let message = result.unwrap_err().to_string();
            assert!(message.starts_with("malformed stream: ") && message.contains(expected), "{body}: {message}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(data in any::<String>()) {
            let _ = parse_event(&data);
        }

        #[test]
        fn parsing_json_like_text_never_panics(data in r#"[\[\]{}":, a-z0-9_.-]{0,120}"#) {
            let _ = parse_event(&data);
        }

        #[test]
        fn reading_arbitrary_bytes_never_panics(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let _ = read_bytes(parts);
        }
    }
}
