//! HTTPS: the generated certificate, the operator's PEM files in each key format, bad PEM files,
//! and plain HTTP when TLS is off.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use portico::server::Server;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::helpers::{DATAPOINTS, TestApp, TestDatabase, client_for, test_config};

/// Makes `out`: an EC P-256 private key in SEC1 form (`BEGIN EC PRIVATE KEY`).
fn sec1_keygen(out: &str) -> [&str; 7] {
    [
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        out,
    ]
}

fn openssl(args: &[&str], dir: &Path) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The subjectAltName extension of a PEM certificate, as openssl prints it.
fn subject_alt_names(cert: &Path) -> String {
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(cert)
        .output()
        .expect("run openssl");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn the_generated_certificate_covers_local_names_and_is_reused() {
    let app = TestApp::spawn_with(&format!(
        "[tls]\nnames = [\"portico.test\", \"10.1.2.3\"]\n{DATAPOINTS}"
    ))
    .await;
    assert!(app.url.starts_with("https://"));
    let cert_path = app.data_dir.join("tls/cert.pem");
    let first = std::fs::read(&cert_path).expect("cert");
    let names = subject_alt_names(&cert_path);
    for name in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
        "DNS:portico.test",
        "IP Address:10.1.2.3",
    ] {
        assert!(names.contains(name), "{name} missing from {names}");
    }
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(app.data_dir.join("tls/key.pem"))
            .expect("key")
            .permissions(),
    );
    assert_eq!(
        key_mode & 0o077,
        0,
        "the private key is readable by its owner only"
    );

    // The name `localhost` verifies too.
    let port = app.url.rsplit(':').next().expect("port");
    let by_name = app
        .client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .expect("GET");
    assert_eq!(by_name.status(), 200);

    let (dir, database) = app.stop().await;
    let again = TestApp::spawn_in(
        dir.clone(),
        database.clone(),
        &format!("[tls]\nnames = [\"portico.test\", \"10.1.2.3\"]\n{DATAPOINTS}"),
    )
    .await;
    assert_eq!(
        std::fs::read(&cert_path).expect("cert"),
        first,
        "reused on restart"
    );
    let (dir, database) = again.stop().await;

    // New configured names produce a new certificate.
    let renamed = TestApp::spawn_in(
        dir,
        database,
        &format!("[tls]\nnames = [\"other.test\"]\n{DATAPOINTS}"),
    )
    .await;
    assert_ne!(std::fs::read(&cert_path).expect("cert"), first);
    assert!(subject_alt_names(&cert_path).contains("DNS:other.test"));
    assert_eq!(renamed.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn the_printed_fingerprint_is_the_sha256_of_the_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    let database = TestDatabase::fresh(dir.path()).await;
    let server = Server::build(test_config(dir.path(), &database, DATAPOINTS))
        .await
        .expect("build");
    let tls = server.tls().expect("tls");
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&tls.cert_path)
        .output()
        .expect("openssl");
    let openssl_says = String::from_utf8_lossy(&output.stdout);
    assert!(
        openssl_says.trim().ends_with(&tls.fingerprint),
        "{openssl_says} vs {}",
        tls.fingerprint
    );
    assert!(server.banner().contains(&tls.fingerprint));
    let der = CertificateDer::from_pem_file(&tls.cert_path).expect("pem");
    assert_eq!(portico::tls::fingerprint(&der), tls.fingerprint);
}

/// Makes a CA and a leaf certificate for 127.0.0.1 signed by it, with the leaf key made by
/// `keygen`; returns (chain file, key file, CA file).
fn operator_files(
    dir: &Path,
    keygen: &[&str],
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=Test CA",
            "-days",
            "2",
        ],
        dir,
    );
    openssl(keygen, dir);
    openssl(
        &[
            "req",
            "-new",
            "-key",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ],
        dir,
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("ext");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
        dir,
    );
    let chain = [
        std::fs::read(dir.join("leaf.pem")).expect("leaf"),
        std::fs::read(dir.join("ca.pem")).expect("ca"),
    ]
    .concat();
    std::fs::write(dir.join("chain.pem"), chain).expect("chain");
    (
        dir.join("chain.pem"),
        dir.join("leaf.key"),
        dir.join("ca.pem"),
    )
}

#[tokio::test]
async fn operator_certificates_work_with_pkcs8_pkcs1_and_sec1_keys() {
    let formats: [(&str, &[&str], &str); 3] = [
        (
            "PKCS#8",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-out",
                "leaf.key",
            ],
            "BEGIN PRIVATE KEY",
        ),
        (
            "PKCS#1",
            &["genrsa", "-traditional", "-out", "leaf.key", "2048"],
            "BEGIN RSA PRIVATE KEY",
        ),
        ("SEC1", &sec1_keygen("leaf.key"), "BEGIN EC PRIVATE KEY"),
    ];
    for (name, keygen, marker) in formats {
        let dir = Arc::new(tempfile::tempdir().expect("dir"));
        let (chain, key, ca) = operator_files(dir.path(), keygen);
        assert!(
            std::fs::read_to_string(&key).expect("key").contains(marker),
            "{name}"
        );
        let toml = format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n{DATAPOINTS}",
            chain.display().to_string(),
            key.display().to_string()
        );
        let database = TestDatabase::fresh(dir.path()).await;
        let app = TestApp::spawn_in(dir.clone(), database, &toml).await;
        assert!(
            !dir.path().join("tls").exists(),
            "{name}: nothing generated"
        );
        let client = client_for(Some(&std::fs::read(&ca).expect("ca")));
        let reply = client
            .get(app.at("/healthz"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(reply.status(), 200, "{name}");
    }
}

#[tokio::test]
async fn bad_pem_files_stop_start_up_with_the_file_and_the_problem() {
    let dir = tempfile::tempdir().expect("dir");
    let (chain, key, _) = operator_files(dir.path(), &sec1_keygen("leaf.key"));
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "nothing PEM here\n").expect("write");
    let other_key = dir.path().join("other.key");
    openssl(&sec1_keygen("other.key"), dir.path());
    let missing = dir.path().join("missing.pem");
    let cases = [
        (&garbage, &key, "tls.cert", "garbage.pem", "base64"),
        (&empty, &key, "tls.cert", "empty.pem", "no CERTIFICATE"),
        (&missing, &key, "tls.cert", "missing.pem", "No such file"),
        (&chain, &empty, "tls.key", "empty.pem", "no private key"),
        (&chain, &chain, "tls.key", "chain.pem", "no private key"),
        (
            &chain,
            &other_key,
            "tls.key",
            "other.key",
            "unusable with the certificate",
        ),
    ];
    for (cert, key, what, file, problem) in cases {
        let database = TestDatabase::fresh(dir.path()).await;
        let toml = format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        );
        let error = Server::build(test_config(dir.path(), &database, &toml))
            .await
            .err()
            .map(|e| e.to_string());
        let error = error.unwrap_or_else(|| panic!("{file} was accepted"));
        assert!(
            error.contains(what) && error.contains(file) && error.contains(problem),
            "{error}"
        );
    }
}

#[tokio::test]
async fn tls_can_be_turned_off_for_a_proxy() {
    let app = TestApp::spawn_with(&format!("[tls]\nenabled = false\n{DATAPOINTS}")).await;
    assert!(app.url.starts_with("http://"));
    assert!(app.cert_pem.is_none());
    assert_eq!(
        app.put_json("/api/v1/t/int", r#"{"value":3}"#).await.status,
        200
    );
    assert_eq!(app.get("/api/v1/t/int").await.json()["value"], 3);
    assert!(!app.data_dir.join("tls").exists());
}
