//! SORT and SORT_RO (BY, GET, LIMIT, ASC/DESC, ALPHA, STORE), following Redis 7.0's sort.c:
//! the `dontsort` shortcuts for lists and sorted sets, forced ALPHA for unsorted sets with
//! STORE, numeric ties broken by byte comparison, and the cluster-mode BY/GET restrictions.
//!
//! BY/GET patterns read keys that the command table cannot declare. After reading the
//! elements, the handler computes the slots those keys live in and, if some are not locked
//! yet, re-takes the command's locks together with them in the global (db, slot) order.

use std::cmp::Ordering;

use bytes::Bytes;
use smallvec::SmallVec;

use cinnabar_cluster::slot::key_hash_slot;

use super::coll::{get_list, int_arg, list_fill, strtod};
use super::Ctx;
use crate::error::{CmdError, CmdResult};
use crate::keyspace::{LockSet, SLOT_COUNT};
use crate::notify::{self, notify};
use crate::types::list::List;
use crate::types::Value;

/// Key positions of SORT: the sorted key and the (last) STORE destination.
pub fn sort_keys(args: &[Bytes]) -> SmallVec<[usize; 4]> {
    let mut v: SmallVec<[usize; 4]> = SmallVec::new();
    v.push(1);
    let mut store = None;
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if a.eq_ignore_ascii_case(b"limit") {
            i += 3;
        } else if a.eq_ignore_ascii_case(b"get") || a.eq_ignore_ascii_case(b"by") {
            i += 2;
        } else if a.eq_ignore_ascii_case(b"store") {
            if i + 1 < args.len() {
                store = Some(i + 1);
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    if let Some(s) = store {
        v.push(s);
    }
    v
}

/// The key a pattern names for `subst` and the optional hash field; None when the pattern
/// has no `*`.
fn pattern_key(pat: &[u8], subst: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let star = pat.iter().position(|&c| c == b'*')?;
    let after = &pat[star + 1..];
    let (post, field) = match after.windows(2).position(|w| w == b"->") {
        Some(f) if f + 2 < after.len() => (&after[..f], Some(after[f + 2..].to_vec())),
        _ => (after, None),
    };
    let mut k = Vec::with_capacity(star + subst.len() + post.len());
    k.extend_from_slice(&pat[..star]);
    k.extend_from_slice(subst);
    k.extend_from_slice(post);
    Some((k, field))
}

/// `lookupKeyByPattern`.
fn lookup_pattern(ctx: &mut Ctx, pat: &[u8], subst: &[u8]) -> Option<Vec<u8>> {
    if pat == b"#" {
        return Some(subst.to_vec());
    }
    let (key, field) = pattern_key(pat, subst)?;
    let e = ctx.db.lookup_read(&key)?;
    match field {
        Some(f) => match &e.value {
            Value::Hash(h) => h.get(&f).map(|v| v.to_vec()),
            _ => None,
        },
        None => e.value.string_bytes().map(|b| b.into_owned()),
    }
}

/// Makes sure every slot in `slots` (of the selected db) is locked: added to the held ones
/// (`LockSet::acquire_more`, so EXEC and scripts keep their atomicity), or — when one stays
/// busy past the deadline — by re-taking the command's locks in order.
fn ensure_locked(ctx: &mut Ctx, slots: &[u16]) {
    let db = ctx.db.index;
    if ctx.db.all_locked || slots.iter().all(|&s| ctx.db.locks.holds(db, s)) {
        return;
    }
    let more: SmallVec<[(u32, u16); 4]> = slots.iter().map(|&s| (db, s)).collect();
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(crate::script::LOCK_WAIT_MS);
    if ctx
        .db
        .locks
        .acquire_more(&ctx.srv.keyspace, &more, deadline)
        .is_some()
    {
        return;
    }
    let mut wanted: SmallVec<[(u32, u16); 4]> = SmallVec::new();
    let dbs = ctx.srv.keyspace.db_count() as u32;
    let held = ctx.db.locks.len();
    'outer: for d in 0..dbs {
        for s in 0..SLOT_COUNT as u16 {
            if wanted.len() == held {
                break 'outer;
            }
            if ctx.db.locks.holds(d, s) {
                wanted.push((d, s));
            }
        }
    }
    for &s in slots {
        wanted.push((db, s));
    }
    ctx.db.locks = LockSet::empty();
    ctx.db.locks = LockSet::lock(&ctx.srv.keyspace, wanted);
}

fn pattern_slots(pats: &[&[u8]], elems: &[Vec<u8>], out: &mut Vec<u16>) {
    for p in pats {
        if *p == b"#" {
            continue;
        }
        for e in elems {
            if let Some((k, _)) = pattern_key(p, e) {
                out.push(key_hash_slot(&k));
            }
        }
    }
}

/// strtod as SORT uses it: leading spaces allowed, an empty string is 0.
fn sort_score(b: &[u8]) -> Option<f64> {
    if b.is_empty() {
        return Some(0.0);
    }
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))?;
    let (v, erange) = strtod(&b[start..])?;
    if erange || v.is_nan() {
        None
    } else {
        Some(v)
    }
}

fn sort_generic(ctx: &mut Ctx, args: &[Bytes], readonly: bool) -> CmdResult {
    let mut desc = false;
    let mut alpha = false;
    let mut limit_start: i64 = 0;
    let mut limit_count: i64 = -1;
    let mut dontsort = false;
    let mut sortby: Option<Bytes> = None;
    let mut store: Option<Bytes> = None;
    let mut gets: Vec<Bytes> = Vec::new();
    let cluster = ctx.srv.is_cluster();
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if a.eq_ignore_ascii_case(b"asc") {
            desc = false;
        } else if a.eq_ignore_ascii_case(b"desc") {
            desc = true;
        } else if a.eq_ignore_ascii_case(b"alpha") {
            alpha = true;
        } else if a.eq_ignore_ascii_case(b"limit") && left >= 2 {
            limit_start = int_arg(&args[j + 1])?;
            limit_count = int_arg(&args[j + 2])?;
            j += 2;
        } else if !readonly && a.eq_ignore_ascii_case(b"store") && left >= 1 {
            store = Some(args[j + 1].clone());
            j += 1;
        } else if a.eq_ignore_ascii_case(b"by") && left >= 1 {
            sortby = Some(args[j + 1].clone());
            if !args[j + 1].contains(&b'*') {
                dontsort = true;
            } else if cluster {
                return Err(CmdError::err("BY option of SORT denied in Cluster mode."));
            }
            j += 1;
        } else if a.eq_ignore_ascii_case(b"get") && left >= 1 {
            if cluster {
                return Err(CmdError::err("GET option of SORT denied in Cluster mode."));
            }
            gets.push(args[j + 1].clone());
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }

    // Read the elements (and the type) of the key.
    #[derive(PartialEq, Clone, Copy)]
    enum Kind {
        List,
        Set,
        ZSet,
    }
    let (kind, all): (Kind, Vec<Vec<u8>>) = match ctx.db.lookup_read(&args[1]) {
        None => (Kind::List, Vec::new()),
        Some(e) => match &e.value {
            Value::List(l) => (Kind::List, l.iter().map(|v| v.to_vec()).collect()),
            Value::Set(s) => (Kind::Set, s.members()),
            Value::ZSet(z) => {
                let mut v = Vec::with_capacity(z.len());
                z.for_each(|m, _| v.push(m.to_vec()));
                (Kind::ZSet, v)
            }
            _ => return Err(CmdError::WrongType),
        },
    };
    if dontsort && kind == Kind::Set && store.is_some() {
        dontsort = false;
        alpha = true;
        sortby = None;
    }
    let vlen = all.len() as i64;
    let mut start = if limit_start < 0 { 0 } else { limit_start };
    let mut end = if limit_count < 0 {
        vlen - 1
    } else {
        start.saturating_add(limit_count) - 1
    };
    if start >= vlen {
        start = vlen - 1;
        end = vlen - 2;
    }
    if end >= vlen {
        end = vlen - 1;
    }
    let mut elems: Vec<Vec<u8>> = if (kind == Kind::List || kind == Kind::ZSet) && dontsort {
        // Native order, LIMIT applied directly, DESC walking from the tail.
        let v = if end >= start {
            let (s, e) = (start as usize, end as usize);
            if desc {
                let n = all.len();
                all[n - 1 - e..=n - 1 - s].iter().rev().cloned().collect()
            } else {
                all[s..=e].to_vec()
            }
        } else {
            Vec::new()
        };
        if end >= start {
            end -= start;
            start = 0;
        }
        v
    } else {
        all
    };

    if !dontsort {
        let mut by_vals: Vec<Option<Vec<u8>>> = Vec::new();
        if let Some(by) = &sortby {
            let mut slots = Vec::new();
            pattern_slots(&[by.as_ref()], &elems, &mut slots);
            ensure_locked(ctx, &slots);
            by_vals.reserve(elems.len());
            for e in &elems {
                by_vals.push(lookup_pattern(ctx, by, e));
            }
        }
        if alpha {
            let mut idx: Vec<usize> = (0..elems.len()).collect();
            idx.sort_by(|&a, &b| {
                let c = if sortby.is_some() {
                    match (&by_vals[a], &by_vals[b]) {
                        (None, None) => Ordering::Equal,
                        (None, Some(_)) => Ordering::Less,
                        (Some(_), None) => Ordering::Greater,
                        (Some(x), Some(y)) => x.cmp(y),
                    }
                } else {
                    elems[a].cmp(&elems[b])
                };
                if desc {
                    c.reverse()
                } else {
                    c
                }
            });
            elems = idx
                .into_iter()
                .map(|i| std::mem::take(&mut elems[i]))
                .collect();
        } else {
            let mut scored: Vec<(f64, Vec<u8>)> = Vec::with_capacity(elems.len());
            let mut conv_err = false;
            for (i, e) in elems.drain(..).enumerate() {
                let src = if sortby.is_some() {
                    by_vals[i].as_deref()
                } else {
                    Some(e.as_slice())
                };
                let s = match src {
                    None => 0.0,
                    Some(b) => match sort_score(b) {
                        Some(v) => v,
                        None => {
                            conv_err = true;
                            0.0
                        }
                    },
                };
                scored.push((s, e));
            }
            if conv_err {
                return Err(CmdError::err(
                    "One or more scores can't be converted into double",
                ));
            }
            scored.sort_by(|a, b| {
                let c =
                    a.0.partial_cmp(&b.0)
                        .unwrap_or(Ordering::Equal)
                        .then_with(|| a.1.cmp(&b.1));
                if desc {
                    c.reverse()
                } else {
                    c
                }
            });
            elems = scored.into_iter().map(|p| p.1).collect();
        }
    }

    let range: &[Vec<u8>] = if end >= start && start >= 0 {
        &elems[start as usize..=(end as usize).min(elems.len().saturating_sub(1))]
    } else {
        &[]
    };
    if !gets.is_empty() {
        let pats: Vec<&[u8]> = gets.iter().map(|g| g.as_ref()).collect();
        let mut slots = Vec::new();
        pattern_slots(&pats, range, &mut slots);
        ensure_locked(ctx, &slots);
    }
    let outputlen = if gets.is_empty() {
        range.len()
    } else {
        gets.len() * range.len()
    };
    match store {
        None => {
            ctx.out.array(outputlen);
            for e in range {
                if gets.is_empty() {
                    ctx.out.bulk(e);
                }
                for g in &gets {
                    match lookup_pattern(ctx, g, e) {
                        Some(v) => ctx.out.bulk(&v),
                        None => ctx.out.null(),
                    }
                }
            }
        }
        Some(dst) => {
            let fill = list_fill(ctx);
            let mut l = List::new();
            for e in range {
                if gets.is_empty() {
                    l.push_back(e, fill);
                }
                for g in &gets {
                    let v = lookup_pattern(ctx, g, e).unwrap_or_default();
                    l.push_back(&v, fill);
                }
            }
            if outputlen > 0 {
                ctx.db.set(&dst, Value::List(Box::new(l)), 0);
                notify(ctx, notify::LIST, "sortstore", &dst);
            } else if ctx.db.remove(&dst).is_some() {
                notify(ctx, notify::GENERIC, "del", &dst);
            }
            let _ = get_list(&mut ctx.db, &dst, true);
            ctx.out.int(outputlen as i64);
        }
    }
    Ok(())
}

pub fn sort(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    sort_generic(ctx, args, false)
}

pub fn sort_ro(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    sort_generic(ctx, args, true)
}
