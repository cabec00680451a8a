//! `cinnabar-server`: invoked like `redis-server [CONFIG_FILE] [--directive value ...]`.
//! Starts the worker threads, the background (cron) thread, signal handling, and shuts down
//! cleanly on SIGTERM/SIGINT (it may run as PID 1 in a container).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cinnabar_server::config_store::{ConfigStore, Startup};
use cinnabar_server::server::Server;
use cinnabar_server::{expire, info, log, net, notice, warning};

#[global_allocator]
static GLOBAL: cinnabar_server::alloc::CountingAlloc = cinnabar_server::alloc::CountingAlloc;

fn usage() {
    eprintln!(
        "Usage: ./cinnabar-server [/path/to/redis.conf] [options] [-]\n       ./cinnabar-server - (read config from stdin)\n       ./cinnabar-server -v or --version\n       ./cinnabar-server -h or --help\n\nExamples:\n       ./cinnabar-server (run the server with default conf)\n       ./cinnabar-server /etc/redis/6379.conf\n       ./cinnabar-server --port 7777\n       ./cinnabar-server /etc/myredis.conf --loglevel verbose -\n       ./cinnabar-server /etc/myredis.conf --cluster-enabled yes --cluster-config-file nodes-8001.conf\n"
    );
}

fn daemonize() {
    // SAFETY: called before any thread is spawned; only async-signal-safe calls follow fork.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            eprintln!("fork failed");
            std::process::exit(1);
        }
        if pid > 0 {
            libc::_exit(0);
        }
        libc::setsid();
        let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if devnull >= 0 {
            libc::dup2(devnull, 0);
            libc::dup2(devnull, 1);
            libc::dup2(devnull, 2);
            if devnull > 2 {
                libc::close(devnull);
            }
        }
    }
}

fn banner(port: u16, cluster: bool) {
    let mode = if cluster { "cluster" } else { "standalone" };
    let text = format!(
        "\n    Cinnabar {} (redis_version 7.0.15 compatible) 64 bit\n    Running in {} mode\n    Port: {}\n    PID: {}\n",
        info::CINNABAR_VERSION,
        mode,
        port,
        std::process::id()
    );
    for l in text.lines() {
        notice!("{}", l);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let store = match ConfigStore::from_args(&args) {
        Ok(Startup::Version) => {
            println!(
                "Redis server v=7.0.15 sha=00000000:0 malloc=mimalloc bits=64 build=cinnabar-{}",
                info::CINNABAR_VERSION
            );
            return;
        }
        Ok(Startup::Help) => {
            usage();
            return;
        }
        Ok(Startup::Run(s)) => s,
        Err((msg, code, to_stderr)) => {
            if to_stderr {
                eprintln!("{msg}");
            } else {
                log::log(log::Level::Warning, &format!("Fatal error, {msg}"));
            }
            std::process::exit(code.max(1));
        }
    };
    let settings = match store.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    if settings.daemonize {
        daemonize();
    }
    if let Err(e) = log::set_file(&settings.logfile) {
        eprintln!("Can't open the log file: {e}");
        std::process::exit(1);
    }
    log::set_level(log::Level::parse(&settings.loglevel).unwrap_or(log::Level::Notice));
    notice!("oO0OoO0OoO0Oo Cinnabar is starting oO0OoO0OoO0Oo");
    notice!(
        "Cinnabar version={} (redis_version=7.0.15), bits=64, pid={}, just started",
        info::CINNABAR_VERSION,
        std::process::id()
    );
    if store.file().is_some() {
        notice!("Configuration loaded");
    } else {
        warning!("Warning: no config file specified, using the default config. In order to specify a config file use ./cinnabar-server /path/to/redis.conf");
    }
    for w in store.warnings() {
        warning!("WARNING: {}", w);
    }
    if settings.dir.as_os_str() != "." {
        if let Err(e) = std::env::set_current_dir(&settings.dir) {
            warning!("Can't chdir to '{}': {}", settings.dir.display(), e);
            std::process::exit(1);
        }
    }
    if !settings.pidfile.is_empty() {
        let _ = std::fs::write(&settings.pidfile, format!("{}\n", std::process::id()));
    }
    let cluster_enabled = settings.cluster_enabled;
    if settings.always_show_logo {
        banner(settings.port, cluster_enabled);
    } else {
        notice!(
            "Running mode={}, port={}.",
            if cluster_enabled {
                "cluster"
            } else {
                "standalone"
            },
            settings.port
        );
    }

    // Background runtime: signals, cron (active expiry), cluster bus.
    let bg = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            warning!("Failed creating the background runtime: {}", e);
            std::process::exit(1);
        }
    };
    let config_file = store.file();
    let cluster = if cluster_enabled {
        match cinnabar_server::cluster_glue::start(&settings, bg.handle()) {
            Ok(c) => c,
            Err(e) => {
                warning!("{}", e);
                std::process::exit(1);
            }
        }
    } else {
        None
    };
    let srv = Arc::new(Server::new(settings.clone(), store, cluster, config_file));
    let _ = srv.repl.self_ref.set(Arc::downgrade(&srv));
    let _ = srv.repl.runtime.set(bg.handle().clone());
    cinnabar_server::keyspace::update_access_clock();

    // Bind all listeners before announcing readiness.
    // Worker threads: CINNABAR_WORKERS, else `io-threads` when above 1, else one per core.
    let workers = std::env::var("CINNABAR_WORKERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .or((settings.io_threads > 1).then_some(settings.io_threads as usize))
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .clamp(1, 128);
    notice!("Using {} worker thread(s)", workers);
    let addrs = net::bind_addrs(&settings.bind, settings.port);
    let mut per_worker: Vec<Vec<std::net::TcpListener>> =
        (0..workers).map(|_| Vec::new()).collect();
    if settings.port != 0 {
        for (addr, optional) in &addrs {
            for listeners in per_worker.iter_mut() {
                match net::make_listener(*addr, settings.tcp_backlog) {
                    Ok(l) => listeners.push(l),
                    Err(e) => {
                        if *optional {
                            break;
                        }
                        warning!(
                            "Warning: Could not create server TCP listening socket {}: {}",
                            addr,
                            e
                        );
                        std::process::exit(1);
                    }
                }
            }
        }
    }
    let mut unix_listener = None;
    if !settings.unixsocket.is_empty() {
        let _ = std::fs::remove_file(&settings.unixsocket);
        match std::os::unix::net::UnixListener::bind(&settings.unixsocket) {
            Ok(l) => {
                let _ = l.set_nonblocking(true);
                if settings.unixsocketperm != 0 {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = std::fs::set_permissions(
                        &settings.unixsocket,
                        std::fs::Permissions::from_mode(settings.unixsocketperm),
                    );
                }
                unix_listener = Some(l);
            }
            Err(e) => {
                warning!("Failed opening Unix socket: {}", e);
                std::process::exit(1);
            }
        }
    }
    notice!("Server initialized");
    // Load the dataset. Clients are accepted during the load, as by Redis: commands without
    // the `loading` flag get -LOADING (INFO shows `loading:1` and the progress), so
    // INFO-based ready checks and health probes answer. The load runs on its own thread
    // while this one drives the background runtime, so the cluster bus keeps answering PINGs
    // (Redis processes events while loading): a master restarting with a large AOF is not
    // marked FAIL and failed over meanwhile. What the cluster asks of the server (replicate,
    // flush, delete keys) waits until the data is in: the event loop below starts only after
    // the load.
    let cluster_events = cinnabar_server::cluster_glue::take_events(&srv);
    srv.repl.begin_startup_loading();
    for (i, listeners) in per_worker.into_iter().enumerate() {
        let srv = srv.clone();
        let unix = if i == 0 { unix_listener.take() } else { None };
        let unix_path = settings.unixsocket.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("cinnabar-w{i}"))
            .spawn(move || {
                let park_srv = srv.clone();
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    // Like Redis's beforeSleep: once this worker has run everything ready,
                    // start the group fsync its connections wait for (appendfsync always).
                    .on_thread_park(move || park_srv.persist.aof.kick_group_commit(&park_srv))
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        warning!("Failed creating worker runtime: {}", e);
                        std::process::exit(1);
                    }
                };
                rt.block_on(async move {
                    let mut tasks = Vec::new();
                    for l in listeners {
                        match tokio::net::TcpListener::from_std(l) {
                            Ok(l) => tasks.push(tokio::spawn(net::accept_loop(srv.clone(), l))),
                            Err(e) => warning!("listener: {}", e),
                        }
                    }
                    if let Some(u) = unix {
                        if let Ok(u) = tokio::net::UnixListener::from_std(u) {
                            tasks.push(tokio::spawn(net::accept_unix(srv.clone(), u, unix_path)));
                        }
                    }
                    srv.shutdown_notify.notified().await;
                });
            });
        if let Err(e) = spawned {
            warning!("Failed spawning worker thread: {}", e);
            std::process::exit(1);
        }
    }
    let load_srv = srv.clone();
    let appendonly = settings.appendonly;
    let loaded = bg.block_on(bg.spawn_blocking(move || {
        if appendonly {
            cinnabar_server::persist::aof::load_at_startup(&load_srv);
        } else {
            cinnabar_server::persist::rdbfile::load_at_startup(&load_srv);
        }
    }));
    if let Err(e) = loaded {
        warning!("Loading the dataset failed: {}. Exiting.", e);
        std::process::exit(1);
    }
    if let Some(cluster) = srv.cluster.as_ref() {
        if (1..srv.keyspace.db_count()).any(|i| srv.keyspace.db(i).key_count() > 0) {
            warning!(
                "You can't have keys in a DB different than DB 0 when in Cluster mode. Exiting."
            );
            std::process::exit(1);
        }
        cluster.verify_with_data(&srv.keyspace);
    }
    srv.repl.finish_startup_loading();
    cinnabar_server::cluster_glue::spawn_event_loop(&srv, bg.handle(), cluster_events);
    if let (Some(m), false) = (settings.replicaof.clone(), settings.cluster_enabled) {
        let _g = bg.enter();
        cinnabar_server::replica::start(&srv, Some(m));
    }
    cinnabar_server::info::STARTUP_MEMORY
        .store(cinnabar_server::alloc::allocated_bytes(), Ordering::Relaxed);
    notice!("Ready to accept connections");

    let srv2 = srv.clone();
    bg.block_on(async move {
        let srv = srv2;
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
        let hz = srv.settings().hz.max(1) as u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / hz));
        let mut cursor = expire::ExpireCursor::new(srv.keyspace.db_count());
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = async { match sigterm.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {
                    warning!("Received SIGTERM scheduling shutdown...");
                    break;
                }
                _ = async { match sigint.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {
                    warning!("Received SIGINT scheduling shutdown...");
                    break;
                }
                _ = srv.shutdown_notify.notified() => break,
                _ = tick.tick() => {
                    if srv.shutdown_requested.load(Ordering::Relaxed) {
                        break;
                    }
                    cinnabar_server::keyspace::update_access_clock();
                    // Keep evicting while over maxmemory, also when no command arrives
                    // (Redis's eviction time proc; e.g. after CONFIG SET maxmemory).
                    if srv.evict.maxmemory_bytes.load(Ordering::Relaxed) != 0 {
                        let _ = cinnabar_server::evict::perform(&srv);
                    }
                    let budget = Duration::from_micros(250_000 / hz);
                    // A manual failover froze this master's offset: no expiry DELs, no
                    // replication PINGs until it ends (Redis skips both while paused).
                    let mf_pausing = srv
                        .cluster
                        .as_ref()
                        .is_some_and(|c| c.manual_failover_pausing());
                    if !mf_pausing {
                        expire::active_expire_cycle(&srv, &mut cursor, budget);
                    }
                    ticks += 1;
                    if let Some(c) = srv.cluster.as_ref() {
                        c.set_repl_offset(srv.repl.offset().max(0) as u64);
                    }
                    if ticks.is_multiple_of(hz) {
                        if !mf_pausing {
                            srv.repl.cron(ticks / hz);
                        }
                        cinnabar_server::persist::rdbfile::cron(&srv);
                        let aof = &srv.persist.aof;
                        if aof.rewrite_scheduled.load(Ordering::Acquire)
                            && !aof.rewrite_running()
                            && !srv.persist.rdb.bgsave_in_progress.load(Ordering::Acquire)
                        {
                            let _ = cinnabar_server::persist::aof::start_rewrite(&srv);
                        }
                    }
                }
            }
        }
    });
    warning!("User requested shutdown...");
    srv.request_shutdown();
    if let Some(c) = srv.cluster.as_ref() {
        c.shutdown();
    }
    let s = srv.settings();
    srv.persist.aof.shutdown(&srv);
    let save = (*srv.shutdown_save.lock()).unwrap_or(!s.save_points.is_empty());
    if save {
        notice!("Saving the final RDB snapshot before exiting.");
        if cinnabar_server::persist::rdbfile::save(&srv).is_err() {
            warning!("Error trying to save the DB, can't exit.");
        }
    }
    if !s.pidfile.is_empty() {
        notice!("Removing the pid file.");
        let _ = std::fs::remove_file(&s.pidfile);
    }
    if !s.unixsocket.is_empty() {
        let _ = std::fs::remove_file(&s.unixsocket);
    }
    warning!("Cinnabar is now ready to exit, bye bye...");
    std::process::exit(0);
}
