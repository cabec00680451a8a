//! The logic and user-visible output of Redis 7.0.15's `redis-check-aof` and
//! `redis-check-rdb`, used by `cinnabar check-aof` / `cinnabar check-rdb` and by tests.
//!
//! `redis-check-aof` is emulated closely rather than built on [`crate::reader::AofReader`]:
//! its verdicts differ from the loader's on purpose (it accepts `*0`, it does not separate a
//! torn tail from corruption — both are "not valid", and `--fix` truncates either one), and
//! its output (error offsets in `0x%16llx` form, the running `ok_up_to_line` counter shared by
//! all files of a manifest, the input-type sniffing that treats any file with a line starting
//! with `file` as a manifest) is part of what users see. Where Redis prints bytes from a stale
//! C buffer (an error at the very end of a file), the bytes shown here may differ.
//!
//! Interaction: Redis asks `Continue? [y/N]:` before truncating with `--fix`; here the
//! question goes through [`CheckIo::confirm`], and [`check_aof_path`] answers yes.
//!
//! The RDB checker walks the file with `cinnabar_rdb`'s decoder and prints Redis's
//! `[offset N] ...` lines; on failure it prints `--- RDB ERROR DETECTED ---`, the offset and
//! message, and the `[info]` counters, but not Redis's `[additional info]` phase/key lines
//! (except `While doing: check-sum` for a CRC error).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use cinnabar_rdb::decoder::{DecodeOptions, RdbDecoder, RdbItem};
use cinnabar_rdb::error::RdbError;

use crate::error::AofError;
use crate::manifest::{Manifest, MANIFEST_MAX_LINE_BYTES};

/// `AOF_ANNOTATION_LINE_MAX_LEN`: the `fgets` buffer for annotation lines, in bytes.
const ANNOTATION_BUF_BYTES: usize = 1024;
/// The `fgets` buffer `redis-check-aof` reads `*`/`$` lines with, in bytes.
const LENGTH_BUF_BYTES: usize = 128;

/// Where the checker's output goes, and who answers its question.
pub trait CheckIo {
    /// One output line (without its newline; it may contain newlines of its own).
    fn line(&mut self, text: &str);
    /// Shows `prompt` (no newline) and returns true to go ahead.
    fn confirm(&mut self, prompt: &str) -> bool;
}

/// A [`CheckIo`] that keeps the lines and always gives the same answer.
#[derive(Debug, Default)]
pub struct CollectIo {
    /// Lines written, prompts included.
    pub lines: Vec<String>,
    /// The answer to every confirmation.
    pub answer_yes: bool,
}

impl CheckIo for CollectIo {
    fn line(&mut self, text: &str) {
        self.lines.push(text.to_string());
    }
    fn confirm(&mut self, prompt: &str) -> bool {
        self.lines.push(prompt.to_string());
        self.answer_yes
    }
}

/// What kind of input was given (Redis's `getInputFileType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// A manifest: every file it lists is checked.
    Manifest,
    /// A single file starting with an RDB preamble.
    RdbPreamble,
    /// A single RESP command file.
    Resp,
}

/// The verdict on one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileOutcome {
    /// Well formed to the end.
    Valid,
    /// Zero bytes.
    Empty,
    /// Not valid from `ok_up_to` on (`diff_bytes` bytes would be cut by `--fix`).
    NotValid {
        /// Offset up to which the file is good (before an open MULTI).
        ok_up_to: u64,
        /// Redis's running line counter at the stop.
        ok_up_to_line: i64,
        /// Bytes after `ok_up_to`.
        diff_bytes: u64,
        /// The `0x...: message` line, when Redis prints one.
        error: Option<String>,
    },
    /// `--fix` truncated the file to this length.
    Fixed {
        /// New length in bytes.
        truncated_to: u64,
    },
    /// `--truncate-to-timestamp` truncated the file to this length.
    TimestampTruncated {
        /// New length in bytes.
        truncated_to: u64,
    },
    /// The check stopped with this message (Redis exits 1 after printing it).
    Failed(String),
}

/// One checked file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    /// Name as printed (manifest entry name, or the path given for a single file).
    pub name: String,
    /// Path opened.
    pub path: PathBuf,
    /// Size before any truncation, in bytes.
    pub size_bytes: u64,
    /// Whether the file starts with an RDB preamble.
    pub rdb_preamble: bool,
    /// Verdict.
    pub outcome: FileOutcome,
}

/// Everything a check run found and printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// The input's type (None when it could not even be opened).
    pub input: Option<InputKind>,
    /// Per-file verdicts, in check order (stops at the first fatal one, as Redis does).
    pub files: Vec<FileReport>,
    /// The output lines, as `redis-check-aof` prints them (prompts included).
    pub output: Vec<String>,
    /// Process exit code Redis would use: 0 valid (or fixed), 1 otherwise.
    pub exit_code: i32,
}

impl CheckReport {
    /// True when Redis would exit 0.
    pub fn is_ok(&self) -> bool {
        self.exit_code == 0
    }
}

/// Checks an AOF input like `redis-check-aof [--fix|--truncate-to-timestamp <ts>] <path>`:
/// a manifest (every listed base and incr file), an RDB-preamble file or a RESP file.
/// With `fix`, a damaged *last* file is truncated to its valid prefix without asking.
/// `truncate_to_timestamp` of `Some(0)` means no truncation, as in Redis.
pub fn check_aof_path(
    path: &Path,
    fix: bool,
    truncate_to_timestamp: Option<i64>,
) -> Result<CheckReport, AofError> {
    let mut io = CollectIo {
        lines: Vec::new(),
        answer_yes: true,
    };
    check_aof_path_with(path, fix, truncate_to_timestamp, &mut io)
}

/// As [`check_aof_path`], streaming output to `io` and asking it before a `--fix`
/// truncation. I/O errors while reading are returned as [`AofError::Io`]; everything Redis
/// reports as text ends up in the report.
pub fn check_aof_path_with(
    path: &Path,
    fix: bool,
    truncate_to_timestamp: Option<i64>,
    io: &mut dyn CheckIo,
) -> Result<CheckReport, AofError> {
    let mut checker = Checker {
        io,
        report: CheckReport {
            input: None,
            files: Vec::new(),
            output: Vec::new(),
            exit_code: 0,
        },
        line: 1,
        error: None,
        epos: 0,
        to_timestamp: truncate_to_timestamp.unwrap_or(0),
        fix,
    };
    match checker.run(path) {
        Ok(()) => {}
        Err(Stop::Exit) => checker.report.exit_code = 1,
        Err(Stop::Io(e)) => return Err(AofError::Io(e)),
    }
    Ok(checker.report)
}

enum Stop {
    /// Redis would `exit(1)` here.
    Exit,
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Io(e)
    }
}

/// How `checkSingleAof` ended.
enum SingleResult {
    Ok,
    Empty,
    Truncated,
    TimestampTruncated,
}

/// A `FILE *` with the bits of C stdio behaviour the checker depends on.
struct CFile {
    reader: BufReader<File>,
    pos: u64,
    eof: bool,
}

impl CFile {
    fn peek(&mut self) -> io::Result<Option<u8>> {
        let buf = self.reader.fill_buf()?;
        match buf.first() {
            Some(&b) => {
                self.eof = false;
                Ok(Some(b))
            }
            None => {
                self.eof = true;
                Ok(None)
            }
        }
    }

    /// `fgets(buf, size)`: at most `size - 1` bytes, through the newline.
    fn fgets(&mut self, size: usize) -> io::Result<Option<Vec<u8>>> {
        let max = size - 1;
        let mut out = Vec::new();
        while out.len() < max {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                self.eof = true;
                break;
            }
            let window = &buf[..buf.len().min(max - out.len())];
            let (n, done) = match memchr::memchr(b'\n', window) {
                Some(i) => (i + 1, true),
                None => (window.len(), false),
            };
            out.extend_from_slice(&window[..n]);
            self.reader.consume(n);
            self.pos += n as u64;
            if done {
                break;
            }
        }
        Ok(if out.is_empty() { None } else { Some(out) })
    }

    /// `fread(len)`: returns the bytes read count, the first bytes (up to `keep`), and the
    /// last two bytes read. Never allocates `len`.
    fn fread(&mut self, len: u64, keep: usize) -> io::Result<(u64, Vec<u8>, [u8; 2])> {
        let mut got = 0u64;
        let mut head = Vec::new();
        let mut tail = [0u8; 2];
        while got < len {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                self.eof = true;
                break;
            }
            let n = buf
                .len()
                .min(usize::try_from(len - got).unwrap_or(usize::MAX));
            let chunk = &buf[..n];
            if head.len() < keep {
                let take = (keep - head.len()).min(n);
                head.extend_from_slice(&chunk[..take]);
            }
            match chunk.len() {
                1 => tail = [tail[1], chunk[0]],
                l => tail = [chunk[l - 2], chunk[l - 1]],
            }
            self.reader.consume(n);
            self.pos += n as u64;
            got += n as u64;
        }
        Ok((got, head, tail))
    }
}

struct Checker<'a> {
    io: &'a mut dyn CheckIo,
    report: CheckReport,
    /// Redis's global `line` counter (shared by every file of a manifest).
    line: i64,
    /// Redis's static `error` buffer.
    error: Option<String>,
    /// Redis's static `epos`.
    epos: u64,
    to_timestamp: i64,
    fix: bool,
}

fn os_error_text(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// `%02x` of a C `char` (signed: bytes above 0x7f print as `ffffff80`).
fn hex_char(b: u8) -> String {
    if b >= 0x80 {
        format!("{:08x}", i32::from(b as i8) as u32)
    } else {
        format!("{b:02x}")
    }
}

/// C `strtol(s, &end, 10)` on a NUL-terminated buffer: (value, end index, overflowed).
fn strtol(buf: &[u8], start: usize) -> (i64, usize, bool) {
    let at = |i: usize| buf.get(i).copied().unwrap_or(0);
    let mut i = start;
    while matches!(at(i), b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let negative = at(i) == b'-';
    if matches!(at(i), b'-' | b'+') {
        i += 1;
    }
    let digits_start = i;
    let mut value: i64 = 0;
    let mut overflow = false;
    while at(i).is_ascii_digit() {
        let d = i64::from(at(i) - b'0');
        let next = value.checked_mul(10).and_then(|v| {
            if negative {
                v.checked_sub(d)
            } else {
                v.checked_add(d)
            }
        });
        match next {
            Some(v) => value = v,
            None => {
                overflow = true;
                value = if negative { i64::MIN } else { i64::MAX };
            }
        }
        i += 1;
    }
    if i == digits_start {
        return (0, start, false);
    }
    (value, i, overflow)
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    memchr::memchr(0, bytes).map_or(bytes, |i| &bytes[..i])
}

/// C `dirname`.
fn c_dirname(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return if path.is_empty() {
            ".".into()
        } else {
            "/".into()
        };
    }
    match trimmed.rfind('/') {
        None => ".".into(),
        Some(i) => {
            let dir = trimmed[..i].trim_end_matches('/');
            if dir.is_empty() {
                "/".into()
            } else {
                dir.to_string()
            }
        }
    }
}

/// The `pid:C dd Mon yyyy hh:mm:ss.mmm # ` prefix of a Redis log line (UTC).
fn log_prefix() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil-from-days (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month_name = usize::try_from(month - 1)
        .ok()
        .and_then(|m| MONTHS.get(m))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{}:C {:02} {} {} {:02}:{:02}:{:02}.{:03} # ",
        std::process::id(),
        day,
        month_name,
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

impl Checker<'_> {
    fn out(&mut self, text: String) {
        self.io.line(&text);
        self.report.output.push(text);
    }

    fn fail(&mut self, text: String) -> Stop {
        self.out(text);
        Stop::Exit
    }

    fn set_error(&mut self, message: String) {
        self.error = Some(format!("0x{:16x}: {}", self.epos, message));
    }

    fn run(&mut self, path: &Path) -> Result<(), Stop> {
        let display = path.to_string_lossy().into_owned();
        let kind = self.input_kind(path, &display)?;
        self.report.input = Some(kind);
        match kind {
            InputKind::Manifest => {
                let dir = c_dirname(&display);
                self.check_multi_part(&dir, path, &display)
            }
            InputKind::Resp | InputKind::RdbPreamble => {
                self.out("Start checking Old-Style AOF".into());
                let preamble = kind == InputKind::RdbPreamble;
                let result = self.check_single(&display, path, true, preamble)?;
                self.print_style(&result, &display, "AOF");
                Ok(())
            }
        }
    }

    fn open(&mut self, path: &Path, display: &str, suffix: &str) -> Result<File, Stop> {
        File::open(path).map_err(|e| {
            let text = format!("Cannot open file {display}: {}{suffix}", os_error_text(&e));
            self.fail(text)
        })
    }

    /// `getInputFileType`: manifest if any non-comment line chunk starts with `file`, else
    /// RDB preamble if it starts with `REDIS` (and has at least 8 bytes), else RESP.
    fn input_kind(&mut self, path: &Path, display: &str) -> Result<InputKind, Stop> {
        let file = self.open(path, display, "")?;
        let size = file.metadata()?.len();
        if size == 0 {
            return Ok(InputKind::Resp);
        }
        let mut f = CFile {
            reader: BufReader::new(file),
            pos: 0,
            eof: false,
        };
        let mut manifest = false;
        while let Some(chunk) = f.fgets(MANIFEST_MAX_LINE_BYTES + 1)? {
            if chunk.first() != Some(&b'#') && chunk.starts_with(b"file") {
                manifest = true;
            }
        }
        if manifest {
            return Ok(InputKind::Manifest);
        }
        Ok(if self.file_is_rdb(path, display)? {
            InputKind::RdbPreamble
        } else {
            InputKind::Resp
        })
    }

    fn file_is_rdb(&mut self, path: &Path, display: &str) -> Result<bool, Stop> {
        let mut file = self.open(path, display, "")?;
        if file.metadata()?.len() < 8 {
            return Ok(false);
        }
        let mut sig = [0u8; 5];
        Ok(file.read_exact(&mut sig).is_ok() && &sig == b"REDIS")
    }

    fn check_multi_part(&mut self, dir: &str, path: &Path, display: &str) -> Result<(), Stop> {
        self.out("Start checking Multi Part AOF".into());
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                let text = format!(
                    "{}Fatal error: can't open the AOF manifest file {display} for reading: {}",
                    log_prefix(),
                    os_error_text(&e)
                );
                return Err(self.fail(text));
            }
        };
        let manifest = match Manifest::parse_detailed(&bytes) {
            Ok(m) => m,
            Err(e) => {
                let prefix = log_prefix();
                self.out(format!("{prefix}\n*** FATAL AOF MANIFEST FILE ERROR ***\n"));
                if let Some((number, line)) = &e.line {
                    self.out(format!(
                        "{prefix}Reading the manifest file, at line {number}\n"
                    ));
                    self.out(format!("{prefix}>>> '{}'\n", String::from_utf8_lossy(line)));
                }
                return Err(self.fail(format!("{prefix}{}\n", e.message)));
            }
        };
        let total = manifest.load_order().len();
        let mut done = 0usize;
        if let Some(base) = &manifest.base {
            let file_path = format!("{dir}/{}", base.name);
            done += 1;
            let preamble = self.file_is_rdb(Path::new(&file_path), &file_path)?;
            self.out(format!(
                "Start to check BASE AOF ({} format).",
                if preamble { "RDB" } else { "RESP" }
            ));
            let result =
                self.check_single(&base.name, Path::new(&file_path), done == total, preamble)?;
            self.print_style(&result, &base.name, "BASE AOF");
        }
        if !manifest.incr.is_empty() {
            self.out("Start to check INCR files.".into());
            for entry in &manifest.incr {
                let file_path = format!("{dir}/{}", entry.name);
                done += 1;
                let result =
                    self.check_single(&entry.name, Path::new(&file_path), done == total, false)?;
                self.print_style(&result, &entry.name, "INCR AOF");
            }
        }
        self.out("All AOF files and manifest are valid".into());
        Ok(())
    }

    fn print_style(&mut self, result: &SingleResult, name: &str, what: &str) {
        let text = match result {
            SingleResult::Ok => format!("{what} {name} is valid"),
            SingleResult::Empty => format!("{what} {name} is empty"),
            SingleResult::TimestampTruncated => format!(
                "Successfully truncated AOF {name} to timestamp {}",
                self.to_timestamp
            ),
            SingleResult::Truncated => format!("Successfully truncated AOF {name}"),
        };
        self.out(text);
    }

    fn record(&mut self, name: &str, path: &Path, size: u64, preamble: bool, o: FileOutcome) {
        self.report.files.push(FileReport {
            name: name.to_string(),
            path: path.to_path_buf(),
            size_bytes: size,
            rdb_preamble: preamble,
            outcome: o,
        });
    }

    fn fail_file(
        &mut self,
        name: &str,
        path: &Path,
        size: u64,
        preamble: bool,
        text: String,
    ) -> Stop {
        self.record(
            name,
            path,
            size,
            preamble,
            FileOutcome::Failed(text.clone()),
        );
        self.fail(text)
    }

    /// `checkSingleAof`.
    fn check_single(
        &mut self,
        name: &str,
        path: &Path,
        last_file: bool,
        preamble: bool,
    ) -> Result<SingleResult, Stop> {
        let display = path.to_string_lossy().into_owned();
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) => {
                let text = format!(
                    "Cannot open file {display}: {}, aborting...",
                    os_error_text(&e)
                );
                return Err(self.fail_file(name, path, 0, preamble, text));
            }
        };
        let size = file.metadata()?.len();
        if size == 0 {
            self.record(name, path, 0, preamble, FileOutcome::Empty);
            return Ok(SingleResult::Empty);
        }
        let truncate_handle = file.try_clone()?;
        let mut f = CFile {
            reader: BufReader::new(file),
            pos: 0,
            eof: false,
        };
        if preamble {
            let mut sink = Vec::new();
            let rdb = check_rdb_stream(name, &mut f.reader, &mut |l| sink.push(l));
            for l in sink {
                self.out(l);
            }
            if !rdb.ok {
                let text = "RDB preamble of AOF file is not sane, aborting.".to_string();
                return Err(self.fail_file(name, path, size, preamble, text));
            }
            f.pos = rdb.consumed_bytes;
            self.out("RDB preamble is OK, proceeding with AOF tail...".into());
        }

        let mut pos = 0u64;
        let mut multi: i64 = 0;
        loop {
            if multi == 0 {
                pos = f.pos;
            }
            let Some(first) = f.peek()? else { break };
            if first == b'#' {
                if let Some(to) = self.annotation(&mut f, &display, last_file, &truncate_handle)? {
                    self.record(
                        name,
                        path,
                        size,
                        preamble,
                        FileOutcome::TimestampTruncated { truncated_to: to },
                    );
                    return Ok(SingleResult::TimestampTruncated);
                }
            } else if first == b'*' {
                if !self.process_resp(&mut f, &display, &mut multi)? {
                    break;
                }
            } else {
                self.out(format!("AOF {name} format error"));
                break;
            }
        }
        if f.eof && multi != 0 && self.error.is_none() {
            self.set_error("Reached EOF before reading EXEC for MULTI".into());
        }
        if let Some(e) = self.error.clone() {
            self.out(e);
        }
        let diff = size - pos.min(size);
        if diff == 0 && self.to_timestamp != 0 {
            let text = format!(
                "Truncate nothing in AOF {name} to timestamp {}",
                self.to_timestamp
            );
            self.out(text);
            self.record(name, path, size, preamble, FileOutcome::Valid);
            return Ok(SingleResult::Ok);
        }
        self.out(format!(
            "AOF analyzed: filename={name}, size={size}, ok_up_to={pos}, ok_up_to_line={}, diff={diff}",
            self.line
        ));
        if diff == 0 {
            self.record(name, path, size, preamble, FileOutcome::Valid);
            return Ok(SingleResult::Ok);
        }
        let not_valid = FileOutcome::NotValid {
            ok_up_to: pos,
            ok_up_to_line: self.line,
            diff_bytes: diff,
            error: self.error.clone(),
        };
        if !self.fix {
            self.record(name, path, size, preamble, not_valid);
            let text = format!("AOF {name} is not valid. Use the --fix option to try fixing it.");
            return Err(self.fail(text));
        }
        if !last_file {
            self.record(name, path, size, preamble, not_valid);
            let text = format!("Failed to truncate AOF {name} because it is not the last file");
            return Err(self.fail(text));
        }
        self.out(format!(
            "This will shrink the AOF {name} from {size} bytes, with {diff} bytes, to {pos} bytes"
        ));
        let prompt = "Continue? [y/N]: ";
        self.report.output.push(prompt.to_string());
        if !self.io.confirm(prompt) {
            self.record(name, path, size, preamble, not_valid);
            return Err(self.fail("Aborting...".into()));
        }
        if truncate_handle.set_len(pos).is_err() {
            self.record(name, path, size, preamble, not_valid);
            return Err(self.fail(format!("Failed to truncate AOF {name}")));
        }
        self.record(
            name,
            path,
            size,
            preamble,
            FileOutcome::Fixed { truncated_to: pos },
        );
        Ok(SingleResult::Truncated)
    }

    /// `processAnnotations`: Some(offset) when the file was truncated at a timestamp.
    fn annotation(
        &mut self,
        f: &mut CFile,
        display: &str,
        last_file: bool,
        handle: &File,
    ) -> Result<Option<u64>, Stop> {
        self.epos = f.pos;
        let Some(buf) = f.fgets(ANNOTATION_BUF_BYTES)? else {
            let text = format!("Failed to read annotations from AOF {display}, aborting...");
            return Err(self.fail(text));
        };
        let buf = until_nul(&buf).to_vec();
        if self.to_timestamp == 0 || !buf.starts_with(b"#TS:") {
            return Ok(None);
        }
        let (ts, end, overflow) = strtol(&buf, 4);
        if overflow || buf.get(end) != Some(&b'\r') {
            return Err(self.fail("Invalid timestamp annotation".into()));
        }
        if ts <= self.to_timestamp {
            return Ok(None);
        }
        let to = self.to_timestamp;
        if self.epos == 0 {
            let text = format!("AOF {display} has nothing before timestamp {to}, aborting...");
            return Err(self.fail(text));
        }
        if !last_file {
            let epos = self.epos;
            self.out(format!(
                "Failed to truncate AOF {display} to timestamp {to} to offset {epos} because it is not the last file."
            ));
            return Err(self.fail(
                "If you insist, please delete all files after this file according to the manifest file and delete the corresponding records in manifest file manually. Then re-run redis-check-aof.".into(),
            ));
        }
        if handle.set_len(self.epos).is_err() {
            let text = format!("Failed to truncate AOF {display} to timestamp {to}");
            return Err(self.fail(text));
        }
        Ok(Some(self.epos))
    }

    fn consume_newline(&mut self, two: [u8; 2]) -> bool {
        if &two != b"\r\n" {
            let text = format!(
                "Expected \\r\\n, got: {}{}",
                hex_char(two[0]),
                hex_char(two[1])
            );
            self.set_error(text);
            return false;
        }
        self.line += 1;
        true
    }

    /// `readLong`: None when it failed (error set, or a clean EOF with none).
    fn read_long(&mut self, f: &mut CFile, prefix: u8) -> Result<Option<i64>, Stop> {
        self.epos = f.pos;
        let Some(line) = f.fgets(LENGTH_BUF_BYTES)? else {
            return Ok(None);
        };
        // Bytes past the C string read as 0 (Redis shows stale stack bytes there).
        let buf = &line[..];
        if buf[0] != prefix {
            let text = format!(
                "Expected prefix '{}', got: '{}'",
                prefix as char,
                String::from_utf8_lossy(&buf[..1])
            );
            self.set_error(text);
            return Ok(None);
        }
        let (value, end, _) = strtol(until_nul(buf), 1);
        let two = [
            buf.get(end).copied().unwrap_or(0),
            buf.get(end + 1).copied().unwrap_or(0),
        ];
        Ok(self.consume_newline(two).then_some(value))
    }

    /// `processRESP`.
    fn process_resp(
        &mut self,
        f: &mut CFile,
        display: &str,
        multi: &mut i64,
    ) -> Result<bool, Stop> {
        let Some(argc) = self.read_long(f, b'*')? else {
            return Ok(false);
        };
        let mut i = 0i64;
        while i < argc {
            let Some(len) = self.read_long(f, b'$')? else {
                return Ok(false);
            };
            if !(0..=i64::MAX - 2).contains(&len) {
                self.set_error(format!(
                    "Expected to read string of {len} bytes, which is not in the suitable range"
                ));
                return Ok(false);
            }
            let want = len as u64 + 2;
            self.epos = f.pos;
            let (got, head, tail) = f.fread(want, 8)?;
            if got != want {
                self.set_error(format!("Expected to read {want} bytes, got {got} bytes"));
                return Ok(false);
            }
            if !self.consume_newline(tail) {
                return Ok(false);
            }
            if i == 0 {
                let data_len = usize::try_from(len).unwrap_or(usize::MAX);
                let name = until_nul(&head[..head.len().min(data_len)]);
                if name.eq_ignore_ascii_case(b"multi") {
                    *multi += 1;
                    if *multi > 1 {
                        self.set_error(format!("Unexpected MULTI in AOF {display}"));
                        return Ok(false);
                    }
                } else if name.eq_ignore_ascii_case(b"exec") {
                    *multi -= 1;
                    if *multi != 0 {
                        self.set_error(format!("Unexpected EXEC in AOF {display}"));
                        return Ok(false);
                    }
                }
            }
            i += 1;
        }
        Ok(true)
    }
}

/// The outcome of an RDB check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RdbCheckReport {
    /// True when the RDB decoded to its end (checksum verified when present).
    pub ok: bool,
    /// Bytes of RDB consumed (the preamble length when it is OK).
    pub consumed_bytes: u64,
    /// Keys read.
    pub keys: u64,
    /// Keys with an expiry.
    pub expires: u64,
    /// Keys whose expiry is already past.
    pub already_expired: u64,
    /// `(offset, message)` of the failure.
    pub error: Option<(u64, String)>,
}

/// Keeps the last 8 bytes read, to tell a zero (disabled) checksum from a verified one.
struct TailReader<R> {
    inner: R,
    last: [u8; 8],
}

impl<R: Read> Read for TailReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            self.last.rotate_left(1);
            self.last[7] = b;
        }
        Ok(n)
    }
}

fn rdb_error_text(e: &RdbError) -> String {
    match e {
        RdbError::UnexpectedEof => "Unexpected EOF reading RDB file".into(),
        RdbError::BadMagic => "Wrong signature trying to load DB from file".into(),
        RdbError::UnsupportedVersion(v) => format!("Can't handle RDB format version {v}"),
        RdbError::ChecksumMismatch { .. } => "RDB CRC error".into(),
        other => other.to_string(),
    }
}

/// Walks an RDB stream like `redis-check-rdb`, sending its output lines to `out`. `name` is
/// printed in the `Checking RDB file` line. The reader is left just after the RDB (so an
/// AOF tail can follow).
pub fn check_rdb_stream<R: Read>(
    name: &str,
    reader: R,
    out: &mut dyn FnMut(String),
) -> RdbCheckReport {
    let mut report = RdbCheckReport::default();
    out(format!("[offset 0] Checking RDB file {name}"));
    let options = DecodeOptions {
        skip_streams: true,
        ..DecodeOptions::default()
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let tail = TailReader {
        inner: reader,
        last: [0; 8],
    };
    let result = RdbDecoder::with_options(tail, options);
    let mut decoder = match result {
        Ok(d) => d,
        Err(e) => {
            // Redis reports the 9-byte header as read unless it ran out of bytes.
            let offset = if matches!(e, RdbError::UnexpectedEof) {
                0
            } else {
                9
            };
            report.error = Some((offset, rdb_error_text(&e)));
            finish_rdb(&mut report, out, &e, true);
            return report;
        }
    };
    loop {
        match decoder.next_item() {
            Ok(Some(item)) => {
                let offset = decoder.consumed_bytes();
                match item {
                    RdbItem::Aux { key, value } => out(format!(
                        "[offset {offset}] AUX FIELD {} = '{}'",
                        String::from_utf8_lossy(&key),
                        String::from_utf8_lossy(&value)
                    )),
                    RdbItem::SelectDb(db) => out(format!("[offset {offset}] Selecting DB ID {db}")),
                    RdbItem::Entry(entry) => {
                        report.keys += 1;
                        if let Some(at) = entry.expire_at_ms {
                            report.expires += 1;
                            if at < now_ms {
                                report.already_expired += 1;
                            }
                        }
                    }
                    RdbItem::Skipped { .. } => report.keys += 1,
                    RdbItem::ResizeDb { .. } | RdbItem::Function(_) => {}
                }
            }
            Ok(None) => {
                let offset = decoder.consumed_bytes();
                report.consumed_bytes = offset;
                report.ok = true;
                let version = decoder.version();
                let checksum_disabled = decoder.into_inner().last == [0; 8];
                if version >= 5 {
                    if checksum_disabled {
                        out(format!("[offset {offset}] RDB file was saved with checksum disabled: no check performed."));
                    } else {
                        out(format!("[offset {offset}] Checksum OK"));
                    }
                }
                out(format!("[offset {offset}] \\o/ RDB looks OK! \\o/"));
                info_lines(&report, out);
                return report;
            }
            Err(e) => {
                let offset = decoder.consumed_bytes();
                report.consumed_bytes = offset;
                report.error = Some((offset, rdb_error_text(&e)));
                finish_rdb(&mut report, out, &e, false);
                return report;
            }
        }
    }
}

fn finish_rdb(
    report: &mut RdbCheckReport,
    out: &mut dyn FnMut(String),
    e: &RdbError,
    in_header: bool,
) {
    out("--- RDB ERROR DETECTED ---".into());
    if let Some((offset, text)) = &report.error {
        out(format!("[offset {offset}] {text}"));
    }
    if matches!(e, RdbError::ChecksumMismatch { .. }) {
        out("[additional info] While doing: check-sum".into());
    } else if in_header {
        out("[additional info] While doing: start".into());
        out("[additional info] Reading type 0 (string)".into());
    }
    info_lines(report, out);
}

fn info_lines(report: &RdbCheckReport, out: &mut dyn FnMut(String)) {
    out(format!("[info] {} keys read", report.keys));
    out(format!("[info] {} expires", report.expires));
    out(format!("[info] {} already expired", report.already_expired));
}

/// `redis-check-rdb <path>`: the output lines and the exit code (0 OK, 1 not).
pub fn check_rdb_path(path: &Path) -> (Vec<String>, i32) {
    let display = path.to_string_lossy().into_owned();
    let mut lines = Vec::new();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            lines.push(format!("[offset 0] Checking RDB file {display}"));
            lines.push(format!(
                "Cannot check RDB file {display}: {}",
                os_error_text(&e)
            ));
            return (lines, 1);
        }
    };
    let report = check_rdb_stream(&display, BufReader::new(file), &mut |l| lines.push(l));
    (lines, if report.ok { 0 } else { 1 })
}
