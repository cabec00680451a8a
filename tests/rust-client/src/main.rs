//! Checks a cluster with the `redis` crate's async cluster client (redis-rs): discovers the
//! topology from the seed nodes given as arguments (`host:port ...`), writes and reads keys
//! spread over every hash slot range, and checks MGET-free single-key round trips and an
//! INCR counter. Exits non-zero with a message on the first mismatch.

use redis::cluster::ClusterClientBuilder;
use redis::AsyncCommands;

const KEYS: usize = 3000;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let seeds: Vec<String> = std::env::args().skip(1).map(|a| format!("redis://{a}/")).collect();
    if seeds.is_empty() {
        eprintln!("usage: cinnabar-rust-client-check host:port [host:port ...]");
        std::process::exit(2);
    }
    if let Err(e) = run(seeds).await {
        eprintln!("FAILED: {e}");
        std::process::exit(1);
    }
    println!("OK: {KEYS} keys written and read through the redis crate's cluster client");
}

async fn run(seeds: Vec<String>) -> Result<(), String> {
    let client = ClusterClientBuilder::new(seeds).build().map_err(|e| e.to_string())?;
    let mut con = client.get_async_connection().await.map_err(|e| e.to_string())?;
    for i in 0..KEYS {
        let key = format!("rust:{i}");
        let _: () = con.set(&key, format!("value-{i}")).await.map_err(|e| format!("SET {key}: {e}"))?;
    }
    for i in 0..KEYS {
        let key = format!("rust:{i}");
        let v: Option<String> = con.get(&key).await.map_err(|e| format!("GET {key}: {e}"))?;
        if v.as_deref() != Some(format!("value-{i}").as_str()) {
            return Err(format!("GET {key} returned {v:?}"));
        }
    }
    for _ in 0..10 {
        let _: i64 = con.incr("rust:{counter}", 1).await.map_err(|e| format!("INCR: {e}"))?;
    }
    let n: i64 = con.get("rust:{counter}").await.map_err(|e| format!("GET counter: {e}"))?;
    if n != 10 {
        return Err(format!("counter is {n}, expected 10"));
    }
    // Hash-tagged multi-key command on one slot.
    let _: () = redis::cmd("MSET")
        .arg("{tag}:a")
        .arg("1")
        .arg("{tag}:b")
        .arg("2")
        .query_async(&mut con)
        .await
        .map_err(|e| format!("MSET: {e}"))?;
    let vals: Vec<String> = redis::cmd("MGET")
        .arg("{tag}:a")
        .arg("{tag}:b")
        .query_async(&mut con)
        .await
        .map_err(|e| format!("MGET: {e}"))?;
    if vals != ["1", "2"] {
        return Err(format!("MGET returned {vals:?}"));
    }
    Ok(())
}
