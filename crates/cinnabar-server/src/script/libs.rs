//! The four C libraries Redis embeds in its Lua 5.1 interpreter — `cjson`,
//! `cmsgpack`, `bit` and `struct` — re-implemented in Rust on top of `mlua`.
//!
//! This module owns what scripts see through those four globals, and aims to
//! match redis-server 7.0.15 byte for byte: lua-cjson 2.1.0 (as patched by
//! Redis: encode/decode depth 1000, `%.14g` numbers, `\/` escaping, sparse
//! array rule 2/10, the config functions, `cjson.null`), lua-cmsgpack 0.4.0
//! (smallest integer encoding, float32 when exact, `table_is_an_array`,
//! nesting cut at 16, `unpack_one`/`unpack_limit`), LuaBitOp 1.0.2 (32-bit
//! semantics through the 2^52+2^51 rounding trick) and Roberto
//! Ierusalimschy's `struct` (with Redis's overflow and offset checks).
//!
//! **Errors are plain strings, raised from a C frame.** mlua turns a Rust
//! callback's `Err` into a userdata error object, but the original libraries
//! raise strings (scripts see them through `pcall`), and `luaL_error` /
//! `luaL_argerror` derive the `user_script:1: ` prefix and the
//! `bad argument #1 to 'encode'` name from the calling stack frame. So each
//! library function is a small C closure ([`trampoline`]) around a private
//! Rust callback: the callback returns a status code and a payload, and the
//! trampoline raises the error with the real `luaL_where`/`luaL_argerror`
//! from the same kind of frame the C library ran in, so positions and names
//! come out identical.
//!
//! **Resources are bounded.** Nesting is walked iteratively (only cmsgpack's
//! packer recurses, at most 16 levels). Containers still open during a deep
//! walk are parked in a Lua table (past the first 128) rather than held as
//! mlua references, since mlua's auxiliary reference stack has only ~8000
//! slots; more than 8 arguments, and long result lists, also travel through
//! Lua tables for the same reason. The C
//! libraries' own Lua stack limit (`LUAI_MAXCSTACK` = 8000 slots checked by
//! `lua_checkstack`) is emulated with a "virtual stack top", so an input that
//! makes Redis fail with `stack overflow (...)` or `excessive nesting (N)`
//! fails here at the same point with the same message.
//!
//! Platform facts baked in (those of Redis on x86-64 Linux): little-endian
//! native order, `sizeof(long)` = 8, `sizeof(int)` = 4, maximum alignment 8,
//! and the results of gcc's out-of-range float-to-integer conversions.

use std::collections::VecDeque;
use std::ffi::{c_int, c_void};
use std::sync::{Arc, Mutex, MutexGuard};

use mlua::{ffi, Function, LightUserData, Lua, MaybeSend, MultiValue, Table, Value};

/// Lua 5.1's `LUAI_MAXCSTACK`: `lua_checkstack(L, n)` fails once
/// `lua_gettop(L) + n` would exceed it.
const LUAI_MAXCSTACK: i64 = 8000;

// ===========================================================================
// Glue between the Rust callbacks and Lua: status protocol and trampoline
// ===========================================================================

/// Calls with at most this many arguments pass them as values; more go
/// through a table.
const DIRECT_ARGS: c_int = 8;

/// Status codes a Rust callback returns as its first value to [`trampoline`].
const RET_VALUES: f64 = 0.0; // the remaining values are the results
const RET_SPREAD: f64 = 1.0; // (table, n): results are table[1..n]
const RET_ERROR: f64 = 2.0; // (msg): luaL_error, i.e. position prefix + msg
const RET_RAW_ERROR: f64 = 3.0; // (msg): lua_error(msg) as is
const RET_ARG_ERROR: f64 = 4.0; // (narg, msg): luaL_argerror(narg, msg)

/// Why a library function failed.
enum Fail {
    /// `luaL_error(L, msg)`: the caller's `chunk:line: ` is prefixed.
    Error(Vec<u8>),
    /// An error raised by the Lua core without position (`table index is nil`).
    Raw(Vec<u8>),
    /// `luaL_argerror(L, narg, msg)`: `bad argument #narg to 'name' (msg)`.
    Arg(i32, Vec<u8>),
    /// A failure of mlua itself (memory, reference stack); passed on as is.
    Lua(mlua::Error),
}

impl From<mlua::Error> for Fail {
    fn from(e: mlua::Error) -> Self {
        Fail::Lua(e)
    }
}

type Res<T> = Result<T, Fail>;

fn error<T>(msg: impl Into<Vec<u8>>) -> Res<T> {
    Err(Fail::Error(msg.into()))
}

fn arg_error<T>(narg: i32, msg: impl Into<Vec<u8>>) -> Res<T> {
    Err(Fail::Arg(narg, msg.into()))
}

/// What a library function returns.
enum Ret {
    /// A few values, returned directly.
    Values(Vec<Value>),
    /// `n` values stored at `table[1..=n]` (nils allowed), unpacked onto the
    /// Lua stack by the trampoline so no mlua references are pinned.
    Spread(Table, usize),
}

fn one(v: Value) -> Res<Ret> {
    Ok(Ret::Values(vec![v]))
}

/// The arguments of a call: up to [`DIRECT_ARGS`] of them as values, more
/// in a Lua table so that thousands of string arguments never pin mlua
/// references at once.
struct Args {
    src: ArgSrc,
    n: usize,
}

/// Where the arguments are: few come as values, many in a table.
enum ArgSrc {
    Direct(Vec<Value>),
    Table(Table),
}

impl Args {
    fn len(&self) -> usize {
        self.n
    }

    fn is_none(&self, i: usize) -> bool {
        i == 0 || i > self.n
    }

    fn get(&self, i: usize) -> Res<Value> {
        if self.is_none(i) {
            return Ok(Value::Nil);
        }
        match &self.src {
            ArgSrc::Direct(v) => Ok(v.get(i - 1).cloned().unwrap_or(Value::Nil)),
            ArgSrc::Table(t) => Ok(t.raw_get(i as i64)?),
        }
    }

    fn is_none_or_nil(&self, i: usize) -> Res<bool> {
        Ok(self.get(i)?.is_nil())
    }

    /// `luaL_typename`: "no value" past the last argument.
    fn type_name(&self, i: usize) -> Res<&'static str> {
        if self.is_none(i) {
            return Ok("no value");
        }
        Ok(type_name(&self.get(i)?))
    }

    /// `luaL_typerror(L, narg, tname)`.
    fn type_error(&self, i: usize, tname: &str) -> Fail {
        let got = match self.type_name(i) {
            Ok(g) => g,
            Err(e) => return e,
        };
        Fail::Arg(
            i as i32,
            format!("{tname} expected, got {got}").into_bytes(),
        )
    }

    /// `luaL_checknumber`.
    fn check_number(&self, i: usize) -> Res<f64> {
        match to_number(&self.get(i)?) {
            Some(n) => Ok(n),
            None => Err(self.type_error(i, "number")),
        }
    }

    /// `luaL_checkinteger`: the number truncated like `(lua_Integer)d`.
    fn check_integer(&self, i: usize) -> Res<i64> {
        Ok(cvt_i64(self.check_number(i)?))
    }

    /// `luaL_optinteger`.
    fn opt_integer(&self, i: usize, def: i64) -> Res<i64> {
        if self.is_none_or_nil(i)? {
            return Ok(def);
        }
        self.check_integer(i)
    }

    /// `luaL_checklstring`: strings, or numbers converted with `%.14g`.
    fn check_lstring(&self, lua: &Lua, i: usize) -> Res<mlua::LuaString> {
        match self.get(i)? {
            Value::String(s) => Ok(s),
            Value::Integer(n) => Ok(lua.create_string(fmt_g(n as f64, 14))?),
            Value::Number(n) => Ok(lua.create_string(fmt_g(n, 14))?),
            _ => Err(self.type_error(i, "string")),
        }
    }
}

/// Wraps `f` as a Lua function that behaves like a C library function:
/// a C closure ([`trampoline`]) whose upvalue is the Rust callback.
fn make_fn<F>(lua: &Lua, f: F) -> mlua::Result<Function>
where
    F: Fn(&Lua, &Args) -> Res<Ret> + MaybeSend + 'static,
{
    let inner = lua.create_function(move |lua, mv: MultiValue| {
        // (nargs, arg1, ..., argN) or (args table, nargs): see trampoline.
        let mut it = mv.into_iter();
        let args = match it.next() {
            Some(Value::Table(t)) => Args {
                src: ArgSrc::Table(t),
                n: it.next().and_then(|n| as_number(&n)).unwrap_or(0.0) as usize,
            },
            first => Args {
                n: first.and_then(|n| as_number(&n)).unwrap_or(0.0) as usize,
                src: ArgSrc::Direct(it.collect()),
            },
        };
        let num = Value::Number;
        let out = match f(lua, &args) {
            Ok(Ret::Values(mut vs)) => {
                vs.insert(0, num(RET_VALUES));
                vs
            }
            Ok(Ret::Spread(t, n)) => vec![num(RET_SPREAD), Value::Table(t), num(n as f64)],
            Err(Fail::Error(m)) => vec![num(RET_ERROR), Value::String(lua.create_string(m)?)],
            Err(Fail::Raw(m)) => vec![num(RET_RAW_ERROR), Value::String(lua.create_string(m)?)],
            Err(Fail::Arg(narg, m)) => vec![
                num(RET_ARG_ERROR),
                num(f64::from(narg)),
                Value::String(lua.create_string(m)?),
            ],
            Err(Fail::Lua(e)) => return Err(e),
        };
        Ok(MultiValue::from_vec(out))
    })?;
    // SAFETY: exec_raw pushes `inner` and runs the closure in protected mode;
    // lua_pushcclosure pops it into the upvalue of a new C closure, which is
    // left as the single result.
    unsafe {
        lua.exec_raw::<Function>(inner, |state| {
            ffi::lua_pushcclosure(state, trampoline, 1);
        })
    }
}

/// The C function every library function really is. It packs the arguments
/// into a table, calls the Rust callback (upvalue 1) with `(args, nargs)`,
/// and turns the status code it returns into results or a string error
/// raised exactly as `luaL_error`/`luaL_argerror` would from this frame.
unsafe extern "C-unwind" fn trampoline(state: *mut ffi::lua_State) -> c_int {
    let nargs = ffi::lua_gettop(state);
    // A C function always has LUA_MINSTACK (20) free slots: both layouts
    // below use at most DIRECT_ARGS + 2 of them.
    let code_idx = if nargs <= DIRECT_ARGS {
        // callback(nargs, arg1, ..., argN)
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
        ffi::lua_pushinteger(state, nargs as ffi::lua_Integer);
        for i in 1..=nargs {
            ffi::lua_pushvalue(state, i);
        }
        ffi::lua_call(state, nargs + 1, ffi::LUA_MULTRET);
        nargs + 1
    } else {
        // callback(args table, nargs): many string arguments converted to
        // mlua values at once could exhaust mlua's reference stack.
        ffi::lua_createtable(state, nargs, 0);
        for i in 1..=nargs {
            ffi::lua_pushvalue(state, i);
            ffi::lua_rawseti_(state, -2, i);
        }
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
        ffi::lua_pushvalue(state, nargs + 1);
        ffi::lua_pushinteger(state, nargs as ffi::lua_Integer);
        ffi::lua_call(state, 2, ffi::LUA_MULTRET);
        nargs + 2
    };
    let top = ffi::lua_gettop(state);
    if top < code_idx {
        return 0;
    }
    let code = ffi::lua_tonumber(state, code_idx);
    if code == RET_SPREAD {
        let n = ffi::lua_tonumber(state, code_idx + 2) as c_int;
        // Keep only the results table (at index 1) so the results get the
        // whole stack, as they had in the C library.
        ffi::lua_pushvalue(state, code_idx + 1);
        ffi::lua_replace(state, 1);
        ffi::lua_settop(state, 1);
        if ffi::lua_checkstack(state, n) == 0 {
            ffi::lua_pushstring(state, c"stack overflow (too many results)".as_ptr());
            ffi::lua_error(state);
        }
        for i in 1..=n {
            ffi::lua_rawgeti_(state, 1, i);
        }
        n
    } else if code == RET_ERROR {
        ffi::luaL_where(state, 1);
        ffi::lua_pushvalue(state, code_idx + 1);
        ffi::lua_concat(state, 2);
        ffi::lua_error(state)
    } else if code == RET_RAW_ERROR {
        ffi::lua_pushvalue(state, code_idx + 1);
        ffi::lua_error(state)
    } else if code == RET_ARG_ERROR {
        let narg = ffi::lua_tonumber(state, code_idx + 1) as c_int;
        let msg = ffi::lua_tolstring(state, code_idx + 2, std::ptr::null_mut());
        ffi::luaL_argerror(state, narg, msg)
    } else {
        top - code_idx
    }
}

/// A unique address standing for `nil` where a nil must be parked in a table.
static NIL_MARK_BYTE: u8 = 0;

fn nil_mark() -> Value {
    Value::LightUserData(LightUserData(&NIL_MARK_BYTE as *const u8 as *mut c_void))
}

fn is_nil_mark(v: &Value) -> bool {
    matches!(v, Value::LightUserData(p) if std::ptr::eq(p.0 as *const u8, &NIL_MARK_BYTE))
}

/// A LIFO for the containers (and pending keys) enclosing the one being
/// walked. The first [`Parked::IN_RUST`] entries are plain Rust values;
/// deeper ones go into a Lua table so that deep nesting pins no more mlua
/// references (mlua's auxiliary stack has only ~8000 slots).
struct Parked {
    near: Vec<Value>,
    far: Option<Table>,
    far_len: i64,
}

impl Parked {
    const IN_RUST: usize = 128;

    fn new() -> Self {
        Parked {
            near: Vec::new(),
            far: None,
            far_len: 0,
        }
    }

    fn push(&mut self, lua: &Lua, v: Value) -> mlua::Result<()> {
        if self.near.len() < Self::IN_RUST {
            self.near.push(v);
            return Ok(());
        }
        if self.far.is_none() {
            self.far = Some(lua.create_table()?);
        }
        let v = if v.is_nil() { nil_mark() } else { v };
        self.far_len += 1;
        match &self.far {
            Some(t) => t.raw_set(self.far_len, v),
            None => Ok(()),
        }
    }

    fn pop(&mut self) -> mlua::Result<Value> {
        match &self.far {
            Some(t) if self.far_len > 0 => {
                let v: Value = t.raw_get(self.far_len)?;
                t.raw_set(self.far_len, Value::Nil)?;
                self.far_len -= 1;
                Ok(if is_nil_mark(&v) { Value::Nil } else { v })
            }
            _ => Ok(self.near.pop().unwrap_or(Value::Nil)),
        }
    }

    fn pop_table(&mut self) -> mlua::Result<Table> {
        match self.pop()? {
            Value::Table(t) => Ok(t),
            _ => Err(mlua::Error::runtime(
                "internal error: parked value is not a table",
            )),
        }
    }
}

/// Pairs fetched per call of [`next_chunk`].
const CHUNK_PAIRS: c_int = 32;

/// `next_chunk(t, key)`: continues a traversal of `t` after `key` and
/// returns `done, k1, v1, k2, v2, ...`: at most [`CHUNK_PAIRS`] pairs,
/// stopping right after the first pair whose value is a table (the caller
/// descends into it, so nothing fetched is wasted). `done` is true when the
/// traversal reached the end. One call replaces up to 32 `next` calls.
unsafe extern "C-unwind" fn next_chunk(state: *mut ffi::lua_State) -> c_int {
    ffi::lua_settop(state, 2);
    if ffi::lua_checkstack(state, 2 * CHUNK_PAIRS + 4) == 0 {
        ffi::lua_pushstring(state, c"stack overflow (in next_chunk)".as_ptr());
        ffi::lua_error(state);
    }
    ffi::lua_pushboolean(state, 0);
    ffi::lua_pushvalue(state, 2);
    let mut pairs = 0;
    loop {
        if ffi::lua_next(state, 1) == 0 {
            ffi::lua_pushboolean(state, 1);
            ffi::lua_replace(state, 3);
            break;
        }
        pairs += 1;
        if ffi::lua_type(state, -1) == ffi::LUA_TTABLE || pairs == CHUNK_PAIRS {
            break;
        }
        ffi::lua_pushvalue(state, -2);
    }
    ffi::lua_gettop(state) - 2
}

/// lua-cjson's key scan of `lua_array_length` in one C call:
/// returns `false` when some key is not a positive integral number,
/// else `true, max, items` (`max` converted to `int` the way x86 does).
unsafe extern "C-unwind" fn json_scan(state: *mut ffi::lua_State) -> c_int {
    ffi::lua_settop(state, 1);
    let mut max: i32 = 0;
    let mut items: i32 = 0;
    ffi::lua_pushnil(state);
    while ffi::lua_next(state, 1) != 0 {
        ffi::lua_pop(state, 1);
        let k = ffi::lua_tonumber(state, -1);
        if ffi::lua_type(state, -1) != ffi::LUA_TNUMBER || k == 0.0 || k.floor() != k || k < 1.0 {
            ffi::lua_settop(state, 0);
            ffi::lua_pushboolean(state, 0);
            return 1;
        }
        if k > f64::from(max) {
            max = cvt_i32(k);
        }
        items = items.wrapping_add(1);
    }
    ffi::lua_pushboolean(state, 1);
    ffi::lua_pushnumber(state, f64::from(max));
    ffi::lua_pushnumber(state, f64::from(items));
    3
}

/// lua-cmsgpack's `table_is_an_array` plus the key count of
/// `mp_encode_lua_table_as_map`, in one C call: returns `is_array, keys`.
unsafe extern "C-unwind" fn mp_scan(state: *mut ffi::lua_State) -> c_int {
    ffi::lua_settop(state, 1);
    let mut keys: f64 = 0.0;
    let mut is_array = true;
    let mut count: i32 = 0;
    let mut max: i32 = 0;
    ffi::lua_pushnil(state);
    while ffi::lua_next(state, 1) != 0 {
        ffi::lua_pop(state, 1);
        keys += 1.0;
        if !is_array {
            continue;
        }
        let n = ffi::lua_tonumber(state, -1);
        if ffi::lua_type(state, -1) != ffi::LUA_TNUMBER || n <= 0.0 || f64::from(cvt_i32(n)) != n {
            is_array = false;
            continue;
        }
        if n > f64::from(max) {
            max = n as i32;
        }
        count = count.wrapping_add(1);
    }
    ffi::lua_pushboolean(state, c_int::from(is_array && max == count));
    ffi::lua_pushnumber(state, keys);
    2
}

/// The C helpers, created once per module table.
#[derive(Clone)]
struct Helpers {
    next_chunk: Function,
    json_scan: Function,
    mp_scan: Function,
}

impl Helpers {
    fn new(lua: &Lua) -> mlua::Result<Self> {
        // SAFETY: these functions only use the Lua C API on their own
        // arguments and stay within the stack space they check for.
        unsafe {
            Ok(Helpers {
                next_chunk: lua.create_c_function(next_chunk)?,
                json_scan: lua.create_c_function(json_scan)?,
                mp_scan: lua.create_c_function(mp_scan)?,
            })
        }
    }
}

// ===========================================================================
// Lua 5.1 / C runtime emulation helpers
// ===========================================================================

/// `lua_typename(lua_type(v))`.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

/// The number in a numeric value (not converting strings).
fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// `lua_tonumber` + `lua_isnumber`: numbers, and strings Lua can convert.
fn to_number(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => str2number(&s.as_bytes()),
        _ => as_number(v),
    }
}

/// `(int64_t)d` as x86-64 computes it (`cvttsd2si`): NaN and out-of-range
/// values give `i64::MIN`.
fn cvt_i64(d: f64) -> i64 {
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&d) {
        i64::MIN
    } else {
        d as i64
    }
}

/// `(int)d` as x86-64 computes it: NaN and out-of-range give `i32::MIN`.
fn cvt_i32(d: f64) -> i32 {
    if d.is_nan() || d >= 2_147_483_648.0 || d <= -2_147_483_649.0 {
        i32::MIN
    } else {
        d as i32
    }
}

/// `(uint64_t)d` as gcc compiles it on x86-64 (checked against Redis:
/// 2^64 gives 0, NaN gives 2^63, negatives wrap like `(int64_t)`).
fn cvt_u64(d: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if d >= TWO63 {
        (cvt_i64(d - TWO63) as u64) ^ (1 << 63)
    } else {
        cvt_i64(d) as u64
    }
}

/// C `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Byte `i` of a C string: 0 at and past the end.
fn byte_at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

fn starts_with_ci(s: &[u8], i: usize, pat: &[u8]) -> bool {
    pat.iter()
        .enumerate()
        .all(|(k, p)| byte_at(s, i + k).eq_ignore_ascii_case(p))
}

/// glibc `strtod` over the C string `s`: the value and how many bytes it
/// used (0 when nothing converts). Decimal, hexadecimal, `inf`,
/// `infinity` and `nan[(...)]` forms, after optional blanks and sign.
fn strtod(s: &[u8]) -> (f64, usize) {
    let mut i = 0;
    while is_c_space(byte_at(s, i)) {
        i += 1;
    }
    let neg = byte_at(s, i) == b'-';
    if matches!(byte_at(s, i), b'+' | b'-') {
        i += 1;
    }
    let sign = |v: f64| if neg { -v } else { v };

    if starts_with_ci(s, i, b"inf") {
        let end = if starts_with_ci(s, i + 3, b"inity") {
            i + 8
        } else {
            i + 3
        };
        return (sign(f64::INFINITY), end);
    }
    if starts_with_ci(s, i, b"nan") {
        let mut end = i + 3;
        if byte_at(s, end) == b'(' {
            let mut k = end + 1;
            while byte_at(s, k).is_ascii_alphanumeric() || byte_at(s, k) == b'_' {
                k += 1;
            }
            if byte_at(s, k) == b')' {
                end = k + 1;
            }
        }
        return (sign(f64::NAN), end);
    }
    if byte_at(s, i) == b'0' && (byte_at(s, i + 1) | 0x20) == b'x' {
        return match hex_float(s, i + 2) {
            Some((v, end)) => (sign(v), end),
            None => (sign(0.0), i + 1), // "0x" without digits: just the 0
        };
    }

    let start = i;
    let mut digits = 0;
    while byte_at(s, i).is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if byte_at(s, i) == b'.' {
        i += 1;
        while byte_at(s, i).is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return (0.0, 0);
    }
    if (byte_at(s, i) | 0x20) == b'e' {
        let mut k = i + 1;
        if matches!(byte_at(s, k), b'+' | b'-') {
            k += 1;
        }
        if byte_at(s, k).is_ascii_digit() {
            while byte_at(s, k).is_ascii_digit() {
                k += 1;
            }
            i = k;
        }
    }
    let text = std::str::from_utf8(&s[start..i]).unwrap_or("0");
    (sign(text.parse::<f64>().unwrap_or(0.0)), i)
}

/// The hexadecimal part of `strtod` after "0x": mantissa digits with an
/// optional point, then an optional binary exponent. `None` without digits.
fn hex_float(s: &[u8], mut i: usize) -> Option<(f64, usize)> {
    let hex = |b: u8| (b as char).to_digit(16).map(u64::from);
    let mut mant: u64 = 0;
    let mut exp: i64 = 0;
    let mut sticky = false;
    let mut any = false;
    let mut take = |d: u64, frac: bool, mant: &mut u64, exp: &mut i64| {
        if *mant >> 60 == 0 {
            *mant = (*mant << 4) | d;
            if frac {
                *exp -= 4;
            }
        } else {
            sticky |= d != 0;
            if !frac {
                *exp += 4;
            }
        }
    };
    while let Some(d) = hex(byte_at(s, i)) {
        take(d, false, &mut mant, &mut exp);
        any = true;
        i += 1;
    }
    if byte_at(s, i) == b'.' && (any || hex(byte_at(s, i + 1)).is_some()) {
        i += 1;
        while let Some(d) = hex(byte_at(s, i)) {
            take(d, true, &mut mant, &mut exp);
            any = true;
            i += 1;
        }
    }
    if !any {
        return None;
    }
    if (byte_at(s, i) | 0x20) == b'p' {
        let mut k = i + 1;
        let eneg = byte_at(s, k) == b'-';
        if matches!(byte_at(s, k), b'+' | b'-') {
            k += 1;
        }
        if byte_at(s, k).is_ascii_digit() {
            let mut e: i64 = 0;
            while byte_at(s, k).is_ascii_digit() {
                e = (e * 10 + i64::from(byte_at(s, k) - b'0')).min(100_000);
                k += 1;
            }
            exp += if eneg { -e } else { e };
            i = k;
        }
    }
    if mant == 0 {
        return Some((0.0, i));
    }
    // Round the (up to 64-bit) mantissa to 53 bits, ties to even.
    let bits = 64 - mant.leading_zeros() as i64;
    let (mut m, mut e2) = (mant, exp);
    if bits > 53 {
        let shift = (bits - 53) as u32;
        let rem = m & ((1u64 << shift) - 1);
        let half = 1u64 << (shift - 1);
        m >>= shift;
        e2 += i64::from(shift);
        if rem > half || (rem == half && (sticky || m & 1 == 1)) {
            m += 1;
        }
    }
    Some((ldexp(m as f64, e2), i))
}

fn ldexp(mut x: f64, mut e: i64) -> f64 {
    while e > 1000 && x.is_finite() {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 && x != 0.0 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e as i32)
}

/// Lua 5.1's `luaO_str2d`: the whole C string (up to a NUL) must be a
/// number, trailing blanks allowed.
fn str2number(s: &[u8]) -> Option<f64> {
    let s = match s.iter().position(|&b| b == 0) {
        Some(n) => &s[..n],
        None => s,
    };
    let (v, mut end) = strtod(s);
    if end == 0 {
        return None;
    }
    // Lua retries with strtoul(.., 16) when strtod stopped at an 'x'; glibc's
    // strtod already read every valid hex form, so that retry never succeeds.
    if matches!(byte_at(s, end), b'x' | b'X') {
        return None;
    }
    while end < s.len() && is_c_space(s[end]) {
        end += 1;
    }
    (end == s.len()).then_some(v)
}

/// C's `printf("%.<prec>g", x)` (glibc): also Lua's number-to-string.
fn fmt_g(x: f64, prec: usize) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let p = prec.max(1);
    // Integers of at most `p` digits print as themselves.
    if x.trunc() == x && x.abs() < 10f64.powi(p.min(15) as i32) {
        return (x as i64).to_string();
    }
    let sci = format!("{:.*e}", p - 1, x);
    let Some((mant, exp)) = sci.split_once('e') else {
        return sci;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= p as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{}{:02}", strip(mant), sign, exp.unsigned_abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        strip(&format!("{x:.decimals$}"))
    }
}

// ===========================================================================
// cjson
// ===========================================================================

/// lua-cjson's per-module configuration (the `json_config_t` settings).
#[derive(Clone, Copy)]
struct JsonConfig {
    encode_sparse_convert: i32,
    encode_sparse_ratio: i32,
    encode_sparse_safe: i32,
    encode_max_depth: i32,
    encode_invalid_numbers: i32, // 0 off, 1 on, 2 "null"
    encode_number_precision: i32,
    encode_keep_buffer: i32,
    decode_invalid_numbers: i32,
    decode_max_depth: i32,
}

impl Default for JsonConfig {
    fn default() -> Self {
        JsonConfig {
            encode_sparse_convert: 0,
            encode_sparse_ratio: 2,
            encode_sparse_safe: 10,
            encode_max_depth: 1000,
            encode_invalid_numbers: 0,
            encode_number_precision: 14,
            encode_keep_buffer: 1,
            decode_invalid_numbers: 1,
            decode_max_depth: 1000,
        }
    }
}

type SharedConfig = Arc<Mutex<JsonConfig>>;

fn lock(cfg: &SharedConfig) -> MutexGuard<'_, JsonConfig> {
    cfg.lock().unwrap_or_else(|e| e.into_inner())
}

/// `cjson.null`: a NULL lightuserdata, as in lua-cjson.
fn json_null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// lua-cjson's `char2escape` table.
fn json_escape(b: u8) -> Option<&'static [u8]> {
    Some(match b {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        b'/' => b"\\/",
        0x08 => b"\\b",
        b'\t' => b"\\t",
        b'\n' => b"\\n",
        0x0c => b"\\f",
        b'\r' => b"\\r",
        _ => return None, // other controls and DEL: \u00XX, written by the caller
    })
}

fn json_append_string(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    for &b in s {
        if let Some(esc) = json_escape(b) {
            out.extend_from_slice(esc);
        } else if b < 0x20 || b == 0x7f {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out.push(b'"');
}

/// One table being encoded.
struct EncFrame {
    /// `Some(len)` when written as an array of `len` elements.
    array_len: Option<i64>,
    next_index: i64,
    /// Object traversal reached the end (see [`next_chunk`]).
    done: bool,
    /// The virtual Lua stack top while this table was on top of the stack.
    vtop: i64,
    /// An object member was written already (a comma is due).
    started: bool,
}

struct JsonEncoder<'a> {
    cfg: JsonConfig,
    helpers: &'a Helpers,
    out: Vec<u8>,
}

impl JsonEncoder<'_> {
    fn append_number(&mut self, n: f64) -> Res<()> {
        match self.cfg.encode_invalid_numbers {
            0 => {
                if n.is_infinite() || n.is_nan() {
                    return error("Cannot serialise number: must not be NaN or Inf");
                }
            }
            1 => {
                if n.is_nan() {
                    self.out.extend_from_slice(b"nan");
                    return Ok(());
                }
            }
            _ => {
                if n.is_infinite() || n.is_nan() {
                    self.out.extend_from_slice(b"null");
                    return Ok(());
                }
            }
        }
        let prec = self.cfg.encode_number_precision.clamp(1, 14) as usize;
        self.out.extend_from_slice(fmt_g(n, prec).as_bytes());
        Ok(())
    }

    /// lua-cjson's `lua_array_length`: the array size, or -1 for an object.
    fn array_length(&self, t: &Table) -> Res<i32> {
        let (is_array, max, items): (bool, Option<f64>, Option<f64>) =
            self.helpers.json_scan.call(t)?;
        if !is_array {
            return Ok(-1);
        }
        // Both are exact `int`s computed by json_scan.
        let max = max.unwrap_or(0.0) as i32;
        let items = items.unwrap_or(0.0) as i32;
        let ratio = self.cfg.encode_sparse_ratio;
        if ratio > 0 && max > items.wrapping_mul(ratio) && max > self.cfg.encode_sparse_safe {
            if self.cfg.encode_sparse_convert == 0 {
                return error("Cannot serialise table: excessively sparse array");
            }
            return Ok(-1);
        }
        Ok(max)
    }

    /// Writes a non-table value, or opens a table and returns its frame.
    /// `vtop` is the virtual stack top with `v` on top; `depth` the
    /// number of enclosing tables.
    fn emit(&mut self, v: Value, vtop: i64, depth: usize) -> Res<Option<(Table, EncFrame)>> {
        match v {
            Value::String(s) => json_append_string(&mut self.out, &s.as_bytes()),
            Value::Integer(i) => self.append_number(i as f64)?,
            Value::Number(n) => self.append_number(n)?,
            Value::Boolean(true) => self.out.extend_from_slice(b"true"),
            Value::Boolean(false) => self.out.extend_from_slice(b"false"),
            Value::Nil => self.out.extend_from_slice(b"null"),
            Value::LightUserData(p) if p.0.is_null() => self.out.extend_from_slice(b"null"),
            Value::Table(t) => {
                let depth = depth + 1;
                if depth as i64 > i64::from(self.cfg.encode_max_depth) || vtop + 3 > LUAI_MAXCSTACK
                {
                    return error(format!("Cannot serialise, excessive nesting ({depth})"));
                }
                let len = self.array_length(&t)?;
                let array_len = if len > 0 {
                    self.out.push(b'[');
                    Some(i64::from(len))
                } else {
                    self.out.push(b'{');
                    None
                };
                let frame = EncFrame {
                    array_len,
                    next_index: 1,
                    done: false,
                    vtop,
                    started: false,
                };
                return Ok(Some((t, frame)));
            }
            other => {
                return error(format!(
                    "Cannot serialise {}: type not supported",
                    type_name(&other)
                ))
            }
        }
        Ok(None)
    }

    fn append_key(&mut self, k: &Value) -> Res<()> {
        match k {
            Value::Integer(_) | Value::Number(_) => {
                self.out.push(b'"');
                self.append_number(as_number(k).unwrap_or(0.0))?;
                self.out.extend_from_slice(b"\":");
            }
            Value::String(s) => {
                json_append_string(&mut self.out, &s.as_bytes());
                self.out.push(b':');
            }
            other => {
                return error(format!(
                    "Cannot serialise {}: table key must be a number or string",
                    type_name(other)
                ))
            }
        }
        Ok(())
    }

    /// Encodes `root` (the only argument, so at virtual stack top 1).
    fn encode(&mut self, lua: &Lua, root: Value) -> Res<()> {
        let Some((mut cur, first)) = self.emit(root, 1, 0)? else {
            return Ok(());
        };
        let mut frames = vec![first];
        // The innermost object's traversal key, and the pairs already
        // fetched after it (empty whenever a child table is entered, since
        // a chunk ends at its first table value).
        let mut cur_key = Value::Nil;
        let mut pending: VecDeque<(Value, Value)> = VecDeque::new();
        let mut parked = Parked::new();
        loop {
            let depth = frames.len();
            let Some(f) = frames.last_mut() else { break };
            let child = match f.array_len {
                Some(len) => {
                    if f.next_index > len {
                        self.out.push(b']');
                        None
                    } else {
                        if f.next_index > 1 {
                            self.out.push(b',');
                        }
                        let v: Value = cur.raw_get(f.next_index)?;
                        f.next_index += 1;
                        // lua_rawgeti pushes the element above the table.
                        Some((v, f.vtop + 1))
                    }
                }
                None => {
                    if pending.is_empty() && !f.done {
                        let key = std::mem::replace(&mut cur_key, Value::Nil);
                        let chunk: MultiValue = self.helpers.next_chunk.call((cur.clone(), key))?;
                        let mut it = chunk.into_iter();
                        f.done = matches!(it.next(), Some(Value::Boolean(true)));
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            pending.push_back((k, v));
                        }
                    }
                    if let Some((k, v)) = pending.pop_front() {
                        if f.started {
                            self.out.push(b',');
                        }
                        f.started = true;
                        let vtop = f.vtop + 2; // lua_next pushes key and value
                        self.append_key(&k)?;
                        cur_key = k;
                        Some((v, vtop))
                    } else {
                        self.out.push(b'}');
                        None
                    }
                }
            };
            match child {
                None => {
                    frames.pop();
                    if frames.is_empty() {
                        break;
                    }
                    cur_key = parked.pop()?;
                    cur = parked.pop_table()?;
                }
                Some((v, vtop)) => {
                    if let Some((t, frame)) = self.emit(v, vtop, depth)? {
                        parked.push(lua, Value::Table(std::mem::replace(&mut cur, t)))?;
                        parked.push(lua, std::mem::replace(&mut cur_key, Value::Nil))?;
                        frames.push(frame);
                    }
                }
            }
        }
        Ok(())
    }
}

fn json_encode(lua: &Lua, args: &Args, cfg: &SharedConfig, helpers: &Helpers) -> Res<Ret> {
    if args.len() != 1 {
        return arg_error(1, "expected 1 argument");
    }
    let cfg = *lock(cfg);
    let mut enc = JsonEncoder {
        cfg,
        helpers,
        out: Vec::new(),
    };
    enc.encode(lua, args.get(1)?)?;
    one(Value::String(lua.create_string(&enc.out)?))
}

/// A lexical token of the JSON decoder.
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str(Vec<u8>),
    Num(f64),
    Bool(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

impl Tok {
    /// lua-cjson's `json_token_type_name` (or the error text).
    fn name(&self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str(_) => "T_STRING",
            Tok::Num(_) => "T_NUMBER",
            Tok::Bool(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(e) => e,
        }
    }
}

struct Token {
    tok: Tok,
    /// 0-based offset shown (plus one) in error messages.
    index: usize,
}

/// One open container while decoding.
struct DecFrame {
    is_obj: bool,
    next_index: i64,
    /// Virtual stack top when the container was started.
    vtop: i64,
}

struct JsonParser<'a> {
    data: &'a [u8],
    pos: usize,
    cfg: JsonConfig,
}

impl JsonParser<'_> {
    fn at(&self, i: usize) -> u8 {
        byte_at(self.data, i)
    }

    /// lua-cjson's `json_is_invalid_number`: forms strtod accepts but
    /// strict JSON does not (leading '+', hex, leading zeros, inf, nan).
    fn is_invalid_number(&self) -> bool {
        let mut p = self.pos;
        if self.at(p) == b'+' {
            return true;
        }
        if self.at(p) == b'-' {
            p += 1;
        }
        let c = self.at(p);
        if c == b'0' {
            let c2 = self.at(p + 1);
            return (c2 | 0x20) == b'x' || c2.is_ascii_digit();
        }
        // `*p <= '9'` on a signed char: also true for bytes >= 0x80.
        if c <= b'9' || c >= 0x80 {
            return false;
        }
        starts_with_ci(self.data, p, b"inf") || starts_with_ci(self.data, p, b"nan")
    }

    fn number_token(&mut self) -> Token {
        let index = self.pos;
        let (v, used) = strtod(&self.data[self.pos.min(self.data.len())..]);
        if used == 0 {
            return Token {
                tok: Tok::Error("invalid number"),
                index,
            };
        }
        self.pos += used;
        Token {
            tok: Tok::Num(v),
            index,
        }
    }

    /// Decodes the `\uXXXX` (or surrogate pair) escape at `self.pos`.
    fn unicode_escape(&self, buf: &mut Vec<u8>) -> Option<usize> {
        let hex4 = |i: usize| -> Option<u32> {
            let mut v = 0;
            for k in 0..4 {
                v = (v << 4) | (self.at(i + k) as char).to_digit(16)?;
            }
            Some(v)
        };
        let mut cp = hex4(self.pos + 2)?;
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 {
                return None; // a low surrogate first
            }
            if self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u' {
                return None;
            }
            let low = hex4(self.pos + 8)?;
            if low & 0xFC00 != 0xDC00 {
                return None;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        match cp {
            0..=0x7F => buf.push(cp as u8),
            0x80..=0x7FF => {
                buf.extend_from_slice(&[(cp >> 6) as u8 | 0xC0, (cp & 0x3F) as u8 | 0x80])
            }
            0x800..=0xFFFF => buf.extend_from_slice(&[
                (cp >> 12) as u8 | 0xE0,
                ((cp >> 6) & 0x3F) as u8 | 0x80,
                (cp & 0x3F) as u8 | 0x80,
            ]),
            _ => buf.extend_from_slice(&[
                (cp >> 18) as u8 | 0xF0,
                ((cp >> 12) & 0x3F) as u8 | 0x80,
                ((cp >> 6) & 0x3F) as u8 | 0x80,
                (cp & 0x3F) as u8 | 0x80,
            ]),
        }
        Some(len)
    }

    fn string_token(&mut self) -> Token {
        let index = self.pos;
        self.pos += 1;
        let mut buf = Vec::new();
        loop {
            let ch = self.at(self.pos);
            if ch == b'"' {
                break;
            }
            if ch == 0 {
                return Token {
                    tok: Tok::Error("unexpected end of string"),
                    index: self.pos,
                };
            }
            if ch == b'\\' {
                let esc = match self.at(self.pos + 1) {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 0x08,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'f' => 0x0c,
                    b'r' => b'\r',
                    b'u' => {
                        match self.unicode_escape(&mut buf) {
                            Some(len) => self.pos += len,
                            None => {
                                let tok = Tok::Error("invalid unicode escape code");
                                return Token {
                                    tok,
                                    index: self.pos,
                                };
                            }
                        }
                        continue;
                    }
                    _ => {
                        return Token {
                            tok: Tok::Error("invalid escape code"),
                            index: self.pos,
                        }
                    }
                };
                buf.push(esc);
                self.pos += 2;
                continue;
            }
            buf.push(ch);
            self.pos += 1;
        }
        self.pos += 1;
        Token {
            tok: Tok::Str(buf),
            index,
        }
    }

    /// lua-cjson's `json_next_token`.
    fn next_token(&mut self) -> Token {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let index = self.pos;
        let simple = match self.at(index) {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b',' => Some(Tok::Comma),
            b':' => Some(Tok::Colon),
            _ => None,
        };
        if let Some(tok) = simple {
            self.pos += 1;
            return Token { tok, index };
        }
        match self.at(index) {
            0 => Token {
                tok: Tok::End,
                index,
            },
            b'"' => self.string_token(),
            b'-' | b'0'..=b'9' => {
                if self.cfg.decode_invalid_numbers == 0 && self.is_invalid_number() {
                    return Token {
                        tok: Tok::Error("invalid number"),
                        index,
                    };
                }
                self.number_token()
            }
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'+' => {
                let word = |w: &[u8]| self.data.get(index..index + w.len()) == Some(w);
                if word(b"true") {
                    self.pos += 4;
                    Token {
                        tok: Tok::Bool(true),
                        index,
                    }
                } else if word(b"false") {
                    self.pos += 5;
                    Token {
                        tok: Tok::Bool(false),
                        index,
                    }
                } else if word(b"null") {
                    self.pos += 4;
                    Token {
                        tok: Tok::Null,
                        index,
                    }
                } else if self.cfg.decode_invalid_numbers != 0 && self.is_invalid_number() {
                    self.number_token()
                } else {
                    Token {
                        tok: Tok::Error("invalid token"),
                        index,
                    }
                }
            }
            _ => Token {
                tok: Tok::Error("invalid token"),
                index,
            },
        }
    }

    fn throw<T>(&self, expected: &str, token: &Token) -> Res<T> {
        let found = token.tok.name();
        error(format!(
            "Expected {expected} but found {found} at character {}",
            token.index + 1
        ))
    }

    /// After an object's `{` or `,`: a key string and a colon. Returns the
    /// key and the token that starts the member's value.
    fn object_key(&mut self, lua: &Lua, token: Token) -> Res<(mlua::LuaString, Token)> {
        let Tok::Str(key) = &token.tok else {
            return self.throw("object key string", &token);
        };
        let key = lua.create_string(key)?;
        let colon = self.next_token();
        if !matches!(colon.tok, Tok::Colon) {
            return self.throw("colon", &colon);
        }
        Ok((key, self.next_token()))
    }

    /// Parses the whole document (the only argument: virtual stack top 1).
    fn parse(&mut self, lua: &Lua) -> Res<Value> {
        let mut frames: Vec<DecFrame> = Vec::new();
        let mut parked = Parked::new();
        let mut cur: Option<Table> = None;
        let mut cur_key: Value = Value::Nil;
        let mut depth: i64 = 0;
        let mut token = self.next_token();
        'value: loop {
            let vtop = match frames.last() {
                None => 1,
                Some(f) => f.vtop + if f.is_obj { 2 } else { 1 },
            };
            let mut value = match token.tok {
                Tok::Str(ref s) => Value::String(lua.create_string(s)?),
                Tok::Num(n) => Value::Number(n),
                Tok::Bool(b) => Value::Boolean(b),
                Tok::Null => json_null(),
                Tok::ObjBegin | Tok::ArrBegin => {
                    let is_obj = matches!(token.tok, Tok::ObjBegin);
                    depth += 1;
                    let slots = if is_obj { 3 } else { 2 };
                    if depth > i64::from(self.cfg.decode_max_depth) || vtop + slots > LUAI_MAXCSTACK
                    {
                        return error(format!(
                            "Found too many nested data structures ({depth}) at character {}",
                            self.pos
                        ));
                    }
                    let t = lua.create_table()?;
                    token = self.next_token();
                    let empty = if is_obj {
                        matches!(token.tok, Tok::ObjEnd)
                    } else {
                        matches!(token.tok, Tok::ArrEnd)
                    };
                    if empty {
                        depth -= 1;
                        Value::Table(t)
                    } else {
                        if let Some(outer) = cur.replace(t) {
                            parked.push(lua, Value::Table(outer))?;
                            parked.push(lua, std::mem::replace(&mut cur_key, Value::Nil))?;
                        }
                        frames.push(DecFrame {
                            is_obj,
                            next_index: 1,
                            vtop,
                        });
                        if is_obj {
                            let (key, next) = self.object_key(lua, token)?;
                            cur_key = Value::String(key);
                            token = next;
                        }
                        continue 'value;
                    }
                }
                _ => return self.throw("value", &token),
            };
            // Store the finished value in its container(s).
            loop {
                let Some(f) = frames.last_mut() else {
                    let end = self.next_token();
                    if !matches!(end.tok, Tok::End) {
                        return self.throw("the end", &end);
                    }
                    return Ok(value);
                };
                let Some(t) = cur.as_ref() else {
                    return Err(mlua::Error::runtime("internal error: no open container").into());
                };
                token = self.next_token();
                if f.is_obj {
                    t.raw_set(std::mem::replace(&mut cur_key, Value::Nil), value)?;
                    if matches!(token.tok, Tok::Comma) {
                        let first = self.next_token();
                        let (key, next) = self.object_key(lua, first)?;
                        cur_key = Value::String(key);
                        token = next;
                        continue 'value;
                    }
                    if !matches!(token.tok, Tok::ObjEnd) {
                        return self.throw("comma or object end", &token);
                    }
                } else {
                    t.raw_set(f.next_index, value)?;
                    f.next_index += 1;
                    if matches!(token.tok, Tok::Comma) {
                        token = self.next_token();
                        continue 'value;
                    }
                    if !matches!(token.tok, Tok::ArrEnd) {
                        return self.throw("comma or array end", &token);
                    }
                }
                // The container is complete: it becomes the value.
                depth -= 1;
                frames.pop();
                let done = cur.take();
                if !frames.is_empty() {
                    cur_key = parked.pop()?;
                    cur = Some(parked.pop_table()?);
                }
                value = done.map_or(Value::Nil, Value::Table);
            }
        }
    }
}

fn json_decode(lua: &Lua, args: &Args, cfg: &SharedConfig) -> Res<Ret> {
    if args.len() != 1 {
        return arg_error(1, "expected 1 argument");
    }
    let cfg = *lock(cfg);
    let s = args.check_lstring(lua, 1)?;
    let data = s.as_bytes();
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return error("JSON parser does not support UTF-16 or UTF-32");
    }
    let mut parser = JsonParser {
        data: &data,
        pos: 0,
        cfg,
    };
    one(parser.parse(lua)?)
}

/// `json_arg_init`: at most `n` arguments.
fn json_arg_init(args: &Args, n: usize) -> Res<()> {
    if args.len() > n {
        return arg_error(n as i32 + 1, "found too many arguments");
    }
    Ok(())
}

/// `json_integer_option`. (lua-cjson reports range errors as argument #1
/// whatever the option's position.)
fn json_integer_option(
    args: &Args,
    idx: usize,
    setting: &mut i32,
    min: i32,
    max: i32,
) -> Res<Value> {
    if !args.is_none_or_nil(idx)? {
        let value = args.check_integer(idx)? as i32; // (int) of a lua_Integer
        if !(min <= value && value <= max) {
            return arg_error(1, format!("expected integer between {min} and {max}"));
        }
        *setting = value;
    }
    Ok(Value::Integer(i64::from(*setting)))
}

/// `luaL_checkoption` without default.
fn check_option(lua: &Lua, args: &Args, idx: usize, options: &[&str]) -> Res<i32> {
    let s = args.check_lstring(lua, idx)?;
    let bytes = s.as_bytes();
    let name = match bytes.iter().position(|&b| b == 0) {
        Some(n) => &bytes[..n],
        None => &bytes[..],
    };
    if let Some(i) = options.iter().position(|o| o.as_bytes() == name) {
        return Ok(i as i32);
    }
    let mut msg = b"invalid option '".to_vec();
    msg.extend_from_slice(name);
    msg.push(b'\'');
    arg_error(idx as i32, msg)
}

/// `json_enum_option` with `bool_true` = 1 (all of Redis's uses).
/// `options` defaults to `{"off", "on"}`.
fn json_enum_option(
    lua: &Lua,
    args: &Args,
    idx: usize,
    setting: &mut i32,
    options: &[&'static str],
) -> Res<Value> {
    if !args.is_none_or_nil(idx)? {
        *setting = match args.get(idx)? {
            Value::Boolean(b) => i32::from(b),
            _ => check_option(lua, args, idx, options)?,
        };
    }
    if *setting == 0 || *setting == 1 {
        Ok(Value::Boolean(*setting == 1))
    } else {
        let name = options.get(*setting as usize).copied().unwrap_or("");
        Ok(Value::String(lua.create_string(name)?))
    }
}

const OFF_ON: &[&str] = &["off", "on"];

/// Builds a `cjson` module table with its own configuration (also what
/// `cjson.new()` returns).
fn cjson_table(lua: &Lua) -> mlua::Result<Table> {
    let cfg: SharedConfig = Arc::new(Mutex::new(JsonConfig::default()));
    let helpers = Helpers::new(lua)?;
    let t = lua.create_table()?;

    let c = cfg.clone();
    t.raw_set(
        "encode",
        make_fn(lua, move |lua, args| json_encode(lua, args, &c, &helpers))?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "decode",
        make_fn(lua, move |lua, args| json_decode(lua, args, &c))?,
    )?;

    let c = cfg.clone();
    let f = make_fn(lua, move |lua, args| {
        json_arg_init(args, 3)?;
        let mut g = lock(&c);
        let convert = json_enum_option(lua, args, 1, &mut g.encode_sparse_convert, OFF_ON)?;
        let ratio = json_integer_option(args, 2, &mut g.encode_sparse_ratio, 0, i32::MAX)?;
        let safe = json_integer_option(args, 3, &mut g.encode_sparse_safe, 0, i32::MAX)?;
        Ok(Ret::Values(vec![convert, ratio, safe]))
    })?;
    t.raw_set("encode_sparse_array", f)?;

    let c = cfg.clone();
    let f = make_fn(lua, move |_, args| {
        json_arg_init(args, 1)?;
        one(json_integer_option(
            args,
            1,
            &mut lock(&c).encode_max_depth,
            1,
            i32::MAX,
        )?)
    })?;
    t.raw_set("encode_max_depth", f)?;

    let c = cfg.clone();
    let f = make_fn(lua, move |_, args| {
        json_arg_init(args, 1)?;
        one(json_integer_option(
            args,
            1,
            &mut lock(&c).decode_max_depth,
            1,
            i32::MAX,
        )?)
    })?;
    t.raw_set("decode_max_depth", f)?;

    let c = cfg.clone();
    let f = make_fn(lua, move |_, args| {
        json_arg_init(args, 1)?;
        one(json_integer_option(
            args,
            1,
            &mut lock(&c).encode_number_precision,
            1,
            14,
        )?)
    })?;
    t.raw_set("encode_number_precision", f)?;

    let c = cfg.clone();
    let f = make_fn(lua, move |lua, args| {
        json_arg_init(args, 1)?;
        one(json_enum_option(
            lua,
            args,
            1,
            &mut lock(&c).encode_keep_buffer,
            OFF_ON,
        )?)
    })?;
    t.raw_set("encode_keep_buffer", f)?;

    let c = cfg.clone();
    let f = make_fn(lua, move |lua, args| {
        json_arg_init(args, 1)?;
        let options = &["off", "on", "null"];
        one(json_enum_option(
            lua,
            args,
            1,
            &mut lock(&c).encode_invalid_numbers,
            options,
        )?)
    })?;
    t.raw_set("encode_invalid_numbers", f)?;

    let c = cfg;
    let f = make_fn(lua, move |lua, args| {
        json_arg_init(args, 1)?;
        one(json_enum_option(
            lua,
            args,
            1,
            &mut lock(&c).decode_invalid_numbers,
            OFF_ON,
        )?)
    })?;
    t.raw_set("decode_invalid_numbers", f)?;

    t.raw_set(
        "new",
        make_fn(lua, |lua, _| one(Value::Table(cjson_table(lua)?)))?,
    )?;
    t.raw_set("null", json_null())?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    Ok(t)
}

// ===========================================================================
// cmsgpack
// ===========================================================================

/// lua-cmsgpack's `LUACMSGPACK_MAX_NESTING`: tables deeper than this pack as nil.
const MP_MAX_NESTING: u32 = 16;

fn mp_encode_bytes(buf: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 32 {
        buf.push(0xa0 | len as u8);
    } else if len <= 0xff {
        buf.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        buf.push(0xda);
        buf.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        buf.push(0xdb);
        buf.extend_from_slice(&(len as u32).to_be_bytes());
    }
    buf.extend_from_slice(s);
}

fn mp_encode_double(buf: &mut Vec<u8>, d: f64) {
    let f = d as f32;
    if f64::from(f) == d {
        buf.push(0xca);
        buf.extend_from_slice(&f.to_be_bytes());
    } else {
        buf.push(0xcb);
        buf.extend_from_slice(&d.to_be_bytes());
    }
}

fn mp_encode_int(buf: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            buf.push(n as u8);
        } else if n <= 0xff {
            buf.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            buf.push(0xcd);
            buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            buf.push(0xce);
            buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            buf.push(0xcf);
            buf.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        buf.push(n as i8 as u8);
    } else if n >= -128 {
        buf.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        buf.push(0xd1);
        buf.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        buf.push(0xd2);
        buf.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        buf.push(0xd3);
        buf.extend_from_slice(&n.to_be_bytes());
    }
}

/// Lua 5.1 numbers are doubles: integral ones within int64 pack as the
/// smallest integer, the rest as float32 when exact, else float64.
fn mp_encode_number(buf: &mut Vec<u8>, n: f64) {
    if !n.is_infinite() && cvt_i64(n) as f64 == n {
        mp_encode_int(buf, cvt_i64(n));
    } else {
        mp_encode_double(buf, n);
    }
}

fn mp_encode_header(buf: &mut Vec<u8>, n: u64, fix: u8, b16: u8, b32: u8) {
    if n <= 15 {
        buf.push(fix | n as u8);
    } else if n <= 65535 {
        buf.push(b16);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf.push(b32);
        buf.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Packs one value; recursion is bounded by [`MP_MAX_NESTING`].
fn mp_encode(h: &Helpers, buf: &mut Vec<u8>, v: Value, level: u32) -> Res<()> {
    match v {
        Value::String(s) => mp_encode_bytes(buf, &s.as_bytes()),
        Value::Boolean(b) => buf.push(if b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => mp_encode_number(buf, i as f64),
        Value::Number(n) => mp_encode_number(buf, n),
        Value::Table(t) if level < MP_MAX_NESTING => {
            // table_is_an_array (only positive `int` keys, as many as the
            // largest) and the key count, from one scan.
            let (is_array, keys): (bool, f64) = h.mp_scan.call(&t)?;
            if is_array {
                let len = t.raw_len();
                mp_encode_header(buf, len as u64, 0x90, 0xdc, 0xdd);
                for j in 1..=len {
                    let v: Value = t.raw_get(j as i64)?;
                    mp_encode(h, buf, v, level + 1)?;
                }
            } else {
                mp_encode_header(buf, keys as u64, 0x80, 0xde, 0xdf);
                let mut key = Value::Nil;
                loop {
                    let chunk: MultiValue = h.next_chunk.call((&t, key))?;
                    let mut it = chunk.into_iter();
                    let done = matches!(it.next(), Some(Value::Boolean(true)));
                    key = Value::Nil;
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        mp_encode(h, buf, k.clone(), level + 1)?;
                        mp_encode(h, buf, v, level + 1)?;
                        key = k;
                    }
                    if done {
                        break;
                    }
                }
            }
        }
        _ => buf.push(0xc0), // nil, functions, userdata, too-deep tables
    }
    Ok(())
}

fn mp_pack(lua: &Lua, args: &Args, h: &Helpers) -> Res<Ret> {
    let n = args.len();
    if n == 0 {
        return arg_error(0, "MessagePack pack needs input.");
    }
    if 2 * n as i64 > LUAI_MAXCSTACK {
        return arg_error(0, "Too many arguments for MessagePack pack.");
    }
    let mut buf = Vec::new();
    for i in 1..=n {
        mp_encode(h, &mut buf, args.get(i)?, 0)?;
    }
    one(Value::String(lua.create_string(&buf)?))
}

/// Why a MessagePack value could not be decoded (`mp_cur.err`).
enum MpErr {
    Eof,
    BadFmt,
}

/// An open array or map while decoding.
struct MpFrame {
    is_map: bool,
    remaining: u64,
    next_index: i64,
    have_key: bool,
    /// Virtual stack top at the container's `mp_decode_to_lua_type`.
    vtop: i64,
}

/// Sets `t[k] = v` the way `lua_settable` on a fresh table does.
fn mp_settable(t: &Table, k: Value, v: Value) -> Res<()> {
    if k.is_nil() {
        return Err(Fail::Raw(b"table index is nil".to_vec()));
    }
    if matches!(k, Value::Number(n) if n.is_nan()) {
        return Err(Fail::Raw(b"table index is NaN".to_vec()));
    }
    Ok(t.raw_set(k, v)?)
}

/// Decodes one top-level value at `*pos`, with the virtual stack top
/// `base_vtop` (the arguments plus the values decoded so far).
fn mp_decode_one(
    lua: &Lua,
    data: &[u8],
    pos: &mut usize,
    base_vtop: i64,
) -> Res<Result<Value, MpErr>> {
    let mut frames: Vec<MpFrame> = Vec::new();
    let mut parked = Parked::new();
    let mut cur: Option<Table> = None;
    let mut cur_key = Value::Nil;
    let mut vtop = base_vtop;
    'item: loop {
        let left = data.len() - *pos;
        if left < 1 {
            return Ok(Err(MpErr::Eof));
        }
        if vtop + 1 > LUAI_MAXCSTACK {
            return error(
                "stack overflow (too many return values at once; \
                 use unpack_one or unpack_limit instead.)",
            );
        }
        let p = *pos;
        let b = data[p];
        let be = |from: usize, n: usize| -> u64 {
            data[from..from + n]
                .iter()
                .fold(0u64, |a, &x| (a << 8) | u64::from(x))
        };
        // Fixed-size scalars: (bytes needed, value).
        let mut container: Option<(bool, u64)> = None;
        let mut value = match b {
            0xca..=0xd3 => {
                let size = match b {
                    0xcc | 0xd0 => 2,
                    0xcd | 0xd1 => 3,
                    0xce | 0xd2 | 0xca => 5,
                    _ => 9,
                };
                if left < size {
                    return Ok(Err(MpErr::Eof));
                }
                let raw = be(p + 1, size - 1);
                *pos += size;
                match b {
                    0xcc..=0xce => Value::Integer(raw as i64),
                    0xd0 => Value::Integer(i64::from(raw as u8 as i8)),
                    0xd1 => Value::Integer(i64::from(raw as u16 as i16)),
                    0xd2 => Value::Integer(i64::from(raw as u32 as i32)),
                    // lua_pushunsigned is lua_pushinteger: wraps past 2^63.
                    0xcf => Value::Integer(raw as i64),
                    0xd3 => Value::Number(raw as i64 as f64),
                    0xca => Value::Number(f64::from(f32::from_bits(raw as u32))),
                    _ => Value::Number(f64::from_bits(raw)),
                }
            }
            0xc0 => {
                *pos += 1;
                Value::Nil
            }
            0xc3 | 0xc2 => {
                *pos += 1;
                Value::Boolean(b == 0xc3)
            }
            0xd9..=0xdb => {
                let hdr = match b {
                    0xd9 => 2,
                    0xda => 3,
                    _ => 5,
                };
                if left < hdr {
                    return Ok(Err(MpErr::Eof));
                }
                let l = be(p + 1, hdr - 1);
                if (left as u64) < hdr as u64 + l {
                    return Ok(Err(MpErr::Eof));
                }
                let l = l as usize;
                *pos += hdr + l;
                Value::String(lua.create_string(&data[p + hdr..p + hdr + l])?)
            }
            0xdc..=0xdf => {
                let hdr = if matches!(b, 0xdc | 0xde) { 3 } else { 5 };
                if left < hdr {
                    return Ok(Err(MpErr::Eof));
                }
                container = Some((b >= 0xde, be(p + 1, hdr - 1)));
                *pos += hdr;
                Value::Nil
            }
            _ if b & 0x80 == 0 => {
                *pos += 1;
                Value::Integer(i64::from(b))
            }
            _ if b & 0xe0 == 0xe0 => {
                *pos += 1;
                Value::Integer(i64::from(b as i8))
            }
            _ if b & 0xe0 == 0xa0 => {
                let l = usize::from(b & 0x1f);
                if left < 1 + l {
                    return Ok(Err(MpErr::Eof));
                }
                *pos += 1 + l;
                Value::String(lua.create_string(&data[p + 1..p + 1 + l])?)
            }
            _ if b & 0xf0 == 0x90 || b & 0xf0 == 0x80 => {
                container = Some((b & 0xf0 == 0x80, u64::from(b & 0x0f)));
                *pos += 1;
                Value::Nil
            }
            _ => return Ok(Err(MpErr::BadFmt)),
        };
        if let Some((is_map, len)) = container {
            let t = lua.create_table()?;
            // mp_decode_to_lua_array checks the stack after lua_newtable.
            if !is_map && vtop + 2 > LUAI_MAXCSTACK {
                return error("stack overflow (in function mp_decode_to_lua_array)");
            }
            if len == 0 {
                value = Value::Table(t);
            } else {
                if let Some(outer) = cur.replace(t) {
                    parked.push(lua, Value::Table(outer))?;
                    parked.push(lua, std::mem::replace(&mut cur_key, Value::Nil))?;
                }
                frames.push(MpFrame {
                    is_map,
                    remaining: len,
                    next_index: 1,
                    have_key: false,
                    vtop,
                });
                // An element sits above table and index; a key above the table.
                vtop += if is_map { 1 } else { 2 };
                continue 'item;
            }
        }
        // Store the finished value in its container(s).
        loop {
            let Some(f) = frames.last_mut() else {
                return Ok(Ok(value));
            };
            let Some(t) = cur.as_ref() else {
                return Err(mlua::Error::runtime("internal error: no open container").into());
            };
            if f.is_map {
                if !f.have_key {
                    f.have_key = true;
                    cur_key = value;
                    vtop = f.vtop + 2;
                    continue 'item;
                }
                f.have_key = false;
                mp_settable(t, std::mem::replace(&mut cur_key, Value::Nil), value)?;
                f.remaining -= 1;
                if f.remaining > 0 {
                    vtop = f.vtop + 1;
                    continue 'item;
                }
            } else {
                t.raw_set(f.next_index, value)?;
                f.next_index += 1;
                f.remaining -= 1;
                if f.remaining > 0 {
                    vtop = f.vtop + 2;
                    continue 'item;
                }
            }
            frames.pop();
            let done = cur.take();
            if !frames.is_empty() {
                cur_key = parked.pop()?;
                cur = Some(parked.pop_table()?);
            }
            value = done.map_or(Value::Nil, Value::Table);
        }
    }
}

/// lua-cmsgpack's `mp_unpack_full`. `base_vtop` is the Lua stack height
/// before decoding (the arguments left on the stack).
fn mp_unpack_full(lua: &Lua, args: &Args, limit: i64, offset: i64, base_vtop: i64) -> Res<Ret> {
    let s = args.check_lstring(lua, 1)?;
    let data = s.as_bytes();
    let len = data.len();
    if offset < 0 || limit < 0 {
        // (sic: lua-cmsgpack prints the input length as the limit)
        return error(format!(
            "Invalid request to unpack with offset of {} and limit of {}.",
            offset as i32, len as i32
        ));
    }
    if offset as u64 > len as u64 {
        return error(format!(
            "Start offset {} greater than input length {}.",
            offset as i32, len as i32
        ));
    }
    let decode_all = limit == 0 && offset == 0;
    let limit = if decode_all {
        i64::from(i32::MAX)
    } else {
        limit
    };
    let results = lua.create_table()?;
    // Without decode_all the next offset comes first.
    let first = if decode_all { 1 } else { 2 };
    let mut pos = offset as usize;
    let mut cnt: i64 = 0;
    while pos < len && cnt < limit {
        match mp_decode_one(lua, &data, &mut pos, base_vtop + cnt)? {
            Ok(v) => results.raw_set(first + cnt, v)?,
            Err(MpErr::Eof) => return error("Missing bytes in input."),
            Err(MpErr::BadFmt) => return error("Bad data format in input."),
        }
        cnt += 1;
    }
    if !decode_all {
        let next = if pos == len { -1 } else { pos as i64 };
        results.raw_set(1, next)?;
        cnt += 1;
    }
    Ok(Ret::Spread(results, cnt as usize))
}

fn cmsgpack_table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let helpers = Helpers::new(lua)?;
    t.raw_set(
        "pack",
        make_fn(lua, move |lua, args| mp_pack(lua, args, &helpers))?,
    )?;
    let f = make_fn(lua, |lua, args| {
        // The extra arguments stay on the stack in lua-cmsgpack.
        mp_unpack_full(lua, args, 0, 0, args.len() as i64)
    })?;
    t.raw_set("unpack", f)?;
    let f = make_fn(lua, |lua, args| {
        let offset = args.opt_integer(2, 0)?;
        mp_unpack_full(lua, args, 1, offset, 1)
    })?;
    t.raw_set("unpack_one", f)?;
    let f = make_fn(lua, |lua, args| {
        let limit = args.check_integer(2)?;
        let offset = args.opt_integer(3, 0)?;
        mp_unpack_full(lua, args, limit, offset, 1)
    })?;
    t.raw_set("unpack_limit", f)?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

// ===========================================================================
// bit (LuaBitOp)
// ===========================================================================

/// LuaBitOp's `barg`: the number rounded to an integer and taken modulo
/// 2^32 by adding 2^52+2^51 and keeping the low word of the double.
fn barg(args: &Args, i: usize) -> Res<u32> {
    let v = args.get(i)?;
    let n = to_number(&v);
    let b = (n.unwrap_or(0.0) + 6_755_399_441_055_744.0).to_bits() as u32;
    if b == 0 && n.is_none() {
        return Err(args.type_error(i, "number"));
    }
    Ok(b)
}

fn bret(b: u32) -> Res<Ret> {
    one(Value::Integer(i64::from(b as i32)))
}

fn bit_table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("tobit", make_fn(lua, |_, a| bret(barg(a, 1)?))?)?;
    t.raw_set("bnot", make_fn(lua, |_, a| bret(!barg(a, 1)?))?)?;
    type Op = fn(u32, u32) -> u32;
    let ops: [(&str, Op); 3] = [
        ("band", |x, y| x & y),
        ("bor", |x, y| x | y),
        ("bxor", |x, y| x ^ y),
    ];
    for (name, op) in ops {
        let f = make_fn(lua, move |_, a| {
            let mut b = barg(a, 1)?;
            // LuaBitOp folds from the last argument down to the second.
            for i in (2..=a.len()).rev() {
                b = op(b, barg(a, i)?);
            }
            bret(b)
        })?;
        t.raw_set(name, f)?;
    }
    let shifts: [(&str, Op); 5] = [
        ("lshift", |b, n| b << n),
        ("rshift", |b, n| b >> n),
        ("arshift", |b, n| ((b as i32) >> n) as u32),
        ("rol", |b, n| b.rotate_left(n)),
        ("ror", |b, n| b.rotate_right(n)),
    ];
    for (name, op) in shifts {
        let f = make_fn(lua, move |_, a| {
            let b = barg(a, 1)?;
            let n = barg(a, 2)? & 31;
            bret(op(b, n))
        })?;
        t.raw_set(name, f)?;
    }
    t.raw_set(
        "bswap",
        make_fn(lua, |_, a| bret(barg(a, 1)?.swap_bytes()))?,
    )?;
    let f = make_fn(lua, |lua, a| {
        let mut b = barg(a, 1)?;
        let mut n: i32 = if a.is_none(2) { 8 } else { barg(a, 2)? as i32 };
        let digits: &[u8; 16] = if n < 0 {
            n = n.wrapping_neg();
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        // n stays negative only for INT_MIN, where C would misbehave.
        let n = n.clamp(0, 8) as usize;
        let mut buf = [0u8; 8];
        for slot in buf[..n].iter_mut().rev() {
            *slot = digits[(b & 15) as usize];
            b >>= 4;
        }
        one(Value::String(lua.create_string(&buf[..n])?))
    })?;
    t.raw_set("tohex", f)?;
    Ok(t)
}

// ===========================================================================
// struct
// ===========================================================================

/// `MAXINTSIZE`: the largest `i`/`I` size.
const STRUCT_MAXINTSIZE: usize = 32;
/// `MAXALIGN` on x86-64 (the padding of `struct { char c; double d; }`).
const STRUCT_MAXALIGN: usize = 8;

struct StructHeader {
    big: bool,
    align: usize,
}

/// A format string being read (a C string: it ends at the first NUL).
struct StructFmt<'a> {
    f: &'a [u8],
    i: usize,
}

impl StructFmt<'_> {
    fn next_opt(&mut self) -> Option<u8> {
        let c = byte_at(self.f, self.i);
        if c == 0 {
            return None;
        }
        self.i += 1;
        Some(c)
    }

    /// `getnum`, with Redis's overflow check.
    fn getnum(&mut self, df: usize) -> Res<usize> {
        if !byte_at(self.f, self.i).is_ascii_digit() {
            return Ok(df);
        }
        let mut a: i32 = 0;
        while byte_at(self.f, self.i).is_ascii_digit() {
            let d = i32::from(byte_at(self.f, self.i) - b'0');
            if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
                return error("integral size overflow");
            }
            a = a * 10 + d;
            self.i += 1;
        }
        Ok(a as usize)
    }

    /// `optsize`: the size an option occupies (0 for non-data options).
    fn optsize(&mut self, opt: u8) -> Res<usize> {
        Ok(match opt {
            b'B' | b'b' | b'x' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.getnum(1)?,
            b'i' | b'I' => {
                let sz = self.getnum(4)?;
                if sz > STRUCT_MAXINTSIZE {
                    return error(format!(
                        "integral size {sz} is larger than limit of {STRUCT_MAXINTSIZE}"
                    ));
                }
                sz
            }
            _ => 0,
        })
    }

    /// `controloptions`: endianness, alignment, blanks; anything else is
    /// an invalid option.
    fn control(&mut self, opt: u8, h: &mut StructHeader) -> Res<()> {
        match opt {
            b' ' => {}
            b'>' => h.big = true,
            b'<' => h.big = false,
            b'!' => {
                let a = self.getnum(STRUCT_MAXALIGN)?;
                if a == 0 || a & (a - 1) != 0 {
                    return error(format!("alignment {a} is not a power of 2"));
                }
                h.align = a;
            }
            _ => {
                let mut msg = b"invalid format option '".to_vec();
                msg.push(opt);
                msg.push(b'\'');
                return arg_error(1, msg);
            }
        }
        Ok(())
    }
}

/// `gettoalign`: padding before an item of `size` at offset `len`.
fn struct_toalign(len: usize, h: &StructHeader, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    size.wrapping_sub(len & (size - 1)) & (size - 1)
}

/// The format argument (`luaL_checkstring`), cut at its first NUL.
fn struct_format(lua: &Lua, args: &Args) -> Res<Vec<u8>> {
    let s = args.check_lstring(lua, 1)?;
    let b = s.as_bytes();
    Ok(match b.iter().position(|&c| c == 0) {
        Some(n) => b[..n].to_vec(),
        None => b.to_vec(),
    })
}

fn struct_pack(lua: &Lua, args: &Args) -> Res<Ret> {
    let fmt_bytes = struct_format(lua, args)?;
    let mut fmt = StructFmt {
        f: &fmt_bytes,
        i: 0,
    };
    let mut h = StructHeader {
        big: false,
        align: 1,
    };
    // b_pack pushes a nil right after the arguments: a missing argument is
    // reported as "got nil", not "got no value".
    let check_number = |i: usize| -> Res<f64> {
        if args.is_none(i) {
            return arg_error(i as i32, "number expected, got nil");
        }
        args.check_number(i)
    };
    let mut arg = 2;
    let mut out: Vec<u8> = Vec::new();
    let mut total: usize = 0;
    while let Some(opt) = fmt.next_opt() {
        let mut size = fmt.optsize(opt)?;
        let toalign = struct_toalign(total, &h, opt, size);
        total = total.wrapping_add(toalign);
        out.resize(out.len() + toalign, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(arg)?;
                arg += 1;
                let mut value = if n < 0.0 {
                    cvt_i64(n) as u64
                } else {
                    cvt_u64(n)
                };
                let mut bytes = vec![0u8; size];
                let mut put = |slot: &mut u8| {
                    *slot = value as u8;
                    value >>= 8;
                };
                if h.big {
                    bytes.iter_mut().rev().for_each(&mut put);
                } else {
                    bytes.iter_mut().for_each(&mut put);
                }
                out.extend_from_slice(&bytes);
            }
            b'x' => out.push(0),
            b'f' => {
                let f = check_number(arg)? as f32;
                arg += 1;
                out.extend_from_slice(&if h.big {
                    f.to_be_bytes()
                } else {
                    f.to_le_bytes()
                });
            }
            b'd' => {
                let d = check_number(arg)?;
                arg += 1;
                out.extend_from_slice(&if h.big {
                    d.to_be_bytes()
                } else {
                    d.to_le_bytes()
                });
            }
            b'c' | b's' => {
                if args.is_none(arg) {
                    return arg_error(arg as i32, "string expected, got nil");
                }
                let s = args.check_lstring(lua, arg)?;
                arg += 1;
                let s = s.as_bytes();
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // (sic: the argument number has already moved on)
                    return arg_error(arg as i32, "string too short");
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                    size += 1;
                }
            }
            _ => fmt.control(opt, &mut h)?,
        }
        total = total.wrapping_add(size);
    }
    one(Value::String(lua.create_string(&out)?))
}

/// `getinteger`: `size` bytes as an unsigned or sign-extended integer.
fn struct_getinteger(buf: &[u8], big: bool, signed: bool, size: usize) -> f64 {
    let mut l: u64 = 0;
    let mut take = |b: &u8| l = (l << 8) | u64::from(*b);
    if big {
        buf[..size].iter().for_each(&mut take);
    } else {
        buf[..size].iter().rev().for_each(&mut take);
    }
    if !signed {
        return l as f64;
    }
    // C shifts by (size*8 - 1) on a 64-bit value; x86 masks the count.
    let mask = (!0u64).wrapping_shl((size as u32).wrapping_mul(8).wrapping_sub(1));
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

fn struct_unpack(lua: &Lua, args: &Args) -> Res<Ret> {
    let fmt_bytes = struct_format(lua, args)?;
    let data_s = args.check_lstring(lua, 2)?;
    let data = data_s.as_bytes();
    let ld = data.len();
    let start = args.opt_integer(3, 1)?;
    // (size_t)start > 0: only 0 is refused; negatives wrap to huge offsets.
    if start == 0 {
        return arg_error(3, "offset must be 1 or greater");
    }
    let mut pos = (start as u64).wrapping_sub(1) as usize;
    let mut fmt = StructFmt {
        f: &fmt_bytes,
        i: 0,
    };
    let mut h = StructHeader {
        big: false,
        align: 1,
    };
    let results = lua.create_table()?;
    let mut n: usize = 0;
    let fits = |pos: usize, size: usize| size <= ld && pos <= ld - size;
    while let Some(opt) = fmt.next_opt() {
        let mut size = fmt.optsize(opt)?;
        pos = pos.wrapping_add(struct_toalign(pos, &h, opt, size));
        if !fits(pos, size) {
            return arg_error(2, "data string too short");
        }
        // luaL_checkstack(L, 2, ...) above format, data and n results.
        if 2 + n as i64 + 2 > LUAI_MAXCSTACK {
            return error("stack overflow (too many results)");
        }
        let item = match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let signed = opt.is_ascii_lowercase();
                Some(Value::Number(struct_getinteger(
                    &data[pos..],
                    h.big,
                    signed,
                    size,
                )))
            }
            b'x' => None,
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[pos..pos + 4]);
                let f = if h.big {
                    f32::from_be_bytes(b)
                } else {
                    f32::from_le_bytes(b)
                };
                Some(Value::Number(f64::from(f)))
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos..pos + 8]);
                Some(Value::Number(if h.big {
                    f64::from_be_bytes(b)
                } else {
                    f64::from_le_bytes(b)
                }))
            }
            b'c' => {
                if size == 0 {
                    // The previous result is the length (and is consumed).
                    let prev: Value = if n == 0 {
                        Value::Nil
                    } else {
                        results.raw_get(n as i64)?
                    };
                    let Some(len) = (n > 0).then(|| to_number(&prev)).flatten() else {
                        return error("format 'c0' needs a previous size");
                    };
                    size = cvt_u64(len) as usize;
                    results.raw_set(n as i64, Value::Nil)?;
                    n -= 1;
                    if !fits(pos, size) {
                        return arg_error(2, "data string too short");
                    }
                }
                Some(Value::String(lua.create_string(&data[pos..pos + size])?))
            }
            b's' => {
                let Some(len) = data[pos..].iter().position(|&c| c == 0) else {
                    return error("unfinished string in data");
                };
                size = len + 1;
                Some(Value::String(lua.create_string(&data[pos..pos + len])?))
            }
            _ => {
                fmt.control(opt, &mut h)?;
                None
            }
        };
        if let Some(v) = item {
            n += 1;
            results.raw_set(n as i64, v)?;
        }
        pos = pos.wrapping_add(size);
    }
    n += 1;
    results.raw_set(n as i64, pos.wrapping_add(1) as i64)?;
    Ok(Ret::Spread(results, n))
}

fn struct_size(lua: &Lua, args: &Args) -> Res<Ret> {
    let fmt_bytes = struct_format(lua, args)?;
    let mut fmt = StructFmt {
        f: &fmt_bytes,
        i: 0,
    };
    let mut h = StructHeader {
        big: false,
        align: 1,
    };
    let mut pos: usize = 0;
    while let Some(opt) = fmt.next_opt() {
        let size = fmt.optsize(opt)?;
        pos = pos.wrapping_add(struct_toalign(pos, &h, opt, size));
        if opt == b's' {
            return arg_error(1, "option 's' has no fixed size");
        } else if opt == b'c' && size == 0 {
            return arg_error(1, "option 'c0' has no fixed size");
        }
        if !opt.is_ascii_alphanumeric() {
            fmt.control(opt, &mut h)?;
        }
        pos = pos.wrapping_add(size);
    }
    one(Value::Integer(pos as i64))
}

fn struct_table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("pack", make_fn(lua, struct_pack)?)?;
    t.raw_set("unpack", make_fn(lua, struct_unpack)?)?;
    t.raw_set("size", make_fn(lua, struct_size)?)?;
    Ok(t)
}

// ===========================================================================
// Registration
// ===========================================================================

/// Registers the global tables `cjson`, `cmsgpack`, `bit` and `struct` in `lua`.
///
/// Each function in them is a C closure (see the module docs), so errors
/// reach scripts as plain strings exactly like Redis's. `cjson.null` is a
/// `LightUserData(null)`, which mlua shows as `Value::LightUserData` with a
/// null pointer. The tables are set with `raw_set` and are not made
/// read-only here.
pub fn register(lua: &Lua) -> mlua::Result<()> {
    let globals = lua.globals();
    globals.raw_set("cjson", cjson_table(lua)?)?;
    globals.raw_set("cmsgpack", cmsgpack_table(lua)?)?;
    globals.raw_set("bit", bit_table(lua)?)?;
    globals.raw_set("struct", struct_table(lua)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Expected values were produced by redis-server 7.0.15 (the oracle):
    //! each case's Lua expression was run there as
    //! `EVAL <DUMP with EXPR replaced> 0` and the reply is pasted verbatim.
    //! The same chunk, named `@user_script` like Redis's, runs here.

    use super::*;

    /// Wraps `EXPR` in `pcall` and serialises everything it returns
    /// (sorted table keys, escaped bytes, `%.17g` numbers, `NULL` for
    /// `cjson.null`) into one comparable line.
    const DUMP: &str = r#"local function esc(s) return (string.gsub(s, '[^%w%p ]', function(c) return string.format('\\%03d', string.byte(c)) end)) end local function d(v) local t = type(v) if t == 'string' then return '"' .. esc(v) .. '"' elseif t == 'number' then return string.format('%.17g', v) elseif t == 'table' then local keys = {} for k in pairs(v) do keys[#keys+1] = k end table.sort(keys, function(a, b) if type(a) == type(b) then if type(a) == 'number' or type(a) == 'string' then return a < b end return tostring(a) < tostring(b) end return type(a) < type(b) end) local out = {} for _, k in ipairs(keys) do out[#out+1] = d(k) .. '=' .. d(v[k]) end return '{' .. table.concat(out, ',') .. '}' elseif v == cjson.null then return 'NULL' else return t .. (t == 'boolean' and ':' .. tostring(v) or '') end end local function D(...) local out = {} for i = 1, select('#', ...) do out[i] = d((select(i, ...))) end return select('#', ...) .. '#' .. table.concat(out, ' | ') end return D(pcall(function() return EXPR end))"#;

    fn new_lua() -> Lua {
        let lua = Lua::new();
        register(&lua).expect("register");
        lua
    }

    fn run(lua: &Lua, expr: &str) -> String {
        let code = DUMP.replace("EXPR", expr);
        match lua.load(&code).set_name("@user_script").eval::<Value>() {
            Ok(Value::String(s)) => s.to_string_lossy(),
            Ok(v) => format!("not a string: {v:?}"),
            Err(e) => format!("error: {e}"),
        }
    }

    fn check(cases: &[(&str, &str)]) {
        let lua = new_lua();
        let mut failed = Vec::new();
        for (expr, want) in cases {
            let got = run(&lua, expr);
            if got != *want {
                failed.push(format!("{expr}\n  redis: {want}\n  ours:  {got}"));
            }
        }
        assert!(
            failed.is_empty(),
            "{} of {} cases differ:\n{}",
            failed.len(),
            cases.len(),
            failed.join("\n")
        );
    }

    #[test]
    fn cjson_matches_redis() {
        check(CJSON_CASES);
    }

    #[test]
    fn cmsgpack_matches_redis() {
        check(CMSGPACK_CASES);
    }

    #[test]
    fn bit_matches_redis() {
        check(BIT_CASES);
    }

    #[test]
    fn struct_matches_redis() {
        check(STRUCT_CASES);
    }

    #[test]
    fn hash_order_and_method_calls_match_redis() {
        check(MISC_CASES);
    }

    #[test]
    fn stack_and_depth_limits_match_redis() {
        check(LIMITS_CASES);
    }

    /// Uncaught errors are plain strings carrying the caller's position,
    /// e.g. redis-server 7.0.15 replies to `EVAL "return cjson.decode('x')" 0`
    /// with `ERR user_script:1: Expected value but found invalid token at
    /// character 1 ...` and to `return cjson.encode()` with
    /// `ERR user_script:1: bad argument #1 to 'encode' (expected 1 argument) ...`.
    #[test]
    fn uncaught_errors_are_positioned_strings() {
        let lua = new_lua();
        // (mlua appends a traceback to uncaught runtime errors; drop it.)
        let err = |code: &str| match lua.load(code).set_name("@user_script").exec() {
            Err(mlua::Error::RuntimeError(msg)) => match msg.split_once("\nstack traceback:") {
                Some((head, _)) => head.to_string(),
                None => msg,
            },
            other => panic!("expected a runtime error, got {other:?}"),
        };
        assert_eq!(
            err("return cjson.decode('x')"),
            "user_script:1: Expected value but found invalid token at character 1"
        );
        assert_eq!(
            err("return cjson.encode()"),
            "user_script:1: bad argument #1 to 'encode' (expected 1 argument)"
        );
        assert_eq!(
            err("return cmsgpack.pack()"),
            "user_script:1: bad argument #0 to 'pack' (MessagePack pack needs input.)"
        );
        assert_eq!(
            err("return bit.band('x')"),
            "user_script:1: bad argument #1 to 'band' (number expected, got string)"
        );
        assert_eq!(
            err("return struct.unpack('Bc0', '\\255abc')"),
            "user_script:1: bad argument #2 to 'unpack' (data string too short)"
        );
        assert_eq!(
            err("\nlocal x = cmsgpack.unpack('\\129\\192\\1')"),
            "table index is nil"
        );
        // pcall sees a string, not an mlua error object.
        let v: String = lua
            .load("local ok, e = pcall(cjson.decode, '[1,') return type(e) .. ':' .. e")
            .eval()
            .expect("eval");
        assert_eq!(v, "string:Expected value but found T_END at character 4");
    }

    #[test]
    fn null_is_a_null_lightuserdata() {
        let lua = new_lua();
        let v: Value = lua
            .load("return cjson.decode('null')")
            .eval()
            .expect("eval");
        assert!(matches!(v, Value::LightUserData(p) if p.0.is_null()));
        let same: bool = lua
            .load("return cjson.decode('[null]')[1] == cjson.null")
            .eval()
            .expect("eval");
        assert!(same);
    }

    /// `fmt_g` must agree with C's printf, reached through Lua's own
    /// `string.format` (the vendored Lua uses the C library's sprintf).
    #[test]
    fn fmt_g_matches_c_printf() {
        let lua = new_lua();
        let fmt: Function = lua.load("return string.format").eval().expect("eval");
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut values = vec![
            99999999999999.0,
            100000000000000.0,
            -12345.0,
            -99999999999999.0,
            1e14,
            10.0,
            9.0,
            95.0,
            150.0,
            1e21,
            4e15,
            0.0,
            -0.0,
            1.0,
            0.5,
            1.5,
            2.5,
            0.1,
            1e15,
            1e16,
            1e-5,
            1e-4,
            123456789012345.0,
            99999999999999.5,
            9.9999999999999e-5,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            1.0 / 3.0,
            2f64.powi(53),
            0.000123456,
        ];
        for _ in 0..3000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let v = f64::from_bits(seed);
            if v.is_finite() {
                values.push(v);
            }
            values.push((seed % 1_000_000) as f64 / 1000.0);
            values.push((seed >> 11) as f64 * 1e-3);
        }
        for prec in [14usize, 1, 3, 6] {
            let spec = format!("%.{prec}g");
            for &v in &values {
                let c: String = fmt.call((spec.as_str(), v)).expect("format");
                assert_eq!(fmt_g(v, prec), c, "value {v:e} precision {prec}");
            }
        }
    }

    /// `str2number` must agree with Lua's own `tonumber`.
    #[test]
    fn str2number_matches_lua_tonumber() {
        let lua = new_lua();
        let tonumber: Function = lua.load("return tonumber").eval().expect("eval");
        for s in [
            "12", " 12 ", "0x1A", "-0x10", "1e5", "1e", ".5", "5.", ".", "", " ", "inf", "-INF",
            "nan", "infinity", "0x", "0xg", "1x", "1 2", "\t3\n", "+7", "--1", "1e+", "0x1p4",
            "0x.8", "1e400", "12abc", "0X1F", "3.25e-2",
        ] {
            let want: Option<f64> = tonumber.call(s).expect("tonumber");
            let got = str2number(s.as_bytes());
            let same = match (want, got) {
                (Some(a), Some(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                (None, None) => true,
                _ => false,
            };
            assert!(same, "{s:?}: lua {want:?}, ours {got:?}");
        }
    }

    #[test]
    fn cjson_new_has_independent_config() {
        let lua = new_lua();
        let v: String = lua
            .load("local c = cjson.new() c.encode_number_precision(2) return c.encode(1/3) .. ' ' .. cjson.encode(1/3)")
            .eval()
            .expect("eval");
        assert_eq!(v, "0.33 0.33333333333333");
    }

    /// `cjson` cases: (Lua expression, dump of what redis-server 7.0.15 returned).
    const CJSON_CASES: &[(&str, &str)] = &[
        (
            r#"cjson.encode({1,2,'x'})"#,
            r#"2#boolean:true | "[1,2,"x"]""#,
        ),
        (
            r#"cjson.encode({1.5, 0.1, 1e15, 1e16, 123456789012345, -0.0, 1/3, 2^53, 1e-5, 100, 1e300, -1e-300, 5e-324, 1.7976931348623157e308, 0.0001, 0.00001234, 123456.789})"#,
            r#"2#boolean:true | "[1.5,0.1,1e+15,1e+16,1.2345678901234e+14,-0,0.33333333333333,9.007199254741e+15,1e-05,100,1e+300,-1e-300,4.9406564584125e-324,1.7976931348623e+308,0.0001,1.234e-05,123456.789]""#,
        ),
        (r#"cjson.encode(nil)"#, r#"2#boolean:true | "null""#),
        (
            r#"cjson.encode(true), cjson.encode(false)"#,
            r#"3#boolean:true | "true" | "false""#,
        ),
        (
            r#"cjson.encode('a"b\\c/d\1\31\127\128\255\n\r\t\b\f')"#,
            r#"2#boolean:true | ""a\"b\\c\/d\u0001\u001f\u007f\128\255\n\r\t\b\f"""#,
        ),
        (r#"cjson.encode({})"#, r#"2#boolean:true | "{}""#),
        (
            r#"cjson.encode({{}, {{}}})"#,
            r#"2#boolean:true | "[{},[{}]]""#,
        ),
        (r#"cjson.encode({a=1})"#, r#"2#boolean:true | "{"a":1}""#),
        (
            r#"cjson.encode({[1]=1,[2]=2,[10]=3})"#,
            r#"2#boolean:true | "[1,2,null,null,null,null,null,null,null,3]""#,
        ),
        (
            r#"cjson.encode({[1]=1,[2]=2,[11]=3})"#,
            r#"2#boolean:false | "user_script:1: Cannot serialise table: excessively sparse array""#,
        ),
        (
            r#"cjson.encode({[1]=1,[2]=2,[20]=3})"#,
            r#"2#boolean:false | "user_script:1: Cannot serialise table: excessively sparse array""#,
        ),
        (r#"cjson.encode({[0]=1})"#, r#"2#boolean:true | "{"0":1}""#),
        (
            r#"cjson.encode({[1.5]=1})"#,
            r#"2#boolean:true | "{"1.5":1}""#,
        ),
        (
            r#"cjson.encode({[-1]=1})"#,
            r#"2#boolean:true | "{"-1":1}""#,
        ),
        (r#"cjson.encode({[2]=1})"#, r#"2#boolean:true | "[null,1]""#),
        (
            r#"cjson.encode({[1]=1, x=2})"#,
            r#"2#boolean:true | "{"1":1,"x":2}""#,
        ),
        (
            r#"cjson.encode({[1/0]=1})"#,
            r#"2#boolean:false | "user_script:1: Cannot serialise number: must not be NaN or Inf""#,
        ),
        (
            r#"cjson.encode({[true]=1})"#,
            r#"2#boolean:false | "user_script:1: Cannot serialise boolean: table key must be a number or string""#,
        ),
        (
            r#"cjson.encode({[{}]=1})"#,
            r#"2#boolean:false | "user_script:1: Cannot serialise table: table key must be a number or string""#,
        ),
        (
            r#"cjson.encode(1/0)"#,
            r#"2#boolean:false | "user_script:1: Cannot serialise number: must not be NaN or Inf""#,
        ),
        (
            r#"cjson.encode(-1/0)"#,
            r#"2#boolean:false | "user_script:1: Cannot serialise number: must not be NaN or Inf""#,
        ),
        (
            r#"cjson.encode(0/0)"#,
            r#"2#boolean:false | "user_script:1: Cannot serialise number: must not be NaN or Inf""#,
        ),
        (
            r#"cjson.encode(function() end)"#,
            r#"2#boolean:false | "user_script:1: Cannot serialise function: type not supported""#,
        ),
        (
            r#"cjson.encode(coroutine.create(function() end))"#,
            r#"2#boolean:false | "user_script:1: Cannot serialise thread: type not supported""#,
        ),
        (r#"cjson.encode(cjson.null)"#, r#"2#boolean:true | "null""#),
        (
            r#"cjson.encode({cjson.null, 1})"#,
            r#"2#boolean:true | "[null,1]""#,
        ),
        (
            r#"cjson.encode()"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'encode' (expected 1 argument)""#,
        ),
        (
            r#"cjson.encode(1, 2)"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'encode' (expected 1 argument)""#,
        ),
        (
            r#"cjson.encode({1,nil,3})"#,
            r#"2#boolean:true | "[1,null,3]""#,
        ),
        (
            r#"cjson.encode({nil,nil,3})"#,
            r#"2#boolean:true | "[null,null,3]""#,
        ),
        (
            r#"cjson.encode({[3]=1,[4]=2})"#,
            r#"2#boolean:true | "[null,null,1,2]""#,
        ),
        (
            r#"cjson.encode({[2^31]=1})"#,
            r#"2#boolean:true | "{"2147483648":1}""#,
        ),
        (
            r#"cjson.encode({[2^31]=1, [1]=2})"#,
            r#"2#boolean:true | "[2]""#,
        ),
        (
            r#"cjson.encode({[2^40]=1})"#,
            r#"2#boolean:true | "{"1099511627776":1}""#,
        ),
        (
            r#"cjson.decode('[1,2,3]')"#,
            r#"2#boolean:true | {1=1,2=2,3=3}"#,
        ),
        (
            r#"cjson.decode('{"a":1,"b":[true,false,null],"c":{"d":"e"}}')"#,
            r#"2#boolean:true | {"a"=1,"b"={1=boolean:true,2=boolean:false,3=NULL},"c"={"d"="e"}}"#,
        ),
        (r#"cjson.decode('null')"#, r#"2#boolean:true | NULL"#),
        (
            r#"cjson.decode('"\\u00e9\\ud83d\\ude00\\u0041\\n\\/\\b\\f\\r\\t\\"\\\\"')"#,
            r#"2#boolean:true | "\195\169\240\159\152\128A\010/\008\012\013\009"\""#,
        ),
        (
            r#"cjson.decode('"\\ud800"')"#,
            r#"2#boolean:false | "user_script:1: Expected value but found invalid unicode escape code at character 2""#,
        ),
        (
            r#"cjson.decode('"\\udc00"')"#,
            r#"2#boolean:false | "user_script:1: Expected value but found invalid unicode escape code at character 2""#,
        ),
        (
            r#"cjson.decode('"\\ud800\\u0041"')"#,
            r#"2#boolean:false | "user_script:1: Expected value but found invalid unicode escape code at character 2""#,
        ),
        (
            r#"cjson.decode('"\\u12"')"#,
            r#"2#boolean:false | "user_script:1: Expected value but found invalid unicode escape code at character 2""#,
        ),
        (
            r#"cjson.decode('"\\x"')"#,
            r#"2#boolean:false | "user_script:1: Expected value but found invalid escape code at character 2""#,
        ),
        (
            r#"cjson.decode('"abc')"#,
            r#"2#boolean:false | "user_script:1: Expected value but found unexpected end of string at character 5""#,
        ),
        (
            r#"cjson.decode('')"#,
            r#"2#boolean:false | "user_script:1: Expected value but found T_END at character 1""#,
        ),
        (
            r#"cjson.decode('   ')"#,
            r#"2#boolean:false | "user_script:1: Expected value but found T_END at character 4""#,
        ),
        (
            r#"cjson.decode('x')"#,
            r#"2#boolean:false | "user_script:1: Expected value but found invalid token at character 1""#,
        ),
        (
            r#"cjson.decode('[1,2')"#,
            r#"2#boolean:false | "user_script:1: Expected comma or array end but found T_END at character 5""#,
        ),
        (
            r#"cjson.decode('[1,]')"#,
            r#"2#boolean:false | "user_script:1: Expected value but found T_ARR_END at character 4""#,
        ),
        (
            r#"cjson.decode('[,1]')"#,
            r#"2#boolean:false | "user_script:1: Expected value but found T_COMMA at character 2""#,
        ),
        (
            r#"cjson.decode('{"a":1,}')"#,
            r#"2#boolean:false | "user_script:1: Expected object key string but found T_OBJ_END at character 8""#,
        ),
        (
            r#"cjson.decode('{"a" 1}')"#,
            r#"2#boolean:false | "user_script:1: Expected colon but found T_NUMBER at character 6""#,
        ),
        (
            r#"cjson.decode('{1:2}')"#,
            r#"2#boolean:false | "user_script:1: Expected object key string but found T_NUMBER at character 2""#,
        ),
        (
            r#"cjson.decode('{"a":1 "b":2}')"#,
            r#"2#boolean:false | "user_script:1: Expected comma or object end but found T_STRING at character 8""#,
        ),
        (
            r#"cjson.decode('1 2')"#,
            r#"2#boolean:false | "user_script:1: Expected the end but found T_NUMBER at character 3""#,
        ),
        (
            r#"cjson.decode('-')"#,
            r#"2#boolean:false | "user_script:1: Expected value but found invalid number at character 1""#,
        ),
        (r#"cjson.decode('0x10')"#, r#"2#boolean:true | 16"#),
        (r#"cjson.decode('-0x10')"#, r#"2#boolean:true | -16"#),
        (r#"cjson.decode('+1')"#, r#"2#boolean:true | 1"#),
        (
            r#"cjson.decode('Infinity'), cjson.decode('-Infinity'), cjson.decode('NaN'), cjson.decode('nan'), cjson.decode('inf')"#,
            r#"6#boolean:true | inf | -inf | nan | nan | inf"#,
        ),
        (r#"cjson.decode('01')"#, r#"2#boolean:true | 1"#),
        (r#"cjson.decode('1e400')"#, r#"2#boolean:true | inf"#),
        (r#"cjson.decode('-1e400')"#, r#"2#boolean:true | -inf"#),
        (r#"cjson.decode('1.5e-3')"#, r#"2#boolean:true | 0.0015"#),
        (r#"cjson.decode('1.')"#, r#"2#boolean:true | 1"#),
        (
            r#"cjson.decode('.5')"#,
            r#"2#boolean:false | "user_script:1: Expected value but found invalid token at character 1""#,
        ),
        (
            r#"cjson.decode('1e')"#,
            r#"2#boolean:false | "user_script:1: Expected the end but found invalid token at character 2""#,
        ),
        (
            r#"cjson.decode('1e+')"#,
            r#"2#boolean:false | "user_script:1: Expected the end but found invalid token at character 2""#,
        ),
        (
            r#"cjson.decode('tru')"#,
            r#"2#boolean:false | "user_script:1: Expected value but found invalid token at character 1""#,
        ),
        (
            r#"cjson.decode('nul')"#,
            r#"2#boolean:false | "user_script:1: Expected value but found invalid token at character 1""#,
        ),
        (
            r#"cjson.decode('truex')"#,
            r#"2#boolean:false | "user_script:1: Expected the end but found invalid token at character 5""#,
        ),
        (
            r#"cjson.decode('[1\0]')"#,
            r#"2#boolean:false | "user_script:1: Expected comma or array end but found T_END at character 3""#,
        ),
        (
            r#"cjson.decode('1\0garbage')"#,
            r#"2#boolean:false | "user_script:1: JSON parser does not support UTF-16 or UTF-32""#,
        ),
        (
            r#"cjson.decode('\0a')"#,
            r#"2#boolean:false | "user_script:1: JSON parser does not support UTF-16 or UTF-32""#,
        ),
        (
            r#"cjson.decode('a\0')"#,
            r#"2#boolean:false | "user_script:1: JSON parser does not support UTF-16 or UTF-32""#,
        ),
        (r#"cjson.decode(123)"#, r#"2#boolean:true | 123"#),
        (
            r#"cjson.decode({})"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'decode' (string expected, got table)""#,
        ),
        (
            r#"cjson.decode()"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'decode' (expected 1 argument)""#,
        ),
        (
            r#"cjson.decode('[1]', 2)"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'decode' (expected 1 argument)""#,
        ),
        (
            r#"cjson.decode(string.rep('[', 1000) .. string.rep(']', 1000)) ~= nil"#,
            r#"2#boolean:true | boolean:true"#,
        ),
        (
            r#"cjson.decode(string.rep('[', 1001) .. string.rep(']', 1001))"#,
            r#"2#boolean:false | "user_script:1: Found too many nested data structures (1001) at character 1001""#,
        ),
        (
            r#"cjson.decode(string.rep('{"a":', 1001) .. '1' .. string.rep('}', 1001))"#,
            r#"2#boolean:false | "user_script:1: Found too many nested data structures (1001) at character 5001""#,
        ),
        (
            r#"cjson.decode('{"a":1,"a":2}')"#,
            r#"2#boolean:true | {"a"=2}"#,
        ),
        (
            r#"cjson.decode('[1,[2,[3,{"x":[]}]],{}]')"#,
            r#"2#boolean:true | {1=1,2={1=2,2={1=3,2={"x"={}}}},3={}}"#,
        ),
        (
            r#"cjson.decode('"\1\31"')"#,
            r#"2#boolean:true | "\001\031""#,
        ),
        (
            r#"cjson.decode('"\128\255"')"#,
            r#"2#boolean:true | "\128\255""#,
        ),
        (
            r#"cjson.decode('\t\r\n [ 1 , 2 ] \n')"#,
            r#"2#boolean:true | {1=1,2=2}"#,
        ),
        (
            r#"cjson.decode('[1]x')"#,
            r#"2#boolean:false | "user_script:1: Expected the end but found invalid token at character 4""#,
        ),
        (
            r#"cjson.decode('{"a":[1,2}')"#,
            r#"2#boolean:false | "user_script:1: Expected comma or array end but found T_OBJ_END at character 10""#,
        ),
        (
            r#"cjson.decode('{"a"')"#,
            r#"2#boolean:false | "user_script:1: Expected colon but found T_END at character 5""#,
        ),
        (
            r#"cjson.decode('{"a":')"#,
            r#"2#boolean:false | "user_script:1: Expected value but found T_END at character 6""#,
        ),
        (
            r#"cjson.decode('{')"#,
            r#"2#boolean:false | "user_script:1: Expected object key string but found T_END at character 2""#,
        ),
        (
            r#"cjson.decode('[')"#,
            r#"2#boolean:false | "user_script:1: Expected value but found T_END at character 2""#,
        ),
        (r#"cjson.decode('"\\u0000"')"#, r#"2#boolean:true | "\000""#),
        (
            r#"cjson.decode('"\\uD83D\\uDE00"')"#,
            r#"2#boolean:true | "\240\159\152\128""#,
        ),
        (
            r#"cjson.decode('1E5'), cjson.decode('-0'), cjson.decode('-0.0')"#,
            r#"4#boolean:true | 100000 | -0 | -0"#,
        ),
        (r#"cjson.null"#, r#"2#boolean:true | NULL"#),
        (r#"type(cjson.null)"#, r#"2#boolean:true | "userdata""#),
        (
            r#"cjson._NAME, cjson._VERSION"#,
            r#"3#boolean:true | "cjson" | "2.1.0""#,
        ),
        (
            r#"cjson.encode_keep_buffer(), cjson.encode_max_depth(), cjson.decode_max_depth(), cjson.encode_number_precision(), cjson.encode_invalid_numbers(), cjson.decode_invalid_numbers()"#,
            r#"7#boolean:true | boolean:true | 1000 | 1000 | 14 | boolean:false | boolean:true"#,
        ),
        (
            r#"cjson.encode_sparse_array()"#,
            r#"4#boolean:true | boolean:false | 2 | 10"#,
        ),
        (
            r#"cjson.encode_keep_buffer(false), cjson.encode_keep_buffer('on'), cjson.encode_keep_buffer(true)"#,
            r#"4#boolean:true | boolean:false | boolean:true | boolean:true"#,
        ),
        (
            r#"cjson.encode_keep_buffer('x')"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'encode_keep_buffer' (invalid option 'x')""#,
        ),
        (
            r#"cjson.encode_keep_buffer(1)"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'encode_keep_buffer' (invalid option '1')""#,
        ),
        (
            r#"cjson.encode_keep_buffer(1, 2)"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'encode_keep_buffer' (found too many arguments)""#,
        ),
        (
            r#"cjson.encode_max_depth(0)"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'encode_max_depth' (expected integer between 1 and 2147483647)""#,
        ),
        (
            r#"cjson.encode_max_depth('x')"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'encode_max_depth' (number expected, got string)""#,
        ),
        (
            r#"cjson.encode_max_depth('5'), cjson.encode_max_depth(1000)"#,
            r#"3#boolean:true | 5 | 1000"#,
        ),
        (
            r#"cjson.encode_max_depth(2.7), cjson.encode_max_depth(1000)"#,
            r#"3#boolean:true | 2 | 1000"#,
        ),
        (r#"cjson.encode_max_depth(nil)"#, r#"2#boolean:true | 1000"#),
        (
            r#"cjson.encode_max_depth(2^32+5), cjson.encode_max_depth(1000)"#,
            r#"3#boolean:true | 5 | 1000"#,
        ),
        (
            r#"cjson.encode_max_depth(-1)"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'encode_max_depth' (expected integer between 1 and 2147483647)""#,
        ),
        (
            r#"cjson.encode_number_precision(15)"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)""#,
        ),
        (
            r#"cjson.encode_number_precision(0)"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)""#,
        ),
        (
            r#"cjson.encode_number_precision(3), cjson.encode({1/3, 12345, 0.00012345, 1e20}), cjson.encode_number_precision(14)"#,
            r#"4#boolean:true | 3 | "[0.333,1.23e+04,0.000123,1e+20]" | 14"#,
        ),
        (
            r#"cjson.encode_number_precision(1), cjson.encode({1/3, 12345, 0.5, 1.5, 2.5, 95, 150}), cjson.encode_number_precision(14)"#,
            r#"4#boolean:true | 1 | "[0.3,1e+04,0.5,2,2,1e+02,2e+02]" | 14"#,
        ),
        (
            r#"cjson.encode_invalid_numbers(true), cjson.encode({1/0, -1/0, 0/0, -(0/0)}), cjson.encode_invalid_numbers(false)"#,
            r#"4#boolean:true | boolean:true | "[inf,-inf,nan,nan]" | boolean:false"#,
        ),
        (
            r#"cjson.encode_invalid_numbers('null'), cjson.encode({1/0, -1/0, 0/0, [1/0]=1}), cjson.encode_invalid_numbers('off')"#,
            r#"4#boolean:true | "null" | "{"1":null,"2":null,"3":null,"null":1}" | boolean:false"#,
        ),
        (
            r#"cjson.encode_invalid_numbers('on'), cjson.encode({[1/0]=1}), cjson.encode_invalid_numbers(false)"#,
            r#"4#boolean:true | boolean:true | "{"inf":1}" | boolean:false"#,
        ),
        (
            r#"cjson.encode_invalid_numbers('bad')"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'encode_invalid_numbers' (invalid option 'bad')""#,
        ),
        (
            r#"cjson.encode_invalid_numbers({})"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'encode_invalid_numbers' (string expected, got table)""#,
        ),
        (
            r#"cjson.decode_invalid_numbers(false), cjson.decode('[1]'), cjson.decode_invalid_numbers(true)"#,
            r#"4#boolean:true | boolean:false | {1=1} | boolean:true"#,
        ),
        (
            r#"cjson.decode_invalid_numbers(false), pcall(cjson.decode, '0x10'), pcall(cjson.decode, 'Infinity'), pcall(cjson.decode, '-inf'), pcall(cjson.decode, '01'), pcall(cjson.decode, '+1'), pcall(cjson.decode, '-'), cjson.decode_invalid_numbers(true)"#,
            r#"9#boolean:true | boolean:false | boolean:false | boolean:false | boolean:false | boolean:false | boolean:false | boolean:false | boolean:true"#,
        ),
        (
            r#"cjson.decode_invalid_numbers('on'), cjson.decode_invalid_numbers('off'), cjson.decode_invalid_numbers('on')"#,
            r#"4#boolean:true | boolean:true | boolean:false | boolean:true"#,
        ),
        (
            r#"cjson.encode_sparse_array(true), cjson.encode({[1]=1,[20]=2}), cjson.encode_sparse_array(false)"#,
            r#"6#boolean:true | boolean:true | "{"1":1,"20":2}" | boolean:false | 2 | 10"#,
        ),
        (
            r#"cjson.encode_sparse_array(false, 0), cjson.encode({[1]=1,[20]=2}), cjson.encode_sparse_array(false, 2)"#,
            r#"6#boolean:true | boolean:false | "[1,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,2]" | boolean:false | 2 | 10"#,
        ),
        (
            r#"cjson.encode_sparse_array(false, 2, 100), cjson.encode({[1]=1,[20]=2}), cjson.encode_sparse_array(false, 2, 10)"#,
            r#"6#boolean:true | boolean:false | "[1,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,2]" | boolean:false | 2 | 10"#,
        ),
        (
            r#"cjson.encode_sparse_array(false, -1)"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)""#,
        ),
        (
            r#"cjson.encode_sparse_array(false, 2, -1)"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)""#,
        ),
        (
            r#"cjson.encode_sparse_array('x')"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'encode_sparse_array' (invalid option 'x')""#,
        ),
        (
            r#"cjson.encode_sparse_array(1, 2, 3, 4)"#,
            r#"2#boolean:false | "user_script:1: bad argument #4 to 'encode_sparse_array' (found too many arguments)""#,
        ),
        (
            r#"cjson.encode_sparse_array('on', 3, 5), cjson.encode_sparse_array(false, 2, 10)"#,
            r#"5#boolean:true | boolean:true | boolean:false | 2 | 10"#,
        ),
        (
            r#"cjson.encode_max_depth(2), pcall(cjson.encode, {{{}}}), pcall(cjson.encode, {{}}), cjson.encode_max_depth(1000)"#,
            r#"5#boolean:true | 2 | boolean:false | boolean:true | 1000"#,
        ),
        (
            r#"cjson.decode_max_depth(2), pcall(cjson.decode, '[[[]]]'), pcall(cjson.decode, '[[]]'), pcall(cjson.decode, '[[1],{"a":{}}]'), cjson.decode_max_depth(1000)"#,
            r#"6#boolean:true | 2 | boolean:false | boolean:true | boolean:false | 1000"#,
        ),
        (
            r#"type(cjson.new), type(cjson.new()), cjson.new().encode({1})"#,
            r#"4#boolean:true | "function" | "table" | "[1]""#,
        ),
        (
            r#"(function() local c = cjson.new() c.encode_max_depth(1) return pcall(c.encode, {{}}), cjson.encode({{}}) end)()"#,
            r#"3#boolean:true | boolean:false | "[{}]""#,
        ),
    ];

    /// `cmsgpack` cases: (Lua expression, dump of what redis-server 7.0.15 returned).
    const CMSGPACK_CASES: &[(&str, &str)] = &[
        (
            r#"cmsgpack.pack({1,2,3})"#,
            r#"2#boolean:true | "\147\001\002\003""#,
        ),
        (
            r#"cmsgpack.pack(1, 2, 'x', true, false, nil)"#,
            r#"2#boolean:true | "\001\002\161x\195\194\192""#,
        ),
        (
            r#"cmsgpack.pack(0, 127, 128, 255, 256, 65535, 65536, 2^32-1, 2^32, 2^53, 2^63, -2^63, 2^64, -1, -32, -33, -128, -129, -32768, -32769, -2^31, -2^31-1)"#,
            r#"2#boolean:true | "\000\127\204\128\204\255\205\001\000\205\255\255\206\000\001\000\000\206\255\255\255\255\207\000\000\000\001\000\000\000\000\207\000 \000\000\000\000\000\000\202_\000\000\000\211\128\000\000\000\000\000\000\000\202_\128\000\000\255\224\208\223\208\128\209\255\127\209\128\000\210\255\255\127\255\210\128\000\000\000\211\255\255\255\255\127\255\255\255""#,
        ),
        (
            r#"cmsgpack.pack(1.5, 0.1, -0.0, 1/0, -1/0, 0/0, 1e300, 3.4028234663852886e38, 1e-45)"#,
            r#"2#boolean:true | "\202?\192\000\000\203?\185\153\153\153\153\153\154\000\202\255\128\000\000\202\127\128\000\000\203\255\248\000\000\000\000\000\000\203~7\228<\136\000u\156\202\127\127\255\255\2036\150\214\001\1737j\185""#,
        ),
        (
            r#"cmsgpack.pack(string.rep('a', 31), string.rep('b', 32))"#,
            r#"2#boolean:true | "\191aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\217 bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb""#,
        ),
        (
            r#"#cmsgpack.pack(string.rep('a', 255)), #cmsgpack.pack(string.rep('a', 256)), #cmsgpack.pack(string.rep('a', 65535)), #cmsgpack.pack(string.rep('a', 65536)), cmsgpack.pack(string.rep('a', 256)):sub(1,4), cmsgpack.pack(string.rep('a', 65536)):sub(1,6)"#,
            r#"7#boolean:true | 257 | 259 | 65538 | 65541 | "\218\001\000a" | "\219\000\001\000\000a""#,
        ),
        (r#"cmsgpack.pack({})"#, r#"2#boolean:true | "\144""#),
        (
            r#"cmsgpack.pack({a=1, b={1,2}})"#,
            r#"2#boolean:true | "\130\161a\001\161b\146\001\002""#,
        ),
        (
            r#"cmsgpack.pack({[1]=1, [3]=3})"#,
            r#"2#boolean:true | "\130\001\001\003\003""#,
        ),
        (
            r#"cmsgpack.pack({[1]=1, [2]=2, x=3})"#,
            r#"2#boolean:true | "\131\001\001\002\002\161x\003""#,
        ),
        (
            r#"cmsgpack.pack({[1.5]=1})"#,
            r#"2#boolean:true | "\129\202?\192\000\000\001""#,
        ),
        (
            r#"cmsgpack.pack({[0]=1})"#,
            r#"2#boolean:true | "\129\000\001""#,
        ),
        (
            r#"cmsgpack.pack({[2^31]=1})"#,
            r#"2#boolean:true | "\129\206\128\000\000\000\001""#,
        ),
        (
            r#"cmsgpack.pack({nil, 2})"#,
            r#"2#boolean:true | "\129\002\002""#,
        ),
        (r#"cmsgpack.pack(cjson.null)"#, r#"2#boolean:true | "\192""#),
        (
            r#"cmsgpack.pack()"#,
            r#"2#boolean:false | "user_script:1: bad argument #0 to 'pack' (MessagePack pack needs input.)""#,
        ),
        (
            r#"#cmsgpack.pack(unpack((function() local t = {} for i=1,16 do t[i] = i end return t end)())), cmsgpack.pack((function() local t = {} for i=1,16 do t[i] = i end return t end)())"#,
            r#"3#boolean:true | 16 | "\220\000\016\001\002\003\004\005\006\007\008\009\010\011\012\013\014\015\016""#,
        ),
        (
            r#"cmsgpack.pack((function() local t = {} for i=1,70000 do t[i] = 0 end return t end)()):sub(1, 8)"#,
            r#"2#boolean:true | "\221\000\001\017p\000\000\000""#,
        ),
        (
            r#"cmsgpack.pack((function() local t = {} for i=1,20 do t['k'..i] = i end return t end)()):sub(1, 3)"#,
            r#"2#boolean:true | "\222\000\020""#,
        ),
        (
            r#"(function() local t = {} local c = t for i=1,20 do c[1] = {} c = c[1] end return cmsgpack.pack(t) end)()"#,
            r#"2#boolean:true | "\145\145\145\145\145\145\145\145\145\145\145\145\145\145\145\145\192""#,
        ),
        (
            r#"(function() local t = {} local c = t for i=1,20 do c.a = {} c = c.a end return cmsgpack.pack(t) end)()"#,
            r#"2#boolean:true | "\129\161a\129\161a\129\161a\129\161a\129\161a\129\161a\129\161a\129\161a\129\161a\129\161a\129\161a\129\161a\129\161a\129\161a\129\161a\129\161a\192""#,
        ),
        (
            r#"(function() local t = {} t[1] = t return cmsgpack.pack(t) end)()"#,
            r#"2#boolean:true | "\145\145\145\145\145\145\145\145\145\145\145\145\145\145\145\145\192""#,
        ),
        (
            r#"cmsgpack.unpack(cmsgpack.pack({1,2,3}))"#,
            r#"2#boolean:true | {1=1,2=2,3=3}"#,
        ),
        (
            r#"cmsgpack.unpack(cmsgpack.pack(1, 'a', {x={1,2}}, true, nil, 1.5, -7, 2^40, -2^40, 0.1))"#,
            r#"11#boolean:true | 1 | "a" | {"x"={1=1,2=2}} | boolean:true | nil | 1.5 | -7 | 1099511627776 | -1099511627776 | 0.10000000000000001"#,
        ),
        (
            r#"cmsgpack.unpack('\207\255\255\255\255\255\255\255\255')"#,
            r#"2#boolean:true | -1"#,
        ),
        (
            r#"cmsgpack.unpack('\207\127\255\255\255\255\255\255\255')"#,
            r#"2#boolean:true | 9.2233720368547758e+18"#,
        ),
        (
            r#"cmsgpack.unpack('\211\255\255\255\255\255\255\255\254')"#,
            r#"2#boolean:true | -2"#,
        ),
        (
            r#"cmsgpack.unpack('\208\128\209\128\0\210\128\0\0\0\204\255\205\255\255\206\255\255\255\255')"#,
            r#"7#boolean:true | -128 | -32768 | -2147483648 | 255 | 65535 | 4294967295"#,
        ),
        (
            r#"cmsgpack.unpack('\202\63\192\0\0\203\63\248\0\0\0\0\0\0')"#,
            r#"3#boolean:true | 1.5 | 1.5"#,
        ),
        (
            r#"cmsgpack.unpack('\217\3abc\218\0\3abc\219\0\0\0\3abc')"#,
            r#"4#boolean:true | "abc" | "abc" | "abc""#,
        ),
        (
            r#"cmsgpack.unpack('\217\3ab')"#,
            r#"2#boolean:false | "user_script:1: Missing bytes in input.""#,
        ),
        (
            r#"cmsgpack.unpack('\219\0\0\0')"#,
            r#"2#boolean:false | "user_script:1: Missing bytes in input.""#,
        ),
        (
            r#"cmsgpack.unpack('\129\192\1')"#,
            r#"2#boolean:false | "table index is nil""#,
        ),
        (
            r#"cmsgpack.unpack('\129\203\255\255\255\255\255\255\255\255\1')"#,
            r#"2#boolean:false | "table index is NaN""#,
        ),
        (r#"cmsgpack.unpack('\129\1\192')"#, r#"2#boolean:true | {}"#),
        (
            r#"cmsgpack.unpack('\146\192\1')"#,
            r#"2#boolean:true | {2=1}"#,
        ),
        (
            r#"cmsgpack.unpack('\193')"#,
            r#"2#boolean:false | "user_script:1: Bad data format in input.""#,
        ),
        (
            r#"cmsgpack.unpack('\196\1a')"#,
            r#"2#boolean:false | "user_script:1: Bad data format in input.""#,
        ),
        (
            r#"cmsgpack.unpack('\212\1\1')"#,
            r#"2#boolean:false | "user_script:1: Bad data format in input.""#,
        ),
        (
            r#"cmsgpack.unpack('\146\1')"#,
            r#"2#boolean:false | "user_script:1: Missing bytes in input.""#,
        ),
        (
            r#"cmsgpack.unpack('\146\1\193')"#,
            r#"2#boolean:false | "user_script:1: Bad data format in input.""#,
        ),
        (r#"cmsgpack.unpack('')"#, r#"1#boolean:true"#),
        (
            r#"cmsgpack.unpack()"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'unpack' (string expected, got no value)""#,
        ),
        (
            r#"cmsgpack.unpack({})"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'unpack' (string expected, got table)""#,
        ),
        (r#"cmsgpack.unpack(5)"#, r#"2#boolean:true | 53"#),
        (r#"cmsgpack.unpack('\1', 'extra')"#, r#"2#boolean:true | 1"#),
        (
            r#"cmsgpack.unpack('\220\0\2\1\2\221\0\0\0\1\3\222\0\1\1\2\223\0\0\0\1\3\4')"#,
            r#"5#boolean:true | {1=1,2=2} | {1=3} | {1=2} | {3=4}"#,
        ),
        (
            r#"cmsgpack.unpack('\144\128')"#,
            r#"3#boolean:true | {} | {}"#,
        ),
        (
            r#"cmsgpack.unpack('\130\1\2')"#,
            r#"2#boolean:false | "user_script:1: Missing bytes in input.""#,
        ),
        (
            r#"cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3))"#,
            r#"3#boolean:true | 1 | 1"#,
        ),
        (
            r#"cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 1)"#,
            r#"3#boolean:true | 2 | 2"#,
        ),
        (
            r#"cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 2)"#,
            r#"3#boolean:true | -1 | 3"#,
        ),
        (
            r#"cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 3)"#,
            r#"2#boolean:true | -1"#,
        ),
        (
            r#"cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 4)"#,
            r#"2#boolean:false | "user_script:1: Start offset 4 greater than input length 3.""#,
        ),
        (
            r#"cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), -1)"#,
            r#"2#boolean:false | "user_script:1: Invalid request to unpack with offset of -1 and limit of 3.""#,
        ),
        (
            r#"cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 'x')"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'unpack_one' (number expected, got string)""#,
        ),
        (
            r#"cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), nil)"#,
            r#"3#boolean:true | 1 | 1"#,
        ),
        (r#"cmsgpack.unpack_one('')"#, r#"2#boolean:true | -1"#),
        (
            r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)"#,
            r#"4#boolean:true | 2 | 1 | 2"#,
        ),
        (
            r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2, 2)"#,
            r#"3#boolean:true | -1 | 3"#,
        ),
        (
            r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0)"#,
            r#"4#boolean:true | 1 | 2 | 3"#,
        ),
        (
            r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0, 1)"#,
            r#"2#boolean:true | 1"#,
        ),
        (
            r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 10)"#,
            r#"5#boolean:true | -1 | 1 | 2 | 3"#,
        ),
        (
            r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), -1)"#,
            r#"2#boolean:false | "user_script:1: Invalid request to unpack with offset of 0 and limit of 3.""#,
        ),
        (
            r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3))"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'unpack_limit' (number expected, got no value)""#,
        ),
        (
            r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 1, 100)"#,
            r#"2#boolean:false | "user_script:1: Start offset 100 greater than input length 3.""#,
        ),
        (
            r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2^32+1)"#,
            r#"5#boolean:true | -1 | 1 | 2 | 3"#,
        ),
        (
            r#"select('#', cmsgpack.unpack(string.rep('\1', 7999)))"#,
            r#"2#boolean:true | 7999"#,
        ),
        (
            r#"cmsgpack.unpack(string.rep('\1', 8000))"#,
            r#"2#boolean:false | "user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)""#,
        ),
        (
            r#"cmsgpack.unpack(string.rep('\145', 5000) .. '\1')"#,
            r#"2#boolean:false | "user_script:1: stack overflow (in function mp_decode_to_lua_array)""#,
        ),
        (
            r#"cmsgpack.unpack(string.rep('\129\1', 5000) .. '\1')"#,
            r#"2#boolean:false | "user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)""#,
        ),
        (
            r#"cmsgpack.unpack(string.rep('\145', 3999) .. '\1') ~= nil"#,
            r#"2#boolean:true | boolean:true"#,
        ),
        (
            r#"cmsgpack.unpack(string.rep('\129\1', 3998) .. '\1') ~= nil"#,
            r#"2#boolean:true | boolean:true"#,
        ),
        (
            r#"cmsgpack.unpack(string.rep('\129\1', 3999) .. '\1') ~= nil"#,
            r#"2#boolean:true | boolean:true"#,
        ),
        (
            r#"cmsgpack.unpack(string.rep('\129\145', 2666) .. '\1') ~= nil"#,
            r#"2#boolean:false | "user_script:1: Missing bytes in input.""#,
        ),
        (
            r#"cmsgpack.unpack(string.rep('\129\145', 2667) .. '\1') ~= nil"#,
            r#"2#boolean:false | "user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)""#,
        ),
        (
            r#"select('#', cmsgpack.unpack('\1', unpack((function() local t = {} for i=1,7990 do t[i]='x' end return t end)())))"#,
            r#"2#boolean:true | 1"#,
        ),
        (
            r#"cmsgpack.unpack(string.rep('\1', 10), unpack((function() local t = {} for i=1,7990 do t[i]='x' end return t end)()))"#,
            r#"2#boolean:false | "user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)""#,
        ),
        (
            r#"cmsgpack.pack(unpack((function() local t = {} for i=1,4000 do t[i]=i end return t end)())):len()"#,
            r#"2#boolean:true | 11618"#,
        ),
        (
            r#"cmsgpack.pack(unpack((function() local t = {} for i=1,4001 do t[i]=i end return t end)()))"#,
            r#"2#boolean:false | "user_script:1: bad argument #0 to 'pack' (Too many arguments for MessagePack pack.)""#,
        ),
        (
            r#"cmsgpack._NAME, cmsgpack._VERSION, cmsgpack._COPYRIGHT, cmsgpack._DESCRIPTION"#,
            r#"5#boolean:true | "cmsgpack" | "lua-cmsgpack 0.4.0" | "Copyright (C) 2012, Salvatore Sanfilippo" | "MessagePack C implementation for Lua""#,
        ),
    ];

    /// `bit` cases: (Lua expression, dump of what redis-server 7.0.15 returned).
    const BIT_CASES: &[(&str, &str)] = &[
        (
            r#"bit.tobit(0xffffffff), bit.tobit(2^32+5), bit.tobit(-1), bit.tobit(1.5), bit.tobit(2.5), bit.tobit(-1.5), bit.tobit(2^53), bit.tobit(2^60+3), bit.tobit(1e300), bit.tobit(0/0), bit.tobit(1/0), bit.tobit('12'), bit.tobit(' 0x10 ')"#,
            r#"14#boolean:true | -1 | 5 | -1 | 2 | 2 | -2 | 0 | 0 | -2013235812 | 0 | 0 | 12 | 16"#,
        ),
        (
            r#"bit.tobit('x')"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'tobit' (number expected, got string)""#,
        ),
        (
            r#"bit.tobit()"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'tobit' (number expected, got no value)""#,
        ),
        (
            r#"bit.tobit(nil)"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'tobit' (number expected, got nil)""#,
        ),
        (
            r#"bit.tobit({})"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'tobit' (number expected, got table)""#,
        ),
        (r#"bit.tobit('0')"#, r#"2#boolean:true | 0"#),
        (
            r#"bit.tohex(65535), bit.tohex(-1), bit.tohex(255, 2), bit.tohex(255, -2), bit.tohex(0x12345678, 4), bit.tohex(1, 0), bit.tohex(1, 20), bit.tohex(1, -20), bit.tohex(2^32+17)"#,
            r#"10#boolean:true | "0000ffff" | "ffffffff" | "ff" | "FF" | "5678" | "" | "00000001" | "00000001" | "00000011""#,
        ),
        (
            r#"bit.tohex(1, nil)"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'tohex' (number expected, got nil)""#,
        ),
        (
            r#"bit.tohex(1, 'x')"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'tohex' (number expected, got string)""#,
        ),
        (
            r#"bit.bnot(0), bit.bnot(-1), bit.bnot(5)"#,
            r#"4#boolean:true | -1 | 0 | -6"#,
        ),
        (
            r#"bit.band(0xff, 0x0f), bit.bor(1, 2, 4, 8), bit.bxor(0xff, 0x0f, 1), bit.band(5), bit.band(-1, 2^32-1)"#,
            r#"6#boolean:true | 15 | 15 | 241 | 5 | -1"#,
        ),
        (
            r#"bit.band()"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'band' (number expected, got no value)""#,
        ),
        (
            r#"bit.band(1, 'x', 'y')"#,
            r#"2#boolean:false | "user_script:1: bad argument #3 to 'band' (number expected, got string)""#,
        ),
        (
            r#"bit.band('x', 1)"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'band' (number expected, got string)""#,
        ),
        (
            r#"bit.bor(1, {})"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'bor' (number expected, got table)""#,
        ),
        (
            r#"bit.lshift(1, 31), bit.lshift(1, 32), bit.lshift(1, 33), bit.lshift(1, -1), bit.rshift(-1, 1), bit.rshift(-1, 0), bit.arshift(-256, 4), bit.arshift(256, 4), bit.rol(0x12345678, 8), bit.ror(0x12345678, 8), bit.rol(1, 0), bit.ror(1, 32), bit.bswap(0x12345678), bit.bswap(-1)"#,
            r#"15#boolean:true | -2147483648 | 1 | 2 | -2147483648 | 2147483647 | -1 | -16 | 16 | 878082066 | 2014458966 | 1 | 1 | 2018915346 | -1"#,
        ),
        (
            r#"bit.lshift(1)"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'lshift' (number expected, got no value)""#,
        ),
        (
            r#"bit.rol()"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'rol' (number expected, got no value)""#,
        ),
        (
            r#"(function() local r = bit.band('q') return r end)()"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'band' (number expected, got string)""#,
        ),
        (
            r#"bit.tohex(1, 2^31 - 1), bit.tohex(255, -(2^31 - 1))"#,
            r#"3#boolean:true | "00000001" | "000000FF""#,
        ),
    ];

    /// `struct` cases: (Lua expression, dump of what redis-server 7.0.15 returned).
    const STRUCT_CASES: &[(&str, &str)] = &[
        (
            r#"struct.pack('>i3<h!4bi', 1, 2, 3, 4)"#,
            r#"2#boolean:true | "\000\000\001\002\000\003\000\000\004\000\000\000""#,
        ),
        (
            r#"struct.pack('bBhHlLTiI', -1, 255, -2, 65535, -3, 4, 5, -6, 7)"#,
            r#"2#boolean:true | "\255\255\254\255\255\255\253\255\255\255\255\255\255\255\004\000\000\000\000\000\000\000\005\000\000\000\000\000\000\000\250\255\255\255\007\000\000\000""#,
        ),
        (
            r#"struct.pack('>bBhHlLTiI', -1, 255, -2, 65535, -3, 4, 5, -6, 7)"#,
            r#"2#boolean:true | "\255\255\255\254\255\255\255\255\255\255\255\255\255\253\000\000\000\000\000\000\000\004\000\000\000\000\000\000\000\005\255\255\255\250\000\000\000\007""#,
        ),
        (
            r#"struct.pack('i1i2i3i5i7i8i9i16', 1, -1, 2, -2, 3, -3, 4, -4)"#,
            r#"2#boolean:true | "\001\255\255\002\000\000\254\255\255\255\255\003\000\000\000\000\000\000\253\255\255\255\255\255\255\255\004\000\000\000\000\000\000\000\000\252\255\255\255\255\255\255\255\000\000\000\000\000\000\000\000""#,
        ),
        (
            r#"struct.pack('>i16', -2)"#,
            r#"2#boolean:true | "\000\000\000\000\000\000\000\000\255\255\255\255\255\255\255\254""#,
        ),
        (
            r#"struct.pack('<L<L<L<l<l', 2^64, 0/0, 1.8e19, -1e19, 1e19)"#,
            r#"2#boolean:true | "\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\128\000\000\008\197\161\216\204\249\000\000\000\000\000\000\000\128\000\000\232\137\004#\199\138""#,
        ),
        (
            r#"struct.pack('fd', 1.5, 0.1), struct.pack('>fd', 1.5, 0.1), struct.pack('f', 1e300)"#,
            r#"4#boolean:true | "\000\000\192?\154\153\153\153\153\153\185?" | "?\192\000\000?\185\153\153\153\153\153\154" | "\000\000\128\127""#,
        ),
        (
            r#"struct.pack('c5', 'abc')"#,
            r#"2#boolean:false | "user_script:1: bad argument #3 to 'pack' (string too short)""#,
        ),
        (
            r#"struct.pack('c3', 'abcdef'), struct.pack('c0', 'abcdef'), struct.pack('s', 'ab\0c'), struct.pack('c', 'xyz')"#,
            r#"5#boolean:true | "abc" | "abcdef" | "ab\000c\000" | "x""#,
        ),
        (
            r#"struct.pack('!bd', 1, 2), struct.pack('!2bd', 1, 2), struct.pack('!4bhbi', 1, 2, 3, 4), struct.pack('!8bxd', 1, 2)"#,
            r#"5#boolean:true | "\001\000\000\000\000\000\000\000\000\000\000\000\000\000\000@" | "\001\000\000\000\000\000\000\000\000@" | "\001\000\002\000\003\000\000\000\004\000\000\000" | "\001\000\000\000\000\000\000\000\000\000\000\000\000\000\000@""#,
        ),
        (
            r#"struct.pack('i')"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'pack' (number expected, got nil)""#,
        ),
        (
            r#"struct.pack('s')"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'pack' (string expected, got nil)""#,
        ),
        (
            r#"struct.pack('c')"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'pack' (string expected, got nil)""#,
        ),
        (
            r#"struct.pack('i', 'x')"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'pack' (number expected, got string)""#,
        ),
        (
            r#"struct.pack('i', '12')"#,
            r#"2#boolean:true | "\012\000\000\000""#,
        ),
        (
            r#"struct.pack('z')"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'pack' (invalid format option 'z')""#,
        ),
        (r#"struct.pack(' ')"#, r#"2#boolean:true | """#),
        (r#"struct.pack('b', 1, 2)"#, r#"2#boolean:true | "\001""#),
        (
            r#"struct.pack(12, 1, 2)"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'pack' (invalid format option '1')""#,
        ),
        (
            r#"struct.pack({}, 1, 2)"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'pack' (string expected, got table)""#,
        ),
        (
            r#"struct.pack()"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'pack' (string expected, got no value)""#,
        ),
        (
            r#"struct.pack('i33', 1)"#,
            r#"2#boolean:false | "user_script:1: integral size 33 is larger than limit of 32""#,
        ),
        (
            r#"struct.pack('i99999999999', 1)"#,
            r#"2#boolean:false | "user_script:1: integral size overflow""#,
        ),
        (
            r#"struct.pack('!3')"#,
            r#"2#boolean:false | "user_script:1: alignment 3 is not a power of 2""#,
        ),
        (
            r#"struct.pack('!0')"#,
            r#"2#boolean:false | "user_script:1: alignment 0 is not a power of 2""#,
        ),
        (r#"struct.pack('!')"#, r#"2#boolean:true | """#),
        (r#"struct.pack('i0', 5)"#, r#"2#boolean:true | """#),
        (
            r#"struct.pack('b\0garbage', 5)"#,
            r#"2#boolean:true | "\005""#,
        ),
        (
            r#"struct.pack('\200', 5)"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'pack' (invalid format option '\200')""#,
        ),
        (
            r#"struct.pack('bi3', 1, 2)"#,
            r#"2#boolean:true | "\001\002\000\000""#,
        ),
        (
            r#"struct.unpack('>i3<h!4bi', struct.pack('>i3<h!4bi', 1, 2, 3, 4))"#,
            r#"6#boolean:true | 1 | 2 | 3 | 4 | 13"#,
        ),
        (
            r#"struct.unpack('bBhHlLTiI', struct.pack('bBhHlLTiI', -1, 255, -2, 65535, -3, 4, 5, -6, 7))"#,
            r#"11#boolean:true | -1 | 255 | -2 | 65535 | -3 | 4 | 5 | -6 | 7 | 39"#,
        ),
        (
            r#"struct.unpack('>bBhHlLTiI', struct.pack('>bBhHlLTiI', -1, 255, -2, 65535, -3, 4, 5, -6, 7))"#,
            r#"11#boolean:true | -1 | 255 | -2 | 65535 | -3 | 4 | 5 | -6 | 7 | 39"#,
        ),
        (
            r#"struct.unpack('i1i2i3i5i7i8i9i16', struct.pack('i1i2i3i5i7i8i9i16', 1, -1, 2, -2, 3, -3, 4, -4))"#,
            r#"10#boolean:true | 1 | -1 | 2 | -2 | 3 | -3 | 4 | -4 | 52"#,
        ),
        (
            r#"struct.unpack('I16', string.rep('\255', 16)), struct.unpack('i16', string.rep('\255', 16)), struct.unpack('i9', string.rep('\255', 9)), struct.unpack('I8', string.rep('\255', 8)), struct.unpack('i0', 'abc')"#,
            r#"7#boolean:true | 1.8446744073709552e+19 | -1 | -1 | 1.8446744073709552e+19 | 0 | 1"#,
        ),
        (
            r#"struct.unpack('fd', struct.pack('fd', 1.5, 0.1))"#,
            r#"4#boolean:true | 1.5 | 0.10000000000000001 | 13"#,
        ),
        (
            r#"struct.unpack('>fd', struct.pack('>fd', 1.5, 0.1))"#,
            r#"4#boolean:true | 1.5 | 0.10000000000000001 | 13"#,
        ),
        (
            r#"struct.unpack('c0', 'abc')"#,
            r#"2#boolean:false | "user_script:1: format 'c0' needs a previous size""#,
        ),
        (
            r#"struct.unpack('b', 'abc', 0)"#,
            r#"2#boolean:false | "user_script:1: bad argument #3 to 'unpack' (offset must be 1 or greater)""#,
        ),
        (
            r#"struct.unpack('b', 'abc', -1)"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'unpack' (data string too short)""#,
        ),
        (
            r#"struct.unpack('b', 'abc', 2)"#,
            r#"3#boolean:true | 98 | 3"#,
        ),
        (
            r#"struct.unpack('i99999999999', 'abc')"#,
            r#"2#boolean:false | "user_script:1: integral size overflow""#,
        ),
        (
            r#"struct.unpack('i33', 'abc')"#,
            r#"2#boolean:false | "user_script:1: integral size 33 is larger than limit of 32""#,
        ),
        (
            r#"struct.unpack('i4', 'abc')"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'unpack' (data string too short)""#,
        ),
        (
            r#"struct.unpack('Bc0', '\3abcd')"#,
            r#"3#boolean:true | "abc" | 5"#,
        ),
        (
            r#"struct.unpack('Bc0', '\9abcd')"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'unpack' (data string too short)""#,
        ),
        (
            r#"struct.unpack('bc0', '\255abcd')"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'unpack' (data string too short)""#,
        ),
        (
            r#"struct.unpack('c1c0', '2abc')"#,
            r#"3#boolean:true | "ab" | 4"#,
        ),
        (
            r#"struct.unpack('c1c0', 'xabc')"#,
            r#"2#boolean:false | "user_script:1: format 'c0' needs a previous size""#,
        ),
        (
            r#"struct.unpack('bbb', 'abc')"#,
            r#"5#boolean:true | 97 | 98 | 99 | 4"#,
        ),
        (
            r#"struct.unpack('s', 'abc')"#,
            r#"2#boolean:false | "user_script:1: unfinished string in data""#,
        ),
        (
            r#"struct.unpack('ss', 'ab\0cd\0e')"#,
            r#"4#boolean:true | "ab" | "cd" | 7"#,
        ),
        (
            r#"struct.unpack('b', 'abc', 4)"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'unpack' (data string too short)""#,
        ),
        (
            r#"struct.unpack('b', 'abc', 3)"#,
            r#"3#boolean:true | 99 | 4"#,
        ),
        (
            r#"struct.unpack('c2', 'abc', 3)"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'unpack' (data string too short)""#,
        ),
        (
            r#"struct.unpack('x', 'abc', 4)"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'unpack' (data string too short)""#,
        ),
        (r#"struct.unpack('', 'abc', 10)"#, r#"2#boolean:true | 10"#),
        (
            r#"struct.unpack('>', 'abc', 10)"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'unpack' (data string too short)""#,
        ),
        (
            r#"struct.unpack('z', 'abc')"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'unpack' (invalid format option 'z')""#,
        ),
        (
            r#"struct.unpack('z', 'abc', 5)"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'unpack' (data string too short)""#,
        ),
        (
            r#"struct.unpack('!4bi', 'a\0\0\0\1\0\0\0')"#,
            r#"4#boolean:true | 97 | 1 | 9"#,
        ),
        (
            r#"struct.unpack('!4bi', 'a\0\0\0\1\0\0')"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'unpack' (data string too short)""#,
        ),
        (
            r#"struct.unpack('b', 'abc', 'x')"#,
            r#"2#boolean:false | "user_script:1: bad argument #3 to 'unpack' (number expected, got string)""#,
        ),
        (
            r#"struct.unpack('b')"#,
            r#"2#boolean:false | "user_script:1: bad argument #2 to 'unpack' (string expected, got no value)""#,
        ),
        (
            r#"struct.unpack()"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'unpack' (string expected, got no value)""#,
        ),
        (r#"struct.unpack('b', 97)"#, r#"3#boolean:true | 57 | 2"#),
        (
            r#"struct.unpack(98, 'abc')"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'unpack' (invalid format option '9')""#,
        ),
        (
            r#"struct.unpack('b', 'abc', 2.9)"#,
            r#"3#boolean:true | 98 | 3"#,
        ),
        (
            r#"struct.unpack(string.rep('b', 7998), string.rep('a', 8000))"#,
            r#"2#boolean:false | "user_script:1: stack overflow (too many results)""#,
        ),
        (
            r#"struct.size('s')"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'size' (option 's' has no fixed size)""#,
        ),
        (
            r#"struct.size('c0')"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'size' (option 'c0' has no fixed size)""#,
        ),
        (
            r#"struct.size('!3')"#,
            r#"2#boolean:false | "user_script:1: alignment 3 is not a power of 2""#,
        ),
        (r#"struct.size('q')"#, r#"2#boolean:true | 0"#),
        (
            r#"struct.size('!4bi'), struct.size('bd'), struct.size('!bd'), struct.size('>i3hc7'), struct.size('!8bxd'), struct.size(12), struct.size(' ')"#,
            r#"8#boolean:true | 8 | 9 | 16 | 12 | 16 | 0 | 0"#,
        ),
        (r#"struct.size('z')"#, r#"2#boolean:true | 0"#),
        (
            r#"struct.size()"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'size' (string expected, got no value)""#,
        ),
        (
            r#"struct.size('i33')"#,
            r#"2#boolean:false | "user_script:1: integral size 33 is larger than limit of 32""#,
        ),
    ];

    /// `misc` cases: (Lua expression, dump of what redis-server 7.0.15 returned).
    const MISC_CASES: &[(&str, &str)] = &[
        (
            r#"cjson.encode({a=1,b=2,c=3,d=4,e=5,foo=6,bar=7,hello=8,[5]=9,[1.5]=10, world={x=1,y=2,z=3}})"#,
            r#"2#boolean:true | "{"a":1,"c":3,"b":2,"e":5,"d":4,"hello":8,"5":9,"1.5":10,"world":{"y":2,"x":1,"z":3},"bar":7,"foo":6}""#,
        ),
        (
            r#"cjson.encode(cjson.decode('{"z":1,"y":2,"x":3,"w":4,"v":[1,{"k":"v","j":"i"}],"u":null}'))"#,
            r#"2#boolean:true | "{"y":2,"x":3,"z":1,"u":null,"w":4,"v":[1,{"k":"v","j":"i"}]}""#,
        ),
        (
            r#"cmsgpack.pack({a=1,b=2,c=3,d=4,e=5,foo=6,bar=7,hello=8,[5]=9,[1.5]=10})"#,
            r#"2#boolean:true | "\138\161a\001\161c\003\161b\002\161e\005\161d\004\165hello\008\005\009\202?\192\000\000\010\163bar\007\163foo\006""#,
        ),
        (
            r#"cjson:encode()"#,
            r#"2#boolean:false | "user_script:1: Cannot serialise function: type not supported""#,
        ),
        (
            r#"cjson:decode()"#,
            r#"2#boolean:false | "user_script:1: calling 'decode' on bad self (string expected, got table)""#,
        ),
        (
            r#"(function() local e = cjson.encode return e() end)()"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'e' (expected 1 argument)""#,
        ),
        (
            r#"(function() local e = cjson.encode local r = e() return r end)()"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'e' (expected 1 argument)""#,
        ),
        (
            r#"(function() local t = {} for i = 1, 300 do t['key' .. i] = i end return cjson.encode(t) end)()"#,
            r#"2#boolean:true | "{"key16":16,"key117":117,"key290":290,"key59":59,"key43":43,"key136":136,"key208":208,"key17":17,"key25":25,"key236":236,"key162":162,"key15":15,"key105":105,"key206":206,"key34":34,"key235":235,"key233":233,"key115":115,"key204":204,"key175":175,"key262":262,"key53":53,"key242":242,"key35":35,"key100":100,"key86":86,"key180":180,"key168":168,"key194":194,"key179":179,"key225":225,"key133":133,"key291":291,"key259":259,"key209":209,"key134":134,"key27":27,"key112":112,"key79":79,"key182":182,"key12":12,"key217":217,"key92":92,"key19":19,"key104":104,"key167":167,"key20":20,"key188":188,"key198":198,"key130":130,"key240":240,"key61":61,"key151":151,"key248":248,"key54":54,"key73":73,"key85":85,"key65":65,"key81":81,"key298":298,"key13":13,"key147":147,"key161":161,"key125":125,"key222":222,"key148":148,"key71":71,"key174":174,"key38":38,"key247":247,"key131":131,"key140":140,"key11":11,"key49":49,"key44":44,"key114":114,"key90":90,"key37":37,"key80":80,"key288":288,"key154":154,"key195":195,"key98":98,"key52":52,"key292":292,"key58":58,"key144":144,"key89":89,"key62":62,"key278":278,"key87":87,"key142":142,"key64":64,"key1":1,"key273":273,"key166":166,"key77":77,"key211":211,"key226":226,"key108":108,"key91":91,"key93":93,"key146":146,"key257":257,"key48":48,"key261":261,"key76":76,"key118":118,"key51":51,"key141":141,"key245":245,"key143":143,"key7":7,"key8":8,"key229":229,"key299":299,"key221":221,"key243":243,"key4":4,"key32":32,"key165":165,"key5":5,"key109":109,"key264":264,"key228":228,"key203":203,"key6":6,"key265":265,"key176":176,"key272":272,"key241":241,"key129":129,"key55":55,"key173":173,"key238":238,"key149":149,"key232":232,"key220":220,"key14":14,"key127":127,"key31":31,"key189":189,"key202":202,"key26":26,"key184":184,"key201":201,"key21":21,"key260":260,"key200":200,"key137":137,"key45":45,"key276":276,"key287":287,"key3":3,"key300":300,"key279":279,"key24":24,"key46":46,"key139":139,"key294":294,"key42":42,"key219":219,"key172":172,"key289":289,"key286":286,"key244":244,"key121":121,"key284":284,"key218":218,"key138":138,"key36":36,"key145":145,"key281":281,"key280":280,"key178":178,"key267":267,"key50":50,"key297":297,"key277":277,"key275":275,"key274":274,"key96":96,"key270":270,"key269":269,"key268":268,"key196":196,"key266":266,"key237":237,"key224":224,"key119":119,"key263":263,"key258":258,"key256":256,"key255":255,"key212":212,"key124":124,"key68":68,"key123":123,"key63":63,"key60":60,"key120":120,"key213":213,"key47":47,"key106":106,"key67":67,"key153":153,"key103":103,"key252":252,"key251":251,"key99":99,"key296":296,"key170":170,"key250":250,"key249":249,"key113":113,"key164":164,"key41":41,"key177":177,"key150":150,"key72":72,"key246":246,"key285":285,"key40":40,"key223":223,"key29":29,"key102":102,"key155":155,"key271":271,"key230":230,"key2":2,"key107":107,"key283":283,"key210":210,"key22":22,"key234":234,"key231":231,"key56":56,"key156":156,"key9":9,"key227":227,"key94":94,"key239":239,"key282":282,"key57":57,"key160":160,"key169":169,"key293":293,"key110":110,"key216":216,"key122":122,"key95":95,"key215":215,"key70":70,"key254":254,"key74":74,"key116":116,"key84":84,"key214":214,"key159":159,"key69":69,"key75":75,"key78":78,"key205":205,"key128":128,"key253":253,"key199":199,"key88":88,"key197":197,"key97":97,"key295":295,"key193":193,"key192":192,"key191":191,"key190":190,"key132":132,"key187":187,"key186":186,"key101":101,"key126":126,"key185":185,"key33":33,"key66":66,"key82":82,"key163":163,"key181":181,"key135":135,"key30":30,"key171":171,"key111":111,"key10":10,"key83":83,"key207":207,"key183":183,"key158":158,"key157":157,"key152":152,"key18":18,"key23":23,"key39":39,"key28":28}""#,
        ),
        (
            r#"(function() local t = {} for i = 1, 300 do t['key' .. i] = i end return cmsgpack.pack(t) end)()"#,
            r#"2#boolean:true | "\222\001,\165key16\016\166key117u\166key290\205\001"\165key59;\165key43+\166key136\204\136\166key208\204\208\165key17\017\165key25\025\166key236\204\236\166key162\204\162\165key15\015\166key105i\166key206\204\206\165key34"\166key235\204\235\166key233\204\233\166key115s\166key204\204\204\166key175\204\175\166key262\205\001\006\165key535\166key242\204\242\165key35#\166key100d\165key86V\166key180\204\180\166key168\204\168\166key194\204\194\166key179\204\179\166key225\204\225\166key133\204\133\166key291\205\001#\166key259\205\001\003\166key209\204\209\166key134\204\134\165key27\027\166key112p\165key79O\166key182\204\182\165key12\012\166key217\204\217\165key92\\165key19\019\166key104h\166key167\204\167\165key20\020\166key188\204\188\166key198\204\198\166key130\204\130\166key240\204\240\165key61=\166key151\204\151\166key248\204\248\165key546\165key73I\165key85U\165key65A\165key81Q\166key298\205\001*\165key13\013\166key147\204\147\166key161\204\161\166key125}\166key222\204\222\166key148\204\148\165key71G\166key174\204\174\165key38&\166key247\204\247\166key131\204\131\166key140\204\140\165key11\011\165key491\165key44,\166key114r\165key90Z\165key37%\165key80P\166key288\205\001 \166key154\204\154\166key195\204\195\165key98b\165key524\166key292\205\001$\165key58:\166key144\204\144\165key89Y\165key62>\166key278\205\001\022\165key87W\166key142\204\142\165key64@\164key1\001\166key273\205\001\017\166key166\204\166\165key77M\166key211\204\211\166key226\204\226\166key108l\165key91[\165key93]\166key146\204\146\166key257\205\001\001\165key480\166key261\205\001\005\165key76L\166key118v\165key513\166key141\204\141\166key245\204\245\166key143\204\143\164key7\007\164key8\008\166key229\204\229\166key299\205\001+\166key221\204\221\166key243\204\243\164key4\004\165key32 \166key165\204\165\164key5\005\166key109m\166key264\205\001\008\166key228\204\228\166key203\204\203\164key6\006\166key265\205\001\009\166key176\204\176\166key272\205\001\016\166key241\204\241\166key129\204\129\165key557\166key173\204\173\166key238\204\238\166key149\204\149\166key232\204\232\166key220\204\220\165key14\014\166key127\127\165key31\031\166key189\204\189\166key202\204\202\165key26\026\166key184\204\184\166key201\204\201\165key21\021\166key260\205\001\004\166key200\204\200\166key137\204\137\165key45-\166key276\205\001\020\166key287\205\001\031\164key3\003\166key300\205\001,\166key279\205\001\023\165key24\024\165key46.\166key139\204\139\166key294\205\001&\165key42*\166key219\204\219\166key172\204\172\166key289\205\001!\166key286\205\001\030\166key244\204\244\166key121y\166key284\205\001\028\166key218\204\218\166key138\204\138\165key36$\166key145\204\145\166key281\205\001\025\166key280\205\001\024\166key178\204\178\166key267\205\001\011\165key502\166key297\205\001)\166key277\205\001\021\166key275\205\001\019\166key274\205\001\018\165key96`\166key270\205\001\014\166key269\205\001\013\166key268\205\001\012\166key196\204\196\166key266\205\001\010\166key237\204\237\166key224\204\224\166key119w\166key263\205\001\007\166key258\205\001\002\166key256\205\001\000\166key255\204\255\166key212\204\212\166key124|\165key68D\166key123{\165key63?\165key60<\166key120x\166key213\204\213\165key47/\166key106j\165key67C\166key153\204\153\166key103g\166key252\204\252\166key251\204\251\165key99c\166key296\205\001(\166key170\204\170\166key250\204\250\166key249\204\249\166key113q\166key164\204\164\165key41)\166key177\204\177\166key150\204\150\165key72H\166key246\204\246\166key285\205\001\029\165key40(\166key223\204\223\165key29\029\166key102f\166key155\204\155\166key271\205\001\015\166key230\204\230\164key2\002\166key107k\166key283\205\001\027\166key210\204\210\165key22\022\166key234\204\234\166key231\204\231\165key568\166key156\204\156\164key9\009\166key227\204\227\165key94^\166key239\204\239\166key282\205\001\026\165key579\166key160\204\160\166key169\204\169\166key293\205\001%\166key110n\166key216\204\216\166key122z\165key95_\166key215\204\215\165key70F\166key254\204\254\165key74J\166key116t\165key84T\166key214\204\214\166key159\204\159\165key69E\165key75K\165key78N\166key205\204\205\166key128\204\128\166key253\204\253\166key199\204\199\165key88X\166key197\204\197\165key97a\166key295\205\001'\166key193\204\193\166key192\204\192\166key191\204\191\166key190\204\190\166key132\204\132\166key187\204\187\166key186\204\186\166key101e\166key126~\166key185\204\185\165key33!\165key66B\165key82R\166key163\204\163\166key181\204\181\166key135\204\135\165key30\030\166key171\204\171\166key111o\165key10\010\165key83S\166key207\204\207\166key183\204\183\166key158\204\158\166key157\204\157\166key152\204\152\165key18\018\165key23\023\165key39'\165key28\028""#,
        ),
        (
            r#"cjson.encode(cmsgpack.unpack(cmsgpack.pack({a={b={c={1,2,3}}}, x='y'})))"#,
            r#"2#boolean:true | "{"a":{"b":{"c":[1,2,3]}},"x":"y"}""#,
        ),
    ];

    /// `limits` cases: (Lua expression, dump of what redis-server 7.0.15 returned).
    const LIMITS_CASES: &[(&str, &str)] = &[
        (
            r#"select('#', cmsgpack.unpack(string.rep('\161a', 7999)))"#,
            r#"2#boolean:true | 7999"#,
        ),
        (
            r#"select('#', struct.unpack(string.rep('c1', 7997), string.rep('a', 8000)))"#,
            r#"2#boolean:true | 7998"#,
        ),
        (
            r#"bit.band(unpack((function() local t = {} for i=1,7990 do t[i]='1' end return t end)()))"#,
            r#"2#boolean:true | 1"#,
        ),
        (
            r#"cjson.encode(unpack((function() local t = {} for i=1,7990 do t[i]='1' end return t end)()))"#,
            r#"2#boolean:false | "user_script:1: bad argument #1 to 'encode' (expected 1 argument)""#,
        ),
        (
            r#"#struct.pack(string.rep('s', 7990), unpack((function() local t = {} for i=1,7990 do t[i]='ab' end return t end)()))"#,
            r#"2#boolean:true | 23970"#,
        ),
        (
            r#"(function() local t = {} local c = t for i=1,999 do c[1] = {x = {}} c = c[1].x end return #cjson.encode(t) end)()"#,
            r#"2#boolean:false | "user_script:1: Cannot serialise, excessive nesting (1001)""#,
        ),
    ];
}
