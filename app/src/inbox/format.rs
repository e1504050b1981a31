//! WhatsApp's text formatting: `*bold*`, `_italic_`, `~strike~`, ```` ```mono``` ````,
//! `` `code` `` and bare links, parsed into spans the thread renders (never raw HTML).

/// A piece of formatted text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Span {
    Text(String),
    Bold(Vec<Span>),
    Italic(Vec<Span>),
    Strike(Vec<Span>),
    /// ```` ```block``` ```` and `` `inline` ``: shown as written.
    Mono(String),
    /// An `http(s)://` or `www.` link; the href always has a scheme.
    Link {
        text: String,
        href: String,
    },
}

fn is_marker(c: char) -> bool {
    matches!(c, '*' | '_' | '~')
}

/// A marker may open after the start, a space or punctuation, before a non-space.
fn opens(chars: &[char], i: usize) -> bool {
    let before_ok = i == 0 || {
        let b = chars[i - 1];
        b.is_whitespace() || (b.is_ascii_punctuation() && b != chars[i])
    };
    let after_ok = chars.get(i + 1).is_some_and(|c| !c.is_whitespace());
    before_ok && after_ok
}

/// A marker may close after a non-space, before the end, a space or punctuation.
fn closes(chars: &[char], j: usize) -> bool {
    let before_ok = j > 0 && !chars[j - 1].is_whitespace();
    let after_ok = match chars.get(j + 1) {
        None => true,
        Some(c) => c.is_whitespace() || (c.is_ascii_punctuation() && *c != chars[j]),
    };
    before_ok && after_ok
}

fn starts_with(chars: &[char], i: usize, s: &str) -> bool {
    (i..).zip(s.chars()).all(|(k, c)| chars.get(k) == Some(&c))
}

fn link_at(chars: &[char], i: usize) -> Option<(usize, Span)> {
    if i > 0 && !chars[i - 1].is_whitespace() && !matches!(chars[i - 1], '(' | '<' | '"') {
        return None;
    }
    let scheme = ["https://", "http://", "www."]
        .into_iter()
        .find(|p| starts_with(chars, i, p))?;
    let mut end = i;
    while end < chars.len() && !chars[end].is_whitespace() && !matches!(chars[end], '<' | '>' | '"')
    {
        end += 1;
    }
    while end > i
        && matches!(
            chars[end - 1],
            '.' | ',' | '!' | '?' | ')' | ':' | ';' | '\''
        )
    {
        end -= 1;
    }
    let text: String = chars[i..end].iter().collect();
    if text.chars().count() <= scheme.len() {
        return None;
    }
    let href = if scheme == "www." {
        format!("https://{text}")
    } else {
        text.clone()
    };
    Some((end, Span::Link { text, href }))
}

/// Parses a message's text into spans.
pub fn parse(text: &str) -> Vec<Span> {
    let chars: Vec<char> = text.chars().collect();
    parse_chars(&chars)
}

fn parse_chars(chars: &[char]) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    let mut plain = String::new();
    let flush = |plain: &mut String, out: &mut Vec<Span>| {
        if !plain.is_empty() {
            out.push(Span::Text(std::mem::take(plain)));
        }
    };
    let mut i = 0;
    while i < chars.len() {
        if starts_with(chars, i, "```") {
            if let Some(len) = (i + 3..chars.len().saturating_sub(2))
                .find(|&j| starts_with(chars, j, "```"))
                .map(|j| j - (i + 3))
                .filter(|len| *len > 0)
            {
                flush(&mut plain, &mut out);
                out.push(Span::Mono(chars[i + 3..i + 3 + len].iter().collect()));
                i += len + 6;
                continue;
            }
        }
        let c = chars[i];
        if c == '`' {
            if let Some(j) = (i + 1..chars.len()).find(|&j| chars[j] == '`' || chars[j] == '\n') {
                if chars[j] == '`' && j > i + 1 {
                    flush(&mut plain, &mut out);
                    out.push(Span::Mono(chars[i + 1..j].iter().collect()));
                    i = j + 1;
                    continue;
                }
            }
        }
        if is_marker(c) && opens(chars, i) {
            let close = (i + 2..chars.len())
                .take_while(|&j| chars[j] != '\n')
                .find(|&j| chars[j] == c && closes(chars, j));
            if let Some(j) = close {
                flush(&mut plain, &mut out);
                let inner = parse_chars(&chars[i + 1..j]);
                out.push(match c {
                    '*' => Span::Bold(inner),
                    '_' => Span::Italic(inner),
                    _ => Span::Strike(inner),
                });
                i = j + 1;
                continue;
            }
        }
        if matches!(c, 'h' | 'w') {
            if let Some((end, link)) = link_at(chars, i) {
                flush(&mut plain, &mut out);
                out.push(link);
                i = end;
                continue;
            }
        }
        plain.push(c);
        i += 1;
    }
    flush(&mut plain, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::Span::*;
    use super::*;

    fn t(s: &str) -> Span {
        Text(s.into())
    }

    #[test]
    fn markers_format_words() {
        assert_eq!(parse("*bold*"), vec![Bold(vec![t("bold")])]);
        assert_eq!(
            parse("a _b_ ~c~ d"),
            vec![
                t("a "),
                Italic(vec![t("b")]),
                t(" "),
                Strike(vec![t("c")]),
                t(" d")
            ]
        );
        assert_eq!(
            parse("*bold _and italic_*"),
            vec![Bold(vec![t("bold "), Italic(vec![t("and italic")])])]
        );
        assert_eq!(parse("(*yes*)"), vec![t("("), Bold(vec![t("yes")]), t(")")]);
    }

    #[test]
    fn markers_inside_words_or_unclosed_stay_text() {
        for s in [
            "2*3*4",
            "snake_case_name",
            "* not bold *",
            "*open",
            "a * b",
            "**",
            "*a\nb*",
        ] {
            let spans = parse(s);
            assert!(
                spans.iter().all(|x| matches!(x, Text(_))),
                "{s:?} → {spans:?}"
            );
        }
    }

    #[test]
    fn monospace_is_shown_as_written() {
        assert_eq!(
            parse("run ```cargo *test*``` now"),
            vec![t("run "), Mono("cargo *test*".into()), t(" now")]
        );
        assert_eq!(parse("`x_y`"), vec![Mono("x_y".into())]);
        assert_eq!(parse("``````"), vec![t("``````")]);
    }

    #[test]
    fn links_get_a_scheme_and_leave_trailing_punctuation() {
        assert_eq!(
            parse("see https://example.com/a?b=1."),
            vec![
                t("see "),
                Link {
                    text: "https://example.com/a?b=1".into(),
                    href: "https://example.com/a?b=1".into()
                },
                t(".")
            ]
        );
        assert_eq!(
            parse("www.qontak.test"),
            vec![Link {
                text: "www.qontak.test".into(),
                href: "https://www.qontak.test".into()
            }]
        );
        assert_eq!(parse("javascript:alert(1)"), vec![t("javascript:alert(1)")]);
        assert_eq!(parse("xhttps://a.b"), vec![t("xhttps://a.b")]);
        assert_eq!(parse("https://"), vec![t("https://")]);
    }

    #[test]
    fn unicode_and_emoji_pass_through() {
        assert_eq!(
            parse("Halo *Budi* 👋 ~harga~"),
            vec![
                t("Halo "),
                Bold(vec![t("Budi")]),
                t(" 👋 "),
                Strike(vec![t("harga")])
            ]
        );
    }
}
