//! Placeholder until the Lua libraries (cjson, cmsgpack, bit, struct) land.
pub fn register(_lua: &mlua::Lua) -> mlua::Result<()> {
    Ok(())
}
