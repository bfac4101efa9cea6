//! The `portico` command line.

use std::process::Command;

fn portico(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(args)
        .env_remove("PORTICO_DATABASE_URL")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run portico");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn help_explains_every_command() {
    let (code, out, _) = portico(&["--help"]);
    assert_eq!(code, 0);
    for command in ["serve", "config", "openapi", "token", "keys", "admin"] {
        assert!(out.contains(command), "{out}");
    }
    let (code, out, _) = portico(&["serve", "--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--config",
        "--data-dir",
        "--listen",
        "./portico-data",
        "127.0.0.1:8443",
    ] {
        assert!(out.contains(flag), "{flag}: {out}");
    }
}

#[test]
fn config_check_accepts_the_example_and_names_bad_keys() {
    let (code, out, err) = portico(&["config", "check", "portico.example.toml"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok (6 datapoints, 6 endpoints, 1 signed endpoints)"),
        "{out}"
    );

    let dir = tempfile::tempdir().expect("dir");
    let cases = [
        ("[tls]\nenabeld = true\n", "tls.enabeld"),
        ("listen = 8443\n", "`listen`"),
        ("[limits]\nmax_body_bytes = -1\n", "limits.max_body_bytes"),
        (
            "[[datapoint]]\nkey = \"A\"\ntype = \"double\"\n",
            "datapoint[0].type",
        ),
        (
            "[[endpoint]]\npath = \"/x\"\ndatapoint = \"Nope\"\n",
            "endpoint[0].datapoint",
        ),
        (
            "[[datapoint]]\nkey = \"A\"\ntype = \"int\"\n[[endpoint]]\npath = \"/healthz\"\ndatapoint = \"A\"\n",
            "endpoint[0].path",
        ),
        (
            "[[datapoint]]\nkey = \"A\"\ntype = \"int\"\n[[datapoint]]\nkey = \"A\"\ntype = \"int\"\n",
            "declared twice",
        ),
        ("database_url = \"mysql://x\"\n", "database_url"),
        ("database_url = \"sqlite::memory:\"\n", "in-memory"),
        ("[log]\nlevel = \"loud!\"\n", "log.level"),
        (
            "[limits]\nmax_connections = 10000000000\n",
            "limits.max_connections",
        ),
        (
            "[[datapoint]]\nkey = \"A\"\ntype = \"float\"\nmax = nan\n",
            "finite",
        ),
        ("[tls]\ncert = \"a.pem\"\n", "tls.cert"),
        ("this is not toml", "portico.toml"),
    ];
    for (toml, named) in cases {
        let file = dir.path().join("portico.toml");
        std::fs::write(&file, toml).expect("write");
        let (code, _, err) = portico(&["config", "check", file.to_str().expect("path")]);
        assert_eq!(code, 2, "{toml}");
        assert!(err.contains(named), "{toml:?} should name {named}: {err}");
    }
}

#[test]
fn environment_overrides_are_checked_and_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["config", "check", "portico.example.toml"])
        .env("PORTICO_LIMITS__MAX_BODY_BYTES", "lots")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("PORTICO_LIMITS__MAX_BODY_BYTES") && err.contains("limits.max_body_bytes"),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_bad_configuration_before_binding() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("portico.toml");
    std::fs::write(
        &file,
        "[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
    )
    .expect("write");
    let data = dir.path().join("data");
    let (code, _, err) = portico(&[
        "serve",
        "--config",
        file.to_str().expect("path"),
        "--data-dir",
        data.to_str().expect("path"),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
}

#[test]
fn json_logs_never_show_the_database_secret() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("dir");
    let database = format!(
        "sqlite://{}/portico.db?password=hunter2",
        dir.path().display()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("PORTICO_DATABASE_URL", &database)
        .env("PORTICO_LOG__FORMAT", "json")
        .env("PORTICO_LOG__LEVEL", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start portico");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut lines = Vec::new();
    // Start-up logs the configuration (debug), then generates the certificate (info).
    for line in stderr.lines() {
        let line = line.expect("log line");
        let done = line.contains("generated a self-signed certificate");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.iter().any(|l| l.contains("[redacted]")),
        "the configuration is logged: {lines:?}"
    );
    for line in &lines {
        let record: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            record["level"].is_string() && record["timestamp"].is_string(),
            "{line}"
        );
        assert!(!line.contains("hunter2"), "the secret leaked: {line}");
    }
}

#[test]
fn keys_generate_and_token_inspect_work_together() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().to_str().expect("utf-8 path");
    let (code, stdout, stderr) = portico(&["keys", "generate", "--alg", "ES256", "--out", out]);
    assert_eq!(code, 0, "{stderr}");
    let kid = stdout
        .lines()
        .find_map(|l| l.strip_prefix("kid: "))
        .expect("kid line")
        .to_owned();
    let jwk: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(format!("{kid}.jwk.json"))).expect("jwk"),
    )
    .expect("JSON");
    assert_eq!(
        (jwk["kid"].as_str(), jwk["alg"].as_str()),
        (Some(kid.as_str()), Some("ES256"))
    );
    assert!(jwk.get("d").is_none(), "the JWK is public");
    let private_pem = std::fs::read(dir.path().join(format!("{kid}.key.pem"))).expect("key");
    let der = ::pem::parse(&private_pem).expect("PEM");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.contents())
        .expect("PKCS#8 P-256");

    let config = dir.path().join("portico.toml");
    std::fs::write(
        &config,
        format!(
            "[[issuer]]\nname = \"plant-idp\"\nissuer = \"https://idp.example\"\naudience = [\"portico\"]\n\
             jwks_file = \"{}\"\n",
            dir.path().join("set.json").display()
        ),
    )
    .expect("config");
    std::fs::write(
        dir.path().join("set.json"),
        format!(r#"{{"keys":[{jwk}]}}"#),
    )
    .expect("set");

    let now = portico::clock::Clock::now(&portico::clock::SystemClock).unix_timestamp();
    let sign = |exp: i64| {
        let header =
            crate::helpers::tokens::b64(format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#).as_bytes());
        let claims = crate::helpers::tokens::b64(
            format!(
                r#"{{"iss":"https://idp.example","aud":"portico","sub":"d1","exp":{exp},"scope":"a b"}}"#
            )
                .as_bytes(),
        );
        let input = format!("{header}.{claims}");
        let signature = pair
            .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
            .expect("sign");
        format!(
            "{input}.{}",
            crate::helpers::tokens::b64(signature.as_ref())
        )
    };
    let config = config.to_str().expect("utf-8");
    let (code, stdout, _) = portico(&["token", "inspect", &sign(now + 300), "--config", config]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("issuer: plant-idp (https://idp.example)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("key: kid `{kid}` pinned to ES256")),
        "{stdout}"
    );
    assert!(
        stdout.contains("verdict: valid; subject \"d1\"; permissions [a, b]"),
        "{stdout}"
    );

    let (code, stdout, _) = portico(&["token", "inspect", &sign(now - 300), "--config", config]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("verdict: refused: the token has expired"),
        "{stdout}"
    );

    let (code, stdout, _) = portico(&["token", "inspect", "not-a-token"]);
    assert_eq!(code, 1);
    assert!(stdout.starts_with("not a token"), "{stdout}");
}

fn portico_with_stdin(args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(args)
        .env_remove("PORTICO_DATABASE_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run portico");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("stdin");
    }
    let output = child.wait_with_output().expect("wait");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn admin_sets_up_realms_clients_users_and_keys_on_a_fresh_data_directory() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("path");
    let admin = |args: &[&str]| {
        let mut all = vec!["admin", "--data-dir", data];
        all.extend_from_slice(args);
        portico(&all)
    };

    let (code, out, err) = admin(&["client", "create", "gateway", "--role", "plant:read"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("created the default realm `node`"), "{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .expect("the secret is shown");
    assert_eq!(secret.len(), 43, "256 bits, base64url");
    let (code, _, err) = admin(&["client", "create", "gateway"]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");

    let (code, out, err) = portico_with_stdin(
        &[
            "admin",
            "--data-dir",
            data,
            "user",
            "create",
            "ada",
            "--role",
            "portico:admin",
            "--password-stdin",
        ],
        "a long enough password\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("user ada in realm node"), "{out}");
    assert!(
        !out.contains("password:"),
        "a given password is not echoed: {out}"
    );
    let (code, _, err) = portico_with_stdin(
        &[
            "admin",
            "--data-dir",
            data,
            "user",
            "create",
            "bob",
            "--password-stdin",
        ],
        "short\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("at least 12 characters"), "{err}");

    let (code, out, err) = admin(&["realm", "create", "plant", "--access-token-alg", "EdDSA"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("/realms/plant"), "{out}");
    let (_, out, _) = admin(&["realm", "list"]);
    assert!(out.contains("node\t") && out.contains("plant\t"), "{out}");

    let (code, _, err) = admin(&["keys", "rotate", "--realm", "plant"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = admin(&["keys", "list", "--realm", "plant"]);
    let states: Vec<&str> = out.lines().filter_map(|l| l.split('\t').nth(3)).collect();
    assert_eq!(
        states.iter().filter(|s| **s == "retired").count(),
        2,
        "{out}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "active").count(),
        2,
        "{out}"
    );
    assert_eq!(states.iter().filter(|s| **s == "next").count(), 2, "{out}");
    assert!(out.contains("\tEdDSA\t"), "{out}");

    // An app with a generated P-256 key: secret and private key are shown once.
    let (code, out, err) = admin(&[
        "app",
        "create",
        "fooApp",
        "--name",
        "Foo App",
        "--role",
        "plant:read",
        "--generate-key",
    ]);
    assert_eq!(code, 0, "{err}");
    let app_secret = out
        .lines()
        .find_map(|l| l.strip_prefix("app_secret: "))
        .expect("the app secret is shown");
    assert_eq!(app_secret.len(), 43);
    assert!(out.contains("-----BEGIN PRIVATE KEY-----"), "{out}");
    let (_, out, _) = admin(&["app", "list"]);
    assert!(out.starts_with("fooApp\tnode\t"), "{out}");
    assert!(
        !out.contains(app_secret) && !out.contains("PRIVATE KEY"),
        "secrets are not listed: {out}"
    );
}
