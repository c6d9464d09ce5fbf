//! The request path, percent-decoded once: the spelling the routes are
//! matched on and the refusal rules read.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use super::Refusal;

/// A request path (without the query), percent-decoded exactly once.
///
/// [`parse`](Self::parse) refuses what no route may admit: a path that does
/// not start with `/`, a `.` or `..` segment (also once `;parameters` are
/// removed from it, as Java servlet containers do), and an empty segment
/// (`//admin`). [`unusual`](Self::unusual)
/// names what a route admits only when it allows unusual path characters:
/// a backslash (raw or `%5C`), a control character or NUL (`%00`, `%09`, …),
/// a second layer of percent-encoding (`%2561`), bytes that are not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath<'a> {
    raw: &'a str,
    decoded: Cow<'a, str>,
    shape: Shape,
}

/// What one pass over the decoded path learnt besides its refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    /// The first unusual spelling.
    unusual: Option<Refusal>,
    /// Whether ignoring case could change the path (uppercase or non-ASCII).
    cased: bool,
    /// Whether a segment has `;parameters`.
    parameters: bool,
}

impl<'a> RequestPath<'a> {
    /// Decodes `raw` once and refuses the paths no route may admit.
    pub fn parse(raw: &'a str) -> Result<Self, Refusal> {
        if !raw.starts_with('/') {
            return Err(Refusal::PathNotAbsolute);
        }
        let (decoded, utf8) = match Cow::<[u8]>::from(percent_decode_str(raw)) {
            // Nothing was encoded: the path is its own decoding.
            Cow::Borrowed(_) => (Cow::Borrowed(raw), true),
            Cow::Owned(bytes) => match String::from_utf8(bytes) {
                Ok(text) => (Cow::Owned(text), true),
                Err(error) => (
                    Cow::Owned(String::from_utf8_lossy(error.as_bytes()).into_owned()),
                    false,
                ),
            },
        };
        let mut shape = scan(&decoded)?;
        if !utf8 {
            shape.unusual = Some(Refusal::NotUtf8);
        }
        Ok(Self {
            raw,
            decoded,
            shape,
        })
    }

    /// The path as the request spells it.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The path percent-decoded once (bytes that are not UTF-8 replaced by
    /// U+FFFD).
    pub fn decoded(&self) -> &str {
        &self.decoded
    }

    /// The first unusual spelling the path holds, if any: what a route
    /// admits only with `allow_unusual_path_characters`.
    pub fn unusual(&self) -> Option<Refusal> {
        self.shape.unusual
    }

    /// Whether the path could read differently with case ignored.
    pub(crate) fn has_case(&self) -> bool {
        self.shape.cased
    }

    /// Whether a segment carries `;parameters`.
    pub(crate) fn has_parameters(&self) -> bool {
        self.shape.parameters
    }

    /// The path as an upstream that decodes twice and reads `\` as `/`
    /// would see it; `None` when that is the same as [`decoded`](Self::decoded).
    /// It is refused like any path when it has dot or empty segments.
    pub fn lenient_reading(&self) -> Result<Option<String>, Refusal> {
        if self.unusual().is_none() {
            return Ok(None);
        }
        let twice = percent_decode_str(&self.decoded)
            .decode_utf8_lossy()
            .replace('\\', "/");
        scan(&twice)?;
        Ok(Some(twice))
    }
}

/// One pass over a decoded path (starting with `/`): refuses dot segments
/// (also `..;x`) and empty segments (the last segment may be empty:
/// `/admin/`), and notes what else the path holds.
fn scan(decoded: &str) -> Result<Shape, Refusal> {
    let bytes = decoded.as_bytes();
    let mut shape = Shape {
        unusual: None,
        cased: false,
        parameters: false,
    };
    let mut segment_start = 1;
    let mut parameters_at = None;
    for index in 1..=bytes.len() {
        match bytes.get(index).copied() {
            end @ (None | Some(b'/')) => {
                let name = &bytes[segment_start..parameters_at.unwrap_or(index)];
                if name == b"." || name == b".." {
                    return Err(Refusal::DotSegment);
                }
                if index == segment_start && end.is_some() {
                    return Err(Refusal::EmptySegment);
                }
                segment_start = index + 1;
                parameters_at = None;
            }
            Some(b';') => {
                shape.parameters = true;
                parameters_at.get_or_insert(index);
            }
            Some(b'A'..=b'Z' | 0x80..) => shape.cased = true,
            Some(byte) if shape.unusual.is_none() => {
                shape.unusual = match byte {
                    b'\\' => Some(Refusal::Backslash),
                    0x00..=0x1f | 0x7f => Some(Refusal::ControlCharacter),
                    b'%' if bytes.get(index + 1).is_some_and(u8::is_ascii_hexdigit)
                        && bytes.get(index + 2).is_some_and(u8::is_ascii_hexdigit) =>
                    {
                        Some(Refusal::DoubleEncoding)
                    }
                    _ => None,
                };
            }
            Some(_) => {}
        }
    }
    Ok(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(raw: &str) -> Option<Refusal> {
        match RequestPath::parse(raw) {
            Err(refusal) => Some(refusal),
            Ok(path) => path.unusual(),
        }
    }

    #[test]
    fn ordinary_paths_pass_and_decode_once() {
        for raw in [
            "/",
            "/admin",
            "/admin/",
            "/a/b.c/..d/e..",
            "/a;v=1/b",
            "/%C3%BC",
        ] {
            assert_eq!(refusal(raw), None, "{raw}");
        }
        let path = RequestPath::parse("/admin%2Fusers").unwrap();
        assert_eq!(path.decoded(), "/admin/users");
        assert_eq!(path.raw(), "/admin%2Fusers");
        assert!(matches!(
            RequestPath::parse("/plain").unwrap().decoded,
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn dot_segments_are_refused_also_with_parameters_encoded_or_between_backslashes() {
        for raw in [
            "/public/../admin",
            "/public/..;/admin",
            "/public/..;x=1/admin",
            "/public/.;/admin",
            "/public/%2e%2e/admin",
            "/public/%2E%2E%3Bx/admin",
            "/public%2f..%2fadmin",
            "/./a",
            "/a/..",
        ] {
            assert_eq!(refusal(raw), Some(Refusal::DotSegment), "{raw}");
        }
    }

    #[test]
    fn empty_segments_are_refused_but_a_trailing_slash_is_not() {
        for raw in [
            "//admin",
            "///admin/x",
            "/admin//x",
            "/%2Fadmin",
            "/admin//",
        ] {
            assert_eq!(refusal(raw), Some(Refusal::EmptySegment), "{raw}");
        }
        assert_eq!(refusal("/admin/"), None);
    }

    #[test]
    fn unusual_characters_are_named() {
        assert_eq!(refusal("/\\admin"), Some(Refusal::Backslash));
        assert_eq!(refusal("/%5cadmin"), Some(Refusal::Backslash));
        assert_eq!(refusal("/admin%00"), Some(Refusal::ControlCharacter));
        assert_eq!(refusal("/admin%09"), Some(Refusal::ControlCharacter));
        assert_eq!(refusal("/admin%7F"), Some(Refusal::ControlCharacter));
        assert_eq!(refusal("/%2561dmin"), Some(Refusal::DoubleEncoding));
        assert_eq!(refusal("/%25%36%31dmin"), Some(Refusal::DoubleEncoding));
        assert_eq!(refusal("/%ff"), Some(Refusal::NotUtf8));
        assert_eq!(refusal("/%c0%ae%c0%ae/admin"), Some(Refusal::NotUtf8));
        // A percent sign that encodes nothing is plain text.
        assert_eq!(refusal("/100%25"), None);
        assert_eq!(refusal("/100%25x"), None);
    }

    #[test]
    fn the_lenient_reading_decodes_twice_and_reads_backslashes_as_slashes() {
        let path = RequestPath::parse("/files/a%5Cb%2520c").unwrap();
        assert_eq!(path.lenient_reading(), Ok(Some("/files/a/b c".to_owned())));
        let path = RequestPath::parse("/files/%252e%252e/admin").unwrap();
        assert_eq!(path.lenient_reading(), Err(Refusal::DotSegment));
        let path = RequestPath::parse("/files/x%5C%5Cy").unwrap();
        assert_eq!(path.lenient_reading(), Err(Refusal::EmptySegment));
        let path = RequestPath::parse("/files\\..\\admin").unwrap();
        assert_eq!(path.lenient_reading(), Err(Refusal::DotSegment));
        assert_eq!(
            RequestPath::parse("/files/x").unwrap().lenient_reading(),
            Ok(None)
        );
    }

    #[test]
    fn a_path_must_start_with_a_slash() {
        for raw in ["", "*", "admin", "http://h/admin"] {
            assert_eq!(refusal(raw), Some(Refusal::PathNotAbsolute), "{raw}");
        }
    }
}
