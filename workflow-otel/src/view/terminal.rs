//! Text on its way to a person's terminal: whatever a span carries (an
//! error message, an attribute value, another library's span name) may hold
//! control characters, and an escape sequence in an error message must not
//! retitle, clear or overwrite the user's terminal. They are written
//! visibly instead, as Rust writes them: `\u{1b}`.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `character` must not reach a terminal as it is: the C0 and C1
/// controls and DEL (`char::is_control`), and the bidirectional formatting
/// characters, which reorder what follows them on the line.
fn unsafe_for_terminal(character: char) -> bool {
    character.is_control()
        || matches!(
            character,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every control character and bidirectional override written
/// as `\u{..}`; borrowed when there is none (the usual case).
///
/// ```
/// use workflow_otel::terminal_safe;
///
/// assert_eq!(terminal_safe("card declined"), "card declined");
/// assert_eq!(terminal_safe("\u{1b}]0;pwned\u{7}"), "\\u{1b}]0;pwned\\u{7}");
/// assert_eq!(terminal_safe("a\u{202e}b\r"), "a\\u{202e}b\\u{d}");
/// ```
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_for_terminal) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 16);
    for character in text.chars() {
        if unsafe_for_terminal(character) {
            let _ = write!(safe, "\\u{{{:x}}}", u32::from(character));
        } else {
            safe.push(character);
        }
    }
    Cow::Owned(safe)
}

#[cfg(test)]
mod tests {
    use super::terminal_safe;

    #[test]
    fn controls_and_bidi_overrides_are_written_visibly() {
        for (text, safe) in [
            ("plain text, ünïcode, 中文", "plain text, ünïcode, 中文"),
            ("\u{1b}[2J\u{1b}[H", "\\u{1b}[2J\\u{1b}[H"),
            ("bell\u{7}", "bell\\u{7}"),
            ("over\rwrite", "over\\u{d}write"),
            ("two\nlines\tand a tab", "two\\u{a}lines\\u{9}and a tab"),
            ("del\u{7f} c1\u{9b}31m", "del\\u{7f} c1\\u{9b}31m"),
            ("\u{202e}txt.exe", "\\u{202e}txt.exe"),
            ("\u{2066}\u{2069}\u{200f}", "\\u{2066}\\u{2069}\\u{200f}"),
        ] {
            assert_eq!(terminal_safe(text), safe, "{text:?}");
        }
    }
}
