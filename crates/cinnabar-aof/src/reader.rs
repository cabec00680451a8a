//! Streaming reader for one AOF file's command stream: RESP multibulk arrays
//! (`*<argc>\r\n` then argc × `$<len>\r\n<bytes>\r\n`) and `#` annotation lines (Redis 7.0
//! writes `#TS:<unix seconds>\r\n` with `aof-timestamp-enabled yes`). It never executes
//! anything; every item carries its byte offsets in the file.
//!
//! Damage is classified the way Redis's `loadSingleAppendOnlyFile` treats it:
//! - the file ending in the middle of an item (a torn tail) is [`AofError::Truncated`], whose
//!   `valid_up_to` is the end of the last complete *command* (annotations after it do not
//!   count, as in Redis) — loadable with `aof-load-truncated yes` after truncating there;
//! - anything else malformed is [`AofError::Corrupt`] at the start offset of the bad item.
//!
//! Transactions: Redis reverts a trailing `MULTI` without `EXEC` ("Revert incomplete
//! MULTI/EXEC transaction in AOF file") by truncating to where the MULTI began. The reader
//! yields every command as it comes; a loader buffers the commands between `MULTI` and
//! `EXEC` and applies them on `EXEC`. [`TransactionTracker`] computes the revert offset.
//!
//! Stricter than Redis (these files only come from corruption; Redis would misparse them):
//! the `\r\n` after a bulk string and after a length is checked, lengths must be plain
//! decimal digits, `*0` is refused, and lengths above [`PROTO_MAX_BULK_LEN_BYTES`] /
//! [`MAX_ARGC`] are Corrupt. Nothing is allocated from a declared length up front: bulk
//! strings grow as bytes arrive and argument vectors start small.

use std::io::{BufRead, ErrorKind};

use crate::error::AofError;

/// Longest bulk string accepted, in bytes (Redis's `proto-max-bulk-len` default, 512 MB).
pub const PROTO_MAX_BULK_LEN_BYTES: u64 = 512 * 1024 * 1024;
/// Most arguments accepted in one command (Redis's multibulk limit, `INT_MAX`).
pub const MAX_ARGC: u64 = i32::MAX as u64;
/// Longest annotation line accepted, in bytes including `\r\n` (Redis's
/// `AOF_ANNOTATION_LINE_MAX_LEN`).
pub const AOF_ANNOTATION_LINE_MAX_BYTES: usize = 1024;
/// Longest `*<argc>` / `$<len>` line accepted, in bytes including `\r\n`.
const LENGTH_LINE_MAX_BYTES: usize = 32;
/// Initial capacity cap for an argument vector whose size comes from the file.
const MAX_PREALLOCATED_ARGS: usize = 64;

/// True when a file starts with an RDB preamble (`REDIS`), i.e. is an RDB base file or an
/// old-style RDB-preamble AOF.
pub fn starts_with_rdb_preamble(first_bytes: &[u8]) -> bool {
    first_bytes.starts_with(b"REDIS")
}

/// One item of an AOF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AofItem {
    /// A command: its arguments (name first), and where it starts and ends in the file.
    Command {
        /// Arguments, the command name first.
        args: Vec<Vec<u8>>,
        /// Offset of the `*`.
        start_offset: u64,
        /// Offset just past the final `\r\n`.
        end_offset: u64,
    },
    /// An annotation line such as `#TS:1700000000`; `text` excludes the line ending.
    Annotation {
        /// The line without its `\r\n` (or `\n`), starting with `#`.
        text: Vec<u8>,
        /// Offset of the `#`.
        start_offset: u64,
        /// Offset just past the newline.
        end_offset: u64,
    },
}

impl AofItem {
    /// Offset just past the item.
    pub fn end_offset(&self) -> u64 {
        match self {
            AofItem::Command { end_offset, .. } | AofItem::Annotation { end_offset, .. } => {
                *end_offset
            }
        }
    }

    /// The timestamp of a `#TS:<unix seconds>` annotation.
    pub fn timestamp_s(&self) -> Option<i64> {
        match self {
            AofItem::Annotation { text, .. } => std::str::from_utf8(text.strip_prefix(b"#TS:")?)
                .ok()?
                .parse()
                .ok(),
            AofItem::Command { .. } => None,
        }
    }
}

/// Streams [`AofItem`]s out of one AOF file.
pub struct AofReader<R: BufRead> {
    inner: R,
    offset: u64,
    last_command_end: u64,
    finished: bool,
}

/// The outcome of reading one `\n`-terminated line.
enum Line {
    /// The line, including its `\n`.
    Complete(Vec<u8>),
    /// EOF came first; the bytes read.
    Eof(Vec<u8>),
    /// More than the limit without a newline.
    TooLong,
}

impl<R: BufRead> AofReader<R> {
    /// Reads from offset 0.
    pub fn new(r: R) -> Self {
        Self::with_offset(r, 0)
    }

    /// `r` is positioned after an RDB preamble of `start_offset` bytes; offsets reported
    /// count from the start of the file.
    pub fn with_offset(r: R, start_offset: u64) -> Self {
        AofReader {
            inner: r,
            offset: start_offset,
            last_command_end: start_offset,
            finished: false,
        }
    }

    /// Offset of the next byte to read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// End offset of the last complete command (the start offset before any).
    pub fn last_command_end(&self) -> u64 {
        self.last_command_end
    }

    /// Gives back the underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next item; `Ok(None)` at a clean end of file. After an error every call returns
    /// `Ok(None)`.
    pub fn next_item(&mut self) -> Result<Option<AofItem>, AofError> {
        if self.finished {
            return Ok(None);
        }
        let result = self.read_item();
        match &result {
            Ok(Some(AofItem::Command { end_offset, .. })) => self.last_command_end = *end_offset,
            Ok(Some(AofItem::Annotation { .. })) => {}
            Ok(None) | Err(_) => self.finished = true,
        }
        result
    }

    fn truncated(&self) -> AofError {
        AofError::Truncated {
            valid_up_to: self.last_command_end,
        }
    }

    fn read_item(&mut self) -> Result<Option<AofItem>, AofError> {
        let start = self.offset;
        let first = match self.fill()?.first() {
            None => return Ok(None),
            Some(&b) => b,
        };
        let corrupt = |reason: String| AofError::Corrupt {
            offset: start,
            reason,
        };
        match first {
            b'#' => match self.read_line(AOF_ANNOTATION_LINE_MAX_BYTES)? {
                Line::Complete(mut text) => {
                    text.pop();
                    if text.last() == Some(&b'\r') {
                        text.pop();
                    }
                    Ok(Some(AofItem::Annotation {
                        text,
                        start_offset: start,
                        end_offset: self.offset,
                    }))
                }
                Line::Eof(_) => Err(self.truncated()),
                Line::TooLong => Err(corrupt(format!(
                    "annotation longer than {AOF_ANNOTATION_LINE_MAX_BYTES} bytes"
                ))),
            },
            b'*' => {
                let argc = self
                    .read_length(b'*', MAX_ARGC)
                    .map_err(|e| e.at(start, self))?;
                if argc < 1 {
                    return Err(corrupt(format!("invalid argument count {argc}")));
                }
                let capacity = usize::try_from(argc)
                    .map_or(MAX_PREALLOCATED_ARGS, |n| n.min(MAX_PREALLOCATED_ARGS));
                let mut args = Vec::with_capacity(capacity);
                for _ in 0..argc {
                    let len = self
                        .read_length(b'$', PROTO_MAX_BULK_LEN_BYTES)
                        .map_err(|e| e.at(start, self))?;
                    args.push(self.read_bulk(len, start)?);
                }
                Ok(Some(AofItem::Command {
                    args,
                    start_offset: start,
                    end_offset: self.offset,
                }))
            }
            other => Err(corrupt(format!(
                "expected '*' or '#' at the start of an item, got byte {other:#04x}"
            ))),
        }
    }

    fn fill(&mut self) -> Result<&[u8], AofError> {
        loop {
            match self.inner.fill_buf() {
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(AofError::Io(e)),
            }
        }
        Ok(self.inner.fill_buf()?)
    }

    fn consume(&mut self, n: usize) {
        self.inner.consume(n);
        self.offset += n as u64;
    }

    /// Reads through the next `\n`, at most `limit_bytes` bytes.
    fn read_line(&mut self, limit_bytes: usize) -> Result<Line, AofError> {
        let mut line = Vec::new();
        loop {
            let buf = self.fill()?;
            if buf.is_empty() {
                return Ok(Line::Eof(line));
            }
            let room = limit_bytes - line.len();
            let window = &buf[..buf.len().min(room)];
            if let Some(i) = memchr::memchr(b'\n', window) {
                line.extend_from_slice(&window[..=i]);
                self.consume(i + 1);
                return Ok(Line::Complete(line));
            }
            let n = window.len();
            line.extend_from_slice(window);
            self.consume(n);
            if line.len() >= limit_bytes {
                return Ok(Line::TooLong);
            }
        }
    }

    /// Reads a `<prefix><digits>\r\n` line.
    fn read_length(&mut self, prefix: u8, max: u64) -> Result<u64, LengthError> {
        let line = match self.read_line(LENGTH_LINE_MAX_BYTES)? {
            Line::Complete(l) => l,
            Line::Eof(partial) => {
                // A torn tail if what is there could still become a valid line.
                let valid_prefix = partial.is_empty()
                    || (partial[0] == prefix && {
                        let body = &partial[1..];
                        let digits = body.strip_suffix(b"\r").unwrap_or(body);
                        digits.iter().all(u8::is_ascii_digit)
                    });
                return Err(if valid_prefix {
                    LengthError::Eof
                } else {
                    LengthError::Bad(format!(
                        "malformed '{}' line at the end of the file",
                        prefix as char
                    ))
                });
            }
            Line::TooLong => {
                return Err(LengthError::Bad(format!(
                    "'{}' line longer than {LENGTH_LINE_MAX_BYTES} bytes",
                    prefix as char
                )))
            }
        };
        let body = line
            .strip_prefix(&[prefix])
            .and_then(|l| l.strip_suffix(b"\r\n"))
            .filter(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit));
        let Some(digits) = body else {
            return Err(LengthError::Bad(format!(
                "expected '{}<digits>\\r\\n', got {:?}",
                prefix as char,
                String::from_utf8_lossy(&line)
            )));
        };
        let value = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|v| *v <= max);
        value.ok_or_else(|| {
            LengthError::Bad(format!(
                "'{}' length {} above the limit {max}",
                prefix as char,
                String::from_utf8_lossy(digits)
            ))
        })
    }

    /// Reads `len` bytes and the `\r\n` after them, growing the buffer as bytes arrive.
    fn read_bulk(&mut self, len: u64, start: u64) -> Result<Vec<u8>, AofError> {
        let eager = usize::try_from(len.min(64 * 1024)).unwrap_or(64 * 1024);
        let mut data = Vec::with_capacity(eager);
        let mut remaining = len;
        while remaining > 0 {
            let buf = self.fill()?;
            if buf.is_empty() {
                return Err(self.truncated());
            }
            let n = buf
                .len()
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            data.extend_from_slice(&buf[..n]);
            self.consume(n);
            remaining -= n as u64;
        }
        let mut crlf = [0u8; 2];
        for slot in crlf.iter_mut() {
            let buf = self.fill()?;
            let Some(&b) = buf.first() else {
                return Err(self.truncated());
            };
            *slot = b;
            self.consume(1);
        }
        if &crlf != b"\r\n" {
            return Err(AofError::Corrupt {
                offset: start,
                reason: format!("bulk string of {len} bytes not followed by \\r\\n"),
            });
        }
        Ok(data)
    }
}

impl<R: BufRead> Iterator for AofReader<R> {
    type Item = Result<AofItem, AofError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

enum LengthError {
    Eof,
    Bad(String),
    Io(AofError),
}

impl From<AofError> for LengthError {
    fn from(e: AofError) -> Self {
        LengthError::Io(e)
    }
}

impl LengthError {
    fn at<R: BufRead>(self, start: u64, reader: &AofReader<R>) -> AofError {
        match self {
            LengthError::Eof => reader.truncated(),
            LengthError::Bad(reason) => AofError::Corrupt {
                offset: start,
                reason,
            },
            LengthError::Io(e) => e,
        }
    }
}

/// Tracks `MULTI`/`EXEC` while loading, to revert an incomplete trailing transaction the way
/// Redis does: feed it every item; at the end, [`TransactionTracker::revert_to`] is the
/// offset to truncate to when a transaction is still open (the end of the last command
/// before its `MULTI`), or None.
///
/// Like Redis's loader, only `EXEC` closes a transaction (`DISCARD` is queued) and a nested
/// `MULTI` moves the revert point to itself.
#[derive(Clone, Debug, Default)]
pub struct TransactionTracker {
    last_command_end: u64,
    open_since: Option<u64>,
}

/// What one item means for the transaction state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxEvent {
    /// Not a command, or a command outside any transaction: apply it now.
    Apply,
    /// `MULTI`: start buffering.
    Begin,
    /// A command inside a transaction: buffer it.
    Queue,
    /// `EXEC`: apply the buffered commands.
    Commit,
}

impl TransactionTracker {
    /// A tracker for a reader starting at `start_offset` (after any RDB preamble).
    pub fn new(start_offset: u64) -> Self {
        TransactionTracker {
            last_command_end: start_offset,
            open_since: None,
        }
    }

    /// Records one item and says what to do with it.
    pub fn observe(&mut self, item: &AofItem) -> TxEvent {
        let AofItem::Command {
            args, end_offset, ..
        } = item
        else {
            return TxEvent::Apply;
        };
        let name = args.first().map(Vec::as_slice).unwrap_or_default();
        let event = if name.eq_ignore_ascii_case(b"multi") {
            self.open_since = Some(self.last_command_end);
            TxEvent::Begin
        } else if self.open_since.is_some() && name.eq_ignore_ascii_case(b"exec") {
            self.open_since = None;
            TxEvent::Commit
        } else if self.open_since.is_some() {
            TxEvent::Queue
        } else {
            TxEvent::Apply
        };
        self.last_command_end = *end_offset;
        event
    }

    /// True while a `MULTI` has not seen its `EXEC`.
    pub fn in_transaction(&self) -> bool {
        self.open_since.is_some()
    }

    /// Where to truncate the file to drop an incomplete trailing transaction.
    pub fn revert_to(&self) -> Option<u64> {
        self.open_since
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(bytes: &[u8]) -> (Vec<AofItem>, Option<AofError>) {
        let mut reader = AofReader::new(bytes);
        let mut out = Vec::new();
        loop {
            match reader.next_item() {
                Ok(Some(item)) => out.push(item),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    const SET: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n";

    #[test]
    fn reads_commands_and_annotations_with_offsets() {
        let mut file = b"#TS:1700000000\r\n".to_vec();
        file.extend_from_slice(SET);
        let (items, err) = items(&file);
        assert!(err.is_none());
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].timestamp_s(), Some(1_700_000_000));
        assert_eq!(
            items[1],
            AofItem::Command {
                args: vec![b"SET".to_vec(), b"a".to_vec(), b"b".to_vec()],
                start_offset: 16,
                end_offset: 16 + SET.len() as u64,
            }
        );
    }

    #[test]
    fn torn_tail_is_truncated_at_last_command_end() {
        let mut file = SET.to_vec();
        file.extend_from_slice(b"#TS:1\r\n*3\r\n$3\r\nSE");
        let (items, err) = items(&file);
        assert_eq!(items.len(), 2);
        assert!(
            matches!(err, Some(AofError::Truncated { valid_up_to }) if valid_up_to == SET.len() as u64)
        );
        let mut reader = AofReader::with_offset(&b"*1\r\n$4\r\nPI"[..], 100);
        assert!(matches!(
            reader.next_item(),
            Err(AofError::Truncated { valid_up_to: 100 })
        ));
        assert!(matches!(reader.next_item(), Ok(None)));
    }

    #[test]
    fn corruption_is_reported_at_the_command_start() {
        for bad in [
            &b"*0\r\n"[..],
            b"*-1\r\n",
            b"*x\r\n$1\r\na\r\n",
            b"*1\r\nX1\r\na\r\n",
            b"*1\r\n$1\r\nab\r\n",
            b"*1\r\n$1x\r\na\r\n",
            b"Z",
            b"  *1\r\n",
            b"*1\r\n$536870913\r\n",
        ] {
            let mut file = SET.to_vec();
            file.extend_from_slice(bad);
            let (_, err) = items(&file);
            assert!(
                matches!(&err, Some(AofError::Corrupt { offset, .. }) if *offset == SET.len() as u64),
                "{:?}: {err:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("#{}\r\n", "x".repeat(2000));
        assert!(matches!(
            items(long.as_bytes()).1,
            Some(AofError::Corrupt { offset: 0, .. })
        ));
    }

    #[test]
    fn huge_declared_lengths_do_not_allocate() {
        let (_, err) = items(b"*2147483647\r\n$536870912\r\nabc");
        assert!(matches!(err, Some(AofError::Truncated { valid_up_to: 0 })));
    }

    #[test]
    fn transaction_tracker_reverts_to_before_multi() {
        let multi = b"*1\r\n$5\r\nMULTI\r\n";
        let exec = b"*1\r\n$4\r\nEXEC\r\n";
        let mut file = SET.to_vec();
        file.extend_from_slice(b"#TS:5\r\n");
        file.extend_from_slice(multi);
        file.extend_from_slice(SET);
        let (items, err) = items(&file);
        assert!(err.is_none());
        let mut tx = TransactionTracker::new(0);
        let events: Vec<_> = items.iter().map(|i| tx.observe(i)).collect();
        assert_eq!(
            events,
            [
                TxEvent::Apply,
                TxEvent::Apply,
                TxEvent::Begin,
                TxEvent::Queue
            ]
        );
        assert_eq!(tx.revert_to(), Some(SET.len() as u64));
        let exec_item = AofItem::Command {
            args: vec![exec[8..12].to_vec()],
            start_offset: 0,
            end_offset: 0,
        };
        assert_eq!(tx.observe(&exec_item), TxEvent::Commit);
        assert_eq!(tx.revert_to(), None);
    }
}
