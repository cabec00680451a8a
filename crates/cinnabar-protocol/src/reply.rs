//! Reply encoder: RESP2 or RESP3 framing chosen per connection.
//!
//! Commands write replies straight into the connection's output buffer through [`ReplyBuf`];
//! the connection flushes it once per read batch. Aggregate helpers degrade RESP3 types
//! (maps, sets, doubles, booleans, nulls, verbatim strings, pushes) to their RESP2 forms
//! exactly as `redis-server` does.

use crate::float::format_double;

/// Protocol version of a connection (`HELLO 2` / `HELLO 3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resp {
    V2,
    V3,
}

/// An output buffer with RESP encoders.
#[derive(Debug)]
pub struct ReplyBuf {
    pub buf: Vec<u8>,
    pub resp: Resp,
}

impl ReplyBuf {
    pub fn new(resp: Resp) -> Self {
        ReplyBuf {
            buf: Vec::with_capacity(16 * 1024),
            resp,
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }

    pub fn is_resp3(&self) -> bool {
        self.resp == Resp::V3
    }

    #[inline]
    fn header(&mut self, prefix: u8, n: i64) {
        self.buf.push(prefix);
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `+OK`.
    #[inline]
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// A status reply; `s` must not contain CR or LF (they are replaced by spaces, as Redis does).
    pub fn simple(&mut self, s: &str) {
        self.buf.push(b'+');
        self.push_line(s.as_bytes());
    }

    /// An error reply. `msg` is the whole error text, e.g. `ERR syntax error` or
    /// `WRONGTYPE Operation against ...`; a leading `-` is added.
    pub fn error(&mut self, msg: &str) {
        self.buf.push(b'-');
        self.push_line(msg.as_bytes());
    }

    /// An error reply from raw bytes (may hold client-supplied bytes, as Redis's do).
    pub fn error_bytes(&mut self, msg: &[u8]) {
        self.buf.push(b'-');
        self.push_line(msg);
    }

    fn push_line(&mut self, s: &[u8]) {
        for &c in s {
            self.buf
                .push(if c == b'\r' || c == b'\n' { b' ' } else { c });
        }
        self.buf.extend_from_slice(b"\r\n");
    }

    #[inline]
    pub fn int(&mut self, n: i64) {
        self.header(b':', n);
    }

    #[inline]
    pub fn bulk(&mut self, s: &[u8]) {
        self.header(b'$', s.len() as i64);
        self.buf.extend_from_slice(s);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// A bulk string holding the decimal form of `n` (e.g. GET of an integer-encoded value).
    pub fn bulk_int(&mut self, n: i64) {
        let mut b = itoa::Buffer::new();
        let s = b.format(n);
        self.bulk(s.as_bytes());
    }

    /// Null bulk string: `$-1` in RESP2, `_` in RESP3.
    #[inline]
    pub fn null(&mut self) {
        match self.resp {
            Resp::V2 => self.buf.extend_from_slice(b"$-1\r\n"),
            Resp::V3 => self.buf.extend_from_slice(b"_\r\n"),
        }
    }

    /// Null array: `*-1` in RESP2, `_` in RESP3.
    pub fn null_array(&mut self) {
        match self.resp {
            Resp::V2 => self.buf.extend_from_slice(b"*-1\r\n"),
            Resp::V3 => self.buf.extend_from_slice(b"_\r\n"),
        }
    }

    #[inline]
    pub fn array(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }

    /// A map of `n` pairs (`%n`; RESP2 flattens to an array of 2n).
    pub fn map(&mut self, n: usize) {
        match self.resp {
            Resp::V2 => self.header(b'*', 2 * n as i64),
            Resp::V3 => self.header(b'%', n as i64),
        }
    }

    /// A set of `n` elements (`~n`; RESP2 array).
    pub fn set(&mut self, n: usize) {
        match self.resp {
            Resp::V2 => self.header(b'*', n as i64),
            Resp::V3 => self.header(b'~', n as i64),
        }
    }

    /// A push frame of `n` elements (`>n`; RESP2 array).
    pub fn push(&mut self, n: usize) {
        match self.resp {
            Resp::V2 => self.header(b'*', n as i64),
            Resp::V3 => self.header(b'>', n as i64),
        }
    }

    /// A double (`,` in RESP3; a bulk string in RESP2), formatted as Redis 7.0's `%.17g`.
    pub fn double(&mut self, d: f64) {
        let s = format_double(d);
        match self.resp {
            Resp::V2 => self.bulk(s.as_bytes()),
            Resp::V3 => {
                self.buf.push(b',');
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// A boolean (`#t`/`#f` in RESP3; `:1`/`:0` in RESP2).
    pub fn boolean(&mut self, b: bool) {
        match (self.resp, b) {
            (Resp::V2, true) => self.buf.extend_from_slice(b":1\r\n"),
            (Resp::V2, false) => self.buf.extend_from_slice(b":0\r\n"),
            (Resp::V3, true) => self.buf.extend_from_slice(b"#t\r\n"),
            (Resp::V3, false) => self.buf.extend_from_slice(b"#f\r\n"),
        }
    }

    /// A verbatim string (`=len\r\ntxt:...` in RESP3; a bulk string in RESP2).
    pub fn verbatim(&mut self, format3: &str, s: &[u8]) {
        match self.resp {
            Resp::V2 => self.bulk(s),
            Resp::V3 => {
                self.header(b'=', (s.len() + 4) as i64);
                self.buf.extend_from_slice(format3.as_bytes());
                self.buf.push(b':');
                self.buf.extend_from_slice(s);
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Appends pre-encoded protocol bytes.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp2_and_resp3_forms() {
        let mut r = ReplyBuf::new(Resp::V2);
        r.null();
        r.map(2);
        r.double(1.5);
        r.boolean(true);
        r.verbatim("txt", b"ab");
        assert_eq!(r.buf, b"$-1\r\n*4\r\n$3\r\n1.5\r\n:1\r\n$2\r\nab\r\n");
        let mut r = ReplyBuf::new(Resp::V3);
        r.null();
        r.map(2);
        r.double(1.5);
        r.boolean(true);
        r.verbatim("txt", b"ab");
        assert_eq!(r.buf, b"_\r\n%2\r\n,1.5\r\n#t\r\n=6\r\ntxt:ab\r\n");
    }

    #[test]
    fn error_lines_are_sanitised() {
        let mut r = ReplyBuf::new(Resp::V2);
        r.error("ERR bad\r\nthing");
        assert_eq!(r.buf, b"-ERR bad  thing\r\n");
    }
}
