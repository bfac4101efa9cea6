//! Outgoing e-mail: a small SMTP client (RFC 5321) with STARTTLS (RFC 3207) or implicit TLS
//! (RFC 8314) and AUTH PLAIN (RFC 4616), or, when no SMTP server is configured, an outbox
//! folder in the data directory plus a log line, so a fresh installation works without one.
//!
//! Every step is bounded: connecting, each reply (`timeout_seconds`), and reply size.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::secrets::Secret;

mod address;
mod smtp;

use smtp::smtp_send;

pub use address::Address;

/// The longest reply line accepted from a server (RFC 5321 allows 512; some send more).
const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one multi-line reply.
const MAX_REPLY_LINES: usize = 64;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain TCP, upgraded with STARTTLS, which the server must offer.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS (a local relay); credentials are refused on such a connection.
    None,
}

/// `[mail]`: where e-mail goes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// The SMTP server; unset writes mail to the outbox folder and the log instead.
    pub smtp_host: Option<String>,
    /// Its port.
    pub smtp_port: u16,
    /// `starttls` (default), `tls` or `none`.
    pub security: Security,
    /// AUTH PLAIN user name, when the server needs one.
    pub username: Option<String>,
    /// AUTH PLAIN password.
    pub password: Option<Secret>,
    /// PEM certificates to trust for the server instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// The sender, e.g. `Portico <portico@example.com>`.
    pub from: String,
    /// The name announced in EHLO.
    pub helo_name: String,
    /// Longest wait for connecting and for each reply.
    pub timeout_seconds: u64,
    /// The outbox folder; default `outbox` in the data directory.
    pub outbox_dir: Option<PathBuf>,
    /// Mails in the outbox are deleted this long after they were written.
    pub outbox_retention_hours: u64,
    /// Most messages being sent at once; more wait (at most `timeout_seconds`) for their turn.
    pub max_concurrent_sends: usize,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            smtp_host: None,
            smtp_port: 587,
            security: Security::Starttls,
            username: None,
            password: None,
            ca_file: None,
            from: "Portico <portico@localhost>".into(),
            helo_name: "localhost".into(),
            timeout_seconds: 30,
            outbox_dir: None,
            outbox_retention_hours: 24,
            max_concurrent_sends: 8,
        }
    }
}

/// A message to send: text (ASCII as 7-bit, anything else as UTF-8 in base64), with files.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// The recipient's address.
    pub to: String,
    /// The subject line (line breaks become spaces).
    pub subject: String,
    /// The text, lines separated by `\n`.
    pub body: String,
    /// Files attached (`multipart/mixed` when there are any).
    pub attachments: Vec<Attachment>,
}

/// A file attached to a [`Message`].
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Its name (characters unsafe in a header are replaced).
    pub file_name: String,
    /// Its media type (`application/octet-stream` unless it is a plain `type/subtype`).
    pub content_type: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The server refused the recipient permanently (5xx to RCPT TO).
    #[error("the mail server refused the recipient: {0}")]
    RecipientRefused(String),
    /// Anything else: unreachable, timed out, refused, TLS failure.
    #[error("{0}")]
    Failed(String),
}

/// Sends e-mail over SMTP or into the outbox, a bounded number at once.
#[derive(Debug, Clone)]
pub struct Mailer(Arc<Transport>, Arc<Sending>);

/// The bound on messages in flight.
#[derive(Debug)]
struct Sending {
    permits: tokio::sync::Semaphore,
    wait: Duration,
    retention: Duration,
}

enum Transport {
    Smtp {
        config: MailConfig,
        host: String,
        tls: tokio_rustls::TlsConnector,
    },
    Outbox {
        dir: PathBuf,
        from: String,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Smtp { config, host, .. } => f
                .debug_struct("Smtp")
                .field("host", host)
                .field("port", &config.smtp_port)
                .field("security", &config.security)
                .finish_non_exhaustive(),
            Transport::Outbox { dir, .. } => f.debug_struct("Outbox").field("dir", dir).finish(),
        }
    }
}

impl Mailer {
    /// A mailer for `config`; the outbox is `outbox` under `data_dir` unless configured.
    pub fn new(config: &MailConfig, data_dir: &Path) -> Result<Self, String> {
        let transport = match &config.smtp_host {
            None => Transport::Outbox {
                dir: config
                    .outbox_dir
                    .clone()
                    .unwrap_or_else(|| data_dir.join("outbox")),
                from: config.from.clone(),
            },
            Some(host) => {
                if config.password.is_some() != config.username.is_some() {
                    return Err("[mail] `username` and `password` go together".into());
                }
                if config.username.is_some() && config.security == Security::None {
                    return Err(
                        "[mail] credentials are never sent without TLS; set security to \
                         `starttls` or `tls`"
                            .into(),
                    );
                }
                Transport::Smtp {
                    config: config.clone(),
                    host: host.clone(),
                    tls: tokio_rustls::TlsConnector::from(Arc::new(client_config(
                        config.ca_file.as_deref(),
                    )?)),
                }
            }
        };
        if !(1..=1024).contains(&config.max_concurrent_sends) {
            return Err("[mail] `max_concurrent_sends` must be between 1 and 1024".into());
        }
        if !(1..=24 * 365).contains(&config.outbox_retention_hours) {
            return Err("[mail] `outbox_retention_hours` must be between 1 and 8760".into());
        }
        Ok(Self(
            Arc::new(transport),
            Arc::new(Sending {
                permits: tokio::sync::Semaphore::new(config.max_concurrent_sends),
                wait: Duration::from_secs(config.timeout_seconds),
                retention: Duration::from_secs(config.outbox_retention_hours * 3600),
            }),
        ))
    }

    /// Deletes outbox mail written more than `outbox_retention_hours` before `now`; answers how
    /// many. Only files named as the outbox names them are touched.
    pub fn prune_outbox(&self, now: OffsetDateTime) -> std::io::Result<usize> {
        let Some(dir) = self.outbox() else {
            return Ok(0);
        };
        let before_ms =
            (now.unix_timestamp_nanos() / 1_000_000) - self.1.retention.as_millis() as i128;
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut pruned = 0;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let written_ms = name
                .to_str()
                .filter(|name| name.ends_with(".eml"))
                .and_then(|name| name.split('-').next())
                .and_then(|ms| ms.parse::<i128>().ok());
            if written_ms.is_some_and(|ms| ms < before_ms) {
                std::fs::remove_file(entry.path())?;
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    /// Where unsent mail goes, when there is no SMTP server.
    pub fn outbox(&self) -> Option<&Path> {
        match &*self.0 {
            Transport::Outbox { dir, .. } => Some(dir),
            Transport::Smtp { .. } => None,
        }
    }

    /// Sends `message` at `now` (the `Date` header).
    pub async fn send(&self, message: &Message, now: OffsetDateTime) -> Result<(), MailError> {
        let _turn = tokio::time::timeout(self.1.wait, self.1.permits.acquire())
            .await
            .map_err(|_| MailError::Failed("too many messages are being sent; try again".into()))?
            .map_err(|e| MailError::Failed(e.to_string()))?;
        match &*self.0 {
            Transport::Outbox { dir, from } => {
                let text = render(from, message, now);
                let file = write_outbox(dir, &text, now)
                    .map_err(|e| MailError::Failed(format!("writing the outbox: {e}")))?;
                // The file only: the message may carry a secret (a registration code).
                tracing::info!(
                    file = %file.display(),
                    "no SMTP server configured; mail written to the outbox"
                );
                Ok(())
            }
            Transport::Smtp { config, host, tls } => {
                let timeout = Duration::from_secs(config.timeout_seconds);
                let text = render(&config.from, message, now);
                tokio::time::timeout(
                    timeout * 4,
                    smtp_send(config, host, tls, &message.to, &text, timeout),
                )
                .await
                .map_err(|_| MailError::Failed("the mail server took too long".into()))?
            }
        }
    }
}

/// A TLS client configuration trusting `ca_file`, or else the platform's roots.
fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    match ca_file {
        Some(path) => {
            let text = std::fs::read(path)
                .map_err(|e| format!("[mail] ca_file {}: {e}", path.display()))?;
            let mut roots = rustls::RootCertStore::empty();
            for block in pem::parse_many(&text)
                .map_err(|e| format!("[mail] ca_file {}: {e}", path.display()))?
            {
                if block.tag() == "CERTIFICATE" {
                    roots
                        .add(block.into_contents().into())
                        .map_err(|e| format!("[mail] ca_file {}: {e}", path.display()))?;
                }
            }
            if roots.is_empty() {
                return Err(format!(
                    "[mail] ca_file {} holds no certificate",
                    path.display()
                ));
            }
            Ok(rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth())
        }
        None => {
            use rustls_platform_verifier::ConfigVerifierExt as _;
            rustls::ClientConfig::with_platform_verifier()
                .map_err(|e| format!("[mail] the system's certificate roots: {e}"))
        }
    }
}

/// The message as sent: RFC 5322 headers, CRLF line ends; MIME (RFC 2045-2047) for
/// non-ASCII text and attachments.
fn render(from: &str, message: &Message, now: OffsetDateTime) -> String {
    let date = now
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let domain = from
        .rsplit_once('@')
        .map_or("localhost", |(_, d)| d.trim_end_matches('>'));
    let mut text = format!(
        "From: {from}\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <{id}@{domain}>\r\nMIME-Version: 1.0\r\n",
        to = message.to,
        subject = header_text(&message.subject),
        id = crate::secrets::uuid(),
    );
    if message.attachments.is_empty() {
        text_part(&mut text, &message.body);
        return text;
    }
    let boundary = format!("=_portico_{}", crate::secrets::uuid());
    text.push_str(&format!(
        "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
    ));
    text.push_str(&format!("--{boundary}\r\n"));
    text_part(&mut text, &message.body);
    for file in &message.attachments {
        let safe = |c: char| c.is_ascii_graphic() && !"\"\\".contains(c) || c == ' ';
        let name: String = file
            .file_name
            .chars()
            .map(|c| if safe(c) { c } else { '_' })
            .collect();
        let media = match file.content_type.split_once('/') {
            Some((kind, sub))
                if !kind.is_empty()
                    && !sub.is_empty()
                    && file
                        .content_type
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "/.+-_".contains(c)) =>
            {
                file.content_type.as_str()
            }
            _ => "application/octet-stream",
        };
        text.push_str(&format!(
            "--{boundary}\r\nContent-Type: {media}; name=\"{name}\"\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n"
        ));
        base64_lines(&mut text, &file.bytes);
    }
    text.push_str(&format!("--{boundary}--\r\n"));
    text
}

/// A text part's headers and body: short lines of printable ASCII as they are, anything else
/// (non-ASCII, control characters, lines over 998 octets) as UTF-8 in base64. Every line break
/// (CR, LF or CRLF) becomes CRLF, so no bare CR or LF reaches the SMTP conversation.
fn text_part(out: &mut String, body: &str) {
    let lines: Vec<&str> = body
        .split("\r\n")
        .flat_map(|l| l.split(['\r', '\n']))
        .collect();
    let lines = match lines.last() {
        Some(&"") => &lines[..lines.len() - 1],
        _ => &lines[..],
    };
    let plain = lines.iter().all(|line| {
        line.len() <= 998
            && line
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    });
    if plain {
        out.push_str(
            "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n",
        );
        for line in lines {
            out.push_str(line);
            out.push_str("\r\n");
        }
    } else {
        out.push_str(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        );
        let mut text = lines.join("\r\n");
        text.push_str("\r\n");
        base64_lines(out, text.as_bytes());
    }
}

/// Base64 in lines of 76 characters (RFC 2045).
fn base64_lines(out: &mut String, bytes: &[u8]) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
}

/// A header's text: line breaks and other controls become spaces (no header injection), and
/// non-ASCII text is written as RFC 2047 encoded words of at most 75 characters.
fn header_text(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.is_ascii() && text.len() <= 900 {
        return text;
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        // 45 bytes of UTF-8 are 60 characters of base64, inside the 75 a word may have.
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    words
        .iter()
        .map(|w| {
            format!(
                "=?UTF-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w)
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

fn write_outbox(dir: &Path, text: &str, now: OffsetDateTime) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // Named so that they sort in the order written: time, then a counter for the same instant.
    static WRITTEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = format!(
        "{}-{:08}-{}.eml",
        now.unix_timestamp_nanos() / 1_000_000,
        WRITTEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        crate::secrets::uuid()
    );
    let path = dir.join(name);
    crate::tls::write_atomically(&path, text.as_bytes(), 0o600)?;
    Ok(path)
}

/// The address inside `Name <address>`, or the text itself.
fn address(mailbox: &str) -> &str {
    match (mailbox.rfind('<'), mailbox.rfind('>')) {
        (Some(start), Some(end)) if start < end => &mailbox[start + 1..end],
        _ => mailbox.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_outbox_forgets_mail_after_its_retention() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = MailConfig {
            outbox_retention_hours: 1,
            ..MailConfig::default()
        };
        let mailer = Mailer::new(&config, dir.path()).expect("mailer");
        let message = Message {
            to: "a@example.com".into(),
            subject: "s".into(),
            body: "b".into(),
            ..Message::default()
        };
        let start = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
        mailer.send(&message, start).await.expect("sent");
        let later = start + time::Duration::minutes(59);
        mailer.send(&message, later).await.expect("sent");
        std::fs::write(dir.path().join("outbox").join("notes.txt"), "kept").expect("write");
        let count = || std::fs::read_dir(dir.path().join("outbox")).map_or(0, |d| d.count());
        assert_eq!(
            mailer
                .prune_outbox(start + time::Duration::minutes(59))
                .ok(),
            Some(0)
        );
        assert_eq!(
            mailer
                .prune_outbox(start + time::Duration::minutes(61))
                .ok(),
            Some(1)
        );
        assert_eq!(
            count(),
            2,
            "the newer mail and a file the outbox did not write stay"
        );
    }

    #[test]
    fn messages_are_dot_stuffed_crlf_text_with_the_headers_mail_needs() {
        let message = Message {
            to: "a@example.com".into(),
            subject: "Your code".into(),
            body: "Code:\n.123456\n".into(),
            ..Message::default()
        };
        let text = render(
            "Portico <portico@example.org>",
            &message,
            OffsetDateTime::UNIX_EPOCH,
        );
        assert!(text.starts_with("From: Portico <portico@example.org>\r\nTo: <a@example.com>\r\n"));
        assert!(text.contains("Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"));
        assert!(text.contains("@example.org>\r\n"));
        assert!(text.ends_with("\r\n\r\nCode:\r\n.123456\r\n"));
        assert_eq!(
            address("Portico <portico@example.org>"),
            "portico@example.org"
        );
        assert_eq!(address("x@y.z"), "x@y.z");
    }

    #[test]
    fn utf8_text_subjects_and_attachments_are_mime_encoded() {
        let message = Message {
            to: "a@example.com".into(),
            subject: "Grüße\r\nBcc: x@evil.example".into(),
            body: "Müller\nZeile 2\n".into(),
            attachments: vec![Attachment {
                file_name: "a\"b\r\n.txt".into(),
                content_type: "text/plain\r\nX: y".into(),
                bytes: b"hello".to_vec(),
            }],
        };
        let text = render("p@example.org", &message, OffsetDateTime::UNIX_EPOCH);
        let subject = text.lines().find(|l| l.starts_with("Subject: ")).unwrap();
        assert!(subject.starts_with("Subject: =?UTF-8?B?"), "{subject}");
        assert!(!text.contains("\r\nBcc:"), "no header injection");
        let b64 = base64::engine::general_purpose::STANDARD;
        let words: String = subject["Subject: ".len()..]
            .split("?=")
            .filter_map(|w| w.trim().strip_prefix("=?UTF-8?B?"))
            .map(|w| String::from_utf8(b64.decode(w).unwrap()).unwrap())
            .collect();
        assert_eq!(words, "Grüße  Bcc: x@evil.example");
        assert!(text.contains("Content-Type: multipart/mixed; boundary="));
        assert!(text.contains("charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"));
        assert!(text.contains(&b64.encode("Müller\r\nZeile 2\r\n")));
        assert!(text.contains(
            "Content-Type: application/octet-stream; name=\"a_b__.txt\"\r\n\
             Content-Disposition: attachment; filename=\"a_b__.txt\"\r\n"
        ));
        assert!(text.contains(&format!("\r\n\r\n{}\r\n--=_portico_", b64.encode("hello"))));
        assert!(text.trim_end().ends_with("--"));
    }

    #[test]
    fn bare_line_breaks_and_long_lines_never_reach_the_wire_as_they_are() {
        let message = Message {
            to: "a@example.com".into(),
            subject: "s".into(),
            body: "x\r.\r\nMAIL FROM:<e@x>\ny".into(),
            ..Message::default()
        };
        let text = render("p@example.org", &message, OffsetDateTime::UNIX_EPOCH);
        let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
        assert_eq!(body, "x\r\n.\r\nMAIL FROM:<e@x>\r\ny\r\n");
        let long = Message {
            body: "a".repeat(2000),
            subject: "b".repeat(2000),
            ..message
        };
        let text = render("p@example.org", &long, OffsetDateTime::UNIX_EPOCH);
        assert!(text.contains("Content-Transfer-Encoding: base64"));
        assert!(
            text.lines().all(|line| line.len() <= 998),
            "no line over 998 octets"
        );
    }
}
