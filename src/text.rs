//! Text from files, shown to people: names and keys come from strangers, so
//! control characters (terminal escape sequences among them) and the
//! invisible characters that reorder text are shown escaped, never sent raw.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as it is.
pub fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// `s` with every control or reordering character escaped as Rust does
/// (`\u{1b}`, `\n`), and the rest as it is.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if hidden(c) {
            out.extend(c.escape_debug());
            if c.escape_debug().len() == 1 {
                // escape_debug leaves some format characters as they are
                out.pop();
                out.extend(c.escape_unicode());
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` escaped and cut to at most `max` characters, the cut marked with an
/// ellipsis.
pub fn escape_cut(s: &str, max: usize) -> Cow<'_, str> {
    let escaped = escape(s);
    if escaped.chars().count() <= max {
        return escaped;
    }
    let mut cut: String = escaped.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    Cow::Owned(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_text_kept() {
        assert_eq!(escape("blk.0.attn_q.weight"), "blk.0.attn_q.weight");
        assert_eq!(escape("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("x\ny\r\t"), "x\\ny\\r\\t");
        assert_eq!(escape("\u{202e}evil"), "\\u{202e}evil");
        assert_eq!(escape("héllo 模型"), "héllo 模型");
        assert_eq!(escape_cut("abcdef", 4), "abc…");
        assert_eq!(escape_cut("abc", 4), "abc");
        assert_eq!(escape_cut("\u{1b}\u{1b}", 8).chars().count(), 8);
    }
}
