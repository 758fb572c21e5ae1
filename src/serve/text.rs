//! Text in and out: the chat template that turns messages into a prompt,
//! and the streaming detokenizer that turns generated tokens back into text.

use crate::engines::llm::TextTokens;

/// The prompt of a chat: one `role: content` line per message, then
/// `assistant: ` for the model to continue. The same for presets and
/// checkpoints (a checkpoint's own chat template is not read).
pub fn chat_prompt<'a>(messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut prompt = String::new();
    for (role, content) in messages {
        prompt.push_str(role);
        prompt.push_str(": ");
        prompt.push_str(content);
        prompt.push('\n');
    }
    prompt.push_str("assistant: ");
    prompt
}

/// Generated tokens back into text, piece by piece as they arrive, never
/// splitting a character: bytes that do not yet make a whole UTF-8
/// character wait for the next token. On presets, ids below 256 are bytes
/// and any other id is written `<|id|>`.
pub struct Detokenizer {
    tokens: TextTokens,
    /// Presets: bytes not yet emitted (an unfinished character).
    pending: Vec<u8>,
    /// Checkpoints: every generated id, and how many bytes of their text were emitted.
    ids: Vec<u32>,
    emitted: usize,
}

/// Byte-level vocabularies: ids below this are bytes.
const BYTE_TOKENS: u32 = 256;

impl Detokenizer {
    /// A detokenizer for a model's text tokens.
    pub fn new(tokens: TextTokens) -> Self {
        Detokenizer { tokens, pending: Vec::new(), ids: Vec::new(), emitted: 0 }
    }

    /// The text `token` completes (often empty while a character is unfinished).
    pub fn push(&mut self, token: u32) -> String {
        match &self.tokens {
            TextTokens::Bytes => {
                if token < BYTE_TOKENS {
                    self.pending.push(token as u8);
                    self.take_complete()
                } else {
                    // Not a byte (what random-weight presets mostly produce): no
                    // text of its own, so written as its id, which keeps a
                    // generation's text telling its tokens apart.
                    let mut text = self.flush();
                    text.push_str(&format!("<|{token}|>"));
                    text
                }
            }
            TextTokens::Tokenizer(tokenizer) => {
                self.ids.push(token);
                let Ok(text) = tokenizer.decode(&self.ids, true) else { return String::new() };
                if text.ends_with(char::REPLACEMENT_CHARACTER) || !text.is_char_boundary(self.emitted.min(text.len())) {
                    return String::new();
                }
                let piece = text.get(self.emitted..).unwrap_or_default().to_owned();
                self.emitted = self.emitted.max(text.len());
                piece
            }
            TextTokens::Missing(_) => String::new(),
        }
    }

    /// What is left at the end of the generation (an unfinished character, lossily).
    pub fn flush(&mut self) -> String {
        match &self.tokens {
            TextTokens::Bytes => {
                let text = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                text
            }
            TextTokens::Tokenizer(tokenizer) => {
                let Ok(text) = tokenizer.decode(&self.ids, true) else { return String::new() };
                let piece = if text.is_char_boundary(self.emitted.min(text.len())) {
                    text.get(self.emitted..).unwrap_or_default().to_owned()
                } else {
                    String::new()
                };
                self.emitted = self.emitted.max(text.len());
                piece
            }
            TextTokens::Missing(_) => String::new(),
        }
    }

    /// The complete characters at the front of `pending`; invalid bytes become U+FFFD.
    fn take_complete(&mut self) -> String {
        let mut text = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(valid) => {
                    text.push_str(valid);
                    self.pending.clear();
                    return text;
                }
                Err(error) => {
                    let valid = error.valid_up_to();
                    text.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match error.error_len() {
                        // An unfinished character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return text;
                        }
                        Some(bad) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_messages_become_role_lines_and_an_assistant_cue() {
        let prompt = chat_prompt([("system", "be brief"), ("user", "hi")]);
        assert_eq!(prompt, "system: be brief\nuser: hi\nassistant: ");
    }

    #[test]
    fn bytes_wait_until_their_character_is_whole() {
        let mut text = Detokenizer::new(TextTokens::Bytes);
        // "é" is 0xC3 0xA9; then a lone continuation byte, then a non-byte token.
        let pieces: Vec<String> = [97_u32, 0xC3, 0xA9, 0xA9, 98, 0xE2, 300].iter().map(|&t| text.push(t)).collect();
        assert_eq!(pieces, ["a", "", "é", "\u{FFFD}", "b", "", "\u{FFFD}<|300|>"]);
        assert_eq!(text.push(0xF0), "");
        assert_eq!(text.flush(), "\u{FFFD}");
    }
}
