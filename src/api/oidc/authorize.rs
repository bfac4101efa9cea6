//! The browser endpoints: `auth` (the authorization code flow's login page, RFC 6749 section
//! 4.1 with PKCE, RFC 7636) and `logout` (OpenID Connect RP-Initiated Logout).
//!
//! An authorization request is checked in two stages. Until the client and its `redirect_uri`
//! are known to be good, every problem renders an error page and nothing redirects, so Portico
//! never sends a browser to an address nobody registered. After that, problems go back to the
//! client as `error` parameters on its redirect URI, with `state` and `iss` (RFC 9207).
//!
//! Portico keeps no browser session: each authorization shows the login page, and logout ends
//! the login whose ID token is presented (its refresh tokens are revoked).
//!
//! The login form is protected against cross-site request forgery by a double-submit cookie
//! (`SameSite=Lax`, `HttpOnly`), and the pages forbid framing.

use super::pages::*;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{RawQuery, State};

use crate::api::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ClientIp, Form, OAuthError, client_auth, granted_scope, realm};
use crate::api::AppState;
use crate::idp::grants::{GrantPayload, is_s256_challenge};
use crate::idp::{ClientSettings, Idp, Realm};
use crate::ratelimit::Throttled;
use crate::secrets;

/// The CSRF cookie: `__Host-` prefixed over HTTPS (host-only, `Path=/`, `Secure`, so a sibling
/// subdomain cannot plant one); without TLS, scoped to the realm's protocol path.
struct CsrfCookie {
    name: &'static str,
    attributes: String,
}

impl CsrfCookie {
    fn of(idp: &Idp, realm: &Realm) -> Self {
        if idp.public_url().starts_with("https://") {
            Self {
                name: "__Host-portico_login",
                attributes: "Path=/; HttpOnly; SameSite=Lax; Secure".into(),
            }
        } else {
            Self {
                name: "portico_login",
                attributes: format!(
                    "Path=/realms/{}/protocol/openid-connect; HttpOnly; SameSite=Lax",
                    realm.name
                ),
            }
        }
    }

    /// The value the browser sent, if it has the form of one Portico made.
    fn sent<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        cookie(headers, self.name).filter(|value| {
            value.len() == 43
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    }
}

/// The authorization request parameters the login form carries along.
const CARRIED: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

/// A checked authorization request.
struct Authorization {
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    client_name: String,
}

/// Why an authorization request cannot proceed.
enum Refusal {
    /// Render an error page; never redirect (unknown client, unregistered redirect URI).
    Page(StatusCode, String),
    /// Send the error to the client's redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

/// `GET auth`: checks the request and shows the login page.
#[utoipa::path(get, path = "/realms/{realm}/protocol/openid-connect/auth",
    tag = "OpenID Connect",
    params(("realm" = String, Path, description = "The realm.", example = "node"),
        super::wire::AuthorizeQuery),
    responses((status = 200, description = "The sign-in page.", body = String,
            content_type = "text/html"),
        (status = 303, description = "Back to the client with an error (RFC 6749 section \
            4.1.2.1)."),
        (status = 400, description = "A request that cannot go back to the client: a page \
            saying why.", body = String, content_type = "text/html"),
        (status = 404, description = "No such realm: a page saying so.", body = String,
            content_type = "text/html"),
        (status = 503, description = "The store cannot be reached: a page saying so.",
            body = String, content_type = "text/html")))]
pub(crate) async fn page(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Ok((idp, realm)) = realm(&state, &name) else {
        return error_page(StatusCode::NOT_FOUND, "There is no such realm.");
    };
    let form = match Form::parse(query.unwrap_or_default().as_bytes()) {
        Ok(form) => form,
        Err(error) => return error_page(StatusCode::BAD_REQUEST, &error.description),
    };
    match check(&idp, &realm, &form).await {
        Ok(request) => login_page(&idp, &realm, &form, &request, &headers, None),
        Err(refusal) => refuse(&realm, refusal),
    }
}

/// `POST auth`: an authorization request sent as a form (shows the login page), or the login
/// form itself (issues a code and redirects).
#[utoipa::path(post, path = "/realms/{realm}/protocol/openid-connect/auth",
    tag = "OpenID Connect", params(("realm" = String, Path, description = "The realm.", example = "node")),
    request_body(content = super::wire::LoginIn,
        content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The sign-in page.", body = String,
            content_type = "text/html"),
        (status = 303, description = "Back to the client, with a code or an error."),
        (status = 401, description = "Wrong user name or password: the page again.",
            body = String, content_type = "text/html"),
        (status = 429, description = "Too many failed sign-ins: the page again; see \
            `Retry-After`.", body = String, content_type = "text/html"),
        (status = 400, description = "A request that cannot go back to the client: a page \
            saying why.", body = String, content_type = "text/html"),
        (status = 404, description = "No such realm: a page saying so.", body = String,
            content_type = "text/html"),
        (status = 503, description = "The store cannot be reached: a page saying so.",
            body = String, content_type = "text/html")))]
pub(crate) async fn submit(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok((idp, realm)) = realm(&state, &name) else {
        return error_page(StatusCode::NOT_FOUND, "There is no such realm.");
    };
    let form = match super::read_form(&state, &headers, body).await {
        Ok(form) => form,
        Err(error) => return error_page(StatusCode::BAD_REQUEST, &error.description),
    };
    let request = match check(&idp, &realm, &form).await {
        Ok(request) => request,
        Err(refusal) => return refuse(&realm, refusal),
    };
    let Some(username) = form.get("username") else {
        return login_page(&idp, &realm, &form, &request, &headers, None);
    };
    let csrf_ok = match (
        form.get("csrf"),
        CsrfCookie::of(&idp, &realm).sent(&headers),
    ) {
        (Some(sent), Some(kept)) => {
            aws_lc_rs::constant_time::verify_slices_are_equal(sent.as_bytes(), kept.as_bytes())
                .is_ok()
        }
        _ => false,
    };
    if !csrf_ok {
        return error_page(
            StatusCode::BAD_REQUEST,
            "This login form has expired or was not sent from this site. Go back to the \
             application and sign in again.",
        );
    }
    let account = format!("user:{}:{username}", realm.name);
    let throttle = idp.throttle();
    // The login page again, 429 with `Retry-After`, saying why.
    let try_later = |why: &str, throttled: Throttled| {
        let mut response = login_page(&idp, &realm, &form, &request, &headers, Some(why));
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, super::retry_after(throttled));
        response
    };
    if let Err(throttled) = throttle.check(ip, &account, Instant::now()) {
        return try_later(
            "Too many failed sign-ins. Wait a little, then try again.",
            throttled,
        );
    }
    let password = form.get("password").unwrap_or_default().to_owned();
    let login = match idp.login(&realm, username, password).await {
        Ok(login) => login,
        Err(crate::idp::IdpError::Busy(after)) => {
            return try_later(
                "Too many sign-ins are being checked right now. Try again in a moment.",
                Throttled(after),
            );
        }
        Err(error) => return internal_page(error),
    };
    let Some(login) = login else {
        throttle.failed(ip, &account, Instant::now());
        let mut response = login_page(
            &idp,
            &realm,
            &form,
            &request,
            &headers,
            Some("Invalid user name or password."),
        );
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    };
    throttle.succeeded(ip, &account, Instant::now());
    let payload = GrantPayload {
        client_id: request.client_id.clone(),
        user_id: login.user.id.clone(),
        scope: request.scope.clone(),
        auth_time: idp.now().unix_timestamp(),
        redirect_uri: Some(request.redirect_uri.clone()),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.clone(),
    };
    let code = match idp.issue_code(&realm, &payload).await {
        Ok(code) => code,
        Err(error) => return internal_page(error),
    };
    redirect(
        &request.redirect_uri,
        &[
            ("code", Some(code.as_str())),
            ("state", request.state.as_deref()),
            ("iss", Some(realm.issuer_url.as_str())),
        ],
    )
}

/// Checks an authorization request: first the client and redirect URI (errors are pages),
/// then the rest (errors go to the client).
async fn check(idp: &Idp, realm: &Realm, form: &Form) -> Result<Authorization, Refusal> {
    let page = |why: &str| Refusal::Page(StatusCode::BAD_REQUEST, why.to_owned());
    let client_id = form
        .get("client_id")
        .ok_or_else(|| page("The request names no client (client_id is missing)."))?;
    let row = idp
        .store()
        .client(&realm.name, client_id)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "reading a client failed");
            Refusal::Page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The sign-in service is unavailable; try again later.".into(),
            )
        })?;
    let unknown = || page("The application that sent you here is not registered.");
    let row = row.ok_or_else(unknown)?;
    let settings: ClientSettings = serde_json::from_str(&row.settings).map_err(|_| unknown())?;
    if !settings.enabled
        || !settings
            .grant_types
            .iter()
            .any(|g| g == "authorization_code")
    {
        return Err(unknown());
    }
    let requested = form
        .get("redirect_uri")
        .ok_or_else(|| page("The request has no redirect_uri."))?;
    if !settings
        .redirect_uris
        .iter()
        .any(|registered| redirect_matches(registered, requested))
    {
        return Err(page(
            "The redirect_uri is not registered for this application.",
        ));
    }
    // From here on, errors go back to the (verified) redirect URI.
    let state = form.get("state").map(str::to_owned);
    let to_client = |error: &'static str, description: &str| Refusal::Redirect {
        redirect_uri: requested.to_owned(),
        state: state.clone(),
        error,
        description: description.to_owned(),
    };
    if form.get("request").is_some() {
        return Err(to_client(
            "request_not_supported",
            "Request objects are not supported.",
        ));
    }
    if form.get("request_uri").is_some() {
        return Err(to_client(
            "request_uri_not_supported",
            "request_uri is not supported.",
        ));
    }
    match form.get("response_type") {
        Some("code") => {}
        None => return Err(to_client("invalid_request", "response_type is missing.")),
        Some(_) => {
            return Err(to_client(
                "unsupported_response_type",
                "Only the authorization code flow (response_type=code) is supported.",
            ));
        }
    }
    if form.get("response_mode").is_some_and(|m| m != "query") {
        return Err(to_client(
            "invalid_request",
            "Only response_mode=query is supported.",
        ));
    }
    if form
        .get("prompt")
        .is_some_and(|p| p.split(' ').any(|p| p == "none"))
    {
        return Err(to_client(
            "login_required",
            "Portico keeps no browser session; the user must sign in.",
        ));
    }
    let confidential = row.secret_hash.is_some();
    let code_challenge = match (
        form.get("code_challenge"),
        form.get("code_challenge_method"),
    ) {
        (Some(challenge), Some("S256")) if is_s256_challenge(challenge) => {
            Some(challenge.to_owned())
        }
        (Some(_), Some("S256")) => {
            return Err(to_client(
                "invalid_request",
                "code_challenge is not an S256 challenge (43 base64url characters).",
            ));
        }
        (Some(_), None) => {
            return Err(to_client(
                "invalid_request",
                "code_challenge_method is missing; only S256 is accepted.",
            ));
        }
        (_, Some(method)) if method != "S256" => {
            return Err(to_client(
                "invalid_request",
                "Only the S256 code_challenge_method is accepted.",
            ));
        }
        (None, Some(_)) => {
            return Err(to_client(
                "invalid_request",
                "code_challenge_method was sent without a code_challenge.",
            ));
        }
        (None, None) if !confidential => {
            return Err(to_client(
                "invalid_request",
                "PKCE is required: send code_challenge with code_challenge_method=S256.",
            ));
        }
        _ => None,
    };
    let scope = granted_scope(&settings, form.get("scope"), false)
        .map_err(|e| to_client("invalid_scope", &e.description))?;
    Ok(Authorization {
        client_id: client_id.to_owned(),
        redirect_uri: requested.to_owned(),
        scope,
        state,
        nonce: form.get("nonce").map(str::to_owned),
        code_challenge,
        client_name: if settings.name.is_empty() {
            client_id.to_owned()
        } else {
            settings.name
        },
    })
}

/// Whether a requested redirect URI matches a registered one: exactly, or, for `http` on a
/// loopback IP literal, with any port (RFC 8252 section 7.3).
pub(crate) fn redirect_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    match (loopback_parts(registered), loopback_parts(requested)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The host and the path-and-query of an `http` URI on a loopback IP literal, if it is one.
fn loopback_parts(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("http://")?;
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    let host = ["127.0.0.1", "[::1]"]
        .into_iter()
        .find(|host| authority.starts_with(host))?;
    let port = &authority[host.len()..];
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok.then_some((host, tail))
}

fn refuse(realm: &Realm, refusal: Refusal) -> Response {
    match refusal {
        Refusal::Page(status, why) => error_page(status, &why),
        Refusal::Redirect {
            redirect_uri,
            state,
            error,
            description,
        } => redirect(
            &redirect_uri,
            &[
                ("error", Some(error)),
                ("error_description", Some(description.as_str())),
                ("state", state.as_deref()),
                ("iss", Some(realm.issuer_url.as_str())),
            ],
        ),
    }
}

/// A 303 to `uri` with `params` added to its query.
fn redirect(uri: &str, params: &[(&str, Option<&str>)]) -> Response {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    let separator = if uri.contains('?') { '&' } else { '?' };
    let location = format!("{uri}{separator}{}", query.finish());
    let mut response = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
        }
        Err(_) => return error_page(StatusCode::BAD_REQUEST, "The redirect URI is not valid."),
    }
    page_headers(response.headers_mut());
    response
}

/// The login page, carrying the authorization request in hidden fields.
fn login_page(
    idp: &Idp,
    realm: &Realm,
    form: &Form,
    request: &Authorization,
    headers: &HeaderMap,
    problem: Option<&str>,
) -> Response {
    let csrf_cookie = CsrfCookie::of(idp, realm);
    let csrf = csrf_cookie
        .sent(headers)
        .map_or_else(secrets::generate, str::to_owned);
    let mut hidden = String::new();
    for name in CARRIED {
        if let Some(value) = form.get(name) {
            hidden.push_str(&format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n",
                escape(value)
            ));
        }
    }
    hidden.push_str(&format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n",
        escape(&csrf)
    ));
    let problem = problem
        .map(|p| format!("<p class=\"problem\" role=\"alert\">{}</p>\n", escape(p)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1>\n<p>to continue to <strong>{client}</strong> ({realm})</p>\n{problem}\
         <form method=\"post\" action=\"auth\">\n{hidden}\
         <label>User name <input name=\"username\" autocomplete=\"username\" required autofocus \
         value=\"{username}\"></label>\n\
         <label>Password <input name=\"password\" type=\"password\" \
         autocomplete=\"current-password\" required></label>\n\
         <button type=\"submit\">Sign in</button>\n</form>\n",
        client = escape(&request.client_name),
        realm = escape(&realm.name),
        username = escape(form.get("username").unwrap_or_default()),
    );
    let mut response = html(StatusCode::OK, "Sign in", &body);
    let cookie = format!("{}={csrf}; {}", csrf_cookie.name, csrf_cookie.attributes);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `GET logout` (OpenID Connect RP-Initiated Logout 1.0).
#[utoipa::path(get, path = "/realms/{realm}/protocol/openid-connect/logout",
    tag = "OpenID Connect",
    params(("realm" = String, Path, description = "The realm.", example = "node"),
        super::wire::LogoutQuery),
    responses((status = 200, description = "Signed out: a page saying so.", body = String,
            content_type = "text/html"),
        (status = 303, description = "Signed out, to `post_logout_redirect_uri`."),
        (status = 400, description = "A request that cannot go back to the client: a page \
            saying why.", body = String, content_type = "text/html"),
        (status = 404, description = "No such realm: a page saying so.", body = String,
            content_type = "text/html"),
        (status = 503, description = "The store cannot be reached: a page saying so.",
            body = String, content_type = "text/html")))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let form = match Form::parse(query.unwrap_or_default().as_bytes()) {
        Ok(form) => form,
        Err(error) => return error_page(StatusCode::BAD_REQUEST, &error.description),
    };
    end_session(&state, &name, &form).await
}

/// `POST logout`: the same as a form, or, with client authentication and a `refresh_token`
/// (as Keycloak's adapters send it), ends that login and answers 204.
#[utoipa::path(post, path = "/realms/{realm}/protocol/openid-connect/logout",
    tag = "OpenID Connect", params(("realm" = String, Path, description = "The realm.", example = "node")), security((), ("client" = [])),
    request_body(content = super::wire::LogoutIn,
        content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Signed out: a page saying so.", body = String,
            content_type = "text/html"),
        (status = 204, description = "The refresh token's login has ended."),
        (status = 303, description = "Signed out, to `post_logout_redirect_uri`."),
        (status = 400, description = "A bad form (a page), or a bad refresh token \
            (`invalid_grant`).", content(
            (String = "text/html"), (super::wire::OAuthErrorOut = "application/json"))),
        (status = 401, description = "Client authentication failed (`invalid_client`).",
            body = super::wire::OAuthErrorOut),
        (status = 404, description = "No such realm: a page saying so (with a `refresh_token`, \
            400 `invalid_request`).", body = String, content_type = "text/html"),
        (status = 429, description = "Too many failures (`temporarily_unavailable`); see \
            `Retry-After`.", body = super::wire::OAuthErrorOut),
        (status = 503, description = "The store cannot be reached.", content(
            (String = "text/html"), (super::wire::OAuthErrorOut = "application/json")))))]
pub(crate) async fn logout_post(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let form = match super::read_form(&state, &headers, body).await {
        Ok(form) => form,
        Err(error) => return error_page(StatusCode::BAD_REQUEST, &error.description),
    };
    if let Some(token) = form.get("refresh_token") {
        return match logout_refresh_token(&state, &name, ip, &headers, &form, token).await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(error) => error.into_response(),
        };
    }
    end_session(&state, &name, &form).await
}

async fn logout_refresh_token(
    state: &AppState,
    name: &str,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    form: &Form,
    token: &str,
) -> Result<(), OAuthError> {
    let (idp, realm) = realm(state, name)?;
    let auth = client_auth(headers, form)?;
    let client = super::authenticate_throttled(&idp, &realm, ip, &auth).await?;
    idp.revoke_refresh_token(&realm, &client.id, token).await?;
    Ok(())
}

async fn end_session(state: &AppState, name: &str, form: &Form) -> Response {
    let Ok((idp, realm)) = realm(state, name) else {
        return error_page(StatusCode::NOT_FOUND, "There is no such realm.");
    };
    let hint = match form.get("id_token_hint") {
        Some(token) => match idp.check_id_token_hint(&realm, token) {
            Some(hint) => Some(hint),
            None => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "The id_token_hint is not an ID token of this realm.",
                );
            }
        },
        None => None,
    };
    let client_id = match (form.get("client_id"), &hint) {
        (Some(id), Some(hint)) if id != hint.client_id => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "client_id and the id_token_hint name different applications.",
            );
        }
        (Some(id), _) => Some(id.to_owned()),
        (None, Some(hint)) => Some(hint.client_id.clone()),
        (None, None) => None,
    };
    let target = match form.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let Some(client_id) = &client_id else {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "post_logout_redirect_uri needs an id_token_hint or a client_id.",
                );
            };
            let registered = match idp.store().client(&realm.name, client_id).await {
                Ok(Some(row)) => serde_json::from_str::<ClientSettings>(&row.settings)
                    .map(|s| s.post_logout_redirect_uris.iter().any(|r| r == uri))
                    .unwrap_or(false),
                Ok(None) => false,
                Err(error) => return internal_page(error.into()),
            };
            if !registered {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "The post_logout_redirect_uri is not registered for this application.",
                );
            }
            Some(uri.to_owned())
        }
    };
    if let Some(session) = hint.as_ref().and_then(|h| h.session.as_deref())
        && let Err(error) = idp.revoke_family(session).await
    {
        return internal_page(error);
    }
    match target {
        Some(uri) => redirect(&uri, &[("state", form.get("state"))]),
        None => html(
            StatusCode::OK,
            "Signed out",
            "<h1>Signed out</h1>\n<p>You have been signed out. You can close this window.</p>\n",
        ),
    }
}

/// A cookie's value from the `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_match_exactly_except_loopback_ports() {
        assert!(redirect_matches(
            "https://app.example/cb",
            "https://app.example/cb"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example/cb/"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example:444/cb"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example/cb?x=1"
        ));
        assert!(redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:53111/cb"
        ));
        assert!(redirect_matches(
            "http://127.0.0.1:8080/cb",
            "http://127.0.0.1:9/cb"
        ));
        assert!(redirect_matches("http://[::1]/cb", "http://[::1]:53111/cb"));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:1/other"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1.evil/cb"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:1@evil/cb"
        ));
        assert!(
            !redirect_matches("http://localhost/cb", "http://localhost:1/cb"),
            "only IP literals get any port (RFC 8252 section 8.3)"
        );
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
