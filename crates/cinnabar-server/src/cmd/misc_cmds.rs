//! SWAPDB, MEMORY DOCTOR and LOLWUT, as Redis 7.0.15 answers them.
//!
//! * SWAPDB (Redis's swapdbCommand / dbSwapDatabases): every slot of both databases is
//!   locked in (db, slot) order, then the slot contents (with their snapshot marks) and the
//!   per-database key / volatile counters are exchanged. Locking goes through `Db::lock`, so a
//!   snapshot in progress captures each slot's pre-swap image first. Clients WATCHing a key that
//!   exists in either database are flagged (touchAllWatchedKeysInDb) and clients blocked on a
//!   key that exists after the swap are woken (scanDatabaseForReadyKeys).
//! * MEMORY DOCTOR (getMemoryDoctorReport) with the checks our memory accounting supports.
//! * LOLWUT [VERSION v] (lolwut.c, lolwut5.c, lolwut6.c): Schotter for 5, the skyline for 6,
//!   the version line otherwise.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use cinnabar_cluster::slot::key_hash_slot;
use cinnabar_protocol::parser::parse_i64;
use smallvec::SmallVec;

use super::Ctx;
use crate::error::{CmdError, CmdResult};
use crate::keyspace::{LockSet, Slot, SLOT_COUNT};

// ---------------------------------------------------------------------------------------------
// SWAPDB
// ---------------------------------------------------------------------------------------------

/// Redis's getIntFromObjectOrReply with a custom message: a strict integer within C `int`.
fn parse_c_int(a: &[u8], msg: &str) -> Result<i64, CmdError> {
    match parse_i64(a) {
        Some(n) if n >= i32::MIN as i64 && n <= i32::MAX as i64 => Ok(n),
        _ => Err(CmdError::err(msg)),
    }
}

/// SWAPDB index1 index2.
pub fn swapdb(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if ctx.srv.is_cluster() {
        return Err(CmdError::err("SWAPDB is not allowed in cluster mode"));
    }
    let id1 = parse_c_int(&args[1], "invalid first DB index")?;
    let id2 = parse_c_int(&args[2], "invalid second DB index")?;
    let dbnum = ctx.srv.keyspace.db_count() as i64;
    if id1 < 0 || id1 >= dbnum || id2 < 0 || id2 >= dbnum {
        return Err(CmdError::err("DB index is out of range"));
    }
    if id1 != id2 {
        swap_databases(ctx, id1 as u32, id2 as u32)?;
    }
    ctx.db.dirty += 1;
    ctx.out.ok();
    Ok(())
}

/// Exchanges the contents of databases `a` and `b` (a != b).
fn swap_databases(ctx: &mut Ctx, a: u32, b: u32) -> CmdResult {
    let srv = ctx.srv;
    let ks = &srv.keyspace;
    // Two databases never touched are both empty: nothing to exchange, nobody to wake.
    if ks.get_db(a as usize).is_none() && ks.get_db(b as usize).is_none() {
        return Ok(());
    }
    let (da, dbb) = (ks.db(a as usize), ks.db(b as usize));
    let mut wanted: SmallVec<[(u32, u16); 4]> = SmallVec::with_capacity(2 * SLOT_COUNT);
    for d in [a, b] {
        if !(0..SLOT_COUNT as u16).all(|s| ctx.db.locks.holds(d, s)) {
            wanted.extend((0..SLOT_COUNT as u16).map(|s| (d, s)));
        }
    }
    if !wanted.is_empty() {
        if ctx.db.locks.is_empty() {
            // The command path: nothing held yet. The locks join the command's lock set, so
            // they stay held until SWAPDB has its place in the replication stream / AOF.
            match LockSet::lock_polling(ks, wanted, || srv.scripts.is_busy()) {
                Some(l) => ctx.db.locks = l,
                None => return Err(srv.scripts.busy_error()),
            }
        } else {
            // Inside EXEC or a script: other slots are held already (see LockSet::acquire_more
            // for why this cannot deadlock).
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            if ctx.db.locks.acquire_more(ks, &wanted, deadline).is_none() {
                return Err(CmdError::err(
                    "SWAPDB could not lock the databases (held by another command)",
                ));
            }
        }
    }
    let locks = &mut ctx.db.locks;
    // Clients watching keys of either database (before the swap: the union is the same after).
    let watched: Vec<(u32, Bytes)> = if srv.watch_count.load(Ordering::Acquire) > 0 {
        srv.watched
            .lock()
            .keys()
            .filter(|(d, _)| *d == a || *d == b)
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    for (d, key) in &watched {
        let s = key_hash_slot(key);
        let exists = |locks: &mut LockSet, db: u32| {
            locks
                .find(db, s)
                .is_some_and(|slot| slot.raw_get(key).is_some())
        };
        if exists(locks, a) || exists(locks, b) {
            srv.touch_watched(*d, key);
        }
    }

    // The exchange: counts first, then slot by slot (marks travel with the contents: both
    // slots were locked under the same snapshot epoch, so both are captured already).
    let (mut keys_a, mut keys_b, mut vol_a, mut vol_b) = (0i64, 0i64, 0i64, 0i64);
    for s in 0..SLOT_COUNT as u16 {
        let mut tmp = Slot::default();
        {
            let sa = locks.find(a, s).expect("swapdb: slot of db a locked");
            keys_a += sa.len() as i64;
            vol_a += sa.volatile() as i64;
            std::mem::swap(sa, &mut tmp);
        }
        {
            let sb = locks.find(b, s).expect("swapdb: slot of db b locked");
            keys_b += sb.len() as i64;
            vol_b += sb.volatile() as i64;
            std::mem::swap(sb, &mut tmp);
        }
        std::mem::swap(
            locks.find(a, s).expect("swapdb: slot of db a locked"),
            &mut tmp,
        );
    }
    // Counted from the slots: a pending adjustment made after its slot lock was released
    // (active expiry, eviction) stays with the database object, which is right.
    da.adjust_keys(keys_b - keys_a);
    dbb.adjust_keys(keys_a - keys_b);
    da.adjust_volatile(vol_b - vol_a);
    dbb.adjust_volatile(vol_a - vol_b);

    // Clients blocked on a key of either database that exists now.
    if srv.blocked_clients.load(Ordering::Acquire) > 0 {
        let blocked: Vec<(u32, Bytes)> = srv
            .blocked_keys
            .lock()
            .keys()
            .filter(|(d, _)| *d == a || *d == b)
            .cloned()
            .collect();
        let now = ctx.db.now_ms;
        for (d, key) in blocked {
            let live = locks.find(d, key_hash_slot(&key)).is_some_and(|slot| {
                slot.raw_get(&key)
                    .is_some_and(|e| e.expire_at_ms == 0 || e.expire_at_ms > now)
            });
            if live {
                srv.signal_ready(d, &key);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// MEMORY DOCTOR
// ---------------------------------------------------------------------------------------------

const DOCTOR_EMPTY: &str = "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n";
const DOCTOR_OK: &str = "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n";

/// MEMORY DOCTOR. The allocator-level checks of Redis (allocator fragmentation, allocator and
/// process RSS overhead) need jemalloc statistics we do not have; they never fire here.
pub fn memory_doctor(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let srv = ctx.srv;
    let m = crate::info::MemOverhead::compute(srv);
    let mut report = String::new();
    if m.total < 5 * 1024 * 1024 {
        report.push_str(DOCTOR_EMPTY);
    } else {
        let big_peak = m.total > 0 && (m.peak as f32 / m.total as f32) > 1.5;
        let total_frag = if m.total > 0 {
            (m.rss as f64 / m.total as f64) as f32
        } else {
            0.0
        };
        let frag_bytes = m.rss as i64 - m.total as i64;
        let high_frag = total_frag > 1.4 && frag_bytes > 10 << 20;
        let (numclients, numslaves) = {
            let clients = srv.clients.lock();
            let slaves = clients
                .values()
                .filter(|c| c.client_type() == crate::client::ClientType::Replica)
                .count() as u64;
            (clients.len() as u64 - slaves, slaves)
        };
        let big_client_buf = m.clients_normal / numclients.max(1) > 1024 * 200;
        let big_slave_buf = numslaves > 0 && m.clients_replicas / numslaves > 1024 * 1024 * 10;
        let many_scripts = srv.scripts.count() > 1000;
        if !(big_peak || high_frag || big_client_buf || big_slave_buf || many_scripts) {
            report.push_str(DOCTOR_OK);
        } else {
            report.push_str(
                "Sam, I detected a few issues in this Redis instance memory implants:\n\n",
            );
            if big_peak {
                report.push_str(" * Peak memory: In the past this instance used more than 150% the memory that is currently using. The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.\n\n");
            }
            if high_frag {
                report.push_str(" * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"mimalloc\".\n\n");
            }
            if big_slave_buf {
                report.push_str(" * Big replica buffers: The replica output buffers in this instance are greater than 10MB for each replica (on average). This likely means that there is some replica instance that is struggling receiving data, either because it is too slow or because of networking issues. As a result, data piles on the master output buffers. Please try to identify what replica is not receiving data correctly and why. You can use the INFO output in order to check the replicas delays and the CLIENT LIST command to check the output buffers of each replica.\n\n");
            }
            if big_client_buf {
                report.push_str(" * Big client buffers: The clients output buffers in this instance are greater than 200K per client (on average). This may result from different causes, like Pub/Sub clients subscribed to channels bot not receiving data fast enough, so that data piles on the Redis instance output buffer, or clients sending commands with large replies or very large sequences of commands in the same pipeline. Please use the CLIENT LIST command in order to investigate the issue if it causes problems in your instance, or to understand better why certain clients are using a big amount of memory.\n\n");
            }
            if many_scripts {
                report.push_str(" * Many scripts: There seem to be many cached scripts in this instance (more than 1000). This may be because scripts are generated and `EVAL`ed, instead of being parameterized (with KEYS and ARGV), `SCRIPT LOAD`ed and `EVALSHA`ed. Unless `SCRIPT FLUSH` is called periodically, the scripts' caches may end up consuming most of your memory.\n\n");
            }
            report.push_str("I'm here to keep you safe, Sam. I want to help you.\n");
        }
    }
    ctx.out.verbatim("txt", report.as_bytes());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// LOLWUT
// ---------------------------------------------------------------------------------------------

const RAND_MAX: i32 = i32::MAX;

/// C's `rand()`: 0..=RAND_MAX.
fn c_rand() -> i32 {
    (rand::random::<u32>() >> 1) as i32
}

/// getLongFromObjectOrReply with the default message.
fn parse_long(a: &[u8]) -> Result<i64, CmdError> {
    parse_i64(a).ok_or(CmdError::NotInteger)
}

/// The canvas of lolwut.c: one byte per pixel, out-of-range reads are 0, writes ignored.
struct Canvas {
    width: i32,
    height: i32,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: i32, height: i32, bg: u8) -> Canvas {
        let n = (width.max(0) as usize) * (height.max(0) as usize);
        Canvas {
            width,
            height,
            pixels: vec![bg; n],
        }
    }

    fn set(&mut self, x: i32, y: i32, color: u8) {
        if x < 0 || x >= self.width || y < 0 || y >= self.height {
            return;
        }
        self.pixels[x as usize + y as usize * self.width as usize] = color;
    }

    fn get(&self, x: i32, y: i32) -> u8 {
        if x < 0 || x >= self.width || y < 0 || y >= self.height {
            return 0;
        }
        self.pixels[x as usize + y as usize * self.width as usize]
    }

    /// Bresenham, as lwDrawLine.
    fn line(&mut self, mut x1: i32, mut y1: i32, x2: i32, y2: i32, color: u8) {
        let dx = (x2 - x1).abs();
        let dy = (y2 - y1).abs();
        let sx = if x1 < x2 { 1 } else { -1 };
        let sy = if y1 < y2 { 1 } else { -1 };
        let mut err = dx - dy;
        loop {
            self.set(x1, y1, color);
            if x1 == x2 && y1 == y2 {
                break;
            }
            let e2 = err * 2;
            if e2 > -dy {
                err -= dy;
                x1 += sx;
            }
            if e2 < dx {
                err += dx;
                y1 += sy;
            }
        }
    }

    /// lwDrawSquare, with C's float/double mix reproduced (and its truncated sqrt(2), which
    /// decides some roundings).
    #[allow(clippy::approx_constant)]
    fn square(&mut self, x: i32, y: i32, size: f32, angle: f32, color: u8) {
        let mut size = (size as f64 / 1.4142135623) as f32;
        size = (size as f64).round() as f32;
        let mut k = (std::f64::consts::PI / 4.0 + angle as f64) as f32;
        let mut px = [0i32; 4];
        let mut py = [0i32; 4];
        for j in 0..4 {
            px[j] = ((k as f64).sin() * size as f64 + x as f64).round() as i32;
            py[j] = ((k as f64).cos() * size as f64 + y as f64).round() as i32;
            k = (k as f64 + std::f64::consts::PI / 2.0) as f32;
        }
        for j in 0..4 {
            self.line(px[j], py[j], px[(j + 1) % 4], py[(j + 1) % 4], color);
        }
    }
}

/// lwDrawSchotter.
fn schotter(console_cols: i32, per_row: i32, per_col: i32) -> Canvas {
    let canvas_width = console_cols * 2;
    let padding = if canvas_width > 4 { 2 } else { 0 };
    let side: f32 = (canvas_width - padding * 2) as f32 / per_row as f32;
    let canvas_height = (side * per_col as f32 + (padding * 2) as f32) as i32;
    let mut canvas = Canvas::new(canvas_width, canvas_height, 0);
    for y in 0..per_col {
        for x in 0..per_row {
            let mut sx = (x as f32 * side + side / 2.0 + padding as f32) as i32;
            let mut sy = (y as f32 * side + side / 2.0 + padding as f32) as i32;
            let mut angle: f32 = 0.0;
            if y > 1 {
                let rnd = || c_rand() as f32 / RAND_MAX as f32 / per_col as f32 * y as f32;
                let mut r1 = rnd();
                let mut r2 = rnd();
                let mut r3 = rnd();
                if c_rand() % 2 != 0 {
                    r1 = -r1;
                }
                if c_rand() % 2 != 0 {
                    r2 = -r2;
                }
                if c_rand() % 2 != 0 {
                    r3 = -r3;
                }
                angle = r1;
                sx = (sx as f32 + r2 * side / 3.0) as i32;
                sy = (sy as f32 + r3 * side / 3.0) as i32;
            }
            canvas.square(sx, sy, side, angle, 1);
        }
    }
    canvas
}

/// lolwut5.c's renderCanvas: Braille characters, 2x4 pixels each.
fn render_braille(c: &Canvas) -> Vec<u8> {
    let mut text = Vec::new();
    let mut y = 0;
    while y < c.height {
        let mut x = 0;
        while x < c.width {
            let bits = [
                (x, y, 0),
                (x, y + 1, 1),
                (x, y + 2, 2),
                (x + 1, y, 3),
                (x + 1, y + 1, 4),
                (x + 1, y + 2, 5),
                (x, y + 3, 6),
                (x + 1, y + 3, 7),
            ];
            let byte = bits
                .iter()
                .filter(|&&(px, py, _)| c.get(px, py) != 0)
                .fold(0u32, |acc, &(_, _, b)| acc | (1 << b));
            let code = 0x2800 + byte;
            text.push((0xE0 | (code >> 12)) as u8);
            text.push((0x80 | ((code >> 6) & 0x3F)) as u8);
            text.push((0x80 | (code & 0x3F)) as u8);
            x += 2;
        }
        if y != c.height - 1 {
            text.push(b'\n');
        }
        y += 4;
    }
    text
}

fn lolwut5(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut cols = 66i64;
    let mut per_row = 8i64;
    let mut per_col = 12i64;
    if let Some(a) = args.get(1) {
        cols = parse_long(a)?;
    }
    if let Some(a) = args.get(2) {
        per_row = parse_long(a)?;
    }
    if let Some(a) = args.get(3) {
        per_col = parse_long(a)?;
    }
    let cols = cols.clamp(1, 1000) as i32;
    let per_row = per_row.clamp(1, 200) as i32;
    let per_col = per_col.clamp(1, 200) as i32;
    let canvas = schotter(cols, per_row, per_col);
    let mut text = render_braille(&canvas);
    text.extend_from_slice(b"\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. ");
    text.extend_from_slice(super::connection::REDIS_VERSION.as_bytes());
    text.push(b'\n');
    ctx.out.verbatim("txt", &text);
    Ok(())
}

struct Skyscraper {
    xoff: i32,
    width: i32,
    height: i32,
    windows: bool,
    color: u8,
}

/// lolwut6.c's generateSkyscraper.
fn skyscraper(c: &mut Canvas, si: &Skyscraper) {
    let starty = c.height - 1;
    let endy = starty - si.height + 1;
    let mut y = starty;
    while y >= endy {
        for x in si.xoff..si.xoff + si.width {
            if y == endy && (x <= si.xoff + 1 || x >= si.xoff + si.width - 2) {
                continue;
            }
            let mut color = si.color;
            if si.windows
                && x > si.xoff + 1
                && x < si.xoff + si.width - 2
                && y > endy + 1
                && y < starty - 1
            {
                let relx = x - (si.xoff + 1);
                let rely = y - (endy + 1);
                if (relx / 2) % 2 != 0 && rely % 2 != 0 {
                    loop {
                        color = (1 + c_rand() % 2) as u8;
                        if color != si.color {
                            break;
                        }
                    }
                    if relx % 2 != 0 {
                        color = c.get(x - 1, y);
                    }
                }
            }
            c.set(x, y, color);
        }
        y -= 1;
    }
}

/// lolwut6.c's generateSkyline.
fn skyline(c: &mut Canvas) {
    let h = c.height;
    for color in [2u8, 1] {
        let mut offset = -10;
        while offset < c.width {
            offset += c_rand() % 8;
            let width = 10 + c_rand() % 9;
            let height = if color == 2 {
                h / 2 + c_rand() % h / 2
            } else {
                h / 2 + c_rand() % h / 3
            };
            let si = Skyscraper {
                xoff: offset,
                width,
                height,
                windows: false,
                color,
            };
            skyscraper(c, &si);
            if color == 2 {
                offset += width / 2;
            } else {
                offset += width + 1;
            }
        }
    }
    let mut offset = -10;
    while offset < c.width {
        offset += c_rand() % 8;
        let mut width = 5 + c_rand() % 14;
        if width % 4 != 0 {
            width += width % 3;
        }
        let height = h / 3 + c_rand() % h / 2;
        let si = Skyscraper {
            xoff: offset,
            width,
            height,
            windows: true,
            color: 0,
        };
        skyscraper(c, &si);
        offset += width + 5;
    }
}

fn lolwut6(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut cols = 80i64;
    let mut rows = 20i64;
    if let Some(a) = args.get(1) {
        cols = parse_long(a)?;
    }
    if let Some(a) = args.get(2) {
        rows = parse_long(a)?;
    }
    let cols = cols.clamp(1, 1000) as i32;
    let rows = rows.clamp(1, 1000) as i32;
    let mut canvas = Canvas::new(cols, rows, 3);
    skyline(&mut canvas);
    let mut text = Vec::new();
    for y in 0..canvas.height {
        for x in 0..canvas.width {
            let ce: &[u8] = match canvas.get(x, y) {
                1 => b"0;90;100m",
                2 => b"0;37;47m",
                3 => b"0;97;107m",
                _ => b"0;30;40m",
            };
            text.extend_from_slice(b"\x1b[");
            text.extend_from_slice(ce);
            text.extend_from_slice(b" \x1b[0m");
        }
        if y != canvas.height - 1 {
            text.push(b'\n');
        }
    }
    text.extend_from_slice(
        b"\nDedicated to the 8 bit game developers of past and present.\nOriginal 8 bit image from Plaguemon by hikikomori. Redis ver. ",
    );
    text.extend_from_slice(super::connection::REDIS_VERSION.as_bytes());
    text.push(b'\n');
    ctx.out.verbatim("txt", &text);
    Ok(())
}

/// LOLWUT [VERSION v] [version specific arguments].
pub fn lolwut(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut v: Vec<u8> = super::connection::REDIS_VERSION.as_bytes().to_vec();
    let mut rest = args;
    if args.len() >= 3 && args[1].eq_ignore_ascii_case(b"version") {
        let ver = parse_long(&args[2])?;
        v = format!("{}.0.0", ver as u32).into_bytes();
        // The version implementations see their own arguments after the command name.
        rest = &args[2..];
    }
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    if (at(0) == b'5' && at(1) == b'.' && at(2) != b'9')
        || (at(0) == b'4' && at(1) == b'.' && at(2) == b'9')
    {
        lolwut5(ctx, rest)
    } else if (at(0) == b'6' && at(1) == b'.' && at(2) != b'9')
        || (at(0) == b'5' && at(1) == b'.' && at(2) == b'9')
    {
        lolwut6(ctx, rest)
    } else {
        let text = format!("Redis ver. {}\n", super::connection::REDIS_VERSION);
        ctx.out.verbatim("txt", text.as_bytes());
        Ok(())
    }
}
