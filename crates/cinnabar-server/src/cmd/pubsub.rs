//! Pub/Sub commands (SUBSCRIBE family, PUBLISH, SPUBLISH, PUBSUB), MONITOR, and the
//! transaction helpers WATCH / UNWATCH.
//!
//! Cluster mode (Redis 7.0 `publishCommand` / `spublishCommand`): PUBLISH delivers locally
//! and broadcasts a bus PUBLISH to every node; SPUBLISH (routed like a key by the
//! dispatcher) delivers locally and sends PUBLISHSHARD to the other nodes of this shard.
//! The reply counts local receivers only, as Redis does.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::Ctx;
use crate::error::{CmdError, CmdResult};
use crate::pubsub::Kind;

fn limit(ctx: &Ctx) -> u64 {
    ctx.srv.settings().output_limit_pubsub.hard_bytes
}

fn sync_counts(ctx: &Ctx) {
    let i = &ctx.cl.info;
    i.sub_count
        .store(ctx.cl.subs.len() as u32, Ordering::Relaxed);
    i.psub_count
        .store(ctx.cl.psubs.len() as u32, Ordering::Relaxed);
    i.ssub_count
        .store(ctx.cl.ssubs.len() as u32, Ordering::Relaxed);
}

fn reply3(ctx: &mut Ctx, kind: &[u8], name: Option<&[u8]>, count: usize) {
    ctx.out.push(3);
    ctx.out.bulk(kind);
    match name {
        Some(n) => ctx.out.bulk(n),
        None => ctx.out.null(),
    }
    ctx.out.int(count as i64);
}

fn list_mut<'a>(ctx: &'a mut Ctx, kind: Kind) -> &'a mut Vec<Bytes> {
    match kind {
        Kind::Channel => &mut ctx.cl.subs,
        Kind::Pattern => &mut ctx.cl.psubs,
        Kind::Shard => &mut ctx.cl.ssubs,
    }
}

fn count_for(ctx: &Ctx, kind: Kind) -> usize {
    match kind {
        Kind::Shard => ctx.cl.ssubs.len(),
        _ => ctx.cl.sub_total(),
    }
}

fn subscribe_generic(ctx: &mut Ctx, args: &[Bytes], kind: Kind, word: &[u8]) -> CmdResult {
    if ctx.cl.multi.is_some() {
        // Redis refuses SUBSCRIBE inside MULTI through the no-multi flag; keep parity.
        return Err(CmdError::err("Command not allowed inside a transaction"));
    }
    ctx.cl.apply_dropped_shard_channels();
    let q = ctx.cl.push_queue(limit(ctx));
    for ch in &args[1..] {
        if !list_mut(ctx, kind).iter().any(|c| c == ch) {
            list_mut(ctx, kind).push(ch.clone());
            ctx.srv.pubsub.subscribe(kind, ch, &q);
        }
        let n = count_for(ctx, kind);
        reply3(ctx, word, Some(ch), n);
    }
    sync_counts(ctx);
    Ok(())
}

fn unsubscribe_generic(ctx: &mut Ctx, args: &[Bytes], kind: Kind, word: &[u8]) -> CmdResult {
    ctx.cl.apply_dropped_shard_channels();
    let id = ctx.cl.id;
    let targets: Vec<Bytes> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        list_mut(ctx, kind).clone()
    };
    if targets.is_empty() {
        let n = count_for(ctx, kind);
        reply3(ctx, word, None, n);
        return Ok(());
    }
    for ch in targets {
        let l = list_mut(ctx, kind);
        if let Some(pos) = l.iter().position(|c| *c == ch) {
            l.remove(pos);
            ctx.srv.pubsub.unsubscribe(kind, &ch, id);
        }
        let n = count_for(ctx, kind);
        reply3(ctx, word, Some(&ch), n);
    }
    sync_counts(ctx);
    Ok(())
}

pub fn subscribe(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    subscribe_generic(ctx, args, Kind::Channel, b"subscribe")
}
pub fn psubscribe(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    subscribe_generic(ctx, args, Kind::Pattern, b"psubscribe")
}
pub fn ssubscribe(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    subscribe_generic(ctx, args, Kind::Shard, b"ssubscribe")
}
pub fn unsubscribe(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    unsubscribe_generic(ctx, args, Kind::Channel, b"unsubscribe")
}
pub fn punsubscribe(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    unsubscribe_generic(ctx, args, Kind::Pattern, b"punsubscribe")
}
pub fn sunsubscribe(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    unsubscribe_generic(ctx, args, Kind::Shard, b"sunsubscribe")
}

fn publish_generic(ctx: &mut Ctx, args: &[Bytes], shard: bool) -> CmdResult {
    let n = ctx.srv.pubsub.publish(shard, &args[1], &args[2]);
    if let Some(cluster) = ctx.srv.cluster.as_ref() {
        cluster.propagate_publish(shard, args[1].clone(), args[2].clone());
    }
    ctx.out.int(n);
    Ok(())
}

pub fn publish(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    publish_generic(ctx, args, false)
}

pub fn spublish(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    publish_generic(ctx, args, true)
}

fn channels_generic(ctx: &mut Ctx, args: &[Bytes], shard: bool) -> CmdResult {
    let pat = args.get(2).map(|p| p.as_ref());
    let names = ctx.srv.pubsub.channel_names(shard, pat);
    ctx.out.array(names.len());
    for n in names {
        ctx.out.bulk(&n);
    }
    Ok(())
}

pub fn pubsub_channels(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    channels_generic(ctx, args, false)
}
pub fn pubsub_shardchannels(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    channels_generic(ctx, args, true)
}

fn numsub_generic(ctx: &mut Ctx, args: &[Bytes], shard: bool) -> CmdResult {
    ctx.out.map(args.len() - 2);
    for ch in &args[2..] {
        ctx.out.bulk(ch);
        let n = ctx.srv.pubsub.subscriber_count(shard, ch);
        ctx.out.int(n as i64);
    }
    Ok(())
}

pub fn pubsub_numsub(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    numsub_generic(ctx, args, false)
}
pub fn pubsub_shardnumsub(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    numsub_generic(ctx, args, true)
}

pub fn pubsub_numpat(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    ctx.out.int(ctx.srv.pubsub.pattern_count() as i64);
    Ok(())
}

pub fn pubsub_help(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() != 2 {
        return Err(CmdError::Arity("pubsub".into()));
    }
    super::connection::help_reply(ctx, &[
        "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "SHARDCHANNELS [<pattern>]",
        "    Return the currently active shard level channels matching a <pattern> (default: '*').",
        "SHARDNUMSUB [<shardchannel> ...]",
        "    Return the number of subscribers for the specified shard level channel(s)",
        "HELP",
        "    Prints this help.",
    ]);
    Ok(())
}

pub fn monitor(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    if ctx.cl.monitor {
        ctx.out.ok();
        return Ok(());
    }
    let q = ctx
        .cl
        .push_queue(ctx.srv.settings().output_limit_replica.hard_bytes);
    ctx.cl.monitor = true;
    ctx.srv.pubsub.add_monitor(&q);
    ctx.out.ok();
    Ok(())
}

pub fn watch(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if ctx.cl.multi.is_some() {
        return Err(CmdError::err("WATCH inside MULTI is not allowed"));
    }
    let db = ctx.db.index;
    for k in &args[1..] {
        if ctx
            .cl
            .watched
            .iter()
            .any(|(d, key, _)| *d == db && key == k)
        {
            continue;
        }
        let live = ctx.db.exists(k);
        ctx.srv.watch(db, k.clone(), &ctx.cl.info);
        ctx.cl.watched.push((db, k.clone(), live));
    }
    ctx.out.ok();
    Ok(())
}

pub fn unwatch(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    ctx.srv.unwatch_all(ctx.cl);
    ctx.out.ok();
    Ok(())
}
