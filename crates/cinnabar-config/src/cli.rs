//! redis-server 7.0.15 command-line handling:
//! `cinnabar-server [CONFIG_FILE|-] [--directive value ...]`.

use crate::split::repr;
use std::path::PathBuf;

/// What the binary should do, decided from its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// `-v` / `--version` as first argument: print the version, exit 0.
    Version,
    /// `-h` / `--help` as first argument: print usage, exit 0.
    Help,
    /// `--test-memory <megabytes>` (Redis only): the caller decides.
    TestMemory(Vec<String>),
    /// `--check-system` (Redis only): the caller decides.
    CheckSystem,
    /// Load the configuration and run.
    Run(LoadRequest),
}

/// Where the configuration comes from; feed it to `Config::load`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadRequest {
    /// Absolute path of the config file (first argument not starting with '-').
    pub config_file: Option<PathBuf>,
    /// `-` given as first or last argument: append stdin after the file.
    pub config_from_stdin: bool,
    /// Command-line directives rendered as config lines, e.g.
    /// `port "6380" \nbind "127.0.0.1" "::1" `, appended after file + stdin.
    pub options: String,
}

/// Parse arguments (without the program name) exactly like redis-server
/// 7.0.15's `main()`.
pub fn parse_args(args: &[String]) -> Invocation {
    let Some(first) = args.first() else {
        return Invocation::Run(LoadRequest::default());
    };
    match first.as_str() {
        "-v" | "--version" => return Invocation::Version,
        "--help" | "-h" => return Invocation::Help,
        "--test-memory" => return Invocation::TestMemory(args[1..].to_vec()),
        "--check-system" => return Invocation::CheckSystem,
        _ => {}
    }
    let mut req = LoadRequest::default();
    let mut j = 0usize;
    if !first.starts_with('-') {
        let p = PathBuf::from(first);
        req.config_file = Some(if p.is_absolute() {
            p
        } else {
            std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
        });
        j = 1;
    }
    let argc = args.len();
    let mut handled_last_config_arg = true;
    let mut options = String::new();
    while j < argc {
        let a = &args[j];
        if a == "-" && (j == 0 || j == argc - 1) {
            req.config_from_stdin = true;
        } else if handled_last_config_arg && a.starts_with("--") {
            if !options.is_empty() {
                options.push('\n');
            }
            options.push_str(&a[2..]);
            options.push(' ');
            let nparts = crate::split::split_args(a.as_bytes())
                .map(|v| v.len())
                .unwrap_or(0);
            if nparts == 1 {
                handled_last_config_arg = false;
                let next_is_opt = j != argc - 1 && args[j + 1].starts_with("--");
                if next_is_opt && a.eq_ignore_ascii_case("--save") {
                    options.push_str("\"\"");
                    handled_last_config_arg = true;
                } else if j == argc - 1 && a.eq_ignore_ascii_case("--save") {
                    options.push_str("\"\"");
                } else if next_is_opt && a.eq_ignore_ascii_case("--sentinel") {
                    handled_last_config_arg = true;
                }
            } else {
                handled_last_config_arg = true;
            }
        } else {
            options.push_str(&repr(a.as_bytes()));
            options.push(' ');
            handled_last_config_arg = true;
        }
        j += 1;
    }
    req.options = options;
    Invocation::Run(req)
}
