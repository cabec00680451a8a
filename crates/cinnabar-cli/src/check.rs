//! `cinnabar check-aof` and `cinnabar check-rdb`: thin front ends over `cinnabar_aof::check`
//! that print what `redis-check-aof` / `redis-check-rdb` 7.0.15 print and exit with the same
//! codes (0 valid or fixed, 1 otherwise).
//!
//! `--fix` asks `Continue? [y/N]:` on stdin like Redis before truncating; `-y`/`--yes` answers
//! yes without asking (for scripts; Redis has no such flag — feed it `y` on stdin instead).

use std::io::{self, BufRead, Write};
use std::path::PathBuf;

use clap::Args;

use cinnabar_aof::check::{check_aof_path_with, check_rdb_path, CheckIo};

#[derive(Args, Clone)]
pub struct CheckAofArgs {
    /// Truncate a damaged last file to its valid prefix (asks first unless --yes).
    #[arg(long, conflicts_with = "truncate_to_timestamp")]
    fix: bool,
    /// With --fix, do not ask for confirmation.
    #[arg(short = 'y', long = "yes", requires = "fix")]
    yes: bool,
    /// Truncate the last file at the first `#TS:` annotation later than this Unix time (s).
    #[arg(long, value_name = "TIMESTAMP", allow_negative_numbers = true)]
    truncate_to_timestamp: Option<i64>,
    /// A manifest (`appendonly.aof.manifest`), an AOF file, or an RDB-preamble AOF.
    file: PathBuf,
}

#[derive(Args, Clone)]
pub struct CheckRdbArgs {
    /// The RDB file.
    file: PathBuf,
}

struct Terminal {
    assume_yes: bool,
}

impl CheckIo for Terminal {
    fn line(&mut self, text: &str) {
        println!("{text}");
    }

    fn confirm(&mut self, prompt: &str) -> bool {
        print!("{prompt}");
        let _ = io::stdout().flush();
        if self.assume_yes {
            println!("y");
            return true;
        }
        let mut answer = String::new();
        match io::stdin().lock().read_line(&mut answer) {
            // Redis looks at the first character only.
            Ok(n) if n > 0 => answer.as_bytes()[0].eq_ignore_ascii_case(&b'y'),
            _ => false,
        }
    }
}

/// Runs `check-aof`; returns the process exit code.
pub fn check_aof(args: &CheckAofArgs) -> i32 {
    let mut term = Terminal {
        assume_yes: args.yes,
    };
    match check_aof_path_with(&args.file, args.fix, args.truncate_to_timestamp, &mut term) {
        Ok(report) => report.exit_code,
        Err(e) => {
            println!(
                "Failed to read from AOF {}: {e}, aborting...",
                args.file.display()
            );
            1
        }
    }
}

/// Runs `check-rdb`; returns the process exit code.
pub fn check_rdb(args: &CheckRdbArgs) -> i32 {
    let (lines, code) = check_rdb_path(&args.file);
    for line in lines {
        println!("{line}");
    }
    code
}
