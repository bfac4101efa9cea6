//! The server is a function of (config, listener, shutdown): [`Server::build`] checks the config,
//! prepares TLS, opens the store, loads the datapoints and binds; [`Server::run`] accepts
//! connections until the shutdown future resolves, then drains in-flight requests.

mod conn;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::api::{self, AppState, Shared};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError, Limits};
use crate::datapoint::registry::Datapoints;
use crate::events::{EventBus, Journal};
use crate::jose::issuer::{Issuer, Keys};
use crate::jose::verifier::Verifier;
use crate::metrics::Metrics;
use crate::store::{Location, Store, StoreError};
use crate::tls::{TlsError, TlsSetup};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigError),
    /// The certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The store cannot be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A file or socket operation failed.
    #[error("{0}")]
    Io(String),
    /// The identity provider cannot start.
    #[error("identity provider: {0}")]
    Idp(String),
}

/// Opens the identity provider: the sealing key, the realms (the default one on a fresh store;
/// the flag says whether it was created now), published to `verifier` when given.
pub async fn open_idp(
    config: &Config,
    store: Store,
    clock: Arc<dyn Clock>,
    public_url: String,
    verifier: Option<Arc<Verifier>>,
) -> Result<(Arc<crate::idp::Idp>, bool), StartError> {
    let sealer = load_sealer(config)?;
    let idp = crate::idp::Idp::open(store, sealer, clock, public_url, verifier, &config.idp)
        .await
        .map_err(|e| StartError::Idp(e.to_string()))?;
    let created = idp
        .ensure_default_realm(&config.idp.default_realm)
        .await
        .map_err(|e| StartError::Idp(e.to_string()))?;
    Ok((Arc::new(idp), created))
}

/// The node's sealing key (`idp.sealing_key_file`, else `secrets.key` in the data directory),
/// created on first start.
pub fn load_sealer(config: &Config) -> Result<crate::secrets::Sealer, StartError> {
    let key_file = config
        .idp
        .sealing_key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("secrets.key"));
    crate::secrets::Sealer::load_or_create(&key_file).map_err(|e| StartError::Idp(e.to_string()))
}

/// `https://localhost:{port}`, or the listen address itself when it is a specific IP.
fn default_public_url(listener: &TcpListener, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    match listener.local_addr() {
        Ok(addr) if addr.ip().is_unspecified() => format!("{scheme}://localhost:{}", addr.port()),
        Ok(addr) => format!("{scheme}://{addr}"),
        Err(_) => format!("{scheme}://localhost"),
    }
}

/// Reloads realms and keys when the store says they changed (another node, `portico admin`).
fn start_idp_reload(idp: Arc<crate::idp::Idp>, seconds: u64, shutdown: &watch::Receiver<bool>) {
    every(Duration::from_secs(seconds), false, shutdown, move || {
        let idp = idp.clone();
        async move {
            if let Err(error) = idp.reload_if_changed().await {
                tracing::warn!(%error, "reloading realms failed; keeping the loaded ones");
            }
        }
    });
}

/// Runs `task` every `period` until shutdown, the first time at once unless `skip_first`; a
/// run in progress when shutdown comes is finished.
fn every<F, Fut>(period: Duration, skip_first: bool, shutdown: &watch::Receiver<bool>, mut task: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut shutdown = shutdown.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if skip_first {
            ticks.tick().await;
        }
        loop {
            let stopping = async { shutdown.wait_for(|stopping| *stopping).await.is_ok() };
            tokio::select! {
                _ = ticks.tick() => task().await,
                _ = stopping => return,
            }
        }
    });
}

/// Sweeps XRTC sessions and rings and adds usage to the store every few seconds, until
/// shutdown (and once more then, so counted requests are kept).
fn start_xrtc_upkeep(xrtc: Arc<crate::xrtc::Xrtc>, shutdown: &watch::Receiver<bool>) {
    let mut shutdown = shutdown.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(5));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = async { shutdown.wait_for(|stopping| *stopping).await.is_ok() };
            let last = tokio::select! {
                _ = ticks.tick() => false,
                _ = stopping => true,
            };
            if let Err(error) = xrtc.maintain().await {
                tracing::warn!(%error, "XRTC upkeep failed; retrying at the next tick");
            }
            if last {
                return;
            }
        }
    });
}

/// Deletes outbox mail older than `mail.outbox_retention_hours`: at start, then every ten
/// minutes, until shutdown. Nothing to do with an SMTP server.
fn start_outbox_prune(
    mailer: crate::mail::Mailer,
    clock: Arc<dyn Clock>,
    shutdown: &watch::Receiver<bool>,
) {
    if mailer.outbox().is_none() {
        return;
    }
    every(Duration::from_secs(600), false, shutdown, move || {
        let now = clock.now();
        let mailer = mailer.clone();
        async move {
            match tokio::task::spawn_blocking(move || mailer.prune_outbox(now)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(pruned)) => tracing::info!(pruned, "pruned the mail outbox"),
                Ok(Err(error)) => tracing::warn!(%error, "pruning the mail outbox failed"),
                Err(error) => tracing::warn!(%error, "pruning the mail outbox failed"),
            }
        }
    });
}

/// Renews the generated certificate before it expires: checked every twelve hours until
/// shutdown; new connections get the new certificate, open ones keep theirs.
fn start_certificate_renewal(
    renewal: crate::tls::Renewal,
    clock: Arc<dyn Clock>,
    shutdown: &watch::Receiver<bool>,
) {
    // Not at once: `tls::prepare` has just checked.
    every(Duration::from_secs(12 * 3600), true, shutdown, move || {
        match renewal.renew_if_due(clock.now()) {
            Ok(Some(fingerprint)) => {
                tracing::warn!(%fingerprint, "renewed the self-signed certificate; clients that pin it need the new fingerprint");
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "renewing the self-signed certificate failed; will try again")
            }
        }
        std::future::ready(())
    });
}

/// A server ready to run: bound, with its store open and datapoints loaded.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    router: Router,
    state: AppState,
    proxies: Arc<crate::net::TrustedProxies>,
    tls: Option<TlsSetup>,
    location: Location,
    limits: Arc<Limits>,
    shutdown: watch::Sender<bool>,
}

/// Drops journal events older than `events.retention_hours`: once before serving, then every
/// ten minutes.
async fn start_journal_prune(
    journal: Arc<Journal>,
    clock: Arc<dyn Clock>,
    hours: u64,
    shutdown: &watch::Receiver<bool>,
) {
    let prune = move || {
        let journal = journal.clone();
        let before = clock.now() - Duration::from_secs(hours * 3600);
        async move {
            match journal.prune(before).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "pruned the event journal"),
                Err(error) => tracing::warn!(%error, "pruning the event journal failed"),
            }
        }
    };
    prune().await;
    let mut shutdown = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(600)) => prune().await,
                _ = shutdown.changed() => return,
            }
        }
    });
}

/// Fetches each remote key set now and then on its schedule, until shutdown.
fn start_key_refresh(issuers: &[Arc<Issuer>], shutdown: &watch::Receiver<bool>) {
    for issuer in issuers {
        let Keys::Remote(remote) = &issuer.keys else {
            continue;
        };
        let issuer = issuer.clone();
        every(remote.refresh_every(), false, shutdown, move || {
            let issuer = issuer.clone();
            async move {
                if let Keys::Remote(remote) = &issuer.keys {
                    remote.refresh().await;
                }
            }
        });
    }
}

impl Server {
    /// Builds a server on the system clock.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Builds a server that takes "now" from `clock`.
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        let catalog = config.validate_with(clock.clone())?;
        for warning in config.warnings(&catalog) {
            tracing::warn!("{warning}");
        }
        let location = config.store_location()?;
        create_private_dir(&config.data_dir)?;
        let tls = match config.tls.enabled {
            true => Some(crate::tls::prepare(
                &config.tls,
                &config.data_dir,
                clock.now(),
            )?),
            false => None,
        };
        let store = Store::open_with(
            &location,
            Duration::from_secs(config.limits.store_timeout_seconds),
        )
        .await?;
        let events = EventBus::default();
        let journal = Journal::new(store.clone(), events.clone());
        let metrics = Metrics::default();
        let series = crate::series::Series::open(
            store.clone(),
            journal.clone(),
            clock.clone(),
            Arc::new(load_sealer(&config)?),
            config.values.clone(),
        )
        .await
        .map_err(StartError::Io)?;
        let visibility = Arc::new(
            crate::events::Visibility::new(
                catalog
                    .datapoints
                    .iter()
                    .map(|d| (d.key.clone(), d.read.clone(), d.access.readable())),
                crate::idp::admin_policy(&config.idp.admin_realm),
                crate::idp::webhook_managers_policy(&config.idp.admin_realm),
            )
            .with_streams(series.clone()),
        );
        let (shutdown, shutdown_seen) = watch::channel(false);
        if let Some(renewal) = tls.as_ref().and_then(|tls| tls.renewal.clone()) {
            start_certificate_renewal(renewal, clock.clone(), &shutdown_seen);
        }
        start_journal_prune(
            journal.clone(),
            clock.clone(),
            config.events.retention_hours,
            &shutdown_seen,
        )
        .await;
        let webhooks = match config.webhooks.enabled {
            true => {
                let webhooks = Arc::new(
                    crate::webhooks::Webhooks::new(
                        config.webhooks.clone(),
                        store.clone(),
                        clock.clone(),
                        Arc::new(load_sealer(&config)?),
                        metrics.clone(),
                        visibility.clone(),
                        journal.clone(),
                    )
                    .map_err(|problems| ConfigError { problems })?,
                );
                // Known before the first change, so no event of a subscribed topic is missed.
                webhooks.refresh_interest().await?;
                let projection: Arc<dyn crate::events::Projection> = webhooks.clone();
                journal.add_projection(Arc::downgrade(&projection));
                crate::webhooks::dispatch::start(webhooks.clone(), shutdown_seen.clone())
                    .map_err(StartError::Io)?;
                Some(webhooks)
            }
            false => None,
        };
        let history = match config.values.datapoint_history {
            true => Some(
                crate::datapoint::registry::History::adopt(
                    series.clone(),
                    &catalog.datapoints,
                    &catalog.api_read,
                )
                .await
                .map_err(StartError::Io)?,
            ),
            false => None,
        };
        let datapoints = Datapoints::start(
            catalog.datapoints.clone(),
            store.clone(),
            clock.clone(),
            journal.clone(),
            metrics.clone(),
            history,
        )
        .await?;
        if config.values.proofs {
            tokio::spawn(series.clone().run_prover(shutdown_seen.clone()));
        }
        tokio::spawn(series.clone().run_retention(shutdown_seen.clone()));
        let (tributech_read, tributech_write) = config.tributech.policies();
        let document = api::openapi::document(&config, &catalog);
        let tributech_json = serde_json::to_vec(&api::openapi::tributech(&document))
            .map_err(|e| StartError::Io(format!("OpenAPI document: {e}")))?;
        let openapi_json = serde_json::to_vec(&document)
            .map_err(|e| StartError::Io(format!("OpenAPI document: {e}")))?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| StartError::Io(format!("cannot listen on {}: {e}", config.listen)))?;
        let limits = Arc::new(config.limits.clone());
        start_key_refresh(&catalog.issuers, &shutdown_seen);
        let verifier = Arc::new(Verifier::new(
            catalog.issuers.clone(),
            config.auth.max_token_bytes,
            config.auth.token_cache_entries,
        ));
        let idp = match config.idp.enabled {
            true => {
                let public_url = config
                    .idp
                    .public_url
                    .clone()
                    .unwrap_or_else(|| default_public_url(&listener, config.tls.enabled));
                let (idp, created) = open_idp(
                    &config,
                    store.clone(),
                    clock.clone(),
                    public_url,
                    Some(verifier.clone()),
                )
                .await?;
                if created {
                    tracing::info!(realm = %config.idp.default_realm, "created the default realm");
                }
                start_idp_reload(idp.clone(), config.idp.reload_seconds, &shutdown_seen);
                Some(idp)
            }
            false => None,
        };
        // One mailer: the bound on messages in flight holds for every sender.
        let mailer = crate::mail::Mailer::new(&config.mail, &config.data_dir)
            .map_err(|e| ConfigError { problems: vec![e] })?;
        start_outbox_prune(mailer.clone(), clock.clone(), &shutdown_seen);
        let xrtc = match config.xrtc.enabled {
            true => {
                let mailer = mailer.clone();
                let xrtc = Arc::new(crate::xrtc::Xrtc::new(
                    config.xrtc.clone(),
                    store.clone(),
                    clock.clone(),
                    mailer,
                    journal.clone(),
                ));
                start_xrtc_upkeep(xrtc.clone(), &shutdown_seen);
                Some(xrtc)
            }
            false => None,
        };
        let openendpoints = match catalog.signed.endpoints.is_empty() {
            true => None,
            false => Some(Arc::new(
                crate::openendpoints::run::Runner::new(crate::openendpoints::run::Parts {
                    endpoints: catalog.signed.clone(),
                    datapoints: datapoints.clone(),
                    xrtc: xrtc.clone(),
                    mailer,
                    journal: journal.clone(),
                    clock: clock.clone(),
                })
                .map_err(StartError::Io)?,
            )),
        };
        let proxies = Arc::new(
            crate::net::TrustedProxies::parse(&config.proxy)
                .map_err(|problems| ConfigError { problems })?,
        );
        let auth = crate::api::auth::Auth {
            realm: config.auth.realm.clone(),
            verifier,
            api_read: catalog.api_read.clone(),
            metrics_read: catalog.metrics_read.clone(),
            revocation_check: Duration::from_secs(config.auth.revocation_check_seconds),
            admin: crate::idp::admin_policy(&config.idp.admin_realm),
            webhook_managers: crate::idp::webhook_managers_policy(&config.idp.admin_realm),
            tributech_read,
            tributech_write,
        };
        let state = AppState::from(Shared {
            series,
            auth,
            idp,
            xrtc,
            webhooks,
            openendpoints,
            tls: tls.is_some(),
            datapoints,
            store,
            journal: journal.clone(),
            visibility,
            events: config.events.clone(),
            metrics,
            clock,
            in_progress: crate::share::AddressShares::new(
                limits.max_requests_in_progress,
                limits.max_requests_in_progress_per_address,
            ),
            streams: crate::api::streams::Streams::new(
                limits.max_streams,
                limits.max_streams_per_reader,
                Duration::from_secs(limits.stream_max_seconds),
                Duration::from_secs(config.auth.revocation_check_seconds),
            ),
            limits: limits.clone(),
            openapi_json: openapi_json.into(),
            tributech_json: tributech_json.into(),
            shutdown: shutdown_seen,
        });
        let router = api::router(state.clone(), &catalog);
        Ok(Self {
            listener,
            router,
            state,
            proxies,
            tls,
            location,
            limits,
            shutdown,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The base URL clients use, e.g. `https://127.0.0.1:8443`.
    pub fn url(&self) -> String {
        let mut addr = self.local_addr();
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{addr}")
    }

    /// Becomes `true` once [`Self::run`] has stopped accepting and begun draining.
    pub fn shutdown_started(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// The built-in identity provider, unless turned off.
    pub fn idp(&self) -> Option<Arc<crate::idp::Idp>> {
        self.state.idp.clone()
    }

    /// The TLS set-up, when serving HTTPS.
    pub fn tls(&self) -> Option<&TlsSetup> {
        self.tls.as_ref()
    }

    /// What the server tells the operator at start.
    pub fn banner(&self) -> String {
        let url = self.url();
        let mut lines = vec![format!(
            "Portico {} listening on {url}",
            env!("CARGO_PKG_VERSION")
        )];
        if let Some(tls) = &self.tls {
            let origin = if tls.self_signed {
                " (self-signed)"
            } else {
                ""
            };
            lines.push(format!(
                "  certificate: {}{origin}",
                tls.cert_path.display()
            ));
            lines.push(format!("  SHA-256 fingerprint: {}", tls.fingerprint));
        }
        let store = match &self.location {
            Location::Sqlite(path) => format!("sqlite ({})", path.display()),
            Location::Postgres(_) => "postgres".to_owned(),
        };
        lines.push(format!("  store: {store}"));
        lines.push(format!("  API docs: {url}/api/docs"));
        lines.join("\n")
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish
    /// (for at most `limits.shutdown_grace_seconds`), commits queued writes and closes the store.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let max_connections = self.limits.max_connections;
        let connections = Arc::new(Semaphore::new(max_connections));
        let acceptor = self
            .tls
            .as_ref()
            .map(|tls| TlsAcceptor::from(tls.server_config.clone()));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(self.limits.header_read_timeout_seconds))
            // Also bounds the read buffer: it never grows past this while a request waits.
            .max_buf_size(self.limits.max_header_bytes);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(256)
            .keep_alive_interval(Some(Duration::from_secs(30)));
        let builders = conn::Builders::new(builder);
        // Trusted proxies are not counted per address: the node-wide limit bounds them.
        let per_address =
            crate::share::Shares::new(usize::MAX, self.limits.max_connections_per_address);
        let timeouts = conn::Timeouts {
            handshake: Duration::from_secs(self.limits.tls_handshake_timeout_seconds),
            first_bytes: Duration::from_secs(self.limits.header_read_timeout_seconds),
            idle: Duration::from_secs(self.limits.idle_timeout_seconds),
            max_age: Duration::from_secs(self.limits.max_connection_age_seconds),
            drain: Duration::from_secs(self.limits.shutdown_grace_seconds),
            linger: conn::Linger {
                bytes: self.limits.linger_bytes,
                time: Duration::from_secs(self.limits.linger_seconds),
            },
        };
        let stopping = self.shutdown.subscribe();
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off briefly, keep serving.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Ok(permit) = connections.clone().try_acquire_owned() else {
                tracing::warn!(%peer, limit = max_connections, "connection limit reached; refusing");
                tokio::spawn(conn::refuse(tcp, acceptor.is_some(), conn::Refusal::Node));
                continue;
            };
            let slot = match self.proxies.trusts(peer.ip()) {
                true => None,
                false => match per_address.take(crate::net::address_group(peer.ip())) {
                    Ok(slot) => Some(slot),
                    Err(_) => {
                        tracing::warn!(
                            %peer, limit = self.limits.max_connections_per_address,
                            "connection limit of the address reached; refusing"
                        );
                        drop(permit);
                        tokio::spawn(conn::refuse(
                            tcp,
                            acceptor.is_some(),
                            conn::Refusal::Address,
                        ));
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let connection = conn::Connection {
                service: self.router.clone(),
                peer,
                proxies: self.proxies.clone(),
                builders: builders.clone(),
                shutdown: stopping.clone(),
                slot,
                timeouts,
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _permit = permit;
                connection.serve(tcp, acceptor).await;
            });
        }
        drop(self.listener);
        tracing::info!("shutting down: finishing in-flight requests");
        // Every connection watches this and closes gracefully.
        let _ = self.shutdown.send(true);
        let grace = Duration::from_secs(self.limits.shutdown_grace_seconds);
        let all_closed = connections.acquire_many(max_connections as u32);
        tokio::select! {
            _ = all_closed => tracing::info!("all connections closed"),
            () = tokio::time::sleep(grace) => tracing::warn!("grace period over; dropping open connections"),
        }
        // Queued writes are committed, and the store closed, within a bound even when the store
        // has stalled: the process ends either way.
        let store_wait = self.state.store.timeout() * 2;
        if tokio::time::timeout(store_wait, self.state.datapoints.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("queued writes did not commit in time; stopping without them");
        }
        if tokio::time::timeout(store_wait, self.state.store.close())
            .await
            .is_err()
        {
            tracing::warn!("the store did not close in time");
        }
        tracing::info!("stopped");
    }
}

/// Creates the data directory (mode 0700: it holds the private key and the database).
/// One that exists already open to others is closed to them (it holds password hashes, sealed
/// keys and e-mail addresses).
fn create_private_dir(dir: &std::path::Path) -> Result<(), StartError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let failed = |e: std::io::Error| {
        StartError::Io(format!(
            "cannot create data directory {}: {e}",
            dir.display()
        ))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(failed)?;
    let mode = std::fs::metadata(dir).map_err(failed)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))
            .map_err(failed)?;
        tracing::warn!(dir = %dir.display(), "the data directory was open to other users; made it 0700");
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
