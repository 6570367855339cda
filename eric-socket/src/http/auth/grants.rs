//! What a token grants, and the channel patterns it grants them over. Pure: no I/O, no
//! clock, no crypto, so that it can be tested (and fuzzed) on its own.
//!
//! A token's `"eric"` claim reads
//! `{"publish": [patterns], "subscribe": [patterns], "admin": bool}`, every key
//! optional. A pattern is a channel id, or a glob where `*` stands for any run of
//! characters (dots included, the empty run too): `*` is every channel, `news.*` is
//! `news.sport` and `news.sport.uk` but not `newsroom` nor `news`. There is no escape:
//! a channel id with a `*` in it is named by a pattern that matches it as a glob.

use serde::Deserialize;

/// The rights a request may need on a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Right {
    /// Create and delete the channel, broadcast on it, dispatch to its listeners.
    Publish,
    /// Add a listener, stream it (`/stream`, `/watch`), remove it.
    Subscribe,
}

impl Right {
    /// The name of the right, as the claim spells it.
    pub fn name(self) -> &'static str {
        match self {
            Right::Publish => "publish",
            Right::Subscribe => "subscribe",
        }
    }
}

/// The `"eric"` claim of a token: the channel patterns it may publish and subscribe to,
/// and whether it may do everything.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Grants {
    /// Patterns of the channels the token may publish to.
    pub publish: Vec<String>,
    /// Patterns of the channels the token may subscribe to.
    pub subscribe: Vec<String>,
    /// Every right on every channel, and the server's admin routes.
    pub admin: bool,
}

impl Grants {
    /// What an anonymous subscriber may do (`--anonymous-subscribe`): subscribe to every
    /// channel, nothing else.
    pub fn anonymous_subscriber() -> Self {
        Grants {
            subscribe: vec!["*".to_owned()],
            ..Grants::default()
        }
    }

    /// The patterns of `right`.
    pub fn patterns(&self, right: Right) -> &[String] {
        match right {
            Right::Publish => &self.publish,
            Right::Subscribe => &self.subscribe,
        }
    }

    /// Whether `right` is granted on the channel `channel`.
    pub fn allows(&self, right: Right, channel: &str) -> bool {
        self.admin
            || self
                .patterns(right)
                .iter()
                .any(|pattern| pattern_matches(pattern, channel))
    }

    /// Whether `right` is granted on every channel, whatever its id (a pattern `*`).
    pub fn allows_every(&self, right: Right) -> bool {
        self.admin
            || self
                .patterns(right)
                .iter()
                .any(|p| p.bytes().all(|b| b == b'*') && !p.is_empty())
    }

    /// Whether the channel shows in the listings: some right is granted on it.
    pub fn may_see(&self, channel: &str) -> bool {
        self.allows(Right::Publish, channel) || self.allows(Right::Subscribe, channel)
    }
}

/// Whether the glob `pattern` matches the whole of `text`; `*` stands for any run of
/// characters, every other character for itself.
///
/// ```
/// use eric_socket::http::auth::pattern_matches;
/// assert!(pattern_matches("news.*", "news.sport"));
/// assert!(!pattern_matches("news.*", "newsroom"));
/// assert!(pattern_matches("*", "anything"));
/// assert!(pattern_matches("a*c", "abbbc"));
/// ```
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    // The classic linear-space glob walk: on a mismatch, the last `*` takes one more
    // byte. Bytes, not chars: `*` may stop inside a multi-byte character, and the
    // literal parts still only match whole characters since both sides are UTF-8.
    let (mut p, mut t) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            last_star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star, taken)) = last_star {
            p = star + 1;
            t = taken + 1;
            last_star = Some((star, taken + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_glob_matches_whole_ids_only() {
        for (pattern, text, matches) in [
            ("*", "", true),
            ("*", "news", true),
            ("news", "news", true),
            ("news", "news.x", false),
            ("news.*", "news.sport", true),
            ("news.*", "news.sport.uk", true),
            ("news.*", "newsroom", false),
            ("news.*", "news", false),
            ("news.*", "xnews.sport", false),
            ("*.uk", "news.sport.uk", true),
            ("*.uk", "news.sport.ukx", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXcYb", false),
            ("été.*", "été.x", true),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(
                pattern_matches(pattern, text),
                matches,
                "{pattern} ~ {text}"
            );
        }
    }

    #[test]
    fn rights_follow_their_own_patterns_and_admin_has_all() {
        let grants = Grants {
            publish: vec!["news.*".into()],
            subscribe: vec!["news.*".into(), "public".into()],
            admin: false,
        };
        assert!(grants.allows(Right::Publish, "news.a"));
        assert!(!grants.allows(Right::Publish, "public"));
        assert!(grants.allows(Right::Subscribe, "public"));
        assert!(!grants.allows(Right::Subscribe, "newsroom"));
        assert!(grants.may_see("public") && !grants.may_see("private"));
        assert!(!grants.allows_every(Right::Publish));
        let admin = Grants {
            admin: true,
            ..Grants::default()
        };
        assert!(admin.allows(Right::Publish, "x") && admin.allows_every(Right::Subscribe));
        assert!(Grants::anonymous_subscriber().allows_every(Right::Subscribe));
        assert!(!Grants::anonymous_subscriber().allows(Right::Publish, "x"));
    }

    #[test]
    fn the_claim_reads_with_every_key_optional_and_refuses_unknown_keys() {
        let grants: Grants = serde_json::from_str(r#"{"subscribe": ["a"]}"#).unwrap();
        assert_eq!(grants.subscribe, ["a"]);
        assert!(grants.publish.is_empty() && !grants.admin);
        assert!(serde_json::from_str::<Grants>(r#"{"publish": "a"}"#).is_err());
        assert!(serde_json::from_str::<Grants>(r#"{"publsh": ["a"]}"#).is_err());
    }

    /// A reference matcher: every way of splitting, by recursion.
    fn reference(pattern: &[u8], text: &[u8]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some((b'*', rest)) => (0..=text.len()).any(|i| reference(rest, &text[i..])),
            Some((c, rest)) => text.first() == Some(c) && reference(rest, &text[1..]),
        }
    }

    proptest! {
        #[test]
        fn the_glob_walk_agrees_with_the_reference(pattern in "[ab.*]{0,8}", text in "[ab.]{0,10}") {
            prop_assert_eq!(
                pattern_matches(&pattern, &text),
                reference(pattern.as_bytes(), text.as_bytes())
            );
        }
    }
}
