//! Two-step registration: a code e-mailed to an address, then an account (or, for a known
//! address, one more API key on its account).

use super::*;

impl Xrtc {
    /// Step 1: sends a code to `email` and answers the registration token; with `token`, sends
    /// a new code for that registration.
    pub async fn registration_start(
        &self,
        email: &str,
        token: Option<&str>,
        client_ip: IpAddr,
    ) -> Result<String, XrtcError> {
        let Some(address) = crate::mail::Address::parse(email) else {
            return Err(XrtcError::new(
                group::REGISTRATION,
                code::INVALID_EMAIL,
                format!("Invalid email address {email}."),
            ));
        };
        let now = self.clock.now();
        let email = address.as_str();
        match token {
            Some(token) => self.resend(email, token, now).await,
            None => self.start(email, client_ip, now).await,
        }
    }

    async fn start(
        &self,
        email: &str,
        client_ip: IpAddr,
        now: OffsetDateTime,
    ) -> Result<String, XrtcError> {
        let hour = time::Duration::hours(1);
        let s = &self.settings;
        let token = crate::secrets::generate();
        let code = random_from(DIGITS, 6);
        let row = RegistrationRow {
            token_hash: Hashed::of(&token).0.to_vec(),
            email: email.to_owned(),
            // Counted per address group: an IPv6 /64 is one subscriber.
            client_ip: crate::net::address_group(client_ip).to_string(),
            code_hash: code_hash(&token, &code).0.to_vec(),
            state: "pending".into(),
            tries: 0,
            sends: 1,
            created: now,
            sent: now,
            expires: now + time::Duration::seconds(s.code_ttl_seconds as i64),
        };
        let limits = RegistrationCounts {
            by_email: i64::from(s.registrations_per_email_per_hour),
            by_address: i64::from(s.registrations_per_address_per_hour),
            pending: i64::from(s.pending_registrations_max),
        };
        if let Some(refused) = self
            .store
            .xrtc_start_registration(&row, now - hour, limits)
            .await?
        {
            let why = match refused {
                StartRefused::Email => "for this e-mail address in the last hour",
                StartRefused::Address => "from this address in the last hour",
                StartRefused::Pending => "are in progress",
            };
            return Err(XrtcError::new(
                group::REGISTRATION,
                code::MAX_CONCURRENT_REGISTRATIONS,
                format!("Too many registrations {why}; try again later."),
            )
            .retry_after(Duration::from_secs(3600)));
        }
        if let Err(error) = self.send_code(email, &code, now).await {
            self.store.xrtc_end_registration(&row.token_hash).await?;
            return Err(error);
        }
        Ok(token)
    }

    async fn resend(
        &self,
        email: &str,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<String, XrtcError> {
        let token_hash = Hashed::of(token).0;
        let row = self.registration(&token_hash).await?;
        if row.email != email {
            return Err(invalid_token());
        }
        self.check_open(&row, now)?;
        let s = &self.settings;
        if row.sends > i64::from(s.code_resends_max) {
            return Err(XrtcError::new(
                group::REGISTRATION,
                code::MAX_CODE_SEND,
                "The code has been sent too many times; start the registration again later.",
            )
            .retry_after(Duration::from_secs(s.code_ttl_seconds)));
        }
        let interval = time::Duration::seconds(s.code_resend_interval_seconds as i64);
        if now - row.sent < interval {
            let wait = (interval - (now - row.sent)).unsigned_abs();
            return Err(XrtcError::new(
                group::REGISTRATION,
                code::MAX_CODE_SEND,
                format!(
                    "The code was sent less than {} seconds ago; wait before asking again.",
                    s.code_resend_interval_seconds
                ),
            )
            .retry_after(wait));
        }
        let code = random_from(DIGITS, 6);
        let expires = now + time::Duration::seconds(s.code_ttl_seconds as i64);
        if !self
            .store
            .xrtc_resend(&token_hash, &code_hash(token, &code).0, now, expires)
            .await?
        {
            return Err(invalid_token());
        }
        self.send_code(email, &code, now).await?;
        Ok(token.to_owned())
    }

    async fn registration(&self, token_hash: &[u8]) -> Result<RegistrationRow, XrtcError> {
        self.store
            .xrtc_registration(token_hash)
            .await?
            .ok_or_else(invalid_token)
    }

    /// Refuses a registration that is finished, failed or expired.
    fn check_open(&self, row: &RegistrationRow, now: OffsetDateTime) -> Result<(), XrtcError> {
        match row.state.as_str() {
            "failed" => Err(XrtcError::new(
                group::REGISTRATION,
                code::MAX_CODE_RETRY,
                "A wrong code was typed too many times; start the registration again.",
            )),
            "pending" if now > row.expires => Err(XrtcError::new(
                group::REGISTRATION,
                code::TIMEOUT_CODE,
                "The code has expired; start the registration again.",
            )),
            "pending" => Ok(()),
            _ => Err(invalid_token()),
        }
    }

    async fn send_code(
        &self,
        email: &str,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<(), XrtcError> {
        let minutes = self.settings.code_ttl_seconds.div_ceil(60);
        let message = Message {
            to: email.to_owned(),
            subject: "Your Portico registration code".into(),
            body: format!(
                "Your registration code is:\n\n{code}\n\nEnter it within {minutes} minutes to \
                 receive your API key. If you did not ask for it, ignore this message.\n"
            ),
            ..Message::default()
        };
        match self.mailer.send(&message, now).await {
            Ok(()) => Ok(()),
            Err(MailError::RecipientRefused(why)) => Err(XrtcError::new(
                group::REGISTRATION,
                code::INVALID_EMAIL,
                format!("Invalid email address {email}: the mail server refused it ({why})."),
            )),
            Err(error) => Err(XrtcError::unavailable(
                "The e-mail could not be sent",
                &error,
            )),
        }
    }

    /// Step 2: checks the e-mailed code and answers (account id, API key, key name).
    pub async fn registration_code(
        &self,
        token: &str,
        code: &str,
    ) -> Result<(String, String, String), XrtcError> {
        let now = self.clock.now();
        let token_hash = Hashed::of(token).0;
        let row = self.registration(&token_hash).await?;
        self.check_open(&row, now)?;
        let stored = Hashed::from_stored(&row.code_hash)
            .ok_or_else(|| XrtcError::unavailable("A stored code is damaged", &"bad length"))?;
        if !stored.matches(&format!("{token}:{code}")) {
            let tries = self
                .store
                .xrtc_wrong_code(&token_hash, i64::from(self.settings.code_tries))
                .await?;
            let left = tries.map(|t| i64::from(self.settings.code_tries) - t);
            return Err(match left {
                Some(left) if left > 0 => XrtcError::new(
                    group::REGISTRATION,
                    code::INVALID_CODE,
                    format!(
                        "Wrong code; {left} {} left.",
                        if left == 1 { "try" } else { "tries" }
                    ),
                ),
                // The last try, or a concurrent one that ended it.
                _ => self
                    .check_open(&self.registration(&token_hash).await?, now)
                    .err()
                    .unwrap_or_else(invalid_token),
            });
        }
        let key = new_api_key();
        let key_hash = Hashed::of(&key).0;
        // An account id is 16 random digits; on the rare collision, draw again.
        for _ in 0..4 {
            let account_id = format!("AC{}", random_from(DIGITS, 16));
            match self
                .store
                .xrtc_complete_registration(
                    &token_hash,
                    &account_id,
                    &key_hash,
                    i64::from(self.settings.api_key_count_max),
                    now,
                )
                .await
            {
                Ok(Some(done)) => {
                    tracing::info!(account = %done.account_id, key = %done.key_name, new_account = done.new_account, "XRTC registration completed");
                    return Ok((done.account_id, key, done.key_name));
                }
                Ok(None) => return Err(invalid_token()),
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(XrtcError::unavailable(
            "No free account id was found",
            &"four collisions",
        ))
    }
}
