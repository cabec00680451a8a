//! Request parser: RESP multibulk arrays and inline commands, as `redis-server` 7.0 reads them.
//!
//! The parser never copies argument bytes: it finds the end of one complete request in the read
//! buffer, splits that prefix off as a frozen [`Bytes`] and hands out sub-slices of it.
//! Limits and error strings follow `networking.c` (`processMultibulkBuffer`,
//! `processInlineBuffer`) byte for byte; a protocol error is fatal for the connection (the caller
//! replies with the error and closes, as Redis does).

use bytes::{Bytes, BytesMut};

/// Longest inline request, and longest `*N` / `$N` header line, Redis accepts (PROTO_INLINE_MAX_SIZE).
pub const INLINE_MAX_SIZE_BYTES: usize = 64 * 1024;
/// Argument-count limit for unauthenticated clients when a password is required.
const UNAUTH_MAX_ARGS: i64 = 10;
/// Bulk-length limit for unauthenticated clients when a password is required.
const UNAUTH_MAX_BULK_BYTES: i64 = 16384;

/// Limits that apply to one parse call (they may change at runtime with CONFIG SET / AUTH).
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// `proto-max-bulk-len`.
    pub max_bulk_len_bytes: u64,
    /// False while `requirepass` is set and the client has not authenticated.
    pub authenticated: bool,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_bulk_len_bytes: 512 * 1024 * 1024,
            authenticated: true,
        }
    }
}

/// A fatal protocol error. `message()` is the text after `-ERR ` that Redis sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    InvalidMultibulkLength,
    InvalidBulkLength,
    ExpectedDollar(u8),
    TooBigInlineRequest,
    TooBigMbulkCount,
    TooBigBulkCount,
    UnbalancedQuotes,
    UnauthenticatedMultibulkLength,
    UnauthenticatedBulkLength,
}

impl ProtocolError {
    /// The error text without the leading `-ERR `.
    pub fn message(&self) -> String {
        match self {
            ProtocolError::InvalidMultibulkLength => {
                "Protocol error: invalid multibulk length".into()
            }
            ProtocolError::InvalidBulkLength => "Protocol error: invalid bulk length".into(),
            ProtocolError::ExpectedDollar(c) => {
                format!("Protocol error: expected '$', got '{}'", *c as char)
            }
            ProtocolError::TooBigInlineRequest => "Protocol error: too big inline request".into(),
            ProtocolError::TooBigMbulkCount => "Protocol error: too big mbulk count string".into(),
            ProtocolError::TooBigBulkCount => "Protocol error: too big bulk count string".into(),
            ProtocolError::UnbalancedQuotes => {
                "Protocol error: unbalanced quotes in request".into()
            }
            ProtocolError::UnauthenticatedMultibulkLength => {
                "Protocol error: unauthenticated multibulk length".into()
            }
            ProtocolError::UnauthenticatedBulkLength => {
                "Protocol error: unauthenticated bulk length".into()
            }
        }
    }
}

/// What one call of [`Parser::parse`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseOutcome {
    /// A complete command was split off; its arguments are in the output vector (never empty).
    Command,
    /// The buffer holds no complete command yet.
    Incomplete,
}

/// Resumable parser state for one connection.
///
/// The only state kept between calls is the number of bytes a pending request is known to
/// need, so a large bulk that arrives in many reads is not rescanned on every read.
#[derive(Debug, Default)]
pub struct Parser {
    need_bytes: usize,
    spans: Vec<(usize, usize)>,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes the pending request is known to need in total (0 when unknown); lets the caller
    /// reserve read-buffer space once for a large bulk argument.
    pub fn pending_need_bytes(&self) -> usize {
        self.need_bytes
    }

    /// Parses at most one command from the front of `buf`, consuming it. Empty requests
    /// (`*0`, `*-1`, blank inline lines) are consumed and skipped.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: &ParseLimits,
        args: &mut Vec<Bytes>,
    ) -> Result<ParseOutcome, ProtocolError> {
        args.clear();
        loop {
            if buf.is_empty() || buf.len() < self.need_bytes {
                return Ok(ParseOutcome::Incomplete);
            }
            let found = if buf[0] == b'*' {
                self.scan_multibulk(buf, limits)?
            } else {
                self.scan_inline(buf, args)?
            };
            match found {
                Scan::Incomplete(need) => {
                    self.need_bytes = need;
                    return Ok(ParseOutcome::Incomplete);
                }
                Scan::Skip(consumed) => {
                    self.need_bytes = 0;
                    let _ = buf.split_to(consumed);
                }
                Scan::Multibulk(total) => {
                    self.need_bytes = 0;
                    let frame = buf.split_to(total).freeze();
                    args.reserve(self.spans.len());
                    for &(start, end) in &self.spans {
                        args.push(frame.slice(start..end));
                    }
                    return Ok(ParseOutcome::Command);
                }
                Scan::Inline(consumed) => {
                    self.need_bytes = 0;
                    let _ = buf.split_to(consumed);
                    if !args.is_empty() {
                        return Ok(ParseOutcome::Command);
                    }
                }
            }
        }
    }

    fn scan_multibulk(&mut self, buf: &[u8], limits: &ParseLimits) -> Result<Scan, ProtocolError> {
        self.spans.clear();
        let Some(cr) = memchr::memchr(b'\r', buf) else {
            if buf.len() > INLINE_MAX_SIZE_BYTES {
                return Err(ProtocolError::TooBigMbulkCount);
            }
            return Ok(Scan::Incomplete(0));
        };
        if cr + 1 >= buf.len() {
            return Ok(Scan::Incomplete(0));
        }
        let count = match parse_i64(&buf[1..cr]) {
            Some(n) if n <= i32::MAX as i64 => n,
            _ => return Err(ProtocolError::InvalidMultibulkLength),
        };
        if count > UNAUTH_MAX_ARGS && !limits.authenticated {
            return Err(ProtocolError::UnauthenticatedMultibulkLength);
        }
        let mut pos = cr + 2;
        if count <= 0 {
            return Ok(Scan::Skip(pos));
        }
        for _ in 0..count {
            if pos >= buf.len() {
                return Ok(Scan::Incomplete(0));
            }
            let rest = &buf[pos..];
            let Some(cr) = memchr::memchr(b'\r', rest) else {
                if rest.len() > INLINE_MAX_SIZE_BYTES {
                    return Err(ProtocolError::TooBigBulkCount);
                }
                return Ok(Scan::Incomplete(0));
            };
            if cr + 1 >= rest.len() {
                return Ok(Scan::Incomplete(0));
            }
            if rest[0] != b'$' {
                return Err(ProtocolError::ExpectedDollar(rest[0]));
            }
            let len = match parse_i64(&rest[1..cr]) {
                Some(n) if n >= 0 && (n as u64) <= limits.max_bulk_len_bytes => n,
                _ => return Err(ProtocolError::InvalidBulkLength),
            };
            if len > UNAUTH_MAX_BULK_BYTES && !limits.authenticated {
                return Err(ProtocolError::UnauthenticatedBulkLength);
            }
            let start = pos + cr + 2;
            let len = len as usize;
            // Like Redis, the two bytes after the bulk are skipped without being checked.
            let end_with_crlf = start.saturating_add(len).saturating_add(2);
            if end_with_crlf > buf.len() {
                return Ok(Scan::Incomplete(end_with_crlf));
            }
            self.spans.push((start, start + len));
            pos = end_with_crlf;
        }
        Ok(Scan::Multibulk(pos))
    }

    fn scan_inline(&mut self, buf: &[u8], args: &mut Vec<Bytes>) -> Result<Scan, ProtocolError> {
        let Some(nl) = memchr::memchr(b'\n', buf) else {
            if buf.len() > INLINE_MAX_SIZE_BYTES {
                return Err(ProtocolError::TooBigInlineRequest);
            }
            return Ok(Scan::Incomplete(0));
        };
        let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        let parts = split_args(&buf[..line_end]).ok_or(ProtocolError::UnbalancedQuotes)?;
        args.extend(parts.into_iter().map(Bytes::from));
        Ok(Scan::Inline(nl + 1))
    }
}

enum Scan {
    Incomplete(usize),
    Skip(usize),
    Multibulk(usize),
    Inline(usize),
}

/// Strict decimal parse as Redis's `string2ll`: optional `-`, no `+`, no leading zeros except
/// "0", no spaces, must fit in i64.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = if s[0] == b'-' {
        (true, &s[1..])
    } else {
        (false, s)
    };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > (i64::MAX as u64) + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// C `isspace` in the C locale (includes `\v`, which `u8::is_ascii_whitespace` does not).
pub fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Splits a line into arguments with Redis's `sdssplitargs` rules (double quotes with `\xHH`,
/// `\n`, `\r`, `\t`, `\b`, `\a` escapes; single quotes with `\'`). A closing quote must be
/// followed by a space or the end. Returns `None` on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_c_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let mut inq = false;
        let mut insq = false;
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && hex_val(line[i + 2]).is_some()
                    && hex_val(line[i + 3]).is_some()
                {
                    let hi = hex_val(line[i + 2]).unwrap_or(0);
                    let lo = hex_val(line[i + 3]).unwrap_or(0);
                    cur.push(hi * 16 + lo);
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !is_c_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !is_c_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut p = Parser::new();
        let mut buf = BytesMut::from(input);
        let mut args = Vec::new();
        let mut out = Vec::new();
        while p.parse(&mut buf, &ParseLimits::default(), &mut args)? == ParseOutcome::Command {
            out.push(args.iter().map(|a| a.to_vec()).collect());
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_pipeline() {
        let got = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(
            got,
            vec![vec![b"GET".to_vec(), b"k".to_vec()], vec![b"PING".to_vec()]]
        );
    }

    #[test]
    fn byte_by_byte_matches_whole() {
        let input = b"*3\r\n$3\r\nSET\r\n$5\r\nhello\r\n$10\r\n0123456789\r\nPING\r\n*0\r\nECHO \"a b\"\r\n";
        let whole = parse_all(input).unwrap();
        let mut p = Parser::new();
        let mut buf = BytesMut::new();
        let mut args = Vec::new();
        let mut got = Vec::new();
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            while p
                .parse(&mut buf, &ParseLimits::default(), &mut args)
                .unwrap()
                == ParseOutcome::Command
            {
                got.push(args.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
            }
        }
        assert_eq!(got, whole);
        assert_eq!(whole.len(), 3);
    }

    #[test]
    fn protocol_errors() {
        assert_eq!(
            parse_all(b"*abc\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            parse_all(b"*1\r\n$-5\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            parse_all(b"*1\r\n+x\r\n"),
            Err(ProtocolError::ExpectedDollar(b'+'))
        );
        assert_eq!(
            parse_all(b"*3000000000\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            parse_all(b"ECHO \"abc\r\n"),
            Err(ProtocolError::UnbalancedQuotes)
        );
        let big = vec![b'a'; INLINE_MAX_SIZE_BYTES + 1];
        assert_eq!(parse_all(&big), Err(ProtocolError::TooBigInlineRequest));
        assert_eq!(
            ProtocolError::ExpectedDollar(b'x').message(),
            "Protocol error: expected '$', got 'x'"
        );
    }

    #[test]
    fn bulk_limit_and_auth_limits() {
        let mut p = Parser::new();
        let lim = ParseLimits {
            max_bulk_len_bytes: 4,
            authenticated: true,
        };
        let mut buf = BytesMut::from(&b"*1\r\n$5\r\nhello\r\n"[..]);
        assert_eq!(
            p.parse(&mut buf, &lim, &mut Vec::new()),
            Err(ProtocolError::InvalidBulkLength)
        );
        let lim = ParseLimits {
            max_bulk_len_bytes: 1 << 20,
            authenticated: false,
        };
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            p.parse(&mut buf, &lim, &mut Vec::new()),
            Err(ProtocolError::UnauthenticatedMultibulkLength)
        );
    }

    #[test]
    fn empty_requests_are_skipped() {
        assert_eq!(parse_all(b"*0\r\n*-1\r\n\r\n   \r\n").unwrap().len(), 0);
    }

    #[test]
    fn split_args_rules() {
        assert_eq!(
            split_args(b"set \"a\\x41\\n\" 'it\\'s'").unwrap(),
            vec![b"set".to_vec(), b"aA\n".to_vec(), b"it's".to_vec()]
        );
        assert!(split_args(b"\"a\"b").is_none());
        assert_eq!(split_args(b"").unwrap().len(), 0);
    }

    #[test]
    fn parse_i64_is_strict() {
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"01"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b"-0"), None);
    }
}

#[cfg(test)]
mod prop {
    use super::*;
    use proptest::prelude::*;

    fn run(chunks: &[&[u8]]) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>) {
        let mut p = Parser::new();
        let mut buf = BytesMut::new();
        let mut args = Vec::new();
        let mut out = Vec::new();
        let limits = ParseLimits {
            max_bulk_len_bytes: 1 << 16,
            authenticated: true,
        };
        for c in chunks {
            buf.extend_from_slice(c);
            loop {
                match p.parse(&mut buf, &limits, &mut args) {
                    Ok(ParseOutcome::Command) => {
                        out.push(args.iter().map(|a| a.to_vec()).collect())
                    }
                    Ok(ParseOutcome::Incomplete) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        (out, None)
    }

    fn encode(cmds: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let mut v = Vec::new();
        for c in cmds {
            v.extend_from_slice(format!("*{}\r\n", c.len()).as_bytes());
            for a in c {
                v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                v.extend_from_slice(a);
                v.extend_from_slice(b"\r\n");
            }
        }
        v
    }

    proptest! {
        /// Arbitrary bytes: never panics, and splitting the input never changes the result.
        #[test]
        fn split_invariance(data in proptest::collection::vec(any::<u8>(), 0..512), split in 0usize..512) {
            let split = split.min(data.len());
            prop_assert_eq!(run(&[&data]), run(&[&data[..split], &data[split..]]));
        }

        /// Well-formed pipelines round-trip exactly.
        #[test]
        fn roundtrip(cmds in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6), 0..8),
            split in 0usize..2048) {
            let bytes = encode(&cmds);
            let split = split.min(bytes.len());
            let (got, err) = run(&[&bytes[..split], &bytes[split..]]);
            prop_assert!(err.is_none());
            prop_assert_eq!(got, cmds);
        }
    }
}
