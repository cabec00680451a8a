//! Redis 7.0 functions: FUNCTION LOAD / DELETE / FLUSH / LIST / DUMP / RESTORE / STATS / KILL
//! / HELP and FCALL / FCALL_RO (functions.c, function_lua.c).
//!
//! The libraries (name → code and the functions it registered) live in one registry shared
//! by every worker ([`FunctionRegistry`]); each worker's Lua state loads them all again when
//! the registry's epoch moves (`Engine::ensure_functions`), so a callback always runs in the
//! state of the worker that received FCALL. FUNCTION LOAD runs the library code once on the
//! receiving worker to validate it and learn its functions. Libraries are saved in RDB files
//! (FUNCTION2 records, read back at load and full sync) and FUNCTION LOAD / DELETE / FLUSH /
//! RESTORE replicate as commands.
//!
//! Differences: FUNCTION LIST orders libraries by name and functions by registration (Redis
//! follows its hash tables' order); the 500 ms FUNCTION LOAD timeout is not enforced.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use hashbrown::HashMap;
use mlua::{Function, Lua, Table, Value as LuaValue};

use super::{flag, Engine, Target};
use crate::cmd::Ctx;
use crate::error::{CmdError, CmdResult};
use crate::server::Server;

/// One registered function.
#[derive(Clone)]
pub struct FunctionInfo {
    pub name: String,
    pub description: Option<Vec<u8>>,
    /// Shebang-style flags (`flag::*`, never EVAL_COMPAT).
    pub flags: u32,
}

/// One library: its full code (shebang included) and its functions.
pub struct Library {
    pub name: String,
    pub code: Bytes,
    pub functions: Vec<FunctionInfo>,
}

/// Every loaded library, by name, and each function's library.
#[derive(Default)]
pub struct FunctionRegistry {
    libs: BTreeMap<String, Arc<Library>>,
    by_function: HashMap<String, (String, u32)>,
    pub epoch: u64,
}

impl FunctionRegistry {
    pub fn library_count(&self) -> usize {
        self.libs.len()
    }

    pub fn function_count(&self) -> usize {
        self.by_function.len()
    }

    /// Library codes in registry order (what RDB files and FUNCTION DUMP hold).
    pub fn codes(&self) -> Vec<Vec<u8>> {
        self.libs.values().map(|l| l.code.to_vec()).collect()
    }

    fn libraries(&self) -> Vec<Arc<Library>> {
        self.libs.values().cloned().collect()
    }

    fn remove(&mut self, name: &str) -> Option<Arc<Library>> {
        let lib = self.libs.remove(name)?;
        for f in &lib.functions {
            self.by_function.remove(&f.name);
        }
        Some(lib)
    }

    /// Adds `lib`; Err names the first function another library already has.
    fn add(&mut self, lib: Arc<Library>) -> Result<(), String> {
        for f in &lib.functions {
            if self.by_function.contains_key(&f.name) {
                return Err(format!("Function {} already exists", f.name));
            }
        }
        for f in &lib.functions {
            self.by_function
                .insert(f.name.clone(), (lib.name.clone(), f.flags));
        }
        self.libs.insert(lib.name.clone(), lib);
        Ok(())
    }

    fn bump(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
    }
}

/// Functions registered by the library chunk being loaded on this thread.
type Collected = Vec<(String, Function, u32, Option<Vec<u8>>)>;

thread_local! {
    static LOADING: RefCell<Option<Collected>> = const { RefCell::new(None) };
}

/// functionsVerifyName: letters, digits and underscores, at least one.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn name_error() -> String {
    "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into()
}

fn flag_bits(name: &str) -> u32 {
    match name {
        "no-writes" => flag::NO_WRITES,
        "allow-oom" => flag::ALLOW_OOM,
        "allow-stale" => flag::ALLOW_STALE,
        "no-cluster" => flag::NO_CLUSTER,
        "allow-cross-slot-keys" => flag::ALLOW_CROSS_SLOT,
        _ => 0,
    }
}

/// `api.fn_register(name, callback, flags, description)` for the prelude's
/// redis.register_function: Some(error message) or None.
pub(super) fn register_api(lua: &Lua) -> mlua::Result<Function> {
    lua.create_function(
        |_, (name, cb, flags, desc): (mlua::LuaString, Function, Table, Option<mlua::LuaString>)| {
            let name = name.to_string_lossy();
            let mut bits = 0u32;
            for f in flags.sequence_values::<mlua::LuaString>() {
                bits |= flag_bits(&f?.to_string_lossy());
            }
            let desc = desc.map(|d| d.as_bytes().to_vec());
            let err = LOADING.with(|l| {
                let mut l = l.borrow_mut();
                let Some(list) = l.as_mut() else {
                    return Some(
                        "redis.register_function can only be called on FUNCTION LOAD command"
                            .to_string(),
                    );
                };
                if !valid_name(&name) {
                    return Some(name_error());
                }
                if list.iter().any(|(n, ..)| *n == name) {
                    return Some("Function already exists in the library".to_string());
                }
                list.push((name, cb, bits, desc));
                None
            });
            Ok(err)
        },
    )
}

/// functionExtractLibMetaData: (library name, offset of the code after the shebang line).
fn parse_metadata(code: &[u8]) -> Result<(String, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let Some(end) = memchr::memchr(b'\n', code) else {
        return Err("Invalid library metadata".into());
    };
    let parts = match cinnabar_protocol::parser::split_args(&code[..end]) {
        Some(p) if !p.is_empty() => p,
        _ => return Err("Invalid library metadata".into()),
    };
    let engine = String::from_utf8_lossy(&parts[0][2..]).into_owned();
    let mut name = None;
    for p in &parts[1..] {
        if p.len() >= 5 && p[..5].eq_ignore_ascii_case(b"name=") {
            name = Some(String::from_utf8_lossy(&p[5..]).into_owned());
        } else {
            return Err(format!(
                "Invalid metadata value given: {}",
                String::from_utf8_lossy(p)
            ));
        }
    }
    let Some(name) = name else {
        return Err("Library name was not given".into());
    };
    if !valid_name(&name) {
        return Err(name_error());
    }
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("Engine '{engine}' not found"));
    }
    Ok((name, end))
}

impl Engine {
    /// Compiles and runs one library's code in load mode: the functions it registered.
    fn load_library(&self, code: &[u8], body_at: usize) -> Result<Collected, String> {
        let f = self
            .lua
            .load(&code[body_at..])
            .set_name("@user_function")
            .set_mode(mlua::chunk::ChunkMode::Text)
            .set_environment(self.fenv.clone())
            .into_function()
            .map_err(|e| {
                let msg = match e {
                    mlua::Error::SyntaxError { message, .. } => message,
                    other => other.to_string(),
                };
                format!("Error compiling function: {msg}")
            })?;
        LOADING.with(|l| *l.borrow_mut() = Some(Vec::new()));
        let ran: mlua::Result<(bool, LuaValue)> = self.load_lib.call(f);
        let collected = LOADING.with(|l| l.borrow_mut().take()).unwrap_or_default();
        let (ok, err) = ran.map_err(|e| format!("Error registering functions: ERR {e}"))?;
        if !ok {
            // luaExtractErrorInformation on the raw error value.
            let msg = match &err {
                LuaValue::String(s) => format!("ERR {}", s.to_string_lossy()),
                LuaValue::Number(n) => {
                    format!("ERR {}", cinnabar_protocol::float::format_g(*n, 14))
                }
                LuaValue::Table(t) => match t.raw_get::<LuaValue>("err") {
                    Ok(LuaValue::String(s)) => s.to_string_lossy(),
                    _ => "ERR unknown error".into(),
                },
                _ => "ERR unknown error".into(),
            };
            return Err(format!("Error registering functions: {msg}"));
        }
        Ok(collected)
    }

    /// Loads every library of the registry into this state when the registry changed.
    pub(super) fn ensure_functions(&mut self, srv: &Server) {
        let (epoch, libs) = {
            let reg = srv.scripts.functions.lock();
            if reg.epoch == self.fn_epoch {
                return;
            }
            (reg.epoch, reg.libraries())
        };
        self.fn_callbacks.clear();
        for lib in libs {
            let Ok((_, body_at)) = parse_metadata(&lib.code) else {
                continue;
            };
            match self.load_library(&lib.code, body_at) {
                Ok(fns) => {
                    for (name, cb, ..) in fns {
                        self.fn_callbacks.insert(name, cb);
                    }
                }
                Err(e) => crate::warning!("Library {} failed to load on a worker: {e}", lib.name),
            }
        }
        self.fn_epoch = epoch;
    }
}

/// functionsCreateWithLibraryCtx without the commit: validates `code` on this thread.
fn build_library(srv: &Server, code: &Bytes) -> Result<Library, String> {
    let (name, body_at) = parse_metadata(code)?;
    let collected =
        super::with_engine(srv, |e| e.load_library(code, body_at)).map_err(|e| e.text())??;
    if collected.is_empty() {
        return Err("No functions registered".into());
    }
    Ok(Library {
        name,
        code: code.clone(),
        functions: collected
            .into_iter()
            .map(|(name, _, flags, description)| FunctionInfo {
                name,
                description,
                flags,
            })
            .collect(),
    })
}

/// Loads a library into the registry (FUNCTION LOAD, RDB loading): the library's name.
pub fn create(srv: &Server, code: &Bytes, replace: bool) -> Result<String, String> {
    let (name, _) = parse_metadata(code)?;
    if !replace && srv.scripts.functions.lock().libs.contains_key(&name) {
        return Err(format!("Library '{name}' already exists"));
    }
    let lib = Arc::new(build_library(srv, code)?);
    let mut reg = srv.scripts.functions.lock();
    let old = if replace { reg.remove(&name) } else { None };
    if !replace && reg.libs.contains_key(&name) {
        return Err(format!("Library '{name}' already exists"));
    }
    if let Err(e) = reg.add(lib) {
        if let Some(old) = old {
            let _ = reg.add(old);
        }
        return Err(e);
    }
    reg.bump();
    Ok(name)
}

// ---------------------------------------------------------------------------------------
// Commands

fn fcall_generic(ctx: &mut Ctx, args: &[Bytes], ro: bool) -> CmdResult {
    let name = String::from_utf8_lossy(&args[1]).into_owned();
    let fflags = {
        let reg = ctx.srv.scripts.functions.lock();
        match reg.by_function.get(&name) {
            Some((_, f)) => *f,
            None => return Err(CmdError::err("Function not found")),
        }
    };
    let Some(numkeys) = cinnabar_protocol::parser::parse_i64(&args[2]) else {
        return Err(CmdError::err("Bad number of keys provided"));
    };
    if numkeys > args.len() as i64 - 3 {
        return Err(CmdError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    if numkeys < 0 {
        return Err(CmdError::err("Number of keys can't be negative"));
    }
    super::prepare_checks(ctx, fflags, ro)?;
    let keys = &args[3..3 + numkeys as usize];
    let argv = &args[3 + numkeys as usize..];
    super::run_script(
        ctx,
        Target::Function {
            name: &name,
            flags: fflags,
        },
        keys,
        argv,
        ro,
    )
}

pub fn cmd_fcall(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    fcall_generic(ctx, args, false)
}

pub fn cmd_fcall_ro(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    fcall_generic(ctx, args, true)
}

pub fn function_load(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (replace, code) = match args.len() {
        3 => (false, &args[2]),
        4 if args[2].eq_ignore_ascii_case(b"replace") => (true, &args[3]),
        _ => {
            return Err(CmdError::Msg(format!(
                "ERR Unknown option given: {}",
                String::from_utf8_lossy(&args[2])
            )))
        }
    };
    let name = create(ctx.srv, code, replace).map_err(CmdError::err)?;
    ctx.db.touch_write();
    ctx.out.bulk(name.as_bytes());
    Ok(())
}

pub fn function_delete(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[2]).into_owned();
    let mut reg = ctx.srv.scripts.functions.lock();
    if reg.remove(&name).is_none() {
        return Err(CmdError::err("Library not found"));
    }
    reg.bump();
    drop(reg);
    ctx.db.touch_write();
    ctx.out.ok();
    Ok(())
}

pub fn function_flush(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if !super::flush_mode_ok(args) {
        return Err(CmdError::err(
            "FUNCTION FLUSH only supports SYNC|ASYNC option",
        ));
    }
    flush(ctx.srv);
    ctx.db.touch_write();
    ctx.out.ok();
    Ok(())
}

/// Drops every library (FUNCTION FLUSH, FLUSHALL does not: as Redis 7.0).
pub fn flush(srv: &Server) {
    let mut reg = srv.scripts.functions.lock();
    reg.libs.clear();
    reg.by_function.clear();
    reg.bump();
}

pub fn function_list(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut with_code = false;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if a.eq_ignore_ascii_case(b"withcode") && !with_code {
            with_code = true;
        } else if a.eq_ignore_ascii_case(b"libraryname") && pattern.is_none() {
            let Some(p) = args.get(i + 1) else {
                return Err(CmdError::err("library name argument was not given"));
            };
            pattern = Some(p);
            i += 1;
        } else {
            return Err(CmdError::Msg(format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(a)
            )));
        }
        i += 1;
    }
    let libs: Vec<Arc<Library>> = {
        let reg = ctx.srv.scripts.functions.lock();
        reg.libraries()
            .into_iter()
            .filter(|l| {
                pattern.is_none_or(|p| {
                    cinnabar_config::glob::string_match(p, l.name.as_bytes(), false)
                })
            })
            .collect()
    };
    let out = &mut *ctx.out;
    out.array(libs.len());
    for lib in libs {
        out.map(if with_code { 4 } else { 3 });
        out.bulk(b"library_name");
        out.bulk(lib.name.as_bytes());
        out.bulk(b"engine");
        out.bulk(b"LUA");
        out.bulk(b"functions");
        out.array(lib.functions.len());
        for f in &lib.functions {
            out.map(3);
            out.bulk(b"name");
            out.bulk(f.name.as_bytes());
            out.bulk(b"description");
            match &f.description {
                Some(d) => out.bulk(d),
                None => out.null(),
            }
            out.bulk(b"flags");
            let names: Vec<&str> = [
                (flag::NO_WRITES, "no-writes"),
                (flag::ALLOW_OOM, "allow-oom"),
                (flag::ALLOW_STALE, "allow-stale"),
                (flag::NO_CLUSTER, "no-cluster"),
                (flag::ALLOW_CROSS_SLOT, "allow-cross-slot-keys"),
            ]
            .iter()
            .filter(|(b, _)| f.flags & b != 0)
            .map(|(_, n)| *n)
            .collect();
            out.set(names.len());
            for n in names {
                out.simple(n);
            }
        }
        if with_code {
            out.bulk(b"library_code");
            out.bulk(&lib.code);
        }
    }
    Ok(())
}

pub fn function_dump(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let codes = ctx.srv.scripts.functions.lock().codes();
    let opts = crate::persist::rdbfile::encode_options(ctx.srv);
    let payload = cinnabar_rdb::functions_dump_payload(&codes, &opts)
        .map_err(|e| CmdError::err(e.to_string()))?;
    ctx.out.bulk(&payload);
    Ok(())
}

pub fn function_restore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    #[derive(PartialEq)]
    enum Policy {
        Flush,
        Append,
        Replace,
    }
    let policy = match args.get(3) {
        None => Policy::Append,
        Some(p) if p.eq_ignore_ascii_case(b"flush") => Policy::Flush,
        Some(p) if p.eq_ignore_ascii_case(b"append") => Policy::Append,
        Some(p) if p.eq_ignore_ascii_case(b"replace") => Policy::Replace,
        Some(_) => {
            return Err(CmdError::err(
                "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ))
        }
    };
    if args.len() > 4 {
        return Err(CmdError::Syntax);
    }
    let codes = cinnabar_rdb::functions_restore_payload(&args[2])
        .map_err(|_| CmdError::err("DUMP payload version or checksum are wrong"))?;
    let srv = ctx.srv;
    let mut built = Vec::with_capacity(codes.len());
    for code in codes {
        let lib = build_library(srv, &Bytes::from(code)).map_err(CmdError::err)?;
        built.push(Arc::new(lib));
    }
    let mut reg = srv.scripts.functions.lock();
    let mut next = FunctionRegistry {
        epoch: reg.epoch,
        ..Default::default()
    };
    if policy != Policy::Flush {
        for lib in reg.libraries() {
            let replaced = policy == Policy::Replace && built.iter().any(|b| b.name == lib.name);
            if !replaced {
                let _ = next.add(lib);
            }
        }
    }
    for lib in built {
        if next.libs.contains_key(&lib.name) {
            return Err(CmdError::Msg(format!(
                "ERR Library {} already exists",
                lib.name
            )));
        }
        next.add(lib).map_err(CmdError::err)?;
    }
    next.bump();
    *reg = next;
    drop(reg);
    ctx.db.touch_write();
    ctx.out.ok();
    Ok(())
}

pub fn function_stats(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let running = ctx
        .srv
        .scripts
        .running
        .lock()
        .iter()
        .find_map(|f| f.function.clone().map(|n| (n, f.started)));
    let (libs, fns) = {
        let reg = ctx.srv.scripts.functions.lock();
        (reg.library_count(), reg.function_count())
    };
    let out = &mut *ctx.out;
    out.map(2);
    out.bulk(b"running_script");
    match running {
        None => out.null(),
        Some((name, started)) => {
            out.map(3);
            out.bulk(b"name");
            out.bulk(name.as_bytes());
            out.bulk(b"command");
            out.array(2);
            out.bulk(b"fcall");
            out.bulk(name.as_bytes());
            out.bulk(b"duration_ms");
            out.int(started.elapsed().as_millis() as i64);
        }
    }
    out.bulk(b"engines");
    out.map(1);
    out.bulk(b"LUA");
    out.map(2);
    out.bulk(b"libraries_count");
    out.int(libs as i64);
    out.bulk(b"functions_count");
    out.int(fns as i64);
    Ok(())
}

pub fn function_kill(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    super::kill_running(ctx, true)
}

pub fn function_help(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    crate::cmd::connection::help_reply(
        ctx,
        &[
            "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
            "HELP",
            "    Prints this help.",
        ],
    );
    Ok(())
}

/// For `used_memory_*` / INFO: (libraries, functions).
pub fn counts(srv: &Server) -> (usize, usize) {
    let reg = srv.scripts.functions.lock();
    (reg.library_count(), reg.function_count())
}
