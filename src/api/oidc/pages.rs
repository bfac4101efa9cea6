//! The identity provider's pages: error pages, the HTML frame, style and security headers every
//! page shares.

use super::*;

pub(super) fn internal_page(error: crate::idp::IdpError) -> Response {
    let error = crate::api::error::ApiError::from(error);
    error_page(
        error.code().status(),
        "The sign-in service failed; try again later.",
    )
}

/// An error page: the request cannot go on, and the browser is not sent anywhere.
pub(super) fn error_page(status: StatusCode, why: &str) -> Response {
    html(
        status,
        "Sign-in error",
        &format!(
            "<h1>We cannot sign you in</h1>\n<p class=\"problem\">{}</p>\n",
            escape(why)
        ),
    )
}

pub(super) fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · Portico</title>\n<style>{STYLE}</style>\n</head>\n\
         <body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        title = escape(title),
    );
    let mut response = (status, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    page_headers(headers);
    response
}

/// Headers of every page: no caching, no framing, no scripts, no referrer.
pub(super) fn page_headers(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

pub(super) const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0}\
main{max-width:22rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;\
box-shadow:0 1px 4px #0002}h1{margin-top:0;font-size:1.4rem}label{display:block;margin:1rem 0}\
input{display:block;width:100%;box-sizing:border-box;padding:.5rem;margin-top:.25rem}\
button{padding:.6rem 1.2rem}.problem{color:#a40000}";

/// Escapes text for HTML element content and double-quoted attributes.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
