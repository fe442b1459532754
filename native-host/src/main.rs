//! `mcp-edge-gateway`: one MCP endpoint in front of many MCP servers, for edge boards and desktops.
#![forbid(unsafe_code)]

mod admin;
mod auth;
mod check;
mod config;
mod driver;
mod http;
mod metrics;
mod secrets;
mod stdio;
mod store;
mod upstream;
mod ws;

use clap::{Parser, Subcommand};
use config::HostConfig;
use mcp_edge_gateway::Gateway;
use std::net::SocketAddr;
use std::path::PathBuf;

/// mimalloc on Linux (native-host/Cargo.toml says why); the system's allocator elsewhere.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ABOUT: &str = "MCP gateway for the edge: one MCP endpoint in front of many MCP servers.";

const LONG_ABOUT: &str = "\
MCP gateway for the edge: one MCP endpoint in front of many MCP servers (stdio child processes,
Streamable HTTP and legacy HTTP+SSE servers). Clients of both protocol eras (initialize-based up to
2025-11-25, and the stateless 2026-07-28) see the tools, prompts, resources and templates of every
upstream, namespaced as <upstream>__<name>.

With no --config, `serve` runs an embedded default: built-in edge tools with real readings of this
device (system_info, load, memory, temperatures, network).

CONFIG FILES
  TOML (our format):
      [server]
      listen = \"127.0.0.1:8787\"
      allowed_origins = [\"https://app.example\"]     # CORS + Origin check; loopback is always allowed
      [namespace]
      separator = \"__\"                              # prefix = false makes names unprefixed by default
      [upstreams.everything]
      command = \"npx\"
      args = [\"-y\", \"@modelcontextprotocol/server-everything\"]
      [upstreams.weather]
      url = \"http://127.0.0.1:9000/mcp\"              # transport = \"sse\" for legacy HTTP+SSE
      headers = { Authorization = \"Bearer ...\" }
      prefix = \"wx\"                                  # or false for no prefix
      [upstreams.edge]
      builtin = \"edge\"
      [groups.search]                                  # members serving the same tools, as search__<tool>
      members = [\"board\", \"cloud\"]                   # in order of preference
      first_byte_timeout_ms = 10000                    # also timeout_ms, retry = {...}, breaker = {...}
      [sampling]                                       # who answers an upstream's sampling request
      order = [\"local\", \"cloud\", \"client\"]
      [sampling.providers.local]
      url = \"http://127.0.0.1:8080/v1\"               # OpenAI-compatible chat completions
      model = \"smollm2-135m\"
      [sampling.providers.cloud]
      url = \"https://llm.example/v1\"
      api_key_env = \"CLOUD_LLM_KEY\"                   # or api_key_file; never the key itself
      model = \"big-model\"
      [auth]                                           # needed to listen beyond loopback
      issuer = \"https://auth.example\"                # OAuth server issuing JWT access tokens
      audience = \"https://pi.local:8787/mcp\"         # this gateway's canonical URI
      scopes = [\"mcp\"]                               # admin_scopes = [\"mcp:admin\"] for /status, /admin
      [[auth.tokens]]                                  # static bearer tokens
      principal = \"kitchen-agent\"
      token_env = \"GW_TOKEN_KITCHEN\"                 # or token_file
      [[policy.rules]]                                 # which exposed names a principal may use
      principals = [\"kitchen-agent\"]
      allow = [\"edge__*\"]
      [limits]
      requests_per_minute = 600                        # per principal; 429 with Retry-After beyond

  JSON, as Claude Desktop, Cursor and others write it (the key is the upstream's name):
      { \"mcpServers\": {
          \"everything\": { \"command\": \"npx\", \"args\": [\"-y\", \"@modelcontextprotocol/server-everything\"] },
          \"weather\":    { \"url\": \"http://127.0.0.1:9000/mcp\", \"headers\": { \"Authorization\": \"Bearer ...\" } } },
        \"gateway\": { \"groups\": { \"search\": { \"members\": [\"board\", \"cloud\"] } },
                     \"sampling\": { \"order\": [\"local\", \"client\"], \"providers\": { \"local\": { \"url\": \"...\", \"model\": \"...\" } } } } }

ENDPOINTS (serve)
  POST/GET/DELETE /mcp   Streamable HTTP, both eras      GET /status   status (JSON; HTML for a browser)
  GET /metrics           Prometheus/OpenMetrics text (JSON with Accept: application/json)
  GET /                  the status page
  GET /ws                WebSocket, one JSON-RPC message per text frame, both eras
  GET /healthz           liveness
  GET /.well-known/oauth-protected-resource[/mcp]   OAuth protected resource metadata (with [auth])

Logs go to stderr (--log-format json: one JSON object per line); set RUST_LOG (e.g. RUST_LOG=debug) for more.";

#[derive(Parser)]
#[command(name = "mcp-edge-gateway", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines on stderr: `text` for people, `json` for machines (one JSON object per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP over Streamable HTTP on /mcp (default 127.0.0.1:8787).
    Serve {
        /// TOML config, or JSON with an `mcpServers` object. Without it: the built-in edge tools.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Address to listen on. Binding beyond loopback exposes the gateway to the network, and
        /// needs `[auth]` in the config (or --allow-unauthenticated).
        #[arg(long, short)]
        listen: Option<String>,
        /// Serve beyond loopback with no `[auth]`: only when something in front authenticates, or
        /// on a network you trust with every tool of every upstream.
        #[arg(long)]
        allow_unauthenticated: bool,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Serve MCP on stdin/stdout, for desktop apps that launch the gateway as their MCP server.
    Stdio {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Read a configuration as `serve` would and print what it would serve (secrets by name only).
    /// Exits 0 when it is valid, else 2 with a message naming the key at fault.
    CheckConfig {
        /// TOML config, or JSON with an `mcpServers` object.
        file: PathBuf,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(clap::Args)]
struct StorageArgs {
    /// Directory of the SQLite store (cache and offline queue). Default: the config's
    /// `[storage] data_dir`, else one per config file under $XDG_DATA_HOME/mcp-edge-gateway
    /// (~/.local/share/mcp-edge-gateway/configs/<name>-<hash of its path>; the base directory itself
    /// with no config).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep the cache and the offline queue in memory only (lost when the gateway stops).
    #[arg(long, conflicts_with = "data_dir")]
    no_store: bool,
    /// The config file the gateway was started with (it picks the default data directory).
    #[arg(skip)]
    config: Option<PathBuf>,
}

impl StorageArgs {
    /// Where the store lives: --data-dir, else the config's `[storage] data_dir`, else the default
    /// for this config file.
    fn data_dir(&self, cfg: &HostConfig) -> Option<PathBuf> {
        self.data_dir.clone().or(cfg.data_dir.clone()).or_else(|| store::default_data_dir_for(self.config.as_deref()))
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false);
    match format {
        // Fields at the top level beside `timestamp`, `level`, `target` and `message`.
        LogFormat::Json => fmt.json().flatten_event(true).with_current_span(false).with_span_list(false).init(),
        LogFormat::Text => fmt.init(),
    }
}

fn load(config: Option<PathBuf>) -> Result<HostConfig, String> {
    match config {
        Some(p) => HostConfig::load(&p),
        None => Ok(HostConfig::embedded_default()),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    metrics::started();
    // One thread for every task (the store has a thread of its own): a call crosses several tasks
    // (the HTTP face, the engine, the upstream's link), and on a second worker thread each hop is a
    // thread wake-up. Measured on 2 cores against an HTTP upstream (README "Performance"): the
    // gateway's own CPU per call 190 µs against 350 µs with two workers at one call in flight,
    // 100 against 125 µs at 16.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve { config, listen, allow_unauthenticated, mut storage } => {
                storage.config = config.clone();
                let cfg = load(config)?;
                let addr = listen.or(cfg.listen.clone()).unwrap_or_else(|| "127.0.0.1:8787".into());
                serve(cfg, &addr, allow_unauthenticated, &storage).await
            }
            Command::Stdio { config, mut storage } => {
                storage.config = config.clone();
                let cfg = load(config)?;
                let handle = start(&cfg, &storage, true)?;
                stdio::serve(handle.clone()).await;
                handle.shutdown().await;
                Ok(())
            }
            Command::CheckConfig { file, mut storage } => {
                storage.config = Some(file.clone());
                let cfg = HostConfig::load(&file)?;
                let store = match storage.data_dir(&cfg) {
                    _ if storage.no_store => "memory only (--no-store)".to_string(),
                    Some(d) => d.join(store::FILE_NAME).display().to_string(),
                    None => "no data directory known: give --data-dir, or run with --no-store".to_string(),
                };
                print!("{}", check::describe(&cfg, &file, &store));
                Ok(())
            }
        }
    });
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-edge-gateway: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Open the store and restore the engine from it. Anything wrong with the store stops the start-up
/// with a message naming the file; the file is left as it is. One exception: a `stdio` gateway (which
/// desktop apps may launch several of) whose *default* store is held by another gateway runs with a
/// memory store and says so, rather than not starting at all.
fn start(cfg: &HostConfig, storage: &StorageArgs, stdio: bool) -> Result<driver::Handle, String> {
    let mut gw = Gateway::new(cfg.gateway.clone()).map_err(|e| e.to_string())?;
    driver::MAX_REPLY.store(cfg.gateway.limits.max_upstream_response_bytes, std::sync::atomic::Ordering::Relaxed);
    gw.set_validator(Box::new(mcp_edge_gateway::validate::SchemaValidator::new()));
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no OS randomness for request-state tokens: {e}"))?;
    gw.seed(seed);
    // One debug line per answered call, when debug lines of the engine would be written.
    gw.log_every_call(tracing::enabled!(target: "mcp_edge_gateway::driver", tracing::Level::DEBUG));
    let origin = tokio::time::Instant::now();
    let (tx, rx) = driver::channel();
    let store_thread = if storage.no_store {
        tracing::info!("no store: the cache and the offline queue live in memory only");
        None
    } else {
        let dir = storage.data_dir(cfg).ok_or(
            "no data directory: set --data-dir (or $XDG_DATA_HOME / $HOME), or run with --no-store".to_string(),
        )?;
        let path = dir.join(store::FILE_NAME);
        let default_dir = storage.data_dir.is_none() && cfg.data_dir.is_none();
        match store::SqliteStore::open(&path, cfg.store_max_bytes) {
            Err(mcp_edge_gateway::StoreError::Failed(m)) if stdio && default_dir && m.contains("in use by another") => {
                tracing::warn!(
                    "the default store {} is in use by another gateway: this one keeps its cache and offline queue \
                     in memory only (give it a --data-dir of its own to make them durable)",
                    path.display()
                );
                None
            }
            opened => Some(open_store(&mut gw, &path, opened, &tx)?),
        }
    };
    if store_thread.is_none() {
        gw.set_wall_clock(0, driver::wall_clock_ms());
    }
    // The engine times each provider out itself; this only bounds a connection that never ends.
    let longest = cfg.gateway.sampling.providers.iter().map(|p| p.timeout_ms).max();
    let providers = driver::Providers {
        client: longest.map(|_| upstream::wire::Client::new()),
        deadline: std::time::Duration::from_millis(longest.unwrap_or(0) + 5_000),
        keys: cfg.api_keys.0.clone(),
    };
    let handle = driver::spawn_with(gw, origin, store_thread, providers, tx, rx);
    let names: Vec<String> = cfg.gateway.upstreams.iter().map(|u| u.name.clone()).collect();
    upstream::spawn_all(&handle, &cfg.transports, &cfg.upstream_oauth, &names, cfg.max_body_bytes);
    Ok(handle)
}

/// Restore the engine from an opened store and start the store's thread.
fn open_store(
    gw: &mut Gateway,
    path: &std::path::Path,
    opened: Result<store::SqliteStore, mcp_edge_gateway::StoreError>,
    tx: &tokio::sync::mpsc::UnboundedSender<driver::Cmd>,
) -> Result<store::StoreThread, String> {
    let mut st = opened.map_err(|e| store_problem(path, e))?;
    {
        let snap = futures_util::FutureExt::now_or_never(mcp_edge_gateway::Store::load(&mut st))
            .unwrap_or_else(|| Err(mcp_edge_gateway::StoreError::Failed("the store did not answer".into())))
            .map_err(|e| store_problem(path, e))?;
        let summary = gw.restore(0, driver::wall_clock_ms(), &snap).map_err(|e| store_problem(path, e))?;
        tracing::info!("store {}: {summary}", path.display());
    }
    let tx = tx.clone();
    store::StoreThread::spawn(st, move |ticket, r| {
        let _ = tx.send(driver::Cmd::StoreDone(ticket, r));
    })
    .map_err(|e| format!("cannot start the store thread: {e}"))
}

fn store_problem(path: &std::path::Path, e: impl std::fmt::Display) -> String {
    format!(
        "the store {} cannot be used: {e}\nNothing was changed in it. Move it aside to start with an empty store, \
         use another --data-dir, or run with --no-store.",
        path.display()
    )
}

async fn serve(
    mut cfg: HostConfig,
    addr: &str,
    allow_unauthenticated: bool,
    storage: &StorageArgs,
) -> Result<(), String> {
    let sock: SocketAddr = addr.parse().map_err(|e| format!("--listen {addr:?}: {e}"))?;
    if !sock.ip().is_loopback() && cfg.auth.is_none() {
        if !allow_unauthenticated {
            return Err(format!(
                "refusing to serve on {sock} without authentication: anyone who can reach that address could call \
                 every tool of every upstream.\nAdd an [auth] section to the config (an OAuth `issuer`, or \
                 [[auth.tokens]] with token_env), listen on 127.0.0.1, or pass --allow-unauthenticated if a proxy \
                 in front authenticates or the network is trusted."
            ));
        }
        tracing::warn!(
            "listening on {sock}, beyond loopback, with no [auth] (--allow-unauthenticated): anyone who can reach \
             this address can use every upstream"
        );
    }
    let auth = match cfg.auth.take() {
        None => None,
        Some(mut a) => {
            if a.audience.is_empty() {
                if sock.ip().is_unspecified() {
                    return Err(format!(
                        "auth.audience: required when listening on {sock} (the gateway's canonical URI, as clients \
                         reach it, e.g. \"https://pi.local:{}/mcp\")",
                        sock.port()
                    ));
                }
                a.audience = format!("http://{sock}/mcp");
            }
            tracing::info!(
                "auth on: resource {}, {} static tokens{}",
                a.audience,
                a.tokens.len(),
                a.issuer.as_deref().map(|i| format!(", JWTs from {i}")).unwrap_or_default()
            );
            Some(auth::AuthState::new(a)?)
        }
    };
    let listener = tokio::net::TcpListener::bind(sock).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let handle = start(&cfg, storage, false)?;
    let app = http::App::new(handle, cfg.allowed_origins.clone(), cfg.max_body_bytes, auth);
    tracing::info!(
        "serving MCP on http://{}/mcp ({} upstreams)",
        listener.local_addr().map_err(|e| e.to_string())?,
        cfg.gateway.upstreams.len()
    );
    let handle = app.handle.clone();
    let stopping = handle.clone();
    let stop = shutdown_signal();
    // Listening, the store open: ready (systemd's Type=notify; nothing without $NOTIFY_SOCKET).
    #[cfg(unix)]
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    // Graceful shutdown waits for every response: open streams (GET streams, listens) end first.
    let signal = async move {
        stop.await;
        #[cfg(unix)]
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        stopping.send(driver::Cmd::HttpShutdown);
    };
    // No Nagle: an SSE response is written event by event, and a small write held back until the
    // client's delayed ACK would stall every event after the first by up to 40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let served = axum::serve(listener, http::router(app)).with_graceful_shutdown(signal).await;
    handle.shutdown().await;
    served.map_err(|e| e.to_string())
}

/// The signals that stop the gateway, registered now (before it says it is ready), so a SIGTERM
/// that comes at once is a graceful stop rather than the default kill.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    };
    async move {
        #[cfg(unix)]
        match signals {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            }
            _ => {
                tracing::warn!("cannot handle SIGTERM/SIGINT: stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}
