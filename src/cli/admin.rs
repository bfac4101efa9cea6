//! `portico admin`: manage the identity provider's realms, clients, users and keys directly in
//! the store, with or without a running server (which picks the changes up within
//! `idp.reload_seconds`). On a fresh data directory it creates the default realm, so the first
//! administrator can be made before the server ever ran.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::idp::{
    ADMIN_ROLE, AppSettings, ClientSettings, Idp, RealmName, RealmSettings, UserSettings,
};
use crate::server::open_idp;
use crate::store::Store;

/// Where the data is: the same options as `serve`.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// The configuration file (TOML).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The data directory [default: ./portico-data].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

/// `portico admin …`.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Realms.
    #[command(subcommand)]
    Realm(RealmCommand),
    /// OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Apps of the app-authentication API (`POST /authentication`).
    #[command(subcommand)]
    App(AppCommand),
    /// Realm signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// XRTC accounts' API keys.
    #[command(subcommand)]
    Xrtc(XrtcCommand),
}

#[derive(Debug, Subcommand)]
enum XrtcCommand {
    /// List an account's API keys (name, made, last used, disabled).
    Keys {
        /// The account id.
        account: String,
    },
    /// Revoke an account's API key: it logs in no more, and running nodes end its sessions at
    /// their next upkeep (within seconds).
    Revoke {
        /// The account id.
        account: String,
        /// The key's name (`apikeyN`).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// Create an app. Its secret (and, with --generate-key, its private key) is printed once.
    Create {
        /// The realm whose tokens it gets.
        #[arg(long, default_value = "node", value_parser = RealmName::parse)]
        realm: RealmName,
        /// The app id.
        app_id: String,
        /// Its name, returned by `POST /authentication`.
        #[arg(long)]
        name: Option<String>,
        /// Roles its tokens carry (repeat).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Generate a P-256 key pair for self-signed tokens; the private key is printed once.
        #[arg(long, conflicts_with = "public_key")]
        generate_key: bool,
        /// Register the app's own P-256 public key (SPKI PEM file) for self-signed tokens.
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// List apps.
    List,
    /// Give an app a new secret, printed once; the old one stops working.
    ResetSecret {
        /// The app id.
        app_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum RealmCommand {
    /// Create a realm with fresh signing keys.
    Create {
        /// Its name (1 to 64 of a-z, 0-9, -, _).
        #[arg(value_parser = RealmName::parse)]
        name: RealmName,
        /// Access tokens' algorithm: ES256, ES384, RS256, PS256 or EdDSA.
        #[arg(long, default_value = "ES256")]
        access_token_alg: String,
        /// ID tokens' algorithm.
        #[arg(long, default_value = "RS256")]
        id_token_alg: String,
        /// Access token lifetime in seconds.
        #[arg(long, default_value_t = 300)]
        access_token_seconds: u64,
        /// ID token lifetime in seconds.
        #[arg(long, default_value_t = 300)]
        id_token_seconds: u64,
        /// A refresh token expires when unused this long (seconds).
        #[arg(long, default_value_t = 1800)]
        refresh_idle_seconds: u64,
        /// A login's refresh tokens end this long after it (seconds).
        #[arg(long, default_value_t = 36_000)]
        refresh_max_seconds: u64,
        /// A used refresh token may be used again within this window (concurrent refreshes);
        /// later, its use revokes the login.
        #[arg(long, default_value_t = 10)]
        refresh_reuse_grace_seconds: u64,
        /// The `aud` of its access tokens.
        #[arg(long, default_value = "portico")]
        audience: String,
    },
    /// List realms with their issuer URLs.
    List,
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Create a client. A confidential client's secret is printed once.
    Create {
        /// The realm.
        #[arg(long, default_value = "node", value_parser = RealmName::parse)]
        realm: RealmName,
        /// The client id.
        client_id: String,
        /// A public client (no secret: browser or native apps, PKCE required).
        #[arg(long)]
        public: bool,
        /// Grant types (repeat): client_credentials, authorization_code, refresh_token.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Redirect URIs (repeat), matched exactly (any port for http on 127.0.0.1 or [::1]).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Where logout may send the browser afterwards (repeat), matched exactly.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A display name for the login page.
        #[arg(long)]
        name: Option<String>,
        /// Roles of its service account (repeat).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Extra scopes it may request (repeat).
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// List a realm's clients.
    List {
        /// The realm.
        #[arg(long, default_value = "node", value_parser = RealmName::parse)]
        realm: RealmName,
    },
    /// Give a confidential client a new secret, printed once; the old one stops working.
    ResetSecret {
        /// The realm.
        #[arg(long, default_value = "node", value_parser = RealmName::parse)]
        realm: RealmName,
        /// The client id.
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user. The password is read from stdin with --password-stdin; otherwise one is
    /// generated and printed once.
    Create {
        /// The realm.
        #[arg(long, default_value = "node", value_parser = RealmName::parse)]
        realm: RealmName,
        /// The login name.
        username: String,
        /// Roles (repeat); `portico:admin` opens the admin API in the admin realm.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// E-mail address.
        #[arg(long)]
        email: Option<String>,
        /// Full name.
        #[arg(long)]
        name: Option<String>,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List a realm's users.
    List {
        /// The realm.
        #[arg(long, default_value = "node", value_parser = RealmName::parse)]
        realm: RealmName,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Rotate a realm's keys: the published next key starts signing, the active one retires
    /// (published until its tokens expire), and a new next key is published.
    Rotate {
        /// The realm.
        #[arg(long, default_value = "node", value_parser = RealmName::parse)]
        realm: RealmName,
    },
    /// List a realm's keys with their state.
    List {
        /// The realm.
        #[arg(long, default_value = "node", value_parser = RealmName::parse)]
        realm: RealmName,
    },
}

/// Runs `portico admin`.
pub fn run(args: AdminArgs) -> ExitCode {
    let mut config = match Config::load(args.target.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = args.target.data_dir {
        config.data_dir = dir;
    }
    let runtime = match super::runtime(false) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        match execute(&config, args.command).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn open(config: &Config) -> Result<Arc<Idp>, String> {
    let location = config.store_location().map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", config.data_dir.display()))?;
    let store = Store::open(&location).await.map_err(|e| e.to_string())?;
    let public_url = config
        .idp
        .public_url
        .clone()
        .unwrap_or_else(|| format!("https://localhost:{}", config.listen.port()));
    let (idp, created) = open_idp(config, store, Arc::new(SystemClock), public_url, None)
        .await
        .map_err(|e| e.to_string())?;
    if created {
        eprintln!("created the default realm `{}`", config.idp.default_realm);
    }
    Ok(idp)
}

async fn execute(config: &Config, command: AdminCommand) -> Result<(), String> {
    let idp = open(config).await?;
    let out = &mut std::io::stdout();
    let result = match command {
        AdminCommand::Realm(RealmCommand::Create {
            name,
            access_token_alg,
            id_token_alg,
            access_token_seconds,
            id_token_seconds,
            refresh_idle_seconds,
            refresh_max_seconds,
            refresh_reuse_grace_seconds,
            audience,
        }) => {
            let settings = RealmSettings {
                access_token_alg,
                id_token_alg,
                access_token_seconds,
                id_token_seconds,
                refresh_idle_seconds,
                refresh_max_seconds,
                refresh_reuse_grace_seconds,
                audience,
                ..RealmSettings::default()
            };
            idp.create_realm(&name, settings)
                .await
                .map_err(|e| e.to_string())?;
            writeln!(out, "realm {name}: issuer {}", idp.issuer_url(&name))
        }
        AdminCommand::Realm(RealmCommand::List) => {
            for name in idp.realm_names() {
                writeln!(out, "{name}\t{}", idp.issuer_url(&name)).map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        AdminCommand::Client(ClientCommand::Create {
            realm,
            client_id,
            public,
            grants,
            redirect_uris,
            post_logout_redirect_uris,
            name,
            roles,
            scopes,
        }) => {
            let mut settings = ClientSettings {
                name: name.unwrap_or_default(),
                redirect_uris,
                post_logout_redirect_uris,
                roles,
                scopes,
                ..ClientSettings::default()
            };
            if !grants.is_empty() {
                settings.grant_types = grants;
            } else if public {
                settings.grant_types = vec!["authorization_code".into(), "refresh_token".into()];
            }
            let secret = idp
                .create_client(&realm, &client_id, settings, !public)
                .await
                .map_err(|e| e.to_string())?;
            match secret {
                Some(secret) => writeln!(
                    out,
                    "client {client_id} in realm {realm}\nclient_secret: {secret}\n(shown once: store it now)"
                ),
                None => writeln!(out, "public client {client_id} in realm {realm}"),
            }
        }
        AdminCommand::Client(ClientCommand::List { realm }) => {
            let clients = idp
                .store()
                .clients(realm.as_str())
                .await
                .map_err(|e| e.to_string())?;
            for client in clients {
                let kind = if client.secret_hash.is_some() {
                    "confidential"
                } else {
                    "public"
                };
                writeln!(out, "{}\t{kind}\t{}", client.client_id, client.settings)
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        AdminCommand::Client(ClientCommand::ResetSecret { realm, client_id }) => {
            let secret = idp
                .reset_client_secret(&realm, &client_id)
                .await
                .map_err(|e| e.to_string())?;
            writeln!(out, "client_secret: {secret}\n(shown once: store it now)")
        }
        AdminCommand::User(UserCommand::Create {
            realm,
            username,
            roles,
            email,
            name,
            password_stdin,
        }) => {
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map_err(|e| format!("cannot read the password: {e}"))?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (crate::secrets::generate(), true)
            };
            let settings = UserSettings {
                email,
                name,
                roles,
                ..UserSettings::default()
            };
            let id = idp
                .create_user(&realm, &username, Some(password.clone()), settings)
                .await
                .map_err(|e| e.to_string())?;
            writeln!(out, "user {username} in realm {realm}\nuser_id: {id}")
                .map_err(|e| e.to_string())?;
            if generated {
                writeln!(out, "password: {password}\n(shown once: store it now)")
                    .map_err(|e| e.to_string())?;
            }
            if realm == config.idp.admin_realm
                && !idp
                    .store()
                    .user(realm.as_str(), &id)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|u| u.settings.contains(ADMIN_ROLE))
            {
                writeln!(
                    out,
                    "(give --role {ADMIN_ROLE} to let this user manage Portico)"
                )
                .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        AdminCommand::User(UserCommand::List { realm }) => {
            let users = idp
                .store()
                .users(realm.as_str())
                .await
                .map_err(|e| e.to_string())?;
            for user in users {
                writeln!(out, "{}\t{}\t{}", user.username, user.id, user.settings)
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        AdminCommand::App(AppCommand::Create {
            realm,
            app_id,
            name,
            roles,
            generate_key,
            public_key,
        }) => {
            let public_key_pem = match public_key {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                ),
                None => None,
            };
            let settings = AppSettings {
                name: name.unwrap_or_else(|| app_id.clone()),
                public_key_pem,
                roles,
                disabled: false,
            };
            let created = idp
                .create_app(&realm, &app_id, settings, generate_key)
                .await
                .map_err(|e| e.to_string())?;
            writeln!(
                out,
                "app {app_id} in realm {realm}\napp_id: {app_id}\napp_secret: {}",
                created.secret
            )
            .map_err(|e| e.to_string())?;
            if let Some(private_key) = created.private_key_pem {
                write!(out, "private_key:\n{private_key}").map_err(|e| e.to_string())?;
            }
            writeln!(out, "(shown once: store it now)")
        }
        AdminCommand::App(AppCommand::List) => {
            let apps = idp.store().apps().await.map_err(|e| e.to_string())?;
            for app in apps {
                writeln!(out, "{}\t{}\t{}", app.app_id, app.realm, app.settings)
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        AdminCommand::App(AppCommand::ResetSecret { app_id }) => {
            let secret = idp
                .reset_app_secret(&app_id)
                .await
                .map_err(|e| e.to_string())?;
            writeln!(out, "app_secret: {secret}\n(shown once: store it now)")
        }
        AdminCommand::Keys(KeysCommand::Rotate { realm }) => {
            idp.rotate_keys(&realm).await.map_err(|e| e.to_string())?;
            let current = idp
                .realm(&realm)
                .ok_or_else(|| format!("realm `{realm}` vanished"))?;
            writeln!(
                out,
                "realm {realm}: access tokens now signed by {}, ID tokens by {}",
                current.access_key.kid(),
                current.id_key.kid()
            )
        }
        AdminCommand::Keys(KeysCommand::List { realm }) => {
            let keys = idp.store().realm_keys().await.map_err(|e| e.to_string())?;
            for key in keys.iter().filter(|k| k.realm == realm) {
                let retire = key
                    .retire_at
                    .map(|t| format!("\tunpublished after {t}"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}{retire}",
                    key.kid, key.purpose, key.alg, key.state
                )
                .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        AdminCommand::Xrtc(XrtcCommand::Keys { account }) => {
            xrtc_keys(idp.store(), &account, out).await
        }
        AdminCommand::Xrtc(XrtcCommand::Revoke { account, name }) => {
            let revoked = idp
                .store()
                .xrtc_disable_key(&account, &name, crate::clock::Clock::now(&SystemClock))
                .await
                .map_err(|e| e.to_string())?;
            if revoked.is_none() {
                return Err(format!("the XRTC account `{account}` has no key `{name}`"));
            }
            writeln!(out, "revoked {name} of {account}").map_err(|e| e.to_string())?;
            xrtc_keys(idp.store(), &account, out).await
        }
    };
    idp.store().close().await;
    result.map_err(|e| e.to_string())
}

/// Prints an account's XRTC keys, one per line.
async fn xrtc_keys(store: &Store, account: &str, out: &mut impl Write) -> std::io::Result<()> {
    let keys = store
        .xrtc_keys(account)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    if keys.is_empty() {
        return Err(std::io::Error::other(format!(
            "the XRTC account `{account}` has no keys"
        )));
    }
    for key in keys {
        let state = match key.disabled {
            Some(at) => format!("disabled {}", crate::timefmt::rfc3339(at)),
            None => "active".to_owned(),
        };
        writeln!(
            out,
            "{}\tmade {}\tlast used {}\t{state}",
            key.name,
            crate::timefmt::rfc3339(key.created),
            crate::timefmt::rfc3339(key.last_used)
        )?;
    }
    Ok(())
}
