//! The multi-part AOF manifest (`<appendfilename>.manifest`): parsing with the exact rules and
//! error texts of Redis 7.0.15's `aofLoadManifestFromFile`, byte-identical encoding (as
//! `getAofManifestAsString` writes it), file naming, and the base/incr/history bookkeeping a
//! rewrite performs.
//!
//! Format: one line per file, `file <name> seq <n> type <b|h|i>\n`, base first, then history,
//! then incr files. Parsing rules (Redis 7.0.15):
//! - the file is read in `fgets` chunks of at most [`MANIFEST_MAX_LINE_BYTES`] bytes; every
//!   chunk counts as a line; a chunk starting with `#` is a comment and skipped;
//! - a chunk without a newline (a longer line, or a last line missing its `\n`) is an error;
//! - the line is trimmed of ` \t\r\n`; an empty line is an error;
//! - the line is split like `sdssplitargs` (double quotes with `\xHH`/`\n`/... escapes, single
//!   quotes); it needs an even number (at least 6) of words, read as key/value pairs in any
//!   order, keys case-insensitive, unknown keys ignored, a repeated key overwrites;
//! - `seq` is read like `atoll` (leading digits; `3x` is 3) and must not be 0; `type` uses
//!   only the value's first character;
//! - a second base, a non-increasing incr seq, or a name containing `/` or `\` is an error.
//!
//! Differences from Redis (documented on [`Manifest::parse`]): a negative `seq` and a file
//! name that is not UTF-8 are refused as `Invalid AOF manifest file format`.

use crate::error::AofError;
use cinnabar_protocol::parser::is_c_space;

/// Redis's `MANIFEST_MAX_LINE`: the longest manifest line, in bytes, newline included.
pub const MANIFEST_MAX_LINE_BYTES: usize = 1024;

/// Suffix of base file names (before the format suffix).
pub const BASE_FILE_SUFFIX: &str = ".base";
/// Suffix of incr file names (before the format suffix).
pub const INCR_FILE_SUFFIX: &str = ".incr";
/// Format suffix of a base file written with an RDB preamble.
pub const RDB_FORMAT_SUFFIX: &str = ".rdb";
/// Format suffix of a RESP (command stream) file.
pub const AOF_FORMAT_SUFFIX: &str = ".aof";
/// Suffix of the manifest file name.
pub const MANIFEST_NAME_SUFFIX: &str = ".manifest";
/// Prefix of files (and the manifest) while they are being written.
pub const TEMP_FILE_NAME_PREFIX: &str = "temp-";

/// Redis's manifest error texts, exactly as Redis logs them.
pub mod messages {
    /// The manifest file has no bytes at all.
    pub const EMPTY: &str = "Found an empty AOF manifest";
    /// Reading the manifest failed.
    pub const READ_FAILED: &str = "Read AOF manifest failed";
    /// A line longer than the limit, or a last line without a newline.
    pub const TOO_LONG_LINE: &str = "The AOF manifest file contains too long line";
    /// Blank line, bad quoting, wrong word count, or a missing file/seq/type.
    pub const INVALID_FORMAT: &str = "Invalid AOF manifest file format";
    /// A `file` value containing `/` or `\`.
    pub const NOT_BASENAME: &str = "File can't be a path, just a filename";
    /// A second `type b` line.
    pub const DUPLICATE_BASE: &str = "Found duplicate base file information";
    /// An incr seq not greater than the previous incr seq.
    pub const NON_MONOTONIC: &str = "Found a non-monotonic sequence number";
    /// A type other than b, h or i.
    pub const UNKNOWN_TYPE: &str = "Unknown AOF file type";
}

/// The role of one file listed in the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// The snapshot written by the last rewrite (`type b`); at most one.
    Base,
    /// A file made obsolete by a rewrite, waiting to be deleted (`type h`).
    History,
    /// Commands written after the base (`type i`), loaded in seq order.
    Incr,
}

impl FileKind {
    /// The manifest's type character.
    pub fn as_char(self) -> char {
        match self {
            FileKind::Base => 'b',
            FileKind::History => 'h',
            FileKind::Incr => 'i',
        }
    }
}

/// One line of the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// File name inside the AOF directory (never a path).
    pub name: String,
    /// Sequence number (base and incr files are numbered separately).
    pub seq: u64,
    /// Role.
    pub kind: FileKind,
}

/// A parse failure with the context Redis logs: the message, and (when Redis has one) the
/// 1-based line number and the trimmed line text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// One of [`messages`].
    pub message: &'static str,
    /// `Some((line_number, trimmed_line))` when Redis prints "Reading the manifest file, at
    /// line N" and ">>> 'line'".
    pub line: Option<(usize, Vec<u8>)>,
}

impl From<ManifestError> for AofError {
    fn from(e: ManifestError) -> Self {
        AofError::Manifest(e.message.to_string())
    }
}

/// The parsed manifest: the base, history and incr files plus the sequence counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The base file, if any.
    pub base: Option<FileEntry>,
    /// History files, in manifest order.
    pub history: Vec<FileEntry>,
    /// Incr files, in load order (strictly increasing seq).
    pub incr: Vec<FileEntry>,
    /// Seq of the current base (0 when there is none); the next base gets this + 1.
    pub curr_base_seq: u64,
    /// Seq of the last incr file (0 when there is none); the next incr gets this + 1.
    pub curr_incr_seq: u64,
}

impl Manifest {
    /// Parses a manifest with Redis 7.0.15's rules; errors carry Redis's message text.
    ///
    /// Differences from Redis: a negative `seq` (Redis accepts it for base and history
    /// lines) and a non-UTF-8 file name are refused with `Invalid AOF manifest file format`.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, AofError> {
        Self::parse_detailed(bytes).map_err(AofError::from)
    }

    /// As [`Manifest::parse`], keeping the line number and text for error reports.
    pub fn parse_detailed(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let mut manifest = Manifest::default();
        let mut max_incr_seq: u64 = 0;
        let mut line_number = 0usize;
        let mut rest = bytes;
        if rest.is_empty() {
            return Err(ManifestError {
                message: messages::EMPTY,
                line: None,
            });
        }
        while !rest.is_empty() {
            // fgets(buf, MANIFEST_MAX_LINE + 1): up to 1024 bytes, or through the newline.
            let limit = rest.len().min(MANIFEST_MAX_LINE_BYTES);
            let chunk_len = memchr::memchr(b'\n', &rest[..limit]).map_or(limit, |i| i + 1);
            let (chunk, tail) = rest.split_at(chunk_len);
            rest = tail;
            line_number += 1;
            if chunk.first() == Some(&b'#') {
                continue;
            }
            // Everything after here sees the chunk as a C string.
            let cstr = until_nul(chunk);
            if memchr::memchr(b'\n', cstr).is_none() {
                return Err(ManifestError {
                    message: messages::TOO_LONG_LINE,
                    line: None,
                });
            }
            let line = trim(cstr, b" \t\r\n");
            let fail = |message: &'static str| ManifestError {
                message,
                line: Some((line_number, line.to_vec())),
            };
            if line.is_empty() {
                return Err(fail(messages::INVALID_FORMAT));
            }
            let args = match split_args(line) {
                Some(a) if a.len() >= 6 && a.len() % 2 == 0 => a,
                _ => return Err(fail(messages::INVALID_FORMAT)),
            };
            let mut name: Option<Vec<u8>> = None;
            let mut seq: i64 = 0;
            let mut type_char: u8 = 0;
            for pair in args.chunks_exact(2) {
                let key = until_nul(&pair[0]);
                let value = until_nul(&pair[1]);
                if key.eq_ignore_ascii_case(b"file") {
                    if value.contains(&b'/') || value.contains(&b'\\') {
                        return Err(fail(messages::NOT_BASENAME));
                    }
                    name = Some(value.to_vec());
                } else if key.eq_ignore_ascii_case(b"seq") {
                    seq = atoll(value);
                } else if key.eq_ignore_ascii_case(b"type") {
                    type_char = value.first().copied().unwrap_or(0);
                }
            }
            let name = match name {
                Some(n) if seq != 0 && type_char != 0 => n,
                _ => return Err(fail(messages::INVALID_FORMAT)),
            };
            // Cinnabar-only: seq is unsigned and names are UTF-8.
            let (Ok(seq), Ok(name)) = (u64::try_from(seq), String::from_utf8(name)) else {
                return Err(fail(messages::INVALID_FORMAT));
            };
            match type_char {
                b'b' => {
                    if manifest.base.is_some() {
                        return Err(fail(messages::DUPLICATE_BASE));
                    }
                    manifest.curr_base_seq = seq;
                    manifest.base = Some(FileEntry {
                        name,
                        seq,
                        kind: FileKind::Base,
                    });
                }
                b'h' => manifest.history.push(FileEntry {
                    name,
                    seq,
                    kind: FileKind::History,
                }),
                b'i' => {
                    if seq <= max_incr_seq {
                        return Err(fail(messages::NON_MONOTONIC));
                    }
                    max_incr_seq = seq;
                    manifest.curr_incr_seq = seq;
                    manifest.incr.push(FileEntry {
                        name,
                        seq,
                        kind: FileKind::Incr,
                    });
                }
                _ => return Err(fail(messages::UNKNOWN_TYPE)),
            }
        }
        Ok(manifest)
    }

    /// The manifest text exactly as Redis 7.0.15 writes it: base, history, incr; names that
    /// need it quoted like `sdscatrepr`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for entry in self.base.iter().chain(&self.history).chain(&self.incr) {
            out.extend_from_slice(b"file ");
            let name = entry.name.as_bytes();
            if needs_repr(name) {
                push_repr(&mut out, name);
            } else {
                out.extend_from_slice(name);
            }
            out.extend_from_slice(
                format!(" seq {} type {}\n", entry.seq, entry.kind.as_char()).as_bytes(),
            );
        }
        out
    }

    /// `appendonly.aof` → `appendonly.aof.manifest`.
    pub fn manifest_name(appendfilename: &str) -> String {
        format!("{appendfilename}{MANIFEST_NAME_SUFFIX}")
    }

    /// `appendonly.aof.<seq>.base.rdb` (RDB preamble) or `appendonly.aof.<seq>.base.aof`.
    pub fn base_name(appendfilename: &str, seq: u64, rdb_preamble: bool) -> String {
        let format = if rdb_preamble {
            RDB_FORMAT_SUFFIX
        } else {
            AOF_FORMAT_SUFFIX
        };
        format!("{appendfilename}.{seq}{BASE_FILE_SUFFIX}{format}")
    }

    /// `appendonly.aof.<seq>.incr.aof`.
    pub fn incr_name(appendfilename: &str, seq: u64) -> String {
        format!("{appendfilename}.{seq}{INCR_FILE_SUFFIX}{AOF_FORMAT_SUFFIX}")
    }

    /// The name a file (or the manifest) has while being written: `temp-<name>`.
    pub fn temp_name(name: &str) -> String {
        format!("{TEMP_FILE_NAME_PREFIX}{name}")
    }

    /// Starts a new base (seq + 1): the old base and *all* incr files move to history, and
    /// the new base's name is returned. This is what Redis does when a rewrite completes
    /// while AOF is off; when AOF is on use [`Manifest::start_new_base_after_rewrite`].
    ///
    /// History order matches Redis: the moved incr files (in their order), then the old
    /// base, then the older history.
    pub fn start_new_base(&mut self, appendfilename: &str, rdb_preamble: bool) -> String {
        self.new_base(appendfilename, rdb_preamble, false)
    }

    /// Redis's rewrite-done bookkeeping while AOF is on (`backgroundRewriteDoneHandler`):
    /// like [`Manifest::start_new_base`], but the *last* incr file — the one opened when the
    /// rewrite started and being appended to now — stays an incr file.
    pub fn start_new_base_after_rewrite(
        &mut self,
        appendfilename: &str,
        rdb_preamble: bool,
    ) -> String {
        self.new_base(appendfilename, rdb_preamble, true)
    }

    fn new_base(&mut self, appendfilename: &str, rdb_preamble: bool, keep_last: bool) -> String {
        let mut history = Vec::with_capacity(self.history.len() + self.incr.len() + 1);
        let keep = if keep_last { self.incr.pop() } else { None };
        history.extend(self.incr.drain(..).map(|mut e| {
            e.kind = FileKind::History;
            e
        }));
        self.incr.extend(keep);
        if let Some(mut old) = self.base.take() {
            old.kind = FileKind::History;
            history.push(old);
        }
        history.append(&mut self.history);
        self.history = history;
        self.curr_base_seq += 1;
        let name = Self::base_name(appendfilename, self.curr_base_seq, rdb_preamble);
        self.base = Some(FileEntry {
            name: name.clone(),
            seq: self.curr_base_seq,
            kind: FileKind::Base,
        });
        name
    }

    /// Appends a new incr file (seq + 1) and returns its name.
    pub fn start_new_incr(&mut self, appendfilename: &str) -> String {
        self.curr_incr_seq += 1;
        let name = Self::incr_name(appendfilename, self.curr_incr_seq);
        self.incr.push(FileEntry {
            name: name.clone(),
            seq: self.curr_incr_seq,
            kind: FileKind::Incr,
        });
        name
    }

    /// Every file to load, in order: the base (if any), then the incr files.
    pub fn load_order(&self) -> Vec<&FileEntry> {
        self.base.iter().chain(&self.incr).collect()
    }

    /// History files (deleted by Redis after a rewrite unless `aof-disable-auto-gc yes`).
    pub fn history_files(&self) -> &[FileEntry] {
        &self.history
    }
}

/// The bytes before the first NUL (what C string functions see).
fn until_nul(bytes: &[u8]) -> &[u8] {
    memchr::memchr(0, bytes).map_or(bytes, |i| &bytes[..i])
}

/// `sdstrim`: strips any of `set` from both ends.
fn trim<'a>(bytes: &'a [u8], set: &[u8]) -> &'a [u8] {
    let start = bytes.iter().position(|b| !set.contains(b));
    let Some(start) = start else { return &[] };
    let end = bytes
        .iter()
        .rposition(|b| !set.contains(b))
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// `sdssplitargs` on a C string: the line ends at its first NUL (as Redis's `fgets`-read
/// line does), the rest is the one splitter of `cinnabar-protocol`.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let end = memchr::memchr(0, line).unwrap_or(line.len());
    cinnabar_protocol::parser::split_args(&line[..end])
}

/// C `atoll` (glibc: saturating on overflow).
fn atoll(bytes: &[u8]) -> i64 {
    let mut i = 0;
    while i < bytes.len() && is_c_space(bytes[i]) {
        i += 1;
    }
    let negative = match bytes.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut value: i64 = 0;
    for &b in &bytes[i..] {
        if !b.is_ascii_digit() {
            break;
        }
        let digit = i64::from(b - b'0');
        value = if negative {
            value.saturating_mul(10).saturating_sub(digit)
        } else {
            value.saturating_mul(10).saturating_add(digit)
        };
    }
    value
}

/// `sdsneedsrepr`: whether a name must be quoted in the manifest.
fn needs_repr(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| {
        matches!(b, b'\\' | b'"' | b'\n' | b'\r' | b'\t' | 0x07 | 0x08)
            || !(0x20..=0x7e).contains(&b)
            || is_c_space(b)
    })
}

/// `sdscatrepr`: a double-quoted, escaped rendering.
fn push_repr(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for &b in bytes {
        match b {
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', b]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ManifestError {
        Manifest::parse_detailed(text.as_bytes()).expect_err(text)
    }

    #[test]
    fn parses_and_encodes_a_redis_manifest() {
        let text = "file appendonly.aof.3.base.rdb seq 3 type b\n\
                    file appendonly.aof.2.incr.aof seq 2 type h\n\
                    file appendonly.aof.3.incr.aof seq 3 type i\n";
        let m = Manifest::parse(text.as_bytes()).expect("valid");
        assert_eq!(m.curr_base_seq, 3);
        assert_eq!(m.curr_incr_seq, 3);
        assert_eq!(m.history.len(), 1);
        assert_eq!(m.encode(), text.as_bytes());
        let order: Vec<_> = m.load_order().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            order,
            ["appendonly.aof.3.base.rdb", "appendonly.aof.3.incr.aof"]
        );
    }

    #[test]
    fn any_key_order_case_insensitive_unknown_keys_ignored() {
        let m = Manifest::parse(
            b"# comment\nseq 3 TYPE b FILE x.base foo bar\nfile y seq 4 type incr\n",
        )
        .expect("valid");
        assert_eq!(m.base.as_ref().map(|b| b.name.as_str()), Some("x.base"));
        assert_eq!(m.incr[0].seq, 4);
        assert_eq!(m.incr[0].kind, FileKind::Incr);
    }

    #[test]
    fn redis_error_texts() {
        assert_eq!(err("").message, messages::EMPTY);
        assert_eq!(err("file a seq 1 type b").message, messages::TOO_LONG_LINE);
        assert_eq!(err("file a seq 1 type b").line, None);
        let e = err("file a seq 1 type b\n\n");
        assert_eq!(e.message, messages::INVALID_FORMAT);
        assert_eq!(e.line, Some((2, Vec::new())));
        assert_eq!(
            err("file a seq 1 type b\nfile b seq 2 type b\n").message,
            messages::DUPLICATE_BASE
        );
        assert_eq!(
            err("file a seq 2 type i\nfile b seq 2 type i\n").message,
            messages::NON_MONOTONIC
        );
        assert_eq!(
            err("file a/b seq 1 type b\n").message,
            messages::NOT_BASENAME
        );
        assert_eq!(
            err("file a\\b seq 1 type b\n").message,
            messages::NOT_BASENAME
        );
        assert_eq!(
            err("file a seq 0 type b\n").message,
            messages::INVALID_FORMAT
        );
        assert_eq!(err("file a seq 1 type z\n").message, messages::UNKNOWN_TYPE);
        assert_eq!(err("file a seq 1 type\n").message, messages::INVALID_FORMAT);
        assert_eq!(
            err("file a seq 1 type b x\n").message,
            messages::INVALID_FORMAT
        );
        assert_eq!(
            err("file \"a seq 1 type b\n").message,
            messages::INVALID_FORMAT
        );
        assert_eq!(
            err("file a seq 1 type \"\"\n").message,
            messages::INVALID_FORMAT
        );
        assert_eq!(
            err("file a seq -1 type h\n").message,
            messages::INVALID_FORMAT
        );
        let long = format!("file {} seq 1 type b\n", "a".repeat(1100));
        assert_eq!(err(&long).message, messages::TOO_LONG_LINE);
        // A line with a NUL is cut there, so it has no newline.
        assert_eq!(
            err("file a\0 seq 1 type b\n").message,
            messages::TOO_LONG_LINE
        );
    }

    #[test]
    fn comments_only_and_atoll_and_quotes() {
        assert_eq!(
            Manifest::parse(b"# nothing\n").expect("ok"),
            Manifest::default()
        );
        let m = Manifest::parse(b"file 'a b' seq 3x type base\n").expect("ok");
        assert_eq!(
            m.base.as_ref().map(|b| (b.name.as_str(), b.seq)),
            Some(("a b", 3))
        );
        let m = Manifest::parse(b"file \"a\\x41\\tb\" seq 1 type h\n").expect("ok");
        assert_eq!(m.history[0].name, "aA\tb");
        // A comment longer than a chunk continues as a (bad) line.
        let long_comment = format!("#{}\n", "x".repeat(1100));
        assert_eq!(err(&long_comment).message, messages::INVALID_FORMAT);
    }

    #[test]
    fn quoting_round_trips() {
        for name in [
            "my file.aof.1.base.aof",
            "a\"b",
            "tab\there",
            "caf\u{e9}",
            "x",
        ] {
            let m = Manifest {
                base: Some(FileEntry {
                    name: name.to_string(),
                    seq: 1,
                    kind: FileKind::Base,
                }),
                curr_base_seq: 1,
                ..Manifest::default()
            };
            let text = m.encode();
            assert_eq!(Manifest::parse(&text).expect("round trip"), m, "{name}");
        }
        let m = Manifest::parse(b"file \"my file.aof.1.base.aof\" seq 1 type b\n").expect("ok");
        assert_eq!(
            m.encode(),
            b"file \"my file.aof.1.base.aof\" seq 1 type b\n"
        );
    }

    #[test]
    fn names_and_rewrite_bookkeeping() {
        assert_eq!(
            Manifest::manifest_name("appendonly.aof"),
            "appendonly.aof.manifest"
        );
        assert_eq!(
            Manifest::base_name("appendonly.aof", 1, true),
            "appendonly.aof.1.base.rdb"
        );
        assert_eq!(
            Manifest::base_name("appendonly.aof", 2, false),
            "appendonly.aof.2.base.aof"
        );
        assert_eq!(
            Manifest::incr_name("appendonly.aof", 1),
            "appendonly.aof.1.incr.aof"
        );
        assert_eq!(
            Manifest::temp_name("appendonly.aof.manifest"),
            "temp-appendonly.aof.manifest"
        );

        // Replays what Redis did in tests/fixtures/resp (aof-disable-auto-gc yes): start,
        // then two BGREWRITEAOFs (each opens a new incr first, then installs the base).
        let mut m = Manifest::default();
        assert_eq!(
            m.start_new_base("appendonly.aof", false),
            "appendonly.aof.1.base.aof"
        );
        assert_eq!(
            m.start_new_incr("appendonly.aof"),
            "appendonly.aof.1.incr.aof"
        );
        for _ in 0..2 {
            m.start_new_incr("appendonly.aof");
            m.start_new_base_after_rewrite("appendonly.aof", false);
        }
        assert_eq!(
            String::from_utf8_lossy(&m.encode()),
            "file appendonly.aof.3.base.aof seq 3 type b\n\
             file appendonly.aof.2.incr.aof seq 2 type h\n\
             file appendonly.aof.2.base.aof seq 2 type h\n\
             file appendonly.aof.1.incr.aof seq 1 type h\n\
             file appendonly.aof.1.base.aof seq 1 type h\n\
             file appendonly.aof.3.incr.aof seq 3 type i\n"
        );
        m.start_new_base("appendonly.aof", true);
        assert!(m.incr.is_empty());
        assert_eq!(m.history[0].name, "appendonly.aof.3.incr.aof");
        assert_eq!(m.history[1].name, "appendonly.aof.3.base.aof");
        assert_eq!(m.load_order().len(), 1);
    }
}
