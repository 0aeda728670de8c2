//! Percent-decoding: query strings into pairs (`+` is a space) and path segments.

/// `a=1&b=two%20words` → pairs, percent- and plus-decoded.
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(kv), String::new()),
        })
        .collect()
}

/// Percent-decoding of a query component (`+` is a space), lossy on invalid UTF-8.
pub(crate) fn decode(s: &str) -> String {
    percent_decode(s, true)
}

/// Percent-decoding of a path segment (`+` stays `+`), lossy on invalid UTF-8.
pub(crate) fn decode_path(s: &str) -> String {
    percent_decode(s, false)
}

fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let [first, tail @ ..] = rest {
        match (first, tail) {
            (b'+', _) if plus_is_space => out.push(b' '),
            (b'%', [hi, lo, ..]) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                out.push(hex(*hi) << 4 | hex(*lo));
                rest = &tail[2..];
                continue;
            }
            (b, _) => out.push(*b),
        }
        rest = tail;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        _ => d.to_ascii_lowercase().wrapping_sub(b'a').wrapping_add(10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded() {
        let q = parse_query("a=1&b=two%20words&c=x+y&flag&&bad=%zz&end=%4");
        let want = [
            ("a", "1"),
            ("b", "two words"),
            ("c", "x y"),
            ("flag", ""),
            ("bad", "%zz"),
            ("end", "%4"),
        ];
        let got: Vec<_> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
    }
}
