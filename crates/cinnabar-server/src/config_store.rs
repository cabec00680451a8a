//! The configuration store the server runs on: a thin wrapper around `cinnabar-config`'s
//! [`Config`] (every Redis 7.0 directive, Redis's exact error texts) that also derives the typed
//! [`Settings`] snapshot the hot paths read.

use std::path::PathBuf;

use cinnabar_config::{parse_args, Config, Invocation};

use crate::settings::Settings;

pub struct ConfigStore {
    pub config: Config,
}

/// What the command line asked for.
pub enum Startup {
    Run(ConfigStore),
    Version,
    Help,
}

impl ConfigStore {
    /// Parses `cinnabar-server [CONFIG_FILE] [--directive value ...]` (args without argv[0]).
    /// Errors carry the exact text Redis prints and the exit code.
    pub fn from_args(args: &[String]) -> Result<Startup, (String, i32, bool)> {
        match parse_args(args) {
            Invocation::Version => Ok(Startup::Version),
            Invocation::Help => Ok(Startup::Help),
            Invocation::TestMemory(_) | Invocation::CheckSystem => {
                Err(("This option is not supported by Cinnabar".into(), 1, false))
            }
            Invocation::Run(req) => match Config::load(&req) {
                Ok(config) => {
                    let store = ConfigStore { config };
                    store.settings().map_err(|e| (e, 1, true))?;
                    Ok(Startup::Run(store))
                }
                Err(e) => {
                    let is_open = matches!(e, cinnabar_config::ConfigError::Open { .. });
                    Err((e.to_string(), e.exit_code(), !is_open))
                }
            },
        }
    }

    pub fn file(&self) -> Option<PathBuf> {
        self.config.config_file().map(|p| p.to_path_buf())
    }

    pub fn settings(&self) -> Result<Settings, String> {
        let mut s = Settings::from_lookup(|k| self.config.get_value(k).map(String::from))?;
        // CONFIG GET drops `n` next to `A` (as Redis does); the flags keep it.
        s.notify_keyspace_events = self.config.notify_keyspace_events();
        Ok(s)
    }

    /// CONFIG GET with glob patterns.
    pub fn get(&self, patterns: &[&str]) -> Vec<(String, String)> {
        self.config.get(patterns)
    }

    /// CONFIG SET of several pairs, all or nothing; errors are full `ERR ...` texts.
    pub fn set(&mut self, pairs: &[(String, String)]) -> Result<(), String> {
        let p: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        self.config.set(&p)
    }

    pub fn rewrite(&self) -> Result<(), String> {
        let Some(path) = self.config.config_file() else {
            return Err("ERR The server is running without a config file".into());
        };
        self.config
            .rewrite(path)
            .map_err(|e| format!("ERR Rewriting config file: {e}"))
    }

    /// Directives present that Redis knows but Cinnabar does not honour yet.
    pub fn warnings(&self) -> Vec<String> {
        self.config.warnings()
    }
}
