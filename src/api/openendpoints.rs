//! Signed (OpenEndpoints-style) endpoints over HTTP: `GET` or `POST {prefix}/{application}/
//! {endpoint}` with parameters in the query and (POST) a form, multipart or JSON body. Refusals
//! are problem documents, or a `303` to the endpoint's `error_redirect` with `error=<code>`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};

use crate::api::error::{ApiError, ErrorCode};
use crate::openendpoints::form::{self, FormError};
use crate::openendpoints::run::{Answered, CallError, shorten};
use crate::openendpoints::{Environment, ParamError, SignedEndpoint, SignedEndpoints};

use super::AppState;

/// A route per configured signed endpoint.
pub fn router(signed: &SignedEndpoints) -> Router<AppState> {
    let mut router = Router::new();
    for endpoint in &signed.endpoints {
        let bound = endpoint.clone();
        let mut methods = match (endpoint.get, endpoint.post) {
            (true, true) => MethodFilter::GET.or(MethodFilter::POST),
            (true, false) => MethodFilter::GET,
            _ => MethodFilter::POST,
        };
        if !endpoint.cors_origins.is_empty() {
            methods = methods.or(MethodFilter::OPTIONS);
        }
        router = router.route(
            &endpoint.path,
            on(
                methods,
                move |State(state): State<AppState>, request: Request| {
                    handle(state, bound.clone(), request)
                },
            ),
        );
    }
    router
}

async fn handle(state: AppState, endpoint: Arc<SignedEndpoint>, request: Request) -> Response {
    // A page of a listed origin may call from JavaScript and read the answer (CORS); the
    // hash is what authenticates, so no credentials are ever allowed.
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .filter(|origin| {
            endpoint
                .cors_origins
                .iter()
                .any(|allowed| origin.as_bytes() == allowed.as_bytes())
        })
        .cloned();
    let mut response = if request.method() == Method::OPTIONS {
        let mut preflight = StatusCode::NO_CONTENT.into_response();
        if origin.is_some() {
            let headers = preflight.headers_mut();
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(endpoint.allow()),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type"),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        preflight
    } else {
        match call(&state, &endpoint, request).await {
            Ok((answered, environment)) => answer(&endpoint, answered, environment),
            Err(error) => match &endpoint.error_redirect {
                Some(url) => see_other(&with_error(url, error.code().as_str())),
                None => error.into_response(),
            },
        }
    };
    if !endpoint.cors_origins.is_empty() {
        let headers = response.headers_mut();
        headers.append(header::VARY, HeaderValue::from_static("origin"));
        if let Some(origin) = origin {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        }
    }
    response
}

async fn call(
    state: &AppState,
    endpoint: &SignedEndpoint,
    request: Request,
) -> Result<(Answered, Environment), ApiError> {
    let Some(runner) = &state.openendpoints else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "Signed endpoints are not served.",
        ));
    };
    let settings = &runner.endpoints.settings;
    let (parts, body) = request.into_parts();
    // HEAD would run the actions of a GET without showing their answer.
    if parts.method == Method::HEAD {
        return Err(ApiError::method_not_allowed(
            &parts.method,
            endpoint.allow(),
        ));
    }
    if let Some(client) = parts.extensions.get::<super::extract::ClientIp>() {
        runner.admit(client.0).map_err(refused)?;
    }
    let form_error = |e: FormError| match e {
        FormError::UnsupportedMediaType(_) => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("{}.", capital(&e.to_string())),
        ),
        FormError::Malformed(_) | FormError::TooMany(_) => ApiError::new(
            ErrorCode::InvalidParameter,
            format!("{}.", capital(&e.to_string())),
        ),
    };
    let max = settings.max_parameters;
    let mut submitted = form::from_query(parts.uri.query(), max).map_err(form_error)?;
    if parts.method == Method::POST {
        let bytes =
            super::endpoints::read_body_within(state, body, settings.max_body_bytes).await?;
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let room = max.saturating_sub(submitted.len());
        submitted.extend(
            form::from_body(content_type, &bytes, room).map_err(|e| match e {
                FormError::TooMany(_) => form_error(FormError::TooMany(max)),
                e => form_error(e),
            })?,
        );
    }
    let resolved = endpoint.resolve(submitted, settings).map_err(|e| match e {
        ParamError::HashMissing => ApiError::new(
            ErrorCode::HashMissing,
            "The request has no `hash` parameter; a signed endpoint needs one.",
        ),
        ParamError::Unknown(name) => ApiError::new(
            ErrorCode::UnknownParameter,
            format!("`{}` is not a parameter of this endpoint.", shorten(&name)),
        ),
        ParamError::Missing(name) => ApiError::new(
            ErrorCode::MissingParameter,
            format!("The parameter `{name}` is required."),
        ),
        ParamError::Invalid(why) => {
            ApiError::new(ErrorCode::InvalidParameter, format!("{}.", capital(&why)))
        }
        ParamError::Environment(why) => {
            ApiError::new(ErrorCode::InvalidEnvironment, format!("{}.", capital(&why)))
        }
    })?;
    let answered = runner.call(endpoint, &resolved).await.map_err(refused)?;
    Ok((answered, resolved.environment))
}

fn refused(error: CallError) -> ApiError {
    match error {
        CallError::HashMismatch => ApiError::new(ErrorCode::HashMismatch, error.to_string()),
        CallError::Value(error) => super::endpoints::rejected(&error),
        CallError::Invalid(why) => ApiError::new(ErrorCode::InvalidParameter, why),
        CallError::NotFound(why) => ApiError::new(ErrorCode::NotFound, why),
        CallError::TooMany(why, after) => ApiError::new(ErrorCode::TooManyRequests, why)
            .with_header(
                header::RETRY_AFTER,
                HeaderValue::from(after.as_secs_f64().ceil().max(1.0) as u64),
            ),
        CallError::Unavailable(why) => ApiError::new(ErrorCode::Unavailable, why),
        CallError::ActionFailed(why) => ApiError::new(ErrorCode::ActionFailed, why),
    }
}

fn answer(endpoint: &SignedEndpoint, answered: Answered, environment: Environment) -> Response {
    match answered {
        Answered::Called => axum::Json(serde_json::json!({
            "application": endpoint.application,
            "endpoint": endpoint.name,
            "environment": environment.as_str(),
        }))
        .into_response(),
        Answered::File {
            content_type,
            bytes,
        } => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            Body::from(bytes),
        )
            .into_response(),
        Answered::Redirect(url) => see_other(&url),
    }
}

/// `303 See Other`: the browser follows with a GET, whatever the form's method was.
fn see_other(url: &str) -> Response {
    match HeaderValue::from_str(url) {
        Ok(location) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, location),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        Err(_) => ApiError::internal(&format!("the redirect URL `{url}` is not a header value"))
            .into_response(),
    }
}

/// `url` with `error=<code>` added to its query (before any fragment).
fn with_error(url: &str, code: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let separator = if base.contains('?') { '&' } else { '?' };
    let mut out = format!("{base}{separator}error={code}");
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

fn capital(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_redirects_keep_query_and_fragment() {
        assert_eq!(
            with_error("/sorry", "hash_mismatch"),
            "/sorry?error=hash_mismatch"
        );
        assert_eq!(
            with_error("https://a.example/x?y=1#top", "missing_parameter"),
            "https://a.example/x?y=1&error=missing_parameter#top"
        );
    }
}
