//! The SMTP client: one connection per message, STARTTLS or TLS, AUTH PLAIN, replies read
//! within bounds.

use super::*;

/// One SMTP conversation.
pub(super) async fn smtp_send(
    config: &MailConfig,
    host: &str,
    tls: &tokio_rustls::TlsConnector,
    to: &str,
    text: &str,
    timeout: Duration,
) -> Result<(), MailError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| MailError::Failed(format!("{what}: {e}"));
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((host, config.smtp_port)))
        .await
        .map_err(|_| MailError::Failed(format!("connecting to {host} timed out")))?
        .map_err(|e| failed(&format!("connecting to {host}:{}", config.smtp_port), &e))?;
    let server_name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| failed("the SMTP host name", &e))?;
    match config.security {
        Security::Tls => {
            let stream = tokio::time::timeout(timeout, tls.connect(server_name, tcp))
                .await
                .map_err(|_| MailError::Failed("the TLS handshake timed out".into()))?
                .map_err(|e| failed("TLS", &e))?;
            let mut smtp = Smtp::new(stream, timeout);
            smtp.expect(220).await?;
            smtp.ehlo(&config.helo_name).await?;
            smtp.deliver(config, to, text).await
        }
        Security::Starttls => {
            let mut smtp = Smtp::new(tcp, timeout);
            smtp.expect(220).await?;
            let offers = smtp.ehlo(&config.helo_name).await?;
            if !offers
                .iter()
                .any(|line| line.eq_ignore_ascii_case("STARTTLS"))
            {
                return Err(MailError::Failed(
                    "the mail server does not offer STARTTLS".into(),
                ));
            }
            smtp.command("STARTTLS", 220).await?;
            let tcp = smtp.into_inner()?;
            let stream = tokio::time::timeout(timeout, tls.connect(server_name, tcp))
                .await
                .map_err(|_| MailError::Failed("the TLS handshake timed out".into()))?
                .map_err(|e| failed("TLS", &e))?;
            let mut smtp = Smtp::new(stream, timeout);
            smtp.ehlo(&config.helo_name).await?;
            smtp.deliver(config, to, text).await
        }
        Security::None => {
            let mut smtp = Smtp::new(tcp, timeout);
            smtp.expect(220).await?;
            smtp.ehlo(&config.helo_name).await?;
            smtp.deliver(config, to, text).await
        }
    }
}

struct Smtp<S> {
    stream: BufReader<S>,
    timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Smtp<S> {
    fn new(stream: S, timeout: Duration) -> Self {
        Self {
            stream: BufReader::new(stream),
            timeout,
        }
    }

    /// The connection, for the TLS upgrade; refused if the server sent more than its reply
    /// (STARTTLS command injection, CVE-2011-0411 and kin).
    fn into_inner(self) -> Result<S, MailError> {
        if !self.stream.buffer().is_empty() {
            return Err(MailError::Failed(
                "the mail server sent data before the TLS handshake".into(),
            ));
        }
        Ok(self.stream.into_inner())
    }

    /// Reads one reply: its code and the text of each line.
    async fn reply(&mut self) -> Result<(u16, Vec<String>), MailError> {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            let read = tokio::time::timeout(
                self.timeout,
                (&mut self.stream)
                    .take(MAX_REPLY_LINE as u64)
                    .read_until(b'\n', &mut line),
            )
            .await
            .map_err(|_| MailError::Failed("the mail server did not answer in time".into()))?
            .map_err(|e| MailError::Failed(format!("reading from the mail server: {e}")))?;
            if read == 0 || !line.ends_with(b"\n") {
                return Err(MailError::Failed(
                    "the mail server closed the connection or sent an overlong line".into(),
                ));
            }
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end();
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| MailError::Failed(format!("a malformed SMTP reply: {line:?}")))?;
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").to_owned());
            if !more {
                return Ok((code, lines));
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(MailError::Failed("an overlong SMTP reply".into()));
            }
        }
    }

    async fn expect(&mut self, code: u16) -> Result<Vec<String>, MailError> {
        let (got, lines) = self.reply().await?;
        if got != code {
            return Err(MailError::Failed(format!(
                "the mail server answered {got} {} (expected {code})",
                lines.join(" ")
            )));
        }
        Ok(lines)
    }

    async fn send_line(&mut self, line: &str) -> Result<(), MailError> {
        let stream = self.stream.get_mut();
        tokio::time::timeout(self.timeout, async {
            stream.write_all(line.as_bytes()).await?;
            stream.write_all(b"\r\n").await?;
            stream.flush().await
        })
        .await
        .map_err(|_| MailError::Failed("writing to the mail server timed out".into()))?
        .map_err(|e| MailError::Failed(format!("writing to the mail server: {e}")))
    }

    async fn command(&mut self, line: &str, code: u16) -> Result<Vec<String>, MailError> {
        self.send_line(line).await?;
        self.expect(code).await
    }

    /// EHLO; returns the extension lines (after the greeting line).
    async fn ehlo(&mut self, name: &str) -> Result<Vec<String>, MailError> {
        let mut lines = self.command(&format!("EHLO {name}"), 250).await?;
        if !lines.is_empty() {
            lines.remove(0);
        }
        Ok(lines)
    }

    /// AUTH (when configured), the envelope, the message, QUIT.
    async fn deliver(
        &mut self,
        config: &MailConfig,
        to: &str,
        text: &str,
    ) -> Result<(), MailError> {
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("\0{user}\0{}", password.expose()));
            self.send_line(&format!("AUTH PLAIN {token}")).await?;
            let (code, lines) = self.reply().await?;
            if code != 235 {
                return Err(MailError::Failed(format!(
                    "the mail server refused the credentials: {code} {}",
                    lines.join(" ")
                )));
            }
        }
        self.command(&format!("MAIL FROM:<{}>", address(&config.from)), 250)
            .await?;
        self.send_line(&format!("RCPT TO:<{to}>")).await?;
        match self.reply().await? {
            (250 | 251, _) => {}
            (code @ 500..=599, lines) => {
                return Err(MailError::RecipientRefused(format!(
                    "{code} {}",
                    lines.join(" ")
                )));
            }
            (code, lines) => {
                return Err(MailError::Failed(format!(
                    "the mail server answered RCPT with {code} {}",
                    lines.join(" ")
                )));
            }
        }
        self.command("DATA", 354).await?;
        let mut data = String::with_capacity(text.len() + 16);
        for line in text.split_inclusive("\r\n") {
            // Dot-stuffing (RFC 5321 section 4.5.2).
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
        }
        data.push('.');
        self.send_line(&data).await?;
        self.expect(250).await?;
        // The message is accepted; a failed QUIT changes nothing.
        let _ = self.command("QUIT", 221).await;
        Ok(())
    }
}
