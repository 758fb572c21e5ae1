//! Synthetic prompts of a given length in the server's tokens.
//!
//! The client does not know the server's tokenizer, so a prompt is text of
//! common English words drawn from the worker's seed, and its length in
//! words comes from a calibration: two untimed requests of `n/2` and `n`
//! words tell how many tokens the server counts per word and how many it
//! adds whatever the text (a beginning-of-sequence token, a chat template).
//! A single request could not tell the two apart, and a chat template's
//! dozen tokens would then make every short prompt too long.

use crate::engines::rng::SplitMix;

/// Common five-letter English words, each one token in the usual BPE
/// vocabularies. All of one length, so a tokenizer that counts bytes (as
/// `phasebench serve`'s presets do) or characters counts every prompt of
/// `n` words the same, and the calibration holds for each prompt, not only
/// on average.
const WORDS: &[&str] = &[
    "about", "above", "after", "again", "along", "among", "began", "being", "below", "black", "bring", "build",
    "carry", "cause", "child", "class", "clear", "close", "color", "could", "count", "cover", "early", "earth",
    "every", "field", "final", "first", "floor", "force", "found", "front", "given", "going", "great", "green",
    "group", "happy", "heard", "horse", "house", "human", "large", "later", "learn", "leave", "level", "light",
    "might", "money", "month", "music", "never", "night", "north", "often", "order", "other", "paper", "party",
    "peace", "place", "plant", "point", "power", "press", "price", "quite", "reach", "ready", "right", "river",
    "round", "short", "shown", "since", "small", "sound", "south", "space", "speak", "stand", "start", "state",
    "still", "stood", "story", "study", "table", "taken", "their", "there", "these", "thing", "think", "third",
    "those", "three", "today", "total", "under", "until", "usual", "value", "voice", "watch", "water", "where",
    "which", "while", "white", "whole", "woman", "words", "world", "would", "write", "years", "young",
];

/// Appends `words` words drawn by `rng` to `text`, space-separated.
pub fn synthetic(text: &mut String, words: usize, rng: &mut SplitMix) {
    for index in 0..words {
        if index > 0 {
            text.push(' ');
        }
        text.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
}

/// How the server counts a synthetic prompt: `overhead + per_word × words` tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    /// Tokens per word of synthetic text.
    pub per_word: f64,
    /// Tokens the server adds to every prompt (special tokens, a chat template).
    pub overhead: f64,
}

impl Calibration {
    /// The line through two measurements: `short` tokens for `short_words`
    /// words and `long` tokens for `long_words`. `None` when the counts make
    /// no sense (the longer text counted no more tokens).
    pub fn from_counts(short_words: usize, short: u64, long_words: usize, long: u64) -> Option<Calibration> {
        if long_words <= short_words || long <= short {
            return None;
        }
        let per_word = (long - short) as f64 / (long_words - short_words) as f64;
        let overhead = (short as f64 - per_word * short_words as f64).max(0.0);
        Some(Calibration { per_word, overhead })
    }

    /// Words of synthetic text the server counts as about `tokens` tokens;
    /// `None` when the server's fixed overhead alone is that long.
    pub fn words_for(&self, tokens: u64) -> Option<usize> {
        let words = ((tokens as f64 - self.overhead) / self.per_word).round();
        (words >= 1.0).then_some(words as usize)
    }
}

/// Whether a server's count of prompt tokens is within 10% of the count asked for.
pub fn close_enough(counted: u64, requested: u64) -> bool {
    counted.abs_diff(requested) as f64 <= 0.1 * requested as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_text_is_seeded() {
        let draw = |seed| {
            let mut text = String::new();
            synthetic(&mut text, 50, &mut SplitMix::new(seed));
            text
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        assert_eq!(draw(7).split(' ').count(), 50);
    }

    #[test]
    fn calibration_recovers_the_line() {
        // (words of the short text, its count, count of twice as many words, asked tokens, words expected)
        let cases = [
            (128, 129, 257, 128, Some(127)),          // one token per word, one BOS token
            (100, 170, 320, 200, Some(120)),          // 1.5 tokens per word, 20 tokens of chat template
            (32, 52, 84, 16, None),                   // the template alone is longer than asked
            (100, 150, 250, 1000, Some(950)),         // 1 per word, overhead 50
        ];
        for (words, short, long, asked, expected) in cases {
            let calibration = Calibration::from_counts(words, short, 2 * words, long).unwrap();
            assert_eq!(calibration.words_for(asked), expected, "{words} {short} {long}");
        }
        assert_eq!(Calibration::from_counts(10, 20, 20, 20), None);
        assert_eq!(Calibration::from_counts(10, 20, 10, 30), None);
    }

    #[test]
    fn ten_percent_either_way() {
        let cases = [(128, 128, true), (140, 128, true), (141, 128, false), (116, 128, true), (115, 128, false)];
        for (counted, requested, expected) in cases {
            assert_eq!(close_enough(counted, requested), expected, "{counted} of {requested}");
        }
    }
}
