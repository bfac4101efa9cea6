//! An XRTC account for the bench clients: registered with the code read from the outbox.

/// Registers `email`'s XRTC account on the server at `url`, reading the e-mailed code from
/// `outbox`; answers (account id, API key).
pub async fn register(
    url: &str,
    outbox: &str,
    http: &reqwest::Client,
    email: &str,
) -> (String, String) {
    let start: serde_json::Value = http
        .post(format!("{url}/v1/auth/registrationstart"))
        .body(format!(r#"{{"email":"{email}"}}"#))
        .send()
        .await
        .expect("registration start")
        .json()
        .await
        .expect("token");
    let token = start["registrationtoken"].as_str().expect("token");
    let mail = std::fs::read_dir(outbox)
        .expect("outbox")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .find(|text| text.contains(email))
        .expect("the code's e-mail");
    let code = mail
        .lines()
        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
        .expect("code");
    let done: serde_json::Value = http
        .post(format!("{url}/v1/auth/registrationcode"))
        .body(format!(
            r#"{{"registrationtoken":"{token}","emailcode":"{code}"}}"#
        ))
        .send()
        .await
        .expect("registration code")
        .json()
        .await
        .expect("key");
    (
        done["accountid"].as_str().expect("account").to_owned(),
        done["apikey"].as_str().expect("key").to_owned(),
    )
}
