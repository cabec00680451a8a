-- prelude.lua — the Redis 7.0 scripting environment, built once per Lua state (one state per
-- worker thread, see script/mod.rs). Loaded as chunk "@cinnabar_api" with the raw Rust
-- functions in `api`; returns the pieces Rust drives: the runner (xpcall with Redis's error
-- handler), the script environment, the KEYS/ARGV holder and the api table.
--
-- What it reproduces from Redis 7.0 (script_lua.c / eval.c):
--  * errors as tables {err=..., source=..., line=...} built by the error handler, so the
--    reply reads "ERR <msg> script: <sha>, on @user_script:<line>.";
--  * redis.call / pcall / error_reply / status_reply / sha1hex / log / setresp / set_repl,
--    whose errors are raised as such tables (luaPushErrorBuff);
--  * pcall returning the message string of an error table;
--  * read-only globals ("Attempt to modify a readonly table") and the error for a missing
--    global ("Script attempted to access nonexistent global variable 'x'");
--  * math.random / randomseed over redisLrand48 (api.rand / api.srand).
-- Vanilla Lua 5.1 has no read-only tables, so scripts get a proxy environment: reads go to
-- the real globals (tables come back as read-only proxies), writes raise. rawset on a proxy
-- only changes that proxy, never what other scripts see.
local api = ...
local G = _G
local dbg = debug
local rawpcall, rawerror, rawtype, rawtostring = pcall, error, type, tostring
local rawselect, rawsetmt, rawsetfenv = select, setmetatable, setfenv
local rawloadstring, rawload = loadstring, load
local sfind, ssub = string.find, string.sub
local floor = math.floor

-- luaPushErrorBuff: "-CODE msg" or "msg" → {err="CODE msg"}, trailing CR/LF trimmed.
local function mkerr(buf)
  local code, msg
  if ssub(buf, 1, 1) == '-' then
    local sp = sfind(buf, ' ', 1, true)
    if sp then
      code, msg = ssub(buf, 2, sp - 1), ssub(buf, sp + 1)
    else
      code, msg = 'ERR', ssub(buf, 2)
    end
  else
    code, msg = 'ERR', buf
  end
  local first, last = 1, #msg
  while first <= last and (ssub(msg, first, first) == '\r' or ssub(msg, first, first) == '\n') do
    first = first + 1
  end
  while last >= first and (ssub(msg, last, last) == '\r' or ssub(msg, last, last) == '\n') do
    last = last - 1
  end
  return { err = code .. ' ' .. ssub(msg, first, last) }
end

-- An error raised from Rust reaches Lua as userdata whose text is "runtime error: <msg>"
-- followed by a traceback; keep the message.
local KILLED = '\1cinnabar-script-killed'
local function plain(err)
  if rawtype(err) == 'userdata' then
    local s = rawtostring(err)
    local a, b = sfind(s, 'runtime error: ', 1, true)
    if a == 1 then s = ssub(s, b + 1) end
    local cut = sfind(s, '\nstack traceback:', 1, true)
    if cut then s = ssub(s, 1, cut - 1) end
    if s == KILLED then
      return mkerr('Script killed by user with SCRIPT KILL...')
    end
    return s
  end
  return err
end

-- __redis__err__handler: the frame that failed is the first one above C functions and
-- this file's wrappers.
local function handler(err)
  err = plain(err)
  local level = 2
  local i = dbg.getinfo(level, 'nSl')
  while i and (i.what == 'C' or i.source == '@cinnabar_api') do
    level = level + 1
    i = dbg.getinfo(level, 'nSl')
  end
  if rawtype(err) ~= 'table' then
    err = { err = 'ERR ' .. rawtostring(err) }
  end
  if i then
    err['source'] = i.source
    err['line'] = i.currentline
  end
  return err
end

local function run(f)
  local ok, r = xpcall(f, handler)
  return ok, r
end

-- API functions that raise are C closures (api.ctramp, see script/mod.rs) around a Lua
-- implementation that returns RAISE, <error> instead of raising: a C function keeps the
-- calling script's frame even when called in tail position (`return redis.call(...)`), so
-- the error reports the script's line as Redis's C functions do, and a string error gets
-- luaL_error's position prefix.
local RAISE = {}
local function raising(impl) return api.ctramp(impl, RAISE) end

local redis = {}
redis.call = raising(function(...)
  local status, v = api.call(...)
  if status == 0 then return v end
  local e = mkerr(v)
  e['ignore_error_stats_update'] = true
  return RAISE, e
end)
redis.pcall = function(...)
  local status, v = api.call(...)
  if status == 0 then return v end
  local e = mkerr(v)
  e['ignore_error_stats_update'] = true
  return e
end
redis.sha1hex = raising(function(...)
  if rawselect('#', ...) ~= 1 then return RAISE, mkerr('wrong number of arguments') end
  return api.sha1hex((...))
end)
redis.error_reply = function(...)
  local e = ...
  if rawselect('#', ...) ~= 1 or rawtype(e) ~= 'string' then
    return mkerr('wrong number or type of arguments')
  end
  if ssub(e, 1, 1) ~= '-' then e = '-' .. e end
  return mkerr(e)
end
redis.status_reply = function(...)
  local s = ...
  if rawselect('#', ...) ~= 1 or rawtype(s) ~= 'string' then
    return mkerr('wrong number or type of arguments')
  end
  return { ok = s }
end
redis.log = raising(function(...)
  local n = rawselect('#', ...)
  if n < 2 then return RAISE, mkerr('redis.log() requires two arguments or more.') end
  local level = tonumber((...))
  if level == nil then return RAISE, mkerr('First argument must be a number (log level).') end
  level = level >= 0 and floor(level) or -floor(-level)
  if level < 0 or level > 3 then return RAISE, mkerr('Invalid debug level.') end
  local parts = {}
  for j = 2, n do
    local v = rawselect(j, ...)
    local t = rawtype(v)
    if t == 'string' or t == 'number' then parts[#parts + 1] = rawtostring(v) end
  end
  api.log(level, table.concat(parts, ' '))
end)
redis.setresp = raising(function(...)
  if rawselect('#', ...) ~= 1 then return RAISE, mkerr('redis.setresp() requires one argument.') end
  local r = tonumber((...)) or 0
  r = r >= 0 and floor(r) or -floor(-r)
  if r ~= 2 and r ~= 3 then return RAISE, mkerr('RESP version must be 2 or 3.') end
  api.setresp(r)
end)
redis.set_repl = raising(function(...)
  if rawselect('#', ...) ~= 1 then return RAISE, mkerr('redis.set_repl() requires two arguments.') end
  local f = tonumber((...)) or 0
  f = f >= 0 and floor(f) or -floor(-f)
  if f < 0 or f > 3 then
    return RAISE, mkerr('Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.')
  end
  api.set_repl(f)
end)
redis.replicate_commands = function() return true end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.acl_check_cmd = raising(function(...)
  local status, v = api.acl_check(...)
  if status == 0 then return v end
  return RAISE, mkerr(v)
end)
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.REDIS_VERSION = api.version
redis.REDIS_VERSION_NUM = api.version_num
G.redis = redis

-- pcall (luaRedisPcall): an error table comes back as its message string. SCRIPT KILL's
-- error is not catchable.
local function fixp(ok, ...)
  if ok then return ok, ... end
  local e = plain((...))
  if rawtype(e) == 'table' then
    local m = e.err
    if m == 'ERR Script killed by user with SCRIPT KILL...' then return rawerror(e) end
    local t = rawtype(m)
    if t == 'string' or t == 'number' then e = m end
  end
  return false, e
end
G.pcall = function(...) return fixp(rawpcall(...)) end

-- The libraries (libs.rs: cjson, cmsgpack, bit, struct) raise plain Lua errors from C
-- closures, as Redis's C libraries do: nothing to wrap.

-- math.random over redisLrand48 (luaL_checkint / luaL_argcheck messages as in lmathlib).
local function checkint(n, v, fname)
  local x = tonumber(v)
  if x == nil then
    local got = v == nil and 'no value' or rawtype(v)
    return nil, "bad argument #" .. n .. " to '" .. fname .. "' (number expected, got " .. got .. ")"
  end
  return x >= 0 and floor(x) or -floor(-x)
end
math.random = raising(function(...)
  local n = rawselect('#', ...)
  local r = api.rand()
  if n == 0 then return r end
  if n == 1 then
    local u, e = checkint(1, (...), 'random')
    if e then return RAISE, e end
    if not (1 <= u) then return RAISE, "bad argument #1 to 'random' (interval is empty)" end
    return floor(r * u) + 1
  end
  if n == 2 then
    local l, e = checkint(1, (...), 'random')
    if e then return RAISE, e end
    local u, e2 = checkint(2, rawselect(2, ...), 'random')
    if e2 then return RAISE, e2 end
    if not (l <= u) then return RAISE, "bad argument #2 to 'random' (interval is empty)" end
    return floor(r * (u - l + 1)) + l
  end
  return RAISE, 'wrong number of arguments'
end)
math.randomseed = raising(function(...)
  local s, e = checkint(1, (...), 'randomseed')
  if e then return RAISE, e end
  api.srand(s)
end)

-- Globals scripts do not get (Redis's deny list and what it never loads).
for _, name in ipairs({ 'dofile', 'loadfile', 'print', 'module', 'require', 'package', 'io', 'os', 'debug' }) do
  G[name] = nil
end

-- The script environment.
local cur = {}
local proxies = rawsetmt({}, { __mode = 'k' })
local function readonly() rawerror('Attempt to modify a readonly table', 2) end
local function proxy(t)
  local p = proxies[t]
  if p == nil then
    p = rawsetmt({}, { __index = t, __newindex = readonly, __metatable = false })
    proxies[t] = p
  end
  return p
end
-- A global read by a script (called from an __index metamethod, not as a tail call, so
-- level 3 is the script's frame): tables come back as read-only proxies.
local function read_global(k)
  local v = G[k]
  if v == nil then
    rawerror("Script attempted to access nonexistent global variable '" .. rawtostring(k) .. "'", 3)
  end
  if rawtype(v) == 'table' then return proxy(v) end
  return v
end
local env = rawsetmt({}, {
  __index = function(_, k)
    if k == 'KEYS' or k == 'ARGV' then return cur[k] end
    local v = read_global(k)
    return v
  end,
  __newindex = readonly,
  __metatable = false,
})
-- Chunks compiled by a script run in the script environment too.
G.loadstring = function(s, name)
  local f, e = rawloadstring(s, name)
  if f then rawsetfenv(f, env) end
  return f, e
end
G.load = function(fn, name)
  local f, e = rawload(fn, name)
  if f then rawsetfenv(f, env) end
  return f, e
end

-- FUNCTION libraries (function_lua.c). Library code and its callbacks share `fenv`: while
-- a library loads it sees only `redis` = {register_function, log, LOG_*, REDIS_VERSION*};
-- when a callback runs it sees what EVAL scripts see (without KEYS / ARGV: they are the
-- callback's arguments).
local slower = string.lower
local FN_FLAGS = {
  ['no-writes'] = true, ['allow-oom'] = true, ['allow-stale'] = true,
  ['no-cluster'] = true, ['allow-cross-slot-keys'] = true,
}
local function is_str(v)
  local t = rawtype(v)
  return t == 'string' or t == 'number'
end
local register = raising(function(...)
  local n = rawselect('#', ...)
  if n < 1 or n > 2 then return RAISE, mkerr('wrong number of arguments to redis.register_function') end
  local name, cb, desc
  local flags = {}
  if n == 1 then
    local t = ...
    if rawtype(t) ~= 'table' then
      return RAISE, mkerr('calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).')
    end
    for k, v in pairs(t) do
      if not is_str(k) then return RAISE, mkerr('named argument key given to redis.register_function is not a string') end
      local key = slower(rawtostring(k))
      if key == 'function_name' then
        if not is_str(v) then return RAISE, mkerr('function_name argument given to redis.register_function must be a string') end
        name = rawtostring(v)
      elseif key == 'description' then
        if not is_str(v) then return RAISE, mkerr('description argument given to redis.register_function must be a string') end
        desc = rawtostring(v)
      elseif key == 'callback' then
        if rawtype(v) ~= 'function' then return RAISE, mkerr('callback argument given to redis.register_function must be a function') end
        cb = v
      elseif key == 'flags' then
        if rawtype(v) ~= 'table' then return RAISE, mkerr('flags argument to redis.register_function must be a table representing function flags') end
        local j = 1
        while true do
          local f = v[j]
          if f == nil then break end
          if not is_str(f) or not FN_FLAGS[slower(rawtostring(f))] then return RAISE, mkerr('unknown flag given') end
          flags[#flags + 1] = slower(rawtostring(f))
          j = j + 1
        end
      else
        return RAISE, mkerr('unknown argument given to redis.register_function')
      end
    end
    if name == nil then return RAISE, mkerr('redis.register_function must get a function name argument') end
    if cb == nil then return RAISE, mkerr('redis.register_function must get a callback argument') end
  else
    local a, b = ...
    if not is_str(a) then return RAISE, mkerr('first argument to redis.register_function must be a string') end
    if rawtype(b) ~= 'function' then return RAISE, mkerr('second argument to redis.register_function must be a function') end
    name, cb = rawtostring(a), b
  end
  local err = api.fn_register(name, cb, flags, desc)
  if err then return RAISE, mkerr(err) end
end)

local function missing_global(_, k)
  rawerror("Script attempted to access nonexistent global variable '" .. rawtostring(k) .. "'", 2)
end
local load_redis = rawsetmt({
  register_function = register,
  log = redis.log,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REDIS_VERSION = api.version,
  REDIS_VERSION_NUM = api.version_num,
}, { __index = missing_global, __newindex = readonly, __metatable = false })
local LOAD_G = { redis = load_redis }
local loading = false
local fenv = rawsetmt({}, {
  __index = function(_, k)
    if loading then
      local v = LOAD_G[k]
      if v == nil then
        rawerror("Script attempted to access nonexistent global variable '" .. rawtostring(k) .. "'", 2)
      end
      return v
    end
    local v = read_global(k)
    return v
  end,
  __newindex = readonly,
  __metatable = false,
})

local function run_fn(cb, keys, args)
  local ok, r = xpcall(function() return cb(keys, args) end, handler)
  return ok, r
end

-- Runs a compiled library chunk in load mode: (true) or (false, raw error value).
local function load_lib(f)
  loading = true
  local ok, e = rawpcall(f)
  loading = false
  return ok, plain(e)
end

return run, env, cur, run_fn, load_lib, fenv
