//! Lua scripting: EVAL / EVALSHA / EVAL_RO / EVALSHA_RO and SCRIPT LOAD / EXISTS / FLUSH /
//! KILL / HELP, with Redis 7.0's semantics (script_lua.c, eval.c, script.c).
//!
//! Threading model. Each worker thread owns one Lua 5.1 state (`ENGINE`, created on the
//! thread's first script); the script cache (sha → body) is shared by all of them in
//! [`ScriptCache`] and every state compiles a body on first use. A script runs on the
//! worker that received it, like any other command: atomically with respect to the keys it
//! touches, because the slots of its declared keys are locked by the dispatcher before it
//! starts and every other slot a `redis.call` reaches is added to the same lock set before
//! that call runs ([`crate::keyspace::LockSet::acquire_more`]) and held until the script
//! ends. Scripts on other workers run in parallel when their slots differ.
//!
//! Effects replication (Redis 7.0's only mode): the write commands a script runs are
//! propagated, wrapped in MULTI/EXEC when there are several; EVAL itself never is.
//!
//! Differences from Redis, on purpose (documented in docs/ARCHITECTURE.md):
//! - no `-BUSY` replies: other clients are not stopped while a script runs, they only wait
//!   for the slots it holds. SCRIPT KILL from another connection still stops a read-only
//!   script (checked every 100,000 Lua instructions, as Redis's hook).
//! - a script that reaches an undeclared key whose slot another command holds, while it
//!   holds a higher slot itself, waits at most `LOCK_WAIT_MS` (the deadlock breaker) and then
//!   gets an error from that `redis.call`.
//! - SCRIPT DEBUG (the Lua debugger) is not implemented and says so.
//! - `redis.set_repl(REPL_AOF)` / `REPL_REPLICA` propagate to both the AOF and replicas
//!   (the replication log feeds both); `REPL_NONE` propagates nothing, as in Redis.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashbrown::HashMap;
use mlua::{Function, Lua, MultiValue, Table, Value as LuaValue};
use parking_lot::Mutex;
use smallvec::SmallVec;

use cinnabar_protocol::{ReplyBuf, Resp};

use crate::cmd::{flags, Ctx, Resolved};
use crate::error::{CmdError, CmdResult};
use crate::keyspace::SLOT_COUNT;
use crate::server::Server;

pub mod functions;
pub mod libs;

/// Shebang flags (`#!lua flags=...`), Redis's SCRIPT_FLAG_*.
pub mod flag {
    /// No shebang: Redis 6 behaviour (writes allowed, checks per command).
    pub const EVAL_COMPAT: u32 = 1;
    pub const NO_WRITES: u32 = 1 << 1;
    pub const ALLOW_OOM: u32 = 1 << 2;
    pub const ALLOW_STALE: u32 = 1 << 3;
    pub const NO_CLUSTER: u32 = 1 << 4;
    /// Accepted as in 7.0.15; 7.0 never refuses undeclared keys in other slots anyway.
    pub const ALLOW_CROSS_SLOT: u32 = 1 << 5;
}

/// How long a script waits for the slot of an undeclared key that sits below a slot it
/// already holds (the only wait that could close a cycle) before its `redis.call` fails.
pub const LOCK_WAIT_MS: u64 = 1000;

/// Lua instructions between two checks for SCRIPT KILL and slow-script logging (Redis's
/// count hook period).
const HOOK_PERIOD_INSTRUCTIONS: u32 = 100_000;

/// Scripts between two incremental Lua GC steps (Redis's LUA_GC_CYCLE_PERIOD).
const GC_CYCLE_PERIOD: u64 = 50;

/// Deepest table nesting converted to a reply (Redis fails at the Lua stack limit).
const MAX_REPLY_DEPTH: usize = 500;

/// One cached script.
pub struct Script {
    pub body: Bytes,
    pub flags: u32,
    /// Length of the shebang line (0 without one): the code compiled starts there.
    pub shebang_len: usize,
}

/// Redis's slowevalerr / slowscripterr: the -BUSY reply while an EVAL script / a function
/// runs past `busy-reply-threshold` (also SCRIPT KILL's and FUNCTION KILL's refusal when the
/// other kind is running).
pub const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// Scripts running past `busy-reply-threshold`, all of them and the EVAL ones.
#[derive(Default)]
pub struct BusyCount {
    total: std::sync::atomic::AtomicUsize,
    evals: std::sync::atomic::AtomicUsize,
}

impl BusyCount {
    fn add(&self, function: bool) {
        if !function {
            self.evals.fetch_add(1, Ordering::AcqRel);
        }
        self.total.fetch_add(1, Ordering::AcqRel);
    }

    fn sub(&self, function: bool) {
        self.total.fetch_sub(1, Ordering::AcqRel);
        if !function {
            self.evals.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// What SCRIPT KILL needs to know about a running script.
pub struct RunFlags {
    killed: AtomicBool,
    wrote: AtomicBool,
    from_master: bool,
    /// The function's name for FCALL (None: an EVAL script).
    function: Option<String>,
    started: Instant,
}

/// The scripts cache shared by every worker, plus the running scripts (for SCRIPT KILL).
#[derive(Default)]
pub struct ScriptCache {
    scripts: Mutex<HashMap<String, Arc<Script>>>,
    /// Bumped by SCRIPT FLUSH: workers drop their compiled functions when it moves.
    epoch: AtomicU64,
    body_bytes: AtomicU64,
    running: Mutex<Vec<Arc<RunFlags>>>,
    /// FUNCTION libraries (`functions.rs`).
    pub functions: Mutex<functions::FunctionRegistry>,
    /// Scripts running past `busy-reply-threshold` (other clients then get -BUSY).
    busy: Arc<BusyCount>,
}

impl ScriptCache {
    /// `number_of_cached_scripts`.
    pub fn count(&self) -> usize {
        self.scripts.lock().len()
    }

    /// `used_memory_scripts_eval`: bodies plus the dictionary entries.
    pub fn memory_bytes(&self) -> u64 {
        let n = self.count() as u64;
        self.body_bytes.load(Ordering::Relaxed) + n * 96
    }

    /// Whether a script has run past `busy-reply-threshold` (and is still running).
    #[inline]
    pub fn is_busy(&self) -> bool {
        self.busy.total.load(Ordering::Relaxed) != 0
    }

    /// The -BUSY reply for the scripts running now (processCommand: slowevalerr when the
    /// busy one is an EVAL script, slowscripterr for a function).
    pub fn busy_error(&self) -> CmdError {
        CmdError::msg(if self.busy.evals.load(Ordering::Relaxed) != 0 {
            BUSY_EVAL
        } else {
            BUSY_FUNCTION
        })
    }

    fn get(&self, sha: &str) -> Option<Arc<Script>> {
        self.scripts.lock().get(sha).cloned()
    }

    fn insert(&self, sha: String, script: Script) -> Arc<Script> {
        let mut map = self.scripts.lock();
        if let Some(s) = map.get(&sha) {
            return s.clone();
        }
        self.body_bytes
            .fetch_add(script.body.len() as u64, Ordering::Relaxed);
        let s = Arc::new(script);
        map.insert(sha, s.clone());
        s
    }

    fn flush(&self) {
        let mut map = self.scripts.lock();
        map.clear();
        self.body_bytes.store(0, Ordering::Relaxed);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

/// Lower-case hex SHA1 of `body` (Redis's sha1hex).
pub fn sha1hex(body: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    let digest = Sha1::digest(body);
    let mut s = String::with_capacity(40);
    for b in digest.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// evalExtractShebangFlags: (flags, length of the shebang line without its newline).
pub fn parse_shebang(body: &[u8]) -> Result<(u32, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((flag::EVAL_COMPAT, 0));
    }
    let Some(end) = memchr::memchr(b'\n', body) else {
        return Err("Invalid script shebang".into());
    };
    let line = &body[..end];
    let parts = match cinnabar_protocol::parser::split_args(line) {
        Some(p) if !p.is_empty() => p,
        _ => return Err("Invalid engine in script shebang".into()),
    };
    if parts[0] != b"#!lua" {
        return Err(format!(
            "Unexpected engine in script shebang: {}",
            String::from_utf8_lossy(&parts[0])
        ));
    }
    let mut flags = 0u32;
    for p in &parts[1..] {
        let Some(list) = p.strip_prefix(b"flags=") else {
            return Err(format!(
                "Unknown lua shebang option: {}",
                String::from_utf8_lossy(p)
            ));
        };
        if list.is_empty() {
            continue;
        }
        for f in list.split(|&b| b == b',') {
            flags |= match f {
                b"no-writes" => flag::NO_WRITES,
                b"allow-oom" => flag::ALLOW_OOM,
                b"allow-stale" => flag::ALLOW_STALE,
                b"no-cluster" => flag::NO_CLUSTER,
                b"allow-cross-slot-keys" => flag::ALLOW_CROSS_SLOT,
                other => {
                    return Err(format!(
                        "Unexpected flag in script shebang: {}",
                        String::from_utf8_lossy(other)
                    ))
                }
            };
        }
    }
    Ok((flags, end))
}

// ---------------------------------------------------------------------------------------
// redisLrand48 (rand.c): the 48-bit linear congruential generator behind math.random, one
// sequence per process as in Redis, starting from Redis's default seed.

static RAND48: AtomicU64 = AtomicU64::new(0x1234_ABCD_330E);
const RAND48_MAX: i64 = i32::MAX as i64;

fn rand48_next() -> i64 {
    const A: u64 = 0x5_DEEC_E66D;
    const C: u64 = 0xB;
    const MASK: u64 = (1 << 48) - 1;
    let prev = RAND48
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| {
            Some(x.wrapping_mul(A).wrapping_add(C) & MASK)
        })
        .unwrap_or(0);
    let next = prev.wrapping_mul(A).wrapping_add(C) & MASK;
    (next >> 17) as i64
}

fn rand48_seed(seed: i32) {
    let s = seed as u32 as u64;
    RAND48.store((s << 16) | 0x330E, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------
// The per-thread Lua state.

struct Engine {
    lua: Lua,
    /// Address of the server this state serves, and the cache epoch its functions belong to.
    owner: usize,
    epoch: u64,
    funcs: HashMap<String, Function>,
    run: Function,
    /// Runs a FUNCTION callback with (keys, args) under the error handler.
    run_fn: Function,
    /// Loads a library chunk: (ok, error value) of running it in load mode.
    load_lib: Function,
    /// The environment of library code (see prelude.lua).
    fenv: Table,
    /// FUNCTION callbacks by name, for the registry epoch `fn_epoch`.
    fn_callbacks: HashMap<String, Function>,
    fn_epoch: u64,
    cur: Table,
    env: Table,
    /// Scripts run on this state (drives the periodic GC step).
    scripts_run: u64,
}

/// What the count hook needs: the running script's flags, its start and whether the slow
/// script warning was logged.
struct HookState {
    flags: Arc<RunFlags>,
    /// The server's busy-script counts, raised when this script passes the threshold.
    busy: Arc<BusyCount>,
    started: Instant,
    threshold_ms: u64,
    logged: bool,
}

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    static HOOK: RefCell<Option<HookState>> = const { RefCell::new(None) };
}

const KILLED_MARK: &str = "\u{1}cinnabar-script-killed";

fn lua_version_num() -> f64 {
    // REDIS_VERSION_NUM of 7.0.15: 0x00070f.
    (7 << 16 | 15) as f64
}

impl Engine {
    fn new(owner: usize, epoch: u64) -> mlua::Result<Engine> {
        use mlua::StdLib;
        // SAFETY: the `debug` library is what makes this constructor unsafe; the prelude keeps
        // it in a local of its error handler (as Redis's eval.c does) and removes the global
        // before any script runs, so scripts cannot reach it.
        let lua = unsafe {
            Lua::unsafe_new_with(
                StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
                mlua::LuaOptions::default(),
            )
        };
        libs::register(&lua)?;
        let api = lua.create_table()?;
        api.set(
            "sha1hex",
            lua.create_function(|lua, v: LuaValue| {
                let s = match &v {
                    LuaValue::String(s) => sha1hex(&s.as_bytes()),
                    LuaValue::Number(_) | LuaValue::Integer(_) => {
                        let t = lua.coerce_string(v.clone())?;
                        sha1hex(&t.map(|t| t.as_bytes().to_vec()).unwrap_or_default())
                    }
                    _ => sha1hex(b""),
                };
                Ok(s)
            })?,
        )?;
        api.set(
            "log",
            lua.create_function(|_, (level, msg): (i64, mlua::LuaString)| {
                let level = match level {
                    0 => crate::log::Level::Debug,
                    1 => crate::log::Level::Verbose,
                    2 => crate::log::Level::Notice,
                    _ => crate::log::Level::Warning,
                };
                crate::log::log(level, &String::from_utf8_lossy(&msg.as_bytes()));
                Ok(())
            })?,
        )?;
        api.set(
            "rand",
            lua.create_function(|_, ()| {
                Ok((rand48_next() % RAND48_MAX) as f64 / RAND48_MAX as f64)
            })?,
        )?;
        api.set(
            "srand",
            lua.create_function(|_, seed: f64| {
                rand48_seed(seed as i32);
                Ok(())
            })?,
        )?;
        api.set(
            "acl_check",
            lua.create_function(|lua, args: MultiValue| {
                let argv = match lua_args(&args) {
                    Ok(a) => a,
                    Err(msg) => return Ok((1, LuaValue::String(lua.create_string(msg)?))),
                };
                match crate::cmd::resolve(&argv) {
                    Resolved::Ok(..) => Ok((0, LuaValue::Boolean(true))),
                    Resolved::Err(_) => Ok((
                        1,
                        LuaValue::String(
                            lua.create_string("Invalid command passed to redis.acl_check_cmd()")?,
                        ),
                    )),
                }
            })?,
        )?;
        // redis.call / setresp / set_repl reach the running script through CURRENT_RUN
        // (permanent functions: creating scoped ones per EVAL fed the Lua GC with userdata).
        api.set(
            "call",
            lua.create_function(|lua, args: MultiValue| {
                match CurrentRun::with(|run| script_call(run, lua, args)) {
                    Some(r) => r,
                    None => Ok((
                        1,
                        LuaValue::String(lua.create_string(
                            "redis.call/pcall can only be called inside a script invocation",
                        )?),
                    )),
                }
            })?,
        )?;
        api.set(
            "setresp",
            lua.create_function(|_, v: i64| {
                CurrentRun::with(|run| run.resp3 = v == 3);
                Ok(())
            })?,
        )?;
        api.set(
            "set_repl",
            lua.create_function(|_, v: i64| {
                CurrentRun::with(|run| run.repl_flags = (v & 3) as u8);
                Ok(())
            })?,
        )?;
        api.set(
            "ctramp",
            lua.create_function(|lua, (imp, sentinel): (Function, LuaValue)| {
                // SAFETY: pushes a C closure over the two values exec_raw placed on the stack.
                unsafe {
                    lua.exec_raw::<Function>((imp, sentinel), |state| {
                        mlua::ffi::lua_pushcclosure(state, trampoline, 2);
                    })
                }
            })?,
        )?;
        api.set("fn_register", functions::register_api(&lua)?)?;
        api.set("version", "7.0.15")?;
        api.set("version_num", lua_version_num())?;
        let (run, env, cur, run_fn, load_lib, fenv): (
            Function,
            Table,
            Table,
            Function,
            Function,
            Table,
        ) = lua
            .load(include_str!("prelude.lua"))
            .set_name("@cinnabar_api")
            .call(api.clone())?;
        lua.set_hook(
            mlua::HookTriggers::new().every_nth_instruction(HOOK_PERIOD_INSTRUCTIONS),
            |_, _| {
                let killed = HOOK.with(|h| {
                    let mut h = h.borrow_mut();
                    let Some(h) = h.as_mut() else { return false };
                    if !h.logged
                        && h.threshold_ms > 0
                        && h.started.elapsed() >= Duration::from_millis(h.threshold_ms)
                    {
                        h.logged = true;
                        let function = h.flags.function.is_some();
                        h.busy.add(function);
                        crate::warning!(
                            "Slow script detected: still in execution after {} milliseconds. You can try killing the script using the {} command.",
                            h.started.elapsed().as_millis(),
                            if function { "FUNCTION KILL" } else { "SCRIPT KILL" }
                        );
                    }
                    h.flags.killed.load(Ordering::Acquire)
                });
                if killed {
                    return Err(mlua::Error::RuntimeError(KILLED_MARK.into()));
                }
                Ok(mlua::VmState::Continue)
            },
        )?;
        Ok(Engine {
            lua,
            owner,
            epoch,
            funcs: HashMap::new(),
            run,
            run_fn,
            load_lib,
            fenv,
            fn_callbacks: HashMap::new(),
            fn_epoch: u64::MAX,
            cur,
            env,
            scripts_run: 0,
        })
    }

    /// The compiled function of `sha`, compiling `body` (after its shebang) on first use.
    fn function(&mut self, sha: &str, body: &[u8], shebang_len: usize) -> Result<Function, String> {
        if let Some(f) = self.funcs.get(sha) {
            return Ok(f.clone());
        }
        let f = compile(&self.lua, &self.env, &body[shebang_len..])?;
        self.funcs.insert(sha.to_string(), f.clone());
        Ok(f)
    }
}

fn compile(lua: &Lua, env: &Table, code: &[u8]) -> Result<Function, String> {
    lua.load(code)
        .set_name("@user_script")
        .set_mode(mlua::chunk::ChunkMode::Text)
        .set_environment(env.clone())
        .into_function()
        .map_err(|e| {
            let msg = match e {
                mlua::Error::SyntaxError { message, .. } => message,
                other => other.to_string(),
            };
            format!("Error compiling script (new function): {msg}")
        })
}

/// The C closure behind redis.call & co. (see prelude.lua): calls upvalue 1 with the
/// arguments; when it answers (RAISE, err) — upvalue 2 is RAISE — raises `err` from this C
/// frame, with luaL_error's position prefix when it is a string.
unsafe extern "C-unwind" fn trampoline(state: *mut mlua::ffi::lua_State) -> std::os::raw::c_int {
    use mlua::ffi;
    let n = ffi::lua_gettop(state);
    ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
    ffi::lua_insert(state, 1);
    ffi::lua_call(state, n, ffi::LUA_MULTRET);
    if ffi::lua_gettop(state) >= 1 && ffi::lua_rawequal(state, 1, ffi::lua_upvalueindex(2)) != 0 {
        ffi::lua_settop(state, 2);
        if ffi::lua_type(state, 2) == ffi::LUA_TSTRING {
            ffi::luaL_where(state, 1);
            ffi::lua_insert(state, 2);
            ffi::lua_concat(state, 2);
        }
        ffi::lua_error(state);
    }
    ffi::lua_gettop(state)
}

/// Runs `f` with this thread's engine for `srv` (created or reset as needed).
fn with_engine<R>(srv: &Server, f: impl FnOnce(&mut Engine) -> R) -> Result<R, CmdError> {
    let owner = srv as *const Server as usize;
    let epoch = srv.scripts.epoch.load(Ordering::Acquire);
    ENGINE.with(|cell| {
        let mut slot = cell
            .try_borrow_mut()
            .map_err(|_| CmdError::err("scripting engine busy (nested script call)"))?;
        let fresh = match slot.as_mut() {
            Some(e) if e.owner == owner => {
                if e.epoch != epoch {
                    e.funcs.clear();
                    e.epoch = epoch;
                }
                false
            }
            _ => true,
        };
        if fresh {
            let e = Engine::new(owner, epoch)
                .map_err(|e| CmdError::err(format!("Failed to create the Lua engine: {e}")))?;
            *slot = Some(e);
        }
        match slot.as_mut() {
            Some(e) => Ok(f(e)),
            None => Err(CmdError::err("scripting engine unavailable")),
        }
    })
}

/// luaArgsToRedisArgv: numbers as `%.17g`, strings as they are, anything else refused.
fn lua_args(args: &MultiValue) -> Result<Vec<Bytes>, &'static str> {
    if args.is_empty() {
        return Err("Please specify at least one argument for this redis lib call");
    }
    let mut argv = Vec::with_capacity(args.len());
    for v in args.iter() {
        match v {
            LuaValue::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
            LuaValue::Number(n) => {
                argv.push(Bytes::from(cinnabar_protocol::float::format_g(*n, 17)))
            }
            LuaValue::Integer(i) => argv.push(Bytes::from(i.to_string())),
            _ => return Err("Lua redis lib command arguments must be strings or integers"),
        }
    }
    Ok(argv)
}

// ---------------------------------------------------------------------------------------
// EVAL and friends.

/// Key positions of EVAL-style commands: `numkeys` keys after the script (none when
/// `numkeys` is not a valid count; the handler then reports the error).
pub fn eval_keys(args: &[Bytes]) -> SmallVec<[usize; 4]> {
    let Some(n) = args
        .get(2)
        .and_then(|a| cinnabar_protocol::parser::parse_i64(a))
    else {
        return SmallVec::new();
    };
    if n < 0 || n as usize > args.len().saturating_sub(3) {
        return SmallVec::new();
    }
    (3..3 + n as usize).collect()
}

pub fn cmd_eval(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    eval_generic(ctx, args, false, false)
}

pub fn cmd_evalsha(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    eval_generic(ctx, args, true, false)
}

pub fn cmd_eval_ro(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    eval_generic(ctx, args, false, true)
}

pub fn cmd_evalsha_ro(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    eval_generic(ctx, args, true, true)
}

fn noscript() -> CmdError {
    CmdError::msg("NOSCRIPT No matching script. Please use EVAL.")
}

fn eval_generic(ctx: &mut Ctx, args: &[Bytes], by_sha: bool, ro: bool) -> CmdResult {
    if by_sha && args[1].len() != 40 {
        return Err(noscript());
    }
    let Some(numkeys) = cinnabar_protocol::parser::parse_i64(&args[2]) else {
        return Err(CmdError::NotInteger);
    };
    if numkeys > args.len() as i64 - 3 {
        return Err(CmdError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    if numkeys < 0 {
        return Err(CmdError::err("Number of keys can't be negative"));
    }
    let srv = ctx.srv;
    let (sha, script) = if by_sha {
        let sha = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        let Some(s) = srv.scripts.get(&sha) else {
            return Err(noscript());
        };
        (sha, s)
    } else {
        let sha = sha1hex(&args[1]);
        match srv.scripts.get(&sha) {
            Some(s) => (sha, s),
            None => {
                let s = load_script(srv, &args[1], &sha)?;
                (sha, s)
            }
        }
    };
    prepare_checks(ctx, script.flags, ro)?;
    let keys = &args[3..3 + numkeys as usize];
    let argv = &args[3 + numkeys as usize..];
    run_script(
        ctx,
        Target::Eval {
            sha: &sha,
            script: &script,
        },
        keys,
        argv,
        ro,
    )
}

/// Compiles `body` on this thread (reporting shebang and syntax errors) and caches it.
fn load_script(srv: &Server, body: &Bytes, sha: &str) -> Result<Arc<Script>, CmdError> {
    let (flags, shebang_len) = parse_shebang(body).map_err(CmdError::err)?;
    with_engine(srv, |e| e.function(sha, body, shebang_len))?.map_err(CmdError::err)?;
    Ok(srv.scripts.insert(
        sha.to_string(),
        Script {
            body: body.clone(),
            flags,
            shebang_len,
        },
    ))
}

/// scriptPrepareForRun's refusals.
fn prepare_checks(ctx: &Ctx, script_flags: u32, ro: bool) -> CmdResult {
    let srv = ctx.srv;
    let settings = srv.settings();
    let running_stale =
        srv.repl.is_replica() && !srv.repl.master_link_up() && !settings.replica_serve_stale_data;
    if script_flags & flag::EVAL_COMPAT != 0 {
        if running_stale {
            return Err(CmdError::msg(
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            ));
        }
        return Ok(());
    }
    if script_flags & flag::NO_CLUSTER != 0 && srv.cluster.is_some() {
        return Err(CmdError::err(
            "Can not run script on cluster, 'no-cluster' flag is set.",
        ));
    }
    if script_flags & flag::ALLOW_OOM == 0
        && ctx.cl.script_oom
        && srv.evict.maxmemory_bytes.load(Ordering::Relaxed) != 0
    {
        return Err(CmdError::msg(
            "OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'",
        ));
    }
    if running_stale && script_flags & flag::ALLOW_STALE == 0 {
        return Err(CmdError::msg("MASTERDOWN Link with MASTER is down, replica-serve-stale-data is set to 'no' and 'allow-stale' flag is not set on the script."));
    }
    if script_flags & flag::NO_WRITES == 0 {
        if srv.repl.is_replica() && settings.replica_read_only && !ctx.cl.is_master {
            return Err(CmdError::err(
                "Can not run script with write flag on readonly replica",
            ));
        }
        if !srv.repl.is_replica() {
            if !srv.persist.rdb.last_bgsave_ok.load(Ordering::Relaxed)
                && crate::persist::rdbfile::writes_refused(srv)
            {
                return Err(CmdError::msg("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Writable scripts are blocked. Use 'no-writes' flag for read only scripts."));
            }
            if let Some(e) = srv.persist.aof.write_error() {
                return Err(CmdError::Msg(format!("MISCONF Redis is configured to persist data to AOF, but it's currently unable to persist to disk. Writable scripts are blocked. Use 'no-writes' flag for read only scripts. AOF error: {e}")));
            }
        }
        if ro {
            return Err(CmdError::err(
                "Can not execute a script with write flag using *_ro command.",
            ));
        }
    }
    Ok(())
}

thread_local! {
    /// The script running on this thread: a `RefCell<Run>` on `run_script`'s stack, set only
    /// while its Lua function runs (see `CurrentRun`).
    static CURRENT_RUN: std::cell::Cell<*const ()> = const { std::cell::Cell::new(std::ptr::null()) };
}

/// Publishes a running script to the thread's `redis.call` callback for the guard's lifetime.
struct CurrentRun {
    prev: *const (),
}

impl CurrentRun {
    fn enter(run: &RefCell<Run<'_, '_>>) -> CurrentRun {
        let p = run as *const RefCell<Run<'_, '_>> as *const ();
        CurrentRun {
            prev: CURRENT_RUN.with(|c| c.replace(p)),
        }
    }

    /// `f` on the running script; None outside a script (or if it is already borrowed).
    fn with<R>(f: impl FnOnce(&mut Run<'_, '_>) -> R) -> Option<R> {
        let p = CURRENT_RUN.with(|c| c.get());
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` was set by `enter` from a `RefCell<Run>` that outlives the guard, and
        // the guard is dropped (resetting the pointer) before `run_script` returns; only the
        // lifetimes are erased, the reference is used synchronously inside this call.
        let cell = unsafe { &*(p as *const RefCell<Run<'static, 'static>>) };
        let mut run = cell.try_borrow_mut().ok()?;
        Some(f(&mut run))
    }
}

impl Drop for CurrentRun {
    fn drop(&mut self) {
        CURRENT_RUN.with(|c| c.set(self.prev));
    }
}

/// State of one running script, shared by the `redis.call` callback.
struct Run<'c, 'a> {
    ctx: &'c mut Ctx<'a>,
    read_only: bool,
    allow_oom: bool,
    /// The script client's protocol (redis.setresp).
    resp3: bool,
    /// redis.set_repl flags (bit 0 AOF, bit 1 replicas).
    repl_flags: u8,
    propagate: bool,
    flags: Arc<RunFlags>,
    /// Databases whose 16384 slots are all held (keyspace-wide commands need them).
    full_dbs: SmallVec<[u32; 2]>,
    effects: Vec<(u32, Vec<Vec<u8>>)>,
}

/// What `run_script` runs: an EVAL script or a FUNCTION library's function.
pub(crate) enum Target<'t> {
    Eval { sha: &'t str, script: &'t Script },
    Function { name: &'t str, flags: u32 },
}

pub(crate) fn run_script(
    ctx: &mut Ctx,
    target: Target,
    keys: &[Bytes],
    argv: &[Bytes],
    ro: bool,
) -> CmdResult {
    let srv = ctx.srv;
    let (script_flags, label, is_function) = match &target {
        Target::Eval { sha, script } => (script.flags, *sha, false),
        Target::Function { name, flags } => (*flags, *name, true),
    };
    let sha = label;
    let compat = script_flags & flag::EVAL_COMPAT != 0;
    let flags = Arc::new(RunFlags {
        killed: AtomicBool::new(false),
        wrote: AtomicBool::new(false),
        from_master: ctx.cl.is_master,
        function: is_function.then(|| label.to_string()),
        started: Instant::now(),
    });
    srv.scripts.running.lock().push(flags.clone());
    let _unregister = Unregister {
        cache: &srv.scripts,
        flags: flags.clone(),
    };
    // The script client: its own selected database (SELECT inside a script does not leak
    // since 7.0), RESP2 until redis.setresp, replies always produced.
    let saved_db = ctx.cl.db;
    let saved_resp = ctx.cl.resp;
    let saved_mode = ctx.cl.reply_mode;
    let saved_in_exec = ctx.cl.in_exec;
    let in_exec = ctx.cl.in_exec;
    ctx.cl.reply_mode = crate::client::ReplyMode::On;
    let full_dbs: SmallVec<[u32; 2]> = if ctx.db.all_locked {
        smallvec::smallvec![ctx.db.index]
    } else {
        SmallVec::new()
    };
    let saved_all_locked = ctx.db.all_locked;
    let caller_resp3 = saved_resp == Resp::V3;
    let run = RefCell::new(Run {
        ctx: &mut *ctx,
        read_only: ro || (!compat && script_flags & flag::NO_WRITES != 0),
        allow_oom: !compat && script_flags & flag::ALLOW_OOM != 0,
        resp3: false,
        repl_flags: 3,
        propagate: srv.repl.needs_feed() && !srv.repl.is_replica(),
        flags: flags.clone(),
        full_dbs,
        effects: Vec::new(),
    });
    let threshold_ms = srv.settings().busy_reply_threshold_ms;
    HOOK.with(|h| {
        *h.borrow_mut() = Some(HookState {
            flags: flags.clone(),
            busy: srv.scripts.busy.clone(),
            started: Instant::now(),
            threshold_ms,
            logged: false,
        })
    });
    let outcome = with_engine(srv, |e| -> Result<Outcome, String> {
        let lua = &e.lua.clone();
        let to_strings = |items: &[Bytes]| -> mlua::Result<Table> {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, a) in items.iter().enumerate() {
                t.raw_set(i + 1, lua.create_string(&a[..])?)?;
            }
            Ok(t)
        };
        let lua_err = |err: mlua::Error| err.to_string();
        let call = match &target {
            Target::Eval { sha, script } => {
                let f = e.function(sha, &script.body, script.shebang_len)?;
                e.cur
                    .raw_set("KEYS", to_strings(keys).map_err(lua_err)?)
                    .map_err(lua_err)?;
                e.cur
                    .raw_set("ARGV", to_strings(argv).map_err(lua_err)?)
                    .map_err(lua_err)?;
                (
                    e.run.clone(),
                    MultiValue::from_vec(vec![LuaValue::Function(f)]),
                )
            }
            Target::Function { name, .. } => {
                e.ensure_functions(srv);
                let Some(cb) = e.fn_callbacks.get(*name).cloned() else {
                    return Err("ERR Function not found".into());
                };
                let k = to_strings(keys).map_err(lua_err)?;
                let a = to_strings(argv).map_err(lua_err)?;
                (
                    e.run_fn.clone(),
                    MultiValue::from_vec(vec![
                        LuaValue::Function(cb),
                        LuaValue::Table(k),
                        LuaValue::Table(a),
                    ]),
                )
            }
        };
        let result = (|| -> mlua::Result<Outcome> {
            let _current = CurrentRun::enter(&run);
            let (ok, value): (bool, LuaValue) = call.0.call(call.1)?;
            let resp3 = run.borrow().resp3;
            let mut out = ReplyBuf::new(if caller_resp3 { Resp::V3 } else { Resp::V2 });
            let o = if ok {
                let top_error = returned_error(&value);
                match top_error {
                    Some((msg, ignore)) => Outcome::Error(msg, ignore),
                    None => {
                        let mut errors = Vec::new();
                        lua_to_resp(&value, &mut out, resp3, 0, &mut errors);
                        Outcome::Reply(out.buf, errors)
                    }
                }
            } else {
                raised_error(&value, sha)
            };
            Ok(o)
        })();
        let _ = e.cur.raw_set("KEYS", LuaValue::Nil);
        let _ = e.cur.raw_set("ARGV", LuaValue::Nil);
        // Redis's LUA_GC_CYCLE_PERIOD: one incremental collector step every 50 scripts.
        e.scripts_run += 1;
        if e.scripts_run % GC_CYCLE_PERIOD == 0 {
            let _ = lua.gc_step();
        }
        result.map_err(|err| err.to_string())
    });
    if let Some(h) = HOOK.with(|h| h.borrow_mut().take()) {
        if h.logged {
            h.busy.sub(h.flags.function.is_some());
        }
    }
    let Run {
        effects, full_dbs, ..
    } = run.into_inner();
    drop(full_dbs);
    // Restore the caller.
    ctx.cl.db = saved_db;
    ctx.cl.info.db.store(saved_db, Ordering::Relaxed);
    ctx.db.index = saved_db;
    ctx.cl.resp = saved_resp;
    ctx.cl.reply_mode = saved_mode;
    ctx.cl.in_exec = saved_in_exec;
    ctx.db.all_locked = saved_all_locked;
    // Effects: inside EXEC they join the transaction's own batch (in order); otherwise
    // they are propagated now, while the slots are still held.
    if !effects.is_empty() {
        if in_exec {
            ctx.cl.script_effects.extend(effects);
        } else {
            srv.repl.propagate_batch(&effects, true);
        }
    }
    let outcome = outcome?;
    match outcome {
        Ok(Outcome::Reply(bytes, errors)) => {
            for e in errors {
                srv.stats.count_error(&e);
            }
            ctx.out.raw(&bytes);
            Ok(())
        }
        Ok(Outcome::Error(msg, ignore)) => {
            if ignore {
                ctx.out.error_bytes(&msg);
                Ok(())
            } else {
                Err(CmdError::Raw(msg))
            }
        }
        Err(msg) => Err(CmdError::Raw(
            format!("ERR Error running script {sha}, {msg}").into_bytes(),
        )),
    }
}

struct Unregister<'a> {
    cache: &'a ScriptCache,
    flags: Arc<RunFlags>,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.cache
            .running
            .lock()
            .retain(|f| !Arc::ptr_eq(f, &self.flags));
    }
}

enum Outcome {
    /// The reply, plus the texts of error replies nested in it (for errorstats).
    Reply(Vec<u8>, Vec<String>),
    /// An error reply (text after `-`) and whether it skips the error statistics.
    Error(Vec<u8>, bool),
}

fn str_field(t: &Table, name: &str) -> Option<Vec<u8>> {
    match t.raw_get::<LuaValue>(name).ok()? {
        LuaValue::String(s) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

/// A returned `{err=...}` table at the top: Redis replies `-<err>` (no script suffix).
fn returned_error(v: &LuaValue) -> Option<(Vec<u8>, bool)> {
    let LuaValue::Table(t) = v else { return None };
    let msg = str_field(t, "err")?;
    let ignore = matches!(
        t.raw_get::<LuaValue>("ignore_error_stats_update"),
        Ok(LuaValue::Boolean(true))
    );
    Some((msg, ignore))
}

/// The error a script raised (the handler's table): `<err> script: <sha>, on <source>:<line>.`
fn raised_error(v: &LuaValue, sha: &str) -> Outcome {
    let LuaValue::Table(t) = v else {
        let msg = match v {
            LuaValue::String(s) => s.to_string_lossy(),
            _ => "execution failure".to_string(),
        };
        let msg: String = msg.chars().take(100).collect();
        return Outcome::Error(
            format!("ERR Error running script {sha}, {msg}").into_bytes(),
            false,
        );
    };
    let mut msg = match t.raw_get::<LuaValue>("err") {
        Ok(LuaValue::String(s)) => s.as_bytes().to_vec(),
        Ok(LuaValue::Number(n)) => cinnabar_protocol::float::format_g(n, 14).into_bytes(),
        Ok(LuaValue::Integer(n)) => n.to_string().into_bytes(),
        _ => b"ERR unknown error".to_vec(),
    };
    let source = str_field(t, "source");
    let line = match t.raw_get::<LuaValue>("line") {
        Ok(LuaValue::Number(n)) => Some(cinnabar_protocol::float::format_g(n, 14)),
        Ok(LuaValue::Integer(n)) => Some(n.to_string()),
        Ok(LuaValue::String(s)) => Some(s.to_string_lossy()),
        _ => None,
    };
    if let (Some(source), Some(line)) = (source, line) {
        msg.extend_from_slice(b" script: ");
        msg.extend_from_slice(sha.as_bytes());
        msg.extend_from_slice(b", on ");
        msg.extend_from_slice(&source);
        msg.push(b':');
        msg.extend_from_slice(line.as_bytes());
        msg.push(b'.');
    }
    let ignore = matches!(
        t.raw_get::<LuaValue>("ignore_error_stats_update"),
        Ok(LuaValue::Boolean(true))
    );
    Outcome::Error(msg, ignore)
}

/// `(long long)` of a Lua number as x86 computes it: NaN and out-of-range give i64::MIN.
fn lua_number_to_i64(n: f64) -> i64 {
    // 2^63 is exactly representable; every double in [-2^63, 2^63) fits an i64.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if !(-TWO_63..TWO_63).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

/// luaReplyToRedisReply.
fn lua_to_resp(
    v: &LuaValue,
    out: &mut ReplyBuf,
    script_resp3: bool,
    depth: usize,
    errors: &mut Vec<String>,
) {
    if depth > MAX_REPLY_DEPTH {
        out.error("ERR reached lua stack limit");
        errors.push("ERR reached lua stack limit".into());
        return;
    }
    match v {
        LuaValue::String(s) => out.bulk(&s.as_bytes()),
        LuaValue::Boolean(b) => {
            if script_resp3 {
                out.boolean(*b);
            } else if *b {
                out.int(1);
            } else {
                out.null();
            }
        }
        LuaValue::Number(n) => out.int(lua_number_to_i64(*n)),
        LuaValue::Integer(i) => out.int(*i),
        LuaValue::Table(t) => {
            if let Some(msg) = str_field(t, "err") {
                errors.push(String::from_utf8_lossy(&msg).into_owned());
                out.error_bytes(&msg);
                return;
            }
            if let Some(ok) = str_field(t, "ok") {
                out.buf.push(b'+');
                for c in ok {
                    out.buf
                        .push(if c == b'\r' || c == b'\n' { b' ' } else { c });
                }
                out.buf.extend_from_slice(b"\r\n");
                return;
            }
            match t.raw_get::<LuaValue>("double") {
                Ok(LuaValue::Number(d)) => return out.double(d),
                Ok(LuaValue::Integer(d)) => return out.double(d as f64),
                _ => {}
            }
            if let Some(big) = str_field(t, "big_number") {
                let big: Vec<u8> = big
                    .into_iter()
                    .map(|c| if c == b'\r' || c == b'\n' { b' ' } else { c })
                    .collect();
                if out.is_resp3() {
                    out.buf.push(b'(');
                    out.buf.extend_from_slice(&big);
                    out.buf.extend_from_slice(b"\r\n");
                } else {
                    out.bulk(&big);
                }
                return;
            }
            if let Ok(LuaValue::Table(vt)) = t.raw_get::<LuaValue>("verbatim_string") {
                if let (Some(format), Some(s)) =
                    (str_field(&vt, "format"), str_field(&vt, "string"))
                {
                    let f = String::from_utf8_lossy(&format[..format.len().min(3)]).into_owned();
                    out.verbatim(&f, &s);
                    return;
                }
            }
            if let Ok(LuaValue::Table(m)) = t.raw_get::<LuaValue>("map") {
                let pairs: Vec<(LuaValue, LuaValue)> = m
                    .pairs::<LuaValue, LuaValue>()
                    .filter_map(|p| p.ok())
                    .collect();
                out.map(pairs.len());
                for (k, v) in &pairs {
                    lua_to_resp(k, out, script_resp3, depth + 1, errors);
                    lua_to_resp(v, out, script_resp3, depth + 1, errors);
                }
                return;
            }
            if let Ok(LuaValue::Table(s)) = t.raw_get::<LuaValue>("set") {
                let members: Vec<LuaValue> = s
                    .pairs::<LuaValue, LuaValue>()
                    .filter_map(|p| p.ok().map(|(k, _)| k))
                    .collect();
                out.set(members.len());
                for k in &members {
                    lua_to_resp(k, out, script_resp3, depth + 1, errors);
                }
                return;
            }
            let mut items = Vec::new();
            let mut j = 1i64;
            loop {
                match t.raw_get::<LuaValue>(j) {
                    Ok(LuaValue::Nil) | Err(_) => break,
                    Ok(v) => items.push(v),
                }
                j += 1;
            }
            out.array(items.len());
            for v in &items {
                lua_to_resp(v, out, script_resp3, depth + 1, errors);
            }
        }
        _ => out.null(),
    }
}

// ---------------------------------------------------------------------------------------
// redis.call

/// One `redis.call` / `redis.pcall`: (0, value) on success, (1, "-CODE message") when the
/// command failed or was refused (the prelude turns it into an error table).
fn script_call(run: &mut Run, lua: &Lua, args: MultiValue) -> mlua::Result<(i32, LuaValue)> {
    let fail = |msg: &[u8]| -> mlua::Result<(i32, LuaValue)> {
        Ok((1, LuaValue::String(lua.create_string(msg)?)))
    };
    let argv = match lua_args(&args) {
        Ok(a) => a,
        Err(msg) => return fail(msg.as_bytes()),
    };
    drop(args);
    let (spec, stat_idx) = match crate::cmd::resolve(&argv) {
        Resolved::Ok(spec, _, idx) => (spec, idx),
        Resolved::Err(CmdError::Arity(_)) => {
            return fail(b"Wrong number of args calling Redis command from script")
        }
        Resolved::Err(_) => return fail(b"Unknown Redis command called from script"),
    };
    match script_call_checks(run, spec, &argv) {
        Ok(()) => {}
        Err(msg) => return fail(msg.as_bytes()),
    }
    let ctx = &mut *run.ctx;
    let srv = ctx.srv;
    if spec.flags & flags::WRITE != 0 {
        run.flags.wrote.store(true, Ordering::Release);
    }
    // Locks: the slots of this call's keys (and every slot for keyspace-wide commands).
    let keyslots = crate::cmd::key_slots(spec, &argv);
    let db_index = ctx.db.index;
    let mut wanted: SmallVec<[(u32, u16); 4]> =
        keyslots.iter().map(|&(_, s)| (db_index, s)).collect();
    if let Some(t) = crate::cmd::extra_db(spec, &argv, srv.keyspace.db_count()) {
        for &(_, s) in &keyslots {
            wanted.push((t, s));
        }
    }
    let wide = (spec.flags & flags::KEYSPACE_WIDE != 0
        || matches!(spec.name, "flushall" | "swapdb"))
        && !run.full_dbs.contains(&db_index);
    if wide {
        wanted.extend((0..SLOT_COUNT as u16).map(|s| (db_index, s)));
    }
    if !wanted.is_empty() {
        let deadline = Instant::now() + Duration::from_millis(LOCK_WAIT_MS);
        if ctx
            .db
            .locks
            .acquire_more(&srv.keyspace, &wanted, deadline)
            .is_none()
        {
            return fail(b"Script attempted to access a key whose slot is held by another command (waited 1000 ms); declare every key the script uses in KEYS");
        }
        if wide {
            run.full_dbs.push(db_index);
        }
    }
    // Cluster: every key must be served here (scriptVerifyClusterState).
    if let Err(msg) = cluster_state_check(ctx, spec, &argv, &keyslots) {
        return fail(msg.as_bytes());
    }
    // Run it as the script client.
    let mut scratch = ReplyBuf::new(if run.resp3 { Resp::V3 } else { Resp::V2 });
    std::mem::swap(ctx.out, &mut scratch);
    let caller_resp = ctx.cl.resp;
    ctx.cl.resp = if run.resp3 { Resp::V3 } else { Resp::V2 };
    let caller_name = ctx.name;
    ctx.name = spec.name;
    let caller_all_locked = ctx.db.all_locked;
    ctx.db.all_locked = run.full_dbs.contains(&ctx.db.index);
    ctx.cl.in_exec = true;
    let dirty_before = ctx.db.dirty;
    let started = Instant::now();
    let res = (spec.handler)(ctx, &argv);
    let elapsed_us = started.elapsed().as_micros() as u64;
    ctx.name = caller_name;
    ctx.cl.resp = caller_resp;
    ctx.db.all_locked = caller_all_locked;
    std::mem::swap(ctx.out, &mut scratch);
    let db_after = ctx.db.index;
    if ctx.db.dirty > dirty_before {
        if run.propagate && run.repl_flags != 0 {
            let is_write = spec.flags & flags::WRITE != 0 && res.is_ok();
            run.effects.extend(crate::repl::rewrite(
                spec.name,
                is_write,
                &argv,
                &mut ctx.db,
                &scratch.buf,
            ));
        } else {
            ctx.db.expired.clear();
            ctx.db.propagate_as = None;
        }
        if spec.flags & flags::WRITE != 0 {
            for &(p, _) in &keyslots {
                srv.touch_watched(db_after, &argv[p]);
                srv.signal_ready(db_after, &argv[p]);
            }
        }
    }
    if srv.pubsub.has_monitors() && spec.flags & (flags::ADMIN | flags::SKIP_MONITOR) == 0 {
        srv.pubsub.feed_monitors(db_after, &ctx.cl.info, &argv);
    }
    let st = &srv.cmd_stats[stat_idx];
    st.record(elapsed_us);
    srv.stats
        .total_commands_processed
        .fetch_add(1, Ordering::Relaxed);
    if let Err(e) = res {
        st.failed_calls.fetch_add(1, Ordering::Relaxed);
        srv.stats.count_error(&e.text());
        let mut msg = b"-".to_vec();
        msg.extend_from_slice(&e.bytes());
        return fail(&msg);
    }
    let buf = &scratch.buf;
    if buf.first() == Some(&b'-') {
        let end = memchr::memchr(b'\r', buf).unwrap_or(buf.len());
        return fail(&buf[..end]);
    }
    let mut pos = 0usize;
    let v = resp_to_lua(lua, buf, &mut pos, 0)?;
    Ok((0, v))
}

/// scriptCall's refusals before the command runs (its own message, without `-`, or a
/// `-CODE message` for the shared Redis errors).
fn script_call_checks(
    run: &Run,
    spec: &'static crate::cmd::CommandSpec,
    _argv: &[Bytes],
) -> Result<(), String> {
    let ctx = &*run.ctx;
    let srv = ctx.srv;
    if spec.flags & flags::NOSCRIPT != 0 {
        return Err("This Redis command is not allowed from script".into());
    }
    let settings = srv.settings();
    if srv.repl.is_replica()
        && !srv.repl.master_link_up()
        && !settings.replica_serve_stale_data
        && spec.flags & flags::STALE == 0
    {
        return Err("Can not execute the command on a stale replica".into());
    }
    if spec.flags & flags::WRITE != 0 {
        if run.read_only {
            return Err("Write commands are not allowed from read-only scripts.".into());
        }
        if srv.repl.is_replica() && settings.replica_read_only && !ctx.cl.is_master {
            return Err("-READONLY You can't write against a read only replica.".into());
        }
        if !srv.persist.rdb.last_bgsave_ok.load(Ordering::Relaxed)
            && crate::persist::rdbfile::writes_refused(srv)
        {
            return Err("-MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.".into());
        }
        if let Some(e) = srv.persist.aof.write_error() {
            return Err(format!("-MISCONF Errors writing to the AOF file: {e}"));
        }
    }
    // scriptVerifyOOM: only before the script's first write.
    if !run.allow_oom
        && srv.evict.maxmemory_bytes.load(Ordering::Relaxed) != 0
        && !ctx.cl.is_master
        && !srv.repl.is_replica()
        && !run.flags.wrote.load(Ordering::Acquire)
        && ctx.cl.script_oom
        && spec.flags & flags::DENYOOM != 0
    {
        return Err("-OOM command not allowed when used memory > 'maxmemory'.".into());
    }
    Ok(())
}

/// scriptVerifyClusterState: the call's keys must be served by this node (the slots are
/// locked, so an open slot's ASK verdict is final).
fn cluster_state_check(
    ctx: &mut Ctx,
    spec: &'static crate::cmd::CommandSpec,
    argv: &[Bytes],
    keyslots: &[(usize, u16)],
) -> Result<(), String> {
    if ctx.srv.cluster.is_none() || ctx.cl.is_master {
        return Ok(());
    }
    let verdict = match crate::cmd::cluster_check(ctx.srv, ctx.cl, spec, argv, keyslots) {
        Ok(None) => Ok(()),
        Ok(Some(open)) => open.verdict_here(&mut ctx.db),
        Err(e) => Err(e),
    };
    match verdict {
        Ok(()) => Ok(()),
        Err(e) => {
            let t = e.text();
            if t.starts_with("CLUSTERDOWN The cluster is down and only accepts read commands") {
                Err("Script attempted to execute a write command while the cluster is down and readonly".into())
            } else if t.starts_with("CLUSTERDOWN The cluster is down") {
                Err("Script attempted to execute a command while the cluster is down".into())
            } else {
                Err("Script attempted to access a non local key in a cluster node".into())
            }
        }
    }
}

/// redisProtocolToLuaType: a reply our own handlers produced, as a Lua value.
fn resp_to_lua(lua: &Lua, buf: &[u8], pos: &mut usize, depth: usize) -> mlua::Result<LuaValue> {
    if depth > MAX_REPLY_DEPTH {
        return Err(mlua::Error::RuntimeError("reply nested too deeply".into()));
    }
    let line = |pos: &mut usize| -> mlua::Result<Vec<u8>> {
        let start = *pos + 1;
        let rest = buf.get(start..).unwrap_or(&[]);
        let Some(end) = memchr::memchr(b'\r', rest) else {
            return Err(mlua::Error::RuntimeError("truncated reply".into()));
        };
        *pos = start + end + 2;
        Ok(rest[..end].to_vec())
    };
    let int_of = |b: &[u8]| cinnabar_protocol::parser::parse_i64(b).unwrap_or(0);
    let Some(&kind) = buf.get(*pos) else {
        return Err(mlua::Error::RuntimeError("empty reply".into()));
    };
    let table1 = |k: &str, v: LuaValue| -> mlua::Result<LuaValue> {
        let t = lua.create_table()?;
        t.raw_set(k, v)?;
        Ok(LuaValue::Table(t))
    };
    match kind {
        b'+' => {
            let s = line(pos)?;
            table1("ok", LuaValue::String(lua.create_string(&s)?))
        }
        b'-' => {
            let s = line(pos)?;
            // luaPushErrorBuff on "-<text>".
            let (code, msg) = match memchr::memchr(b' ', &s) {
                Some(i) => (&s[..i], &s[i + 1..]),
                None => (&b"ERR"[..], &s[..]),
            };
            let mut full = code.to_vec();
            full.push(b' ');
            full.extend_from_slice(msg);
            let t = lua.create_table()?;
            t.raw_set("err", lua.create_string(&full)?)?;
            t.raw_set("ignore_error_stats_update", true)?;
            Ok(LuaValue::Table(t))
        }
        b':' => Ok(LuaValue::Number(int_of(&line(pos)?) as f64)),
        b'$' | b'=' => {
            let n = int_of(&line(pos)?);
            if n < 0 {
                return Ok(LuaValue::Boolean(false));
            }
            let n = n as usize;
            let data = buf
                .get(*pos..*pos + n)
                .ok_or_else(|| mlua::Error::RuntimeError("truncated reply".into()))?;
            *pos += n + 2;
            if kind == b'=' && data.len() >= 4 {
                let inner = lua.create_table()?;
                inner.raw_set("string", lua.create_string(&data[4..])?)?;
                inner.raw_set("format", lua.create_string(&data[..3])?)?;
                return table1("verbatim_string", LuaValue::Table(inner));
            }
            Ok(LuaValue::String(lua.create_string(data)?))
        }
        b'*' | b'>' => {
            let n = int_of(&line(pos)?);
            if n < 0 {
                return Ok(LuaValue::Boolean(false));
            }
            let t = lua.create_table_with_capacity(n as usize, 0)?;
            for i in 0..n {
                let v = resp_to_lua(lua, buf, pos, depth + 1)?;
                t.raw_set(i + 1, v)?;
            }
            Ok(LuaValue::Table(t))
        }
        b'%' => {
            let n = int_of(&line(pos)?);
            let m = lua.create_table()?;
            for _ in 0..n.max(0) {
                let k = resp_to_lua(lua, buf, pos, depth + 1)?;
                let v = resp_to_lua(lua, buf, pos, depth + 1)?;
                if !matches!(k, LuaValue::Nil) {
                    m.raw_set(k, v)?;
                }
            }
            table1("map", LuaValue::Table(m))
        }
        b'~' => {
            let n = int_of(&line(pos)?);
            let s = lua.create_table()?;
            for _ in 0..n.max(0) {
                let k = resp_to_lua(lua, buf, pos, depth + 1)?;
                if !matches!(k, LuaValue::Nil) {
                    s.raw_set(k, true)?;
                }
            }
            table1("set", LuaValue::Table(s))
        }
        b'|' => {
            let n = int_of(&line(pos)?);
            for _ in 0..n.max(0) * 2 {
                resp_to_lua(lua, buf, pos, depth + 1)?;
            }
            resp_to_lua(lua, buf, pos, depth + 1)
        }
        b'_' => {
            line(pos)?;
            Ok(LuaValue::Nil)
        }
        b'#' => Ok(LuaValue::Boolean(line(pos)? == b"t")),
        b',' => {
            let s = line(pos)?;
            let d = match &s[..] {
                b"inf" => f64::INFINITY,
                b"-inf" => f64::NEG_INFINITY,
                b"nan" => f64::NAN,
                other => std::str::from_utf8(other)
                    .ok()
                    .and_then(|x| x.parse::<f64>().ok())
                    .unwrap_or(0.0),
            };
            table1("double", LuaValue::Number(d))
        }
        b'(' => {
            let s = line(pos)?;
            table1("big_number", LuaValue::String(lua.create_string(&s)?))
        }
        _ => Err(mlua::Error::RuntimeError("unknown reply type".into())),
    }
}

// ---------------------------------------------------------------------------------------
// SCRIPT

pub fn script_help(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    crate::cmd::connection::help_reply(
        ctx,
        &[
            "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DEBUG (YES|SYNC|NO)",
            "    Set the debug mode for subsequent scripts executed.",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
            "HELP",
            "    Prints this help.",
        ],
    );
    Ok(())
}

pub fn script_load(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let sha = sha1hex(&args[2]);
    if ctx.srv.scripts.get(&sha).is_none() {
        load_script(ctx.srv, &args[2], &sha)?;
    }
    ctx.out.bulk(sha.as_bytes());
    Ok(())
}

pub fn script_exists(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    ctx.out.array(args.len() - 2);
    for a in &args[2..] {
        let sha = String::from_utf8_lossy(a).to_ascii_lowercase();
        let found = a.len() == 40 && ctx.srv.scripts.get(&sha).is_some();
        ctx.out.int(found as i64);
    }
    Ok(())
}

/// SCRIPT FLUSH / FUNCTION FLUSH arguments: nothing, SYNC or ASYNC.
pub(crate) fn flush_mode_ok(args: &[Bytes]) -> bool {
    match args.len() {
        2 => true,
        3 => args[2].eq_ignore_ascii_case(b"sync") || args[2].eq_ignore_ascii_case(b"async"),
        _ => false,
    }
}

pub fn script_flush(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if !flush_mode_ok(args) {
        return Err(CmdError::err("SCRIPT FLUSH only support SYNC|ASYNC option"));
    }
    ctx.srv.scripts.flush();
    ctx.out.ok();
    Ok(())
}

pub fn script_kill(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    kill_running(ctx, false)
}

/// scriptKill for SCRIPT KILL (`functions` false) and FUNCTION KILL (true).
pub(crate) fn kill_running(ctx: &mut Ctx, functions: bool) -> CmdResult {
    let running = ctx.srv.scripts.running.lock();
    if running.is_empty() {
        return Err(CmdError::msg("NOTBUSY No scripts in execution right now."));
    }
    if running.iter().any(|f| f.from_master) {
        return Err(CmdError::msg("UNKILLABLE The busy script was sent by a master instance in the context of replication and cannot be killed."));
    }
    let mine: Vec<&Arc<RunFlags>> = running
        .iter()
        .filter(|f| f.function.is_some() == functions)
        .collect();
    if mine.is_empty() {
        return Err(CmdError::msg(if functions {
            BUSY_EVAL
        } else {
            BUSY_FUNCTION
        }));
    }
    if mine.iter().any(|f| f.wrote.load(Ordering::Acquire)) {
        return Err(CmdError::msg("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command."));
    }
    for f in mine {
        f.killed.store(true, Ordering::Release);
    }
    ctx.out.ok();
    Ok(())
}

pub fn script_debug(_ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    Err(CmdError::err(
        "SCRIPT DEBUG (the Lua debugger) is not supported by Cinnabar",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_flags() {
        assert_eq!(parse_shebang(b"return 1"), Ok((flag::EVAL_COMPAT, 0)));
        assert_eq!(
            parse_shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1"),
            Ok((flag::NO_WRITES | flag::ALLOW_OOM, 31))
        );
        assert_eq!(parse_shebang(b"#!lua flags=\nx"), Ok((0, 12)));
        assert_eq!(
            parse_shebang(b"#!lua"),
            Err("Invalid script shebang".to_string())
        );
        assert_eq!(
            parse_shebang(b"#!notlua\n"),
            Err("Unexpected engine in script shebang: #!notlua".to_string())
        );
        assert_eq!(
            parse_shebang(b"#!lua name=x\n"),
            Err("Unknown lua shebang option: name=x".to_string())
        );
        assert_eq!(
            parse_shebang(b"#!lua flags=bogus\n"),
            Err("Unexpected flag in script shebang: bogus".to_string())
        );
    }

    #[test]
    fn sha1_of_script() {
        // SCRIPT LOAD "return 1" on redis-server 7.0.15.
        assert_eq!(
            sha1hex(b"return 1"),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }

    #[test]
    fn lua_number_casts_like_x86() {
        assert_eq!(lua_number_to_i64(3.99), 3);
        assert_eq!(lua_number_to_i64(-3.99), -3);
        assert_eq!(lua_number_to_i64(1e30), i64::MIN);
        assert_eq!(lua_number_to_i64(f64::NAN), i64::MIN);
    }
}
