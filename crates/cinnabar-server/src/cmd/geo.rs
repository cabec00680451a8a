//! GEO commands: GEOADD (NX|XX, CH) GEODIST GEOHASH GEOPOS GEOSEARCH GEOSEARCHSTORE GEORADIUS
//! GEORADIUSBYMEMBER GEORADIUS_RO GEORADIUSBYMEMBER_RO, with Redis 7.0's argument order, error
//! texts and reply shapes (geo.c, geohash.c, geohash_helper.c).
//!
//! A geo set is a sorted set whose scores are 52-bit interleaved geohashes (26 bits of
//! longitude on the odd bits, 26 of latitude on the even bits, latitude range ±85.05112878).
//! GEOADD is ZADD with computed scores (and replicates as that ZADD). A search estimates a
//! geohash precision from the radius, takes the center cell and its 8 neighbours (dropping
//! the ones the bounding box does not reach), scans the score range of each cell and keeps
//! the members inside the shape. Distances use Redis's haversine formula (the meridian distance
//! when both longitudes are equal) and print with `fixedpoint_d2string`; sorting mirrors the
//! C library's stable merge sort (glibc `qsort`) and Redis's partial quicksort (`pqsort`) for
//! COUNT, so ties come out in the same order. Floating-point steps follow the C code one for
//! one, so results agree to the last bit.

use bytes::Bytes;
use smallvec::SmallVec;

use super::coll::{get_zset, int_arg, parse_double, zset_limits};
use super::Ctx;
use crate::error::{CmdError, CmdResult};
use crate::notify::{self, notify};
use crate::types::zset::ZSet;
use crate::types::Value;

// ---------------------------------------------------------------------------------------
// Geohash primitives (geohash.c)

const STEP_MAX: u8 = 26;
const LON_MIN: f64 = -180.0;
const LON_MAX: f64 = 180.0;
const LAT_MIN: f64 = -85.05112878;
const LAT_MAX: f64 = 85.05112878;
const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
struct Hash {
    bits: u64,
    step: u8,
}

impl Hash {
    fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }
}

#[derive(Clone, Copy, Default, Debug)]
struct Range {
    min: f64,
    max: f64,
}

const WGS84_LON: Range = Range {
    min: LON_MIN,
    max: LON_MAX,
};
const WGS84_LAT: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};

#[derive(Clone, Copy, Default, Debug)]
struct Area {
    lon: Range,
    lat: Range,
}

#[inline]
fn deg_rad(a: f64) -> f64 {
    a * D_R
}

#[inline]
fn rad_deg(a: f64) -> f64 {
    a / D_R
}

/// Spreads the 32 bits of `v` onto the even bits of a u64.
fn spread(v: u32) -> u64 {
    let mut v = v as u64;
    v = (v | (v << 16)) & 0x0000_FFFF_0000_FFFF;
    v = (v | (v << 8)) & 0x00FF_00FF_00FF_00FF;
    v = (v | (v << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    v = (v | (v << 2)) & 0x3333_3333_3333_3333;
    (v | (v << 1)) & 0x5555_5555_5555_5555
}

/// Gathers the even bits of `v` into a u32.
fn squash(v: u64) -> u32 {
    let mut v = v & 0x5555_5555_5555_5555;
    v = (v | (v >> 1)) & 0x3333_3333_3333_3333;
    v = (v | (v >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    v = (v | (v >> 4)) & 0x00FF_00FF_00FF_00FF;
    v = (v | (v >> 8)) & 0x0000_FFFF_0000_FFFF;
    v = (v | (v >> 16)) & 0x0000_0000_FFFF_FFFF;
    v as u32
}

/// `x` on the even bits, `y` on the odd bits.
fn interleave(x: u32, y: u32) -> u64 {
    spread(x) | (spread(y) << 1)
}

/// (even bits, odd bits).
fn deinterleave(h: u64) -> (u32, u32) {
    (squash(h), squash(h >> 1))
}

/// C's `(uint32_t)d` for the non-negative values geohash encoding produces.
fn c_double_to_u32(d: f64) -> u32 {
    cvtt(d) as u32
}

/// 2^63 as a double.
const TWO63: f64 = 9_223_372_036_854_775_808.0;

/// x86-64 `cvttsd2si`: truncation, the "integer indefinite" value when out of range.
fn cvtt(d: f64) -> u64 {
    if (-TWO63..TWO63).contains(&d) {
        (d as i64) as u64
    } else {
        0x8000_0000_0000_0000
    }
}

/// C's `(uint64_t)d` as compiled for x86-64 (how Redis turns a score into hash bits).
fn c_double_to_u64(d: f64) -> u64 {
    if d >= TWO63 {
        cvtt(d - TWO63) ^ (1 << 63)
    } else {
        cvtt(d)
    }
}

fn encode(lon_r: Range, lat_r: Range, lon: f64, lat: f64, step: u8) -> Option<Hash> {
    if step > 32 || step == 0 {
        return None;
    }
    if !(LON_MIN..=LON_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_r.min || lat > lat_r.max || lon < lon_r.min || lon > lon_r.max {
        return None;
    }
    let mut lat_off = (lat - lat_r.min) / (lat_r.max - lat_r.min);
    let mut lon_off = (lon - lon_r.min) / (lon_r.max - lon_r.min);
    let scale = (1u64 << step) as f64;
    lat_off *= scale;
    lon_off *= scale;
    Some(Hash {
        bits: interleave(c_double_to_u32(lat_off), c_double_to_u32(lon_off)),
        step,
    })
}

fn encode_wgs84(lon: f64, lat: f64, step: u8) -> Hash {
    encode(WGS84_LON, WGS84_LAT, lon, lat, step).unwrap_or(Hash { bits: 0, step })
}

fn decode(h: Hash) -> Option<Area> {
    if h.is_zero() {
        return None;
    }
    let (ilat, ilon) = deinterleave(h.bits);
    let lat_scale = LAT_MAX - LAT_MIN;
    let lon_scale = LON_MAX - LON_MIN;
    let div = (1u64 << h.step) as f64;
    Some(Area {
        lat: Range {
            min: LAT_MIN + (ilat as f64 * 1.0 / div) * lat_scale,
            max: LAT_MIN + (ilat.wrapping_add(1) as f64 * 1.0 / div) * lat_scale,
        },
        lon: Range {
            min: LON_MIN + (ilon as f64 * 1.0 / div) * lon_scale,
            max: LON_MIN + (ilon.wrapping_add(1) as f64 * 1.0 / div) * lon_scale,
        },
    })
}

/// The (longitude, latitude) a score stands for: the center of its cell, clamped.
fn decode_score(score: f64) -> [f64; 2] {
    let area = decode(Hash {
        bits: c_double_to_u64(score),
        step: STEP_MAX,
    })
    .unwrap_or_default();
    let x = ((area.lon.min + area.lon.max) / 2.0).clamp(LON_MIN, LON_MAX);
    let y = ((area.lat.min + area.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    [x, y]
}

fn align52(h: Hash) -> u64 {
    h.bits << (52 - h.step as u32 * 2)
}

fn move_x(h: &mut Hash, d: i8) {
    let x = h.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = h.bits & 0x5555_5555_5555_5555;
    let shift = 64 - h.step as u32 * 2;
    let zz = 0x5555_5555_5555_5555u64 >> shift;
    let x = if d > 0 {
        x.wrapping_add(zz + 1)
    } else {
        (x | zz).wrapping_sub(zz + 1)
    };
    h.bits = (x & (0xaaaa_aaaa_aaaa_aaaau64 >> shift)) | y;
}

fn move_y(h: &mut Hash, d: i8) {
    let x = h.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = h.bits & 0x5555_5555_5555_5555;
    let shift = 64 - h.step as u32 * 2;
    let zz = 0xaaaa_aaaa_aaaa_aaaau64 >> shift;
    let y = if d > 0 {
        y.wrapping_add(zz + 1)
    } else {
        (y | zz).wrapping_sub(zz + 1)
    };
    h.bits = x | (y & (0x5555_5555_5555_5555u64 >> shift));
}

/// The 8 neighbours: north, south, east, west, north-east, north-west, south-east, south-west.
fn neighbors(h: Hash) -> [Hash; 8] {
    let shifted = |dx: i8, dy: i8| {
        let mut n = h;
        if dx != 0 {
            move_x(&mut n, dx);
        }
        if dy != 0 {
            move_y(&mut n, dy);
        }
        n
    };
    [
        shifted(0, 1),
        shifted(0, -1),
        shifted(1, 0),
        shifted(-1, 0),
        shifted(1, 1),
        shifted(-1, 1),
        shifted(1, -1),
        shifted(-1, -1),
    ]
}

// ---------------------------------------------------------------------------------------
// Search helpers (geohash_helper.c)

fn estimate_steps_by_radius(mut range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return STEP_MAX;
    }
    let mut step: i32 = 1;
    while range_meters < MERCATOR_MAX {
        range_meters *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, STEP_MAX as i32) as u8
}

/// Distance along a meridian (`geohashGetLatDistance`).
fn lat_distance(lat1d: f64, lat2d: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2d) - deg_rad(lat1d)).abs()
}

/// Haversine great-circle distance in meters; the meridian distance when the longitudes are
/// the same (as Redis 7.0.15 computes it).
fn distance(lon1d: f64, lat1d: f64, lon2d: f64, lat2d: f64) -> f64 {
    let lon1r = deg_rad(lon1d);
    let lon2r = deg_rad(lon2d);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1d, lat2d);
    }
    let lat1r = deg_rad(lat1d);
    let lat2r = deg_rad(lat2d);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

#[derive(Clone, Copy, Debug)]
enum ShapeKind {
    Circle { radius: f64 },
    Rect { width: f64, height: f64 },
}

#[derive(Clone, Copy, Debug)]
struct Shape {
    /// Center (longitude, latitude).
    xy: [f64; 2],
    /// Meters per unit.
    conversion: f64,
    kind: ShapeKind,
}

impl Shape {
    /// [min_lon, min_lat, max_lon, max_lat] of the area searched.
    fn bounding_box(&self) -> [f64; 4] {
        let [lon, lat] = self.xy;
        let (height, width) = match self.kind {
            ShapeKind::Circle { radius } => (self.conversion * radius, self.conversion * radius),
            ShapeKind::Rect { width, height } => (
                self.conversion * (height / 2.0),
                self.conversion * (width / 2.0),
            ),
        };
        let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
        let long_delta_top =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(lat + lat_delta).cos());
        let long_delta_bottom =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(lat - lat_delta).cos());
        let south = lat < 0.0;
        [
            if south {
                lon - long_delta_bottom
            } else {
                lon - long_delta_top
            },
            lat - lat_delta,
            if south {
                lon + long_delta_bottom
            } else {
                lon + long_delta_top
            },
            lat + lat_delta,
        ]
    }

    /// The center cell and its 8 neighbours covering the shape (useless ones zeroed), in the
    /// order Redis scans them.
    fn areas(&self) -> [Hash; 9] {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounding_box();
        let [lon, lat] = self.xy;
        let radius_meters = match self.kind {
            ShapeKind::Circle { radius } => radius,
            ShapeKind::Rect { width, height } => {
                ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
            }
        } * self.conversion;
        let mut steps = estimate_steps_by_radius(radius_meters, lat);
        let mut hash = encode_wgs84(lon, lat, steps);
        let mut nb = neighbors(hash);
        let mut area = decode(hash).unwrap_or_default();

        let [north, south, east, west] =
            [nb[0], nb[1], nb[2], nb[3]].map(|h| decode(h).unwrap_or_default());
        let decrease_step = north.lat.max < max_lat
            || south.lat.min > min_lat
            || east.lon.max < max_lon
            || west.lon.min > min_lon;
        if steps > 1 && decrease_step {
            steps -= 1;
            hash = encode_wgs84(lon, lat, steps);
            nb = neighbors(hash);
            area = decode(hash).unwrap_or_default();
        }
        // nb: 0 N, 1 S, 2 E, 3 W, 4 NE, 5 NW, 6 SE, 7 SW.
        if steps >= 2 {
            let zero = Hash::default();
            if area.lat.min < min_lat {
                nb[1] = zero;
                nb[7] = zero;
                nb[6] = zero;
            }
            if area.lat.max > max_lat {
                nb[0] = zero;
                nb[4] = zero;
                nb[5] = zero;
            }
            if area.lon.min < min_lon {
                nb[3] = zero;
                nb[7] = zero;
                nb[5] = zero;
            }
            if area.lon.max > max_lon {
                nb[2] = zero;
                nb[6] = zero;
                nb[4] = zero;
            }
        }
        [hash, nb[0], nb[1], nb[2], nb[3], nb[4], nb[5], nb[6], nb[7]]
    }

    /// Whether the point of `score` is inside: its coordinates and distance from the center.
    fn contains(&self, score: f64) -> Option<([f64; 2], f64)> {
        let xy = decode_score(score);
        let [x1, y1] = self.xy;
        let [x2, y2] = xy;
        match self.kind {
            ShapeKind::Circle { radius } => {
                let d = distance(x1, y1, x2, y2);
                if d > radius * self.conversion {
                    return None;
                }
                Some((xy, d))
            }
            ShapeKind::Rect { width, height } => {
                let width_m = width * self.conversion;
                let height_m = height * self.conversion;
                if lat_distance(y2, y1) > height_m / 2.0 {
                    return None;
                }
                if distance(x2, y2, x1, y2) > width_m / 2.0 {
                    return None;
                }
                Some((xy, distance(x1, y1, x2, y2)))
            }
        }
    }
}

struct Point {
    member: Vec<u8>,
    lon: f64,
    lat: f64,
    dist: f64,
    score: f64,
}

/// Appends the members of `z` in the cell `hash` that are inside `shape`; stops once `limit`
/// (when non-zero) points are collected.
fn members_of_box(z: &ZSet, hash: Hash, shape: &Shape, out: &mut Vec<Point>, limit: usize) {
    let min = align52(hash) as f64;
    let max = align52(Hash {
        bits: hash.bits.wrapping_add(1),
        step: hash.step,
    }) as f64;
    let (lo, hi) = z.score_range(min, false, max, true);
    z.for_ranks(lo, hi, false, |m, score| {
        if let Some((xy, dist)) = shape.contains(score) {
            out.push(Point {
                member: m.to_vec(),
                lon: xy[0],
                lat: xy[1],
                dist,
                score,
            });
        }
        !(limit != 0 && out.len() >= limit)
    });
}

fn members_of_all_neighbors(z: &ZSet, shape: &Shape, limit: usize) -> Vec<Point> {
    let cells = shape.areas();
    let mut out = Vec::new();
    let mut last = 0usize;
    for (i, &cell) in cells.iter().enumerate() {
        if cell.is_zero() {
            continue;
        }
        // Huge radii: adjacent neighbours can be the same cell.
        if last != 0 && cell == cells[last] {
            continue;
        }
        if !out.is_empty() && limit != 0 && out.len() >= limit {
            break;
        }
        members_of_box(z, cell, shape, &mut out, limit);
        last = i;
    }
    out
}

// ---------------------------------------------------------------------------------------
// Sorting like the C library: `qsort` (glibc: stable merge sort) and Redis's `pqsort`.

/// Redis's `sort_gp_asc` / `sort_gp_desc` comparators (NaN compares as "less").
fn cmp_points(a: &Point, b: &Point, desc: bool) -> i32 {
    let r = if a.dist > b.dist {
        1
    } else if a.dist == b.dist {
        0
    } else {
        -1
    };
    if desc {
        -r
    } else {
        r
    }
}

/// glibc's `msort_with_tmp`: top-down merge sort, left element first on ties.
fn merge_sort(v: &mut Vec<Point>, desc: bool) {
    fn sort(v: Vec<Point>, desc: bool) -> Vec<Point> {
        let n = v.len();
        if n <= 1 {
            return v;
        }
        let mut left = v;
        let right = left.split_off(n / 2);
        let left = sort(left, desc);
        let right = sort(right, desc);
        let mut out = Vec::with_capacity(n);
        let mut l = left.into_iter().peekable();
        let mut r = right.into_iter().peekable();
        while let (Some(a), Some(b)) = (l.peek(), r.peek()) {
            if cmp_points(a, b, desc) <= 0 {
                out.extend(l.next());
            } else {
                out.extend(r.next());
            }
        }
        out.extend(l);
        out.extend(r);
        out
    }
    let taken = std::mem::take(v);
    *v = sort(taken, desc);
}

/// Redis 7.0's `pqsort`: NetBSD's Bentley-McIlroy quicksort (without the switch to insertion
/// sort after a swap-free partition) that only recurses into partitions overlapping the
/// wanted index range `lrange..=rrange`.
fn partial_sort(v: &mut [Point], desc: bool, lrange: usize, rrange: usize) {
    let n = v.len();
    pqsort(v, 0, n, desc, lrange, rrange);
}

fn med3(v: &[Point], a: usize, b: usize, c: usize, desc: bool) -> usize {
    let cmp = |i: usize, j: usize| cmp_points(&v[i], &v[j], desc);
    if cmp(a, b) < 0 {
        if cmp(b, c) < 0 {
            b
        } else if cmp(a, c) < 0 {
            c
        } else {
            a
        }
    } else if cmp(b, c) > 0 {
        b
    } else if cmp(a, c) < 0 {
        a
    } else {
        c
    }
}

fn insertion_sort(v: &mut [Point], a: usize, n: usize, desc: bool) {
    for pm in a + 1..a + n {
        let mut pl = pm;
        while pl > a && cmp_points(&v[pl - 1], &v[pl], desc) > 0 {
            v.swap(pl, pl - 1);
            pl -= 1;
        }
    }
}

/// Whether the partition `s..s+n` holds none of the wanted indices `lr..=rr`.
fn outside(s: usize, n: usize, lr: usize, rr: usize) -> bool {
    let e = s + n - 1;
    (lr < s && rr < s) || (lr > e && rr > e)
}

/// `_pqsort` on `v[a..a + n]`.
fn pqsort(v: &mut [Point], mut a: usize, mut n: usize, desc: bool, lr: usize, rr: usize) {
    loop {
        if n < 7 {
            insertion_sort(v, a, n, desc);
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let mut pl = a;
            let mut pn = a + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, desc);
                pm = med3(v, pm - d, pm, pm + d, desc);
                pn = med3(v, pn - 2 * d, pn - d, pn, desc);
            }
            pm = med3(v, pl, pm, pn, desc);
        }
        v.swap(a, pm);
        let (mut pa, mut pb) = (a + 1, a + 1);
        // pc and pd can step to `a` (below pb); signed to keep the C comparisons.
        let (mut pc, mut pd) = ((a + n - 1) as isize, (a + n - 1) as isize);
        loop {
            while pb as isize <= pc {
                let r = cmp_points(&v[pb], &v[a], desc);
                if r > 0 {
                    break;
                }
                if r == 0 {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb as isize <= pc {
                let r = cmp_points(&v[pc as usize], &v[a], desc);
                if r < 0 {
                    break;
                }
                if r == 0 {
                    v.swap(pc as usize, pd as usize);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb as isize > pc {
                break;
            }
            v.swap(pb, pc as usize);
            pb += 1;
            pc -= 1;
        }
        let (pc, pd) = (pc as usize, pd as usize);
        let pn = a + n;
        let r = (pa - a).min(pb - pa);
        for k in 0..r {
            v.swap(a + k, pb - r + k);
        }
        let r = (pd - pc).min(pn - pd - 1);
        for k in 0..r {
            v.swap(pb + k, pn - r + k);
        }
        let left = pb - pa;
        if left > 1 && !outside(a, left, lr, rr) {
            pqsort(v, a, left, desc, lr, rr);
        }
        let right = pd - pc;
        if right > 1 {
            a = pn - right;
            n = right;
            if !outside(a, n, lr, rr) {
                continue;
            }
        }
        return;
    }
}

// ---------------------------------------------------------------------------------------
// Argument helpers

/// `extractLongLatOrReply`.
fn extract_lonlat(lon: &[u8], lat: &[u8]) -> Result<[f64; 2], CmdError> {
    let x = parse_double(lon).ok_or(CmdError::NotFloat)?;
    let y = parse_double(lat).ok_or(CmdError::NotFloat)?;
    if !(LON_MIN..=LON_MAX).contains(&x) || !(LAT_MIN..=LAT_MAX).contains(&y) {
        return Err(CmdError::Msg(format!(
            "ERR invalid longitude,latitude pair {},{}",
            c_fixed(x, 6),
            c_fixed(y, 6)
        )));
    }
    Ok([x, y])
}

/// `extractUnitOrReply`: meters per unit.
fn extract_unit(u: &[u8]) -> Result<f64, CmdError> {
    if u.eq_ignore_ascii_case(b"m") {
        Ok(1.0)
    } else if u.eq_ignore_ascii_case(b"km") {
        Ok(1000.0)
    } else if u.eq_ignore_ascii_case(b"ft") {
        Ok(0.3048)
    } else if u.eq_ignore_ascii_case(b"mi") {
        Ok(1609.34)
    } else {
        Err(CmdError::err(
            "unsupported unit provided. please use M, KM, FT, MI",
        ))
    }
}

/// `extractDistanceOrReply`: (conversion, radius).
fn extract_distance(radius: &[u8], unit: &[u8]) -> Result<(f64, f64), CmdError> {
    let r = parse_double(radius).ok_or_else(|| CmdError::err("need numeric radius"))?;
    if r < 0.0 {
        return Err(CmdError::err("radius cannot be negative"));
    }
    Ok((extract_unit(unit)?, r))
}

/// `extractBoxOrReply`: (conversion, width, height).
fn extract_box(w: &[u8], h: &[u8], unit: &[u8]) -> Result<(f64, f64, f64), CmdError> {
    let w = parse_double(w).ok_or_else(|| CmdError::err("need numeric width"))?;
    let h = parse_double(h).ok_or_else(|| CmdError::err("need numeric height"))?;
    if h < 0.0 || w < 0.0 {
        return Err(CmdError::err("height or width cannot be negative"));
    }
    Ok((extract_unit(unit)?, w, h))
}

/// C `printf("%.<prec>f")` (glibc spelling of infinities and NaNs).
fn c_fixed(d: f64, prec: usize) -> String {
    if d.is_nan() {
        return if d.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    format!("{d:.prec$}")
}

/// `ld2string(.., LD_STR_HUMAN)` of a double: `%.17Lf` without trailing zeros.
fn human_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.into();
    }
    super::strings_ext::trim_human(c_fixed(d, 17))
}

/// `addReplyHumanLongDouble`: a bulk string in RESP2, a double in RESP3.
fn reply_human(ctx: &mut Ctx, d: f64) {
    let s = human_double(d);
    if ctx.out.is_resp3() {
        ctx.out.raw(b",");
        ctx.out.raw(s.as_bytes());
        ctx.out.raw(b"\r\n");
    } else {
        ctx.out.bulk(s.as_bytes());
    }
}

/// `fixedpoint_d2string(.., 4)`: the value times 10^4 rounded half-to-even (`llrint`), printed
/// with 4 decimals.
fn fixed4(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".into();
    }
    let p = (d * 10000.0).round_ties_even();
    // x86 `cvtsd2si`: out of range (or NaN) gives the "integer indefinite" value.
    let sv = if (-TWO63..TWO63).contains(&p) {
        p as i64
    } else {
        i64::MIN
    };
    let digits = format!("{:05}", sv.unsigned_abs());
    let (int, frac) = digits.split_at(digits.len() - 4);
    format!("{}{int}.{frac}", if sv < 0 { "-" } else { "" })
}

/// `addReplyDoubleDistance`: 4 decimals as a bulk string.
fn reply_distance(ctx: &mut Ctx, d: f64) {
    ctx.out.bulk(fixed4(d).as_bytes());
}

// ---------------------------------------------------------------------------------------
// GEOADD

pub fn geoadd(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx) = (false, false);
    let mut longidx = 2;
    while longidx < args.len() {
        let o = &args[longidx];
        if o.eq_ignore_ascii_case(b"nx") {
            nx = true;
        } else if o.eq_ignore_ascii_case(b"xx") {
            xx = true;
        } else if !o.eq_ignore_ascii_case(b"ch") {
            break;
        }
        longidx += 1;
    }
    if !(args.len() - longidx).is_multiple_of(3) || (xx && nx) {
        return Err(CmdError::Syntax);
    }
    // The equivalent ZADD: options as given, then score/member pairs.
    let mut zargs: Vec<Bytes> = Vec::with_capacity(longidx + (args.len() - longidx) / 3 * 2);
    zargs.push(Bytes::from_static(b"zadd"));
    zargs.extend(args[1..longidx].iter().cloned());
    for el in args[longidx..].chunks(3) {
        let [lon, lat] = extract_lonlat(&el[0], &el[1])?;
        let bits = align52(encode_wgs84(lon, lat, STEP_MAX));
        zargs.push(Bytes::from(bits.to_string()));
        zargs.push(el[2].clone());
    }
    let dirty_before = ctx.db.dirty;
    let res = super::zsets::zadd(ctx, &zargs);
    if ctx.db.dirty > dirty_before {
        ctx.db.propagate_as = Some(zargs.iter().map(|a| a.to_vec()).collect());
    }
    res
}

// ---------------------------------------------------------------------------------------
// GEORADIUS / GEORADIUSBYMEMBER (+ _RO) / GEOSEARCH / GEOSEARCHSTORE

const RADIUS_COORDS: u32 = 1;
const RADIUS_MEMBER: u32 = 1 << 1;
const RADIUS_NOSTORE: u32 = 1 << 2;
const GEOSEARCH: u32 = 1 << 3;
const GEOSEARCHSTORE: u32 = 1 << 4;

#[derive(Clone, Copy, PartialEq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// Position of `member` in the zset at `key` (the key is known to exist and be a zset).
fn member_pos(ctx: &mut Ctx, key: &[u8], member: &[u8]) -> Result<[f64; 2], CmdError> {
    let score = get_zset(&mut ctx.db, key, true)?.and_then(|z| z.score(member));
    match score {
        Some(s) => Ok(decode_score(s)),
        None => Err(CmdError::err("could not decode requested zset member")),
    }
}

fn georadius_generic(ctx: &mut Ctx, args: &[Bytes], src_idx: usize, flags: u32) -> CmdResult {
    let src = &args[src_idx];
    let exists = get_zset(&mut ctx.db, src, false)?.is_some();
    let mut storekey: Option<&Bytes> = None;
    let mut storedist = false;
    let mut shape = Shape {
        xy: [0.0, 0.0],
        conversion: 0.0,
        kind: ShapeKind::Circle { radius: 0.0 },
    };
    let base_args;
    if flags & RADIUS_COORDS != 0 {
        base_args = 6;
        shape.xy = extract_lonlat(&args[2], &args[3])?;
        let (conv, radius) = extract_distance(&args[4], &args[5])?;
        shape.conversion = conv;
        shape.kind = ShapeKind::Circle { radius };
    } else if flags & RADIUS_MEMBER != 0 && !exists {
        // No source key: parse the options anyway to pick the reply.
        base_args = 5;
    } else if flags & RADIUS_MEMBER != 0 {
        base_args = 5;
        shape.xy = member_pos(ctx, src, &args[2])?;
        let (conv, radius) = extract_distance(&args[3], &args[4])?;
        shape.conversion = conv;
        shape.kind = ShapeKind::Circle { radius };
    } else if flags & GEOSEARCHSTORE != 0 {
        base_args = 3;
        storekey = Some(&args[1]);
    } else {
        base_args = 2;
    }

    let (mut withdist, mut withhash, mut withcoords) = (false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut any = false;
    let mut count: i64 = 0;
    let search = flags & GEOSEARCH != 0;
    let can_store = flags & (RADIUS_NOSTORE | GEOSEARCH) == 0;
    let remaining = args.len().saturating_sub(base_args);
    let mut i = 0;
    while i < remaining {
        let j = base_args + i;
        let a = &args[j][..];
        let is = |s: &[u8]| a.eq_ignore_ascii_case(s);
        if is(b"withdist") {
            withdist = true;
        } else if is(b"withhash") {
            withhash = true;
        } else if is(b"withcoord") {
            withcoords = true;
        } else if is(b"any") {
            any = true;
        } else if is(b"asc") {
            sort = Sort::Asc;
        } else if is(b"desc") {
            sort = Sort::Desc;
        } else if is(b"count") && i + 1 < remaining {
            count = int_arg(&args[j + 1])?;
            if count <= 0 {
                return Err(CmdError::err("COUNT must be > 0"));
            }
            i += 1;
        } else if is(b"store") && i + 1 < remaining && can_store {
            storekey = Some(&args[j + 1]);
            storedist = false;
            i += 1;
        } else if is(b"storedist") && i + 1 < remaining && can_store {
            storekey = Some(&args[j + 1]);
            storedist = true;
            i += 1;
        } else if is(b"storedist") && search && flags & GEOSEARCHSTORE != 0 {
            storedist = true;
        } else if is(b"frommember") && i + 1 < remaining && search && !fromloc {
            if exists {
                shape.xy = member_pos(ctx, src, &args[j + 1])?;
            }
            frommember = true;
            i += 1;
        } else if is(b"fromlonlat") && i + 2 < remaining && search && !frommember {
            shape.xy = extract_lonlat(&args[j + 1], &args[j + 2])?;
            fromloc = true;
            i += 2;
        } else if is(b"byradius") && i + 2 < remaining && search && !bybox {
            let (conv, radius) = extract_distance(&args[j + 1], &args[j + 2])?;
            shape.conversion = conv;
            shape.kind = ShapeKind::Circle { radius };
            byradius = true;
            i += 2;
        } else if is(b"bybox") && i + 3 < remaining && search && !byradius {
            let (conv, width, height) = extract_box(&args[j + 1], &args[j + 2], &args[j + 3])?;
            shape.conversion = conv;
            shape.kind = ShapeKind::Rect { width, height };
            bybox = true;
            i += 3;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }

    if storekey.is_some() && (withdist || withhash || withcoords) {
        return Err(CmdError::err(format!(
            "{} is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
            if flags & GEOSEARCHSTORE != 0 {
                "GEOSEARCHSTORE"
            } else {
                "STORE option in GEORADIUS"
            }
        )));
    }
    let cmd_name = String::from_utf8_lossy(&args[0]).into_owned();
    if search && !(frommember || fromloc) {
        return Err(CmdError::err(format!(
            "exactly one of FROMMEMBER or FROMLONLAT can be specified for {cmd_name}"
        )));
    }
    if search && !(byradius || bybox) {
        return Err(CmdError::err(format!(
            "exactly one of BYRADIUS and BYBOX can be specified for {cmd_name}"
        )));
    }
    if any && count == 0 {
        return Err(CmdError::err("the ANY argument requires COUNT argument"));
    }

    if !exists {
        match storekey {
            Some(dst) => {
                if ctx.db.remove(dst).is_some() {
                    notify(ctx, notify::GENERIC, "del", dst);
                }
                ctx.out.int(0);
            }
            None => ctx.out.array(0),
        }
        return Ok(());
    }

    // COUNT without an order returns the closest ones (not with ANY).
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let limit = if any { count as usize } else { 0 };
    let mut points = match get_zset(&mut ctx.db, src, true)? {
        Some(z) => members_of_all_neighbors(z, &shape, limit),
        None => Vec::new(),
    };
    if points.is_empty() && storekey.is_none() {
        ctx.out.array(0);
        return Ok(());
    }
    let result_length = points.len();
    let returned = if count == 0 || (result_length as i64) < count {
        result_length
    } else {
        count as usize
    };
    if sort != Sort::None {
        let desc = sort == Sort::Desc;
        if returned == result_length {
            merge_sort(&mut points, desc);
        } else {
            partial_sort(&mut points, desc, 0, returned - 1);
        }
    }
    points.truncate(returned);
    let conv = shape.conversion;

    match storekey {
        None => {
            let option_length = withdist as usize + withcoords as usize + withhash as usize;
            ctx.out.array(returned);
            for p in &points {
                if option_length > 0 {
                    ctx.out.array(option_length + 1);
                }
                ctx.out.bulk(&p.member);
                if withdist {
                    reply_distance(ctx, p.dist / conv);
                }
                if withhash {
                    ctx.out.int(cvtt(p.score) as i64);
                }
                if withcoords {
                    ctx.out.array(2);
                    reply_human(ctx, p.lon);
                    reply_human(ctx, p.lat);
                }
            }
        }
        Some(dst) => {
            if returned > 0 {
                let pairs: Vec<(Vec<u8>, f64)> = points
                    .into_iter()
                    .map(|p| {
                        let s = if storedist { p.dist / conv } else { p.score };
                        (p.member, s)
                    })
                    .collect();
                let lim = zset_limits(ctx);
                ctx.db
                    .set(dst, Value::ZSet(Box::new(ZSet::from_pairs(pairs, lim))), 0);
                notify(
                    ctx,
                    notify::ZSET,
                    if search {
                        "geosearchstore"
                    } else {
                        "georadiusstore"
                    },
                    dst,
                );
                // Redis counts one change per stored element.
                ctx.db.dirty += returned as u64 - 1;
            } else if ctx.db.remove(dst).is_some() {
                notify(ctx, notify::GENERIC, "del", dst);
            }
            ctx.out.int(returned as i64);
        }
    }
    Ok(())
}

pub fn georadius(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    georadius_generic(ctx, args, 1, RADIUS_COORDS)
}

pub fn georadiusbymember(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    georadius_generic(ctx, args, 1, RADIUS_MEMBER)
}

pub fn georadius_ro(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    georadius_generic(ctx, args, 1, RADIUS_COORDS | RADIUS_NOSTORE)
}

pub fn georadiusbymember_ro(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    georadius_generic(ctx, args, 1, RADIUS_MEMBER | RADIUS_NOSTORE)
}

pub fn geosearch(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    georadius_generic(ctx, args, 1, GEOSEARCH)
}

pub fn geosearchstore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    georadius_generic(ctx, args, 2, GEOSEARCH | GEOSEARCHSTORE)
}

/// Keys of GEORADIUS / GEORADIUSBYMEMBER: the source, plus the last STORE / STOREDIST
/// target (Redis's `georadiusGetKeys`, which scans from argument 5).
pub fn georadius_keys(args: &[Bytes]) -> SmallVec<[usize; 4]> {
    let mut v: SmallVec<[usize; 4]> = SmallVec::new();
    v.push(1);
    let mut stored = None;
    let mut i = 5;
    while i < args.len() {
        let a = &args[i];
        if (a.eq_ignore_ascii_case(b"store") || a.eq_ignore_ascii_case(b"storedist"))
            && i + 1 < args.len()
        {
            stored = Some(i + 1);
            i += 1;
        }
        i += 1;
    }
    if let Some(s) = stored {
        v.push(s);
    }
    v
}

// ---------------------------------------------------------------------------------------
// GEOHASH / GEOPOS / GEODIST

pub fn geohash(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let scores: Vec<Option<f64>> = match get_zset(&mut ctx.db, &args[1], false)? {
        Some(z) => args[2..].iter().map(|m| z.score(m)).collect(),
        None => vec![None; args.len() - 2],
    };
    ctx.out.array(scores.len());
    for s in scores {
        let Some(s) = s else {
            ctx.out.null();
            continue;
        };
        // Stored hashes use the ±85.05 latitude range; the standard string uses ±90.
        let [x, y] = decode_score(s);
        let lat_r = Range {
            min: -90.0,
            max: 90.0,
        };
        let bits = encode(WGS84_LON, lat_r, x, y, STEP_MAX).map_or(0, |h| h.bits);
        let mut buf = [0u8; 11];
        for (i, c) in buf.iter_mut().enumerate() {
            let idx = if i == 10 {
                0
            } else {
                ((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize
            };
            *c = ALPHABET[idx];
        }
        ctx.out.bulk(&buf);
    }
    Ok(())
}

pub fn geopos(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let scores: Vec<Option<f64>> = match get_zset(&mut ctx.db, &args[1], false)? {
        Some(z) => args[2..].iter().map(|m| z.score(m)).collect(),
        None => vec![None; args.len() - 2],
    };
    ctx.out.array(scores.len());
    for s in scores {
        match s {
            None => ctx.out.null_array(),
            Some(s) => {
                let [x, y] = decode_score(s);
                ctx.out.array(2);
                reply_human(ctx, x);
                reply_human(ctx, y);
            }
        }
    }
    Ok(())
}

pub fn geodist(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut to_meter = 1.0;
    if args.len() == 5 {
        to_meter = extract_unit(&args[4])?;
    } else if args.len() > 5 {
        return Err(CmdError::Syntax);
    }
    let pair = match get_zset(&mut ctx.db, &args[1], false)? {
        None => None,
        Some(z) => match (z.score(&args[2]), z.score(&args[3])) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        },
    };
    match pair {
        None => ctx.out.null(),
        Some((a, b)) => {
            let [x1, y1] = decode_score(a);
            let [x2, y2] = decode_score(b);
            reply_distance(ctx, distance(x1, y1, x2, y2) / to_meter);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_roundtrip() {
        for &(x, y) in &[
            (0u32, 0u32),
            (1, 0),
            (0, 1),
            (0x03ff_ffff, 0x0155_5555),
            (u32::MAX, 7),
        ] {
            assert_eq!(deinterleave(interleave(x, y)), (x, y));
        }
    }

    #[test]
    fn palermo() {
        let h = align52(encode_wgs84(13.361389, 38.115556, STEP_MAX));
        assert_eq!(h, 3479099956230698);
        let [x, y] = decode_score(h as f64);
        assert_eq!(human_double(x), "13.36138933897018433");
        assert_eq!(human_double(y), "38.11555639549629859");
    }

    #[test]
    fn fixed_point_distances() {
        assert_eq!(fixed4(0.0), "0.0000");
        assert_eq!(fixed4(0.0001), "0.0001");
        assert_eq!(fixed4(6.06429515983917e-05), "0.0001");
        assert_eq!(fixed4(10.01), "10.0100");
        assert_eq!(fixed4(7423118.8160500005), "7423118.8160");
        assert_eq!(fixed4(166274.15156960032), "166274.1516");
    }

    #[test]
    fn score_conversion_like_x86() {
        assert_eq!(c_double_to_u64(-1.0), u64::MAX);
        assert_eq!(c_double_to_u64(1e300), 0);
        assert_eq!(c_double_to_u64(f64::INFINITY), 0);
        assert_eq!(c_double_to_u64(f64::NEG_INFINITY), 1 << 63);
        assert_eq!(c_double_to_u64(1.5), 1);
    }

    fn pts(d: &[f64]) -> Vec<Point> {
        d.iter()
            .enumerate()
            .map(|(i, &dist)| Point {
                member: vec![i as u8],
                lon: 0.0,
                lat: 0.0,
                dist,
                score: 0.0,
            })
            .collect()
    }

    #[test]
    fn partial_sort_orders_prefix() {
        let mut seed = 12345u64;
        for n in 1..120 {
            let d: Vec<f64> = (0..n)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((seed >> 33) % 17) as f64
                })
                .collect();
            let mut sorted = d.clone();
            sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
            for k in 1..=n {
                let mut v = pts(&d);
                partial_sort(&mut v, false, 0, k - 1);
                let got: Vec<f64> = v[..k].iter().map(|p| p.dist).collect();
                assert_eq!(got, sorted[..k].to_vec(), "n={n} k={k}");
            }
            let mut v = pts(&d);
            merge_sort(&mut v, true);
            let mut rev = sorted.clone();
            rev.reverse();
            assert_eq!(v.iter().map(|p| p.dist).collect::<Vec<_>>(), rev);
        }
    }
}
